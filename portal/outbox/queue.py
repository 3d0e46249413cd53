"""The transactional outbox: queue an email in the caller's transaction, deliver it later.

What is stored is the message's name, the recipient's language and the variables; the worker
renders and delivers it, so what goes out is always the current template in the reader's
language, and a rolled-back change sends nothing. Nothing here imports Flask.

Delivery claims one message at a time with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so several
workers can run at once and never take the same message; SQLite ignores the clause and is
meant for a single worker. Each message keeps its Message-ID across retries, so a retry after
a lost acknowledgement is recognisably the same email, never a second one.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.vocabulary import OutboxStatus
from portal.outbox.models import OutboxMessage
from portal.refunds.models import RefundRequest

FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)


class TemporaryFailure(Exception):
    """Try again later: the server is down, slow, or answered 4xx."""


class PermanentFailure(Exception):
    """Retrying cannot help: the server answered 5xx, or the message cannot be rendered."""


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def queue_email(session: Session, message: str, recipient: str, locale: str, variables: dict, *,
                refund_request: RefundRequest | None = None, domain: str = "refunds.invalid") -> OutboxMessage:
    outbox = OutboxMessage(message=message, recipient=recipient, locale=locale, variables=variables,
                           refund_request=refund_request, status=OutboxStatus.PENDING, attempts=0,
                           message_id=f"<{uuid.uuid4().hex}@{domain}>")
    session.add(outbox)
    return outbox


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … capped at an hour."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_WAIT)


def claim_next(session: Session, now: datetime) -> OutboxMessage | None:
    query = (select(OutboxMessage)
             .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
             .limit(1)
             .with_for_update(skip_locked=True))
    return session.scalars(query).first()


def deliver_due(session: Session, send: Callable[[OutboxMessage], None], *, clock: Callable[[], datetime],
                max_attempts: int, limit: int | None = None) -> DeliveryReport:
    """Send every due message once; each outcome is committed before the next message is claimed."""
    report = DeliveryReport()
    while limit is None or report.sent + report.retried + report.dead < limit:
        message = claim_next(session, clock())
        if message is None:
            break
        message.attempts += 1
        try:
            send(message)
        except TemporaryFailure as error:
            message.last_error = str(error)[:2000]
            if message.attempts >= max_attempts:
                message.status = OutboxStatus.DEAD
                report.dead += 1
            else:
                message.next_attempt_at = clock() + backoff(message.attempts)
                report.retried += 1
        except PermanentFailure as error:
            message.last_error = str(error)[:2000]
            message.status = OutboxStatus.DEAD
            report.dead += 1
        else:
            message.status = OutboxStatus.SENT
            message.sent_at = clock()
            message.last_error = ""
            report.sent += 1
        session.commit()
    session.rollback()  # release the claim query's transaction when nothing was due
    return report


def resend(session: Session, message: OutboxMessage, *, now: datetime) -> None:
    """Give a dead (or sent) message another round of attempts, with the same Message-ID."""
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = now
    message.last_error = ""
    session.commit()
