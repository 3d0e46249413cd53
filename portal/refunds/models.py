"""Refund requests and everything that happens to them: timeline, notes, questions, refunds,
receipts, feedback and the payment processor's events. Times are UTC."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, enum_column, utcnow
from portal.core.money import Money
from portal.core.vocabulary import CLOSED_STATES, Actor, Channel, Reason, RefundStatus, RequestState
from portal.documents.models import Document
from portal.orders.models import Order
from portal.policy.engine import Decision

if TYPE_CHECKING:
    from portal.accounts.models import StaffUser


# Crockford's alphabet without the letters people misread (I, L, O, U) or the digits 0 and 1.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reference() -> str:
    return "RF-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


_WAITING_ON_STAFF_SQL = text("awaiting_staff_since IS NOT NULL")
# A customer took an offer and staff have not set it up yet: the one closed request staff still owe.
_OFFER_TO_SET_UP_SQL = text("state = 'resolved_with_offer' AND awaiting_staff_since IS NOT NULL")
_OPEN_STATES_SQL = text("state NOT IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(CLOSED_STATES))))


class RefundRequest(Base):
    __tablename__ = "refund_request"
    __table_args__ = (
        # The staff queue reads oldest first within a state; keyset pagination walks this index.
        Index("ix_refund_request_state_created", "state", "created_at", "id"),
        # The queue's other filters and its unfiltered first page, each walked in the same order.
        Index("ix_refund_request_created", "created_at", "id"),
        Index("ix_refund_request_reason_created", "reason", "created_at", "id"),
        Index("ix_refund_request_locale_created", "locale", "created_at", "id"),
        Index("ix_refund_request_channel_created", "channel", "created_at", "id"),
        # One open request per order, enforced by the database even when two submissions race.
        Index(
            "ux_refund_request_one_open_per_order",
            "order_id",
            unique=True,
            sqlite_where=_OPEN_STATES_SQL,
            postgresql_where=_OPEN_STATES_SQL,
        ),
        CheckConstraint("amount_requested_minor >= 0", name="requested_not_negative"),
        # The desk's views, each walked in due order: "needs action" (waiting on staff), one agent's
        # or nobody's open requests, all open ones, and those waiting on the customer.
        Index(
            "ix_refund_request_needs_action",
            "sla_clock_at",
            "id",
            sqlite_where=_WAITING_ON_STAFF_SQL,
            postgresql_where=_WAITING_ON_STAFF_SQL,
        ),
        Index(
            "ix_refund_request_open_assignee",
            "assignee_id",
            "sla_clock_at",
            "id",
            sqlite_where=_OPEN_STATES_SQL,
            postgresql_where=_OPEN_STATES_SQL,
        ),
        Index(
            "ix_refund_request_open_due",
            "sla_clock_at",
            "id",
            sqlite_where=_OPEN_STATES_SQL,
            postgresql_where=_OPEN_STATES_SQL,
        ),
        Index("ix_refund_request_state_due", "state", "sla_clock_at", "id"),
        # The offers waiting to be set up, counted for the "needs action" view beside the open requests.
        Index(
            "ix_refund_request_offer_to_set_up",
            "sla_clock_at",
            "id",
            sqlite_where=_OFFER_TO_SET_UP_SQL,
            postgresql_where=_OFFER_TO_SET_UP_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True, default=new_reference)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    state: Mapped[RequestState] = mapped_column(enum_column(RequestState), default=RequestState.RECEIVED)
    reason: Mapped[Reason] = mapped_column(enum_column(Reason))
    details: Mapped[str] = mapped_column(Text, default="")
    currency: Mapped[str] = mapped_column(String(3))
    amount_requested_minor: Mapped[int] = mapped_column(BigInteger)
    amount_approved_minor: Mapped[int | None] = mapped_column(BigInteger)
    locale: Mapped[str] = mapped_column(String(8))
    # The customer's time zone when filing: the times and days in its emails and receipts are theirs.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # The policy version and the decision as the customer was shown them when filing.
    policy_version: Mapped[str | None] = mapped_column(String(32))
    decision_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The customer asked for review outside what the policy grants automatically.
    review_requested: Mapped[bool] = mapped_column(default=False)
    # SHA-256 of the secret in the tracking URL; the secret itself is never stored.
    tracking_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The form's one-time key: a resubmitted form finds the request it already made.
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The alternative the customer took instead of a refund, and when (and by whom) staff set it up:
    # until then the request waits on staff although it is resolved.
    offer_id: Mapped[str | None] = mapped_column(String(64))
    offer_set_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    offer_set_up_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # Since when the customer has been waiting for staff (filed or answered, no staff action
    # since). None while nobody waits on staff: the overdue clock pauses while we wait on them.
    awaiting_staff_since: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The order's sales channel, copied here (it never changes) so the queue filters on it with an
    # index of its own instead of joining a million orders.
    channel: Mapped[Channel | None] = mapped_column(enum_column(Channel))
    # The clause a decline cites and the alternative it offers.
    decline_clause: Mapped[str | None] = mapped_column(String(64))
    alternative_offer_id: Mapped[str | None] = mapped_column(String(64))
    # Milestones for the insights: the acknowledgement delivered, the first staff action, closed.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_staff_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which attempt at moving the money this is: a processor's refusal starts a new attempt (and
    # a new idempotency key); a network error retries the same one.
    processing_attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The staff member who owns the request (None: unassigned).
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # The service-level clock (portal.refunds.queue): the filing time moved later by every pause
    # while we waited on the customer, so the due time is this plus PORTAL_SLA_HOURS whatever the
    # setting; and since when the clock stands still (None while it runs).
    sla_clock_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship(back_populates="refund_requests")
    assignee: Mapped[StaffUser | None] = relationship(foreign_keys=[assignee_id])
    offer_set_up_by: Mapped[StaffUser | None] = relationship(foreign_keys=[offer_set_up_by_id])
    information_requests: Mapped[list[InformationRequest]] = relationship(
        back_populates="refund_request", order_by="InformationRequest.id"
    )
    documents: Mapped[list[Document]] = relationship(back_populates="refund_request", order_by="Document.created_at")
    events: Mapped[list[StatusEvent]] = relationship(back_populates="refund_request", order_by="StatusEvent.id")
    notes: Mapped[list[InternalNote]] = relationship(back_populates="refund_request", order_by="InternalNote.id")
    refunds: Mapped[list[Refund]] = relationship(back_populates="refund_request", order_by="Refund.id")

    @property
    def amount_requested(self) -> Money:
        return Money.from_minor(self.amount_requested_minor, self.currency)

    @property
    def offer_waiting(self) -> bool:
        """The customer took an offer that staff have not set up yet."""
        return (
            self.state is RequestState.RESOLVED_WITH_OFFER
            and self.offer_id is not None
            and self.offer_set_up_at is None
        )

    def record_decision(self, decision: Decision) -> None:
        """Keep the decision the customer was shown; a later policy change never rewrites it."""
        self.policy_version = decision.policy_version
        self.decision_snapshot = decision.to_snapshot()

    @property
    def decision_at_filing(self) -> Decision | None:
        return Decision.from_snapshot(self.decision_snapshot) if self.decision_snapshot else None


class StatusEvent(Base):
    """The append-only timeline of a refund request: history is never edited."""

    __tablename__ = "status_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    actor: Mapped[Actor] = mapped_column(enum_column(Actor))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_state: Mapped[RequestState | None] = mapped_column(enum_column(RequestState))
    to_state: Mapped[RequestState] = mapped_column(enum_column(RequestState))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    # News from the payment processor: its word for the refund (pending, requires_action, succeeded,
    # failed, canceled) and, when it failed, its reason code; the pages put both in the reader's words.
    processor_status: Mapped[str] = mapped_column(String(32), default="", server_default="")
    failure_reason: Mapped[str] = mapped_column(String(64), default="", server_default="")

    refund_request: Mapped[RefundRequest] = relationship(back_populates="events")
    staff_user: Mapped[StaffUser | None] = relationship()


class AppendOnlyError(RuntimeError):
    pass


@event.listens_for(StatusEvent, "before_update")
@event.listens_for(StatusEvent, "before_delete")
def _refuse_history_edits(mapper: Mapper[StatusEvent], connection: Connection, target: StatusEvent) -> NoReturn:
    raise AppendOnlyError("status events are append-only")


class InternalNote(Base):
    """A note staff keep on a request; the customer never sees it. Append-only, like the timeline."""

    __tablename__ = "internal_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    refund_request: Mapped[RefundRequest] = relationship(back_populates="notes")
    staff_user: Mapped[StaffUser] = relationship()


@event.listens_for(InternalNote, "before_update")
@event.listens_for(InternalNote, "before_delete")
def _refuse_note_edits(mapper: Mapper[InternalNote], connection: Connection, target: InternalNote) -> NoReturn:
    raise AppendOnlyError("internal notes are append-only")


class Refund(Base):
    """One attempt to send money back through a payment gateway, and what it cost the business."""

    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="refund_amount_positive"),
        Index("ix_refund_order_status", "order_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    gateway: Mapped[str] = mapped_column(String(16))
    status: Mapped[RefundStatus] = mapped_column(enum_column(RefundStatus), default=RefundStatus.PENDING)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # Sent with every call for this attempt: the processor answers a repeat with the first result.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    processor_reference: Mapped[str] = mapped_column(String(128), default="")
    processor_message: Mapped[str] = mapped_column(Text, default="")
    # The processor's own status word and failure reason code (Stripe's ``status`` and ``failure_reason``).
    processor_status: Mapped[str] = mapped_column(String(32), default="", server_default="")
    failure_reason: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # What the refund costs beyond its amount: the processor's fee on the refunded share (not
    # returned by processors) and the affiliate commission to claw back.
    fee_kept_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_clawback_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    refund_request: Mapped[RefundRequest] = relationship(back_populates="refunds")
    order: Mapped[Order] = relationship()

    @property
    def amount(self) -> Money:
        return Money.from_minor(self.amount_minor, self.currency)


class StaffAlert(Base):
    """Something staff must look at that no customer caused: the processor refused our credentials,
    a refund appeared beyond what was paid, an event in a shape we do not read. Never emailed to a
    customer; shown on the request's page and to admins until resolved."""

    __tablename__ = "staff_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(Text)
    refund_request_id: Mapped[int | None] = mapped_column(ForeignKey("refund_request.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    refund_request: Mapped[RefundRequest | None] = relationship()
    order: Mapped[Order | None] = relationship()


class Receipt(Base):
    """The PDF credit note of a refund: issued once, kept byte for byte, never regenerated."""

    __tablename__ = "receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refund.id"), unique=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    locale: Mapped[str] = mapped_column(String(8))
    # The PDF in file storage (receipts/…), never in the database; its bytes are checked on every read.
    storage_key: Mapped[str] = mapped_column(String(128), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    refund: Mapped[Refund] = relationship()

    @property
    def filename(self) -> str:
        return f"{self.number}.pdf"


@event.listens_for(Receipt, "before_update")
@event.listens_for(Receipt, "before_delete")
def _refuse_receipt_edits(mapper: Mapper[Receipt], connection: Connection, target: Receipt) -> NoReturn:
    raise AppendOnlyError("an issued receipt never changes")


class Feedback(Base):
    """What a refunded customer told us: one answer per refund request."""

    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_one_to_five"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), unique=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    come_back: Mapped[str] = mapped_column(String(8))  # yes | maybe | no
    locale: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    refund_request: Mapped[RefundRequest] = relationship()


class RequestStateCount(Base):
    """How many requests are in each state, kept in step by every change of state.

    Counting a million rows for every queue page would take longer than the page itself.
    """

    __tablename__ = "request_state_count"

    state: Mapped[RequestState] = mapped_column(enum_column(RequestState), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class InformationRequest(Base):
    """Staff ask the customer for more: standard questions, custom text, or specific documents."""

    __tablename__ = "information_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    # [{"kind": "question" | "document", "key": "what_went_wrong" | "proof_of_purchase" | ..., "text": "..."}]
    items: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer: Mapped[str] = mapped_column(Text, default="")
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    refund_request: Mapped[RefundRequest] = relationship(back_populates="information_requests")
    documents: Mapped[list[Document]] = relationship(back_populates="information_request", order_by="Document.id")


class ProcessorEvent(Base):
    """A webhook event from the payment processor, stored once (by its id) before it is acted on."""

    __tablename__ = "processor_event"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    # The charge the event is about: an event that arrives before its charge's order waits on it.
    charge: Mapped[str] = mapped_column(String(255), default="", index=True)
    # When the processor made the event (its own clock), and when we received and handled it.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(Text, default="")


class AssignmentEvent(Base):
    """Who was given a request, by whom and when: the staff timeline's "assigned to X by Y".

    Kept apart from the status events, which the customer reads and the insights count.
    Append-only.
    """

    __tablename__ = "assignment_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), index=True)
    # Who had it before (None: nobody) and who has it now (None: back to unassigned).
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # None: the portal did it (round-robin assignment of a new request).
    by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # "" for a person's choice; "round_robin" or "deactivated" when the portal assigned or released it.
    cause: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(AssignmentEvent, "before_update")
@event.listens_for(AssignmentEvent, "before_delete")
def _refuse_assignment_edits(
    mapper: Mapper[AssignmentEvent], connection: Connection, target: AssignmentEvent
) -> NoReturn:
    raise AppendOnlyError("assignment events are append-only")


class SavedView(Base):
    """A staff member's saved filter of the queue: a name and the query string it stands for."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("staff_user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    query: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RequestPresence(Base):
    """Which staff member had a request's page open, and when last: one row each, touched on every view."""

    __tablename__ = "request_presence"

    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
