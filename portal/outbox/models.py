"""What waits to go out: emails and webhook events, and the endpoints that receive the events."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, enum_column, utcnow
from portal.core.vocabulary import OutboxStatus

if TYPE_CHECKING:
    from portal.refunds.models import RefundRequest


class WebhookSubscription(Base):
    """An endpoint of another system that receives signed JSON events for every state change."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    # The shared secret the signature is made with; the subscriber keeps a copy to check it.
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret still signs (a second signature) until this time, so the
    # receiver can switch without losing an event.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """An email or a webhook event waiting to go out, stored in the same transaction as the change
    that caused it."""

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_due", "status", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "email", or "webhook": then ``message`` is the event type, ``recipient`` the endpoint's
    # URL and ``variables`` the event itself.
    channel: Mapped[str] = mapped_column(String(16), default="email", server_default="email")
    webhook_subscription_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_subscription.id"))
    message: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(2000))
    locale: Mapped[str] = mapped_column(String(8))
    variables: Mapped[dict[str, Any]] = mapped_column(JSON)
    refund_request_id: Mapped[int | None] = mapped_column(ForeignKey("refund_request.id"), index=True)
    status: Mapped[OutboxStatus] = mapped_column(enum_column(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Stable across retries, so a resent message is recognisably the same email.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # The Message-ID of the first email about the same refund request (its thread's root), which
    # this one answers with In-Reply-To and References; empty for the root itself and other mail.
    thread_root: Mapped[str] = mapped_column(String(255), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # The X-Request-ID of the request that queued it (stamped by portal.web.telemetry), so the
    # worker's lines about it can be found beside the request's.
    request_id: Mapped[str | None] = mapped_column(String(128))

    refund_request: Mapped[RefundRequest | None] = relationship()
    webhook_subscription: Mapped[WebhookSubscription | None] = relationship()


class WebhookDelivery(Base):
    """One attempt to post an event (or a test event) to an endpoint: what it answered and how fast."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_endpoint", "webhook_subscription_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscription.id"))
    outbox_message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_message.id"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    # None when no answer came (a timeout, a refused connection): ``error`` says what happened.
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
