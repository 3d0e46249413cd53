"""Queue an email in the caller's transaction; a rolled-back change sends nothing.

What is stored is the message's name, the recipient's language and the variables; the worker
renders and delivers it, so what goes out is always the current template in the reader's language.
"""
from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from portal.models import OutboxMessage, RefundRequest


def queue_email(session: Session, message: str, recipient: str, locale: str, variables: dict, *,
                refund_request: RefundRequest | None = None, domain: str = "refunds.invalid") -> OutboxMessage:
    outbox = OutboxMessage(message=message, recipient=recipient, locale=locale, variables=variables,
                           refund_request=refund_request,
                           message_id=f"<{uuid.uuid4().hex}@{domain}>")
    session.add(outbox)
    return outbox
