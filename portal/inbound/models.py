"""What arrived by email for a refund request: replies, auto-replies and bounces."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from portal.refunds.models import RefundRequest


class InboundMessage(Base):
    """One message received for a request. Kept whatever its kind, so the loop guard can count them."""

    __tablename__ = "inbound_message"
    __table_args__ = (Index("ix_inbound_message_sender_received", "sender", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int | None] = mapped_column(ForeignKey("refund_request.id"), index=True)
    # "reply" (on the timeline), "auto_reply", "bounce" or "loop" (both ignored, kept for the record).
    kind: Mapped[str] = mapped_column(String(16))
    # How it was matched: "token" (the reply address) or "references" (In-Reply-To/References).
    matched_by: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    # The customer's own words, quoted history and signature trimmed.
    text: Mapped[str] = mapped_column(Text, default="")
    # Attachments that failed the uploads' checks: [{"name": ..., "problem": ...}] for staff to see.
    refused_attachments: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # The reply answered the staff's questions (the request went back to review).
    answered: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    refund_request: Mapped[RefundRequest | None] = relationship()
