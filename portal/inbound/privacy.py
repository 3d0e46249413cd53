"""Replies by email under the data lifecycle: what a customer wrote by email goes with the rest of
their personal data when they ask for erasure (``portal.refunds.privacy.erase_customer`` does the
rest; it sits below this package, so the callers run both) and is part of their export
(``export_sections``, passed to ``portal.refunds.privacy.export_customer``). Services flush; the
caller commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from portal.inbound.models import InboundMessage
from portal.orders.models import Customer, Order
from portal.refunds.models import RefundRequest


def erase_replies(session: Session, customer: Customer) -> int:
    """Clear the sender, subject, words and refused attachments' names of every email received for
    the customer's requests, and the bounce report about their address; returns how many emails."""
    requests = (
        select(RefundRequest.id).join(Order, RefundRequest.order_id == Order.id).where(Order.customer_id == customer.id)
    )
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.refund_request_id.in_(requests))
        .values(sender="", subject="", text="", refused_attachments=[])
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result; typed as a plain Result
    customer.email_undeliverable_reason = ""
    session.flush()
    return result.rowcount


def export_sections(session: Session, customer: Customer) -> dict[str, Any]:
    """The emails received for the customer's requests (replies, and the auto-replies and bounces
    from their address), as sections of their export's customer.json."""
    messages = session.scalars(
        select(InboundMessage)
        .join(RefundRequest, InboundMessage.refund_request_id == RefundRequest.id)
        .join(Order, RefundRequest.order_id == Order.id)
        .where(Order.customer_id == customer.id)
        .order_by(InboundMessage.id)
    )
    return {
        "email_replies": [
            {
                "request": message.refund_request.reference if message.refund_request else None,
                "kind": message.kind,
                "sender": message.sender,
                "subject": message.subject,
                "text": message.text,
                "refused_attachments": message.refused_attachments,
                "received_at": message.received_at.isoformat(),
            }
            for message in messages
        ]
    }
