"""The transactional outbox: queue an email in the caller's transaction; ``worker`` delivers it later.

What is stored is the message's name, the recipient's language and the variables; the worker
renders and delivers it, so what goes out is always the current template in the reader's
language, and a rolled-back change sends nothing. Each message keeps its Message-ID across
retries, so a retry after a lost acknowledgement is recognisably the same email, never a second
one. Nothing here imports Flask.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.paths import resource_dir
from portal.core.vocabulary import OutboxStatus
from portal.outbox.kit import check_variables, specs_in
from portal.outbox.models import OutboxMessage

# Where an erased customer's addresses point (``portal.refunds.privacy``): nothing is ever sent there.
ERASED_DOMAIN = "erased.invalid"
ERASED_VALUE = "[erased]"
# Messages to an address that is being erased (the erasure's own confirmation, queued before the
# address goes): once the worker has sent one, the row keeps neither the address nor the variables.
FORGOTTEN_ONCE_SENT = frozenset({"erasure_confirmed"})


def queue_email(
    session: Session,
    message: str,
    recipient: str,
    locale: str,
    variables: Mapping[str, object],
    *,
    refund_request_id: int | None = None,
    domain: str = "refunds.invalid",
) -> OutboxMessage:
    """Queue ``message`` for ``recipient`` in the caller's transaction.

    The variables are checked against the kit's declarations now (:class:`~portal.outbox.kit.KitError`
    if one is missing, undeclared or of the wrong type) and stored as JSON: Money as "29.00 USD",
    dates as ISO 8601.
    """
    stored = check_variables(specs_in(resource_dir("emails")), message, locale, variables)
    root = ""
    if refund_request_id is not None:
        # The request's first email is its thread's root; every later one answers it.
        session.flush()
        root = (
            session.scalar(
                select(OutboxMessage.message_id)
                .where(OutboxMessage.refund_request_id == refund_request_id, OutboxMessage.channel == "email")
                .order_by(OutboxMessage.id)
                .limit(1)
            )
            or ""
        )
    outbox = OutboxMessage(
        message=message,
        recipient=recipient,
        locale=locale,
        variables=stored,
        refund_request_id=refund_request_id,
        status=OutboxStatus.PENDING,
        attempts=0,
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        thread_root=root,
    )
    session.add(outbox)
    return outbox


def resend(session: Session, message: OutboxMessage, *, now: datetime) -> None:
    """Give a dead (or sent) message another round of attempts, with the same Message-ID."""
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = now
    message.last_error = ""


def failed(message: OutboxMessage) -> bool:
    """Waiting for another attempt after one that failed (the worker retries it with backoff)."""
    return message.status is OutboxStatus.PENDING and message.attempts > 0 and bool(message.last_error)


def resendable(message: OutboxMessage) -> bool:
    """Staff send again only what gave up (dead) or failed; sent or waiting mail is left alone, and so
    is mail to an erased customer (its address is gone)."""
    return not to_erased_address(message) and (message.status is OutboxStatus.DEAD or failed(message))


def to_erased_address(message: OutboxMessage) -> bool:
    """An email whose recipient was erased: there is no one to send it to any more."""
    return message.channel == "email" and message.recipient.endswith("@" + ERASED_DOMAIN)


def forget(message: OutboxMessage) -> None:
    """Anonymise a message already sent to an address being erased: its recipient and every value."""
    message.recipient = f"erased@{ERASED_DOMAIN}"
    message.variables = dict.fromkeys(message.variables, ERASED_VALUE)
