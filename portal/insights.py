"""Insights for the team: every figure aggregated by the database, over a date range. No Flask.

Nothing here loads requests into Python to count them: each figure is one grouped query on
indexed columns, and medians are found by the database sorting the values and reading the
middle one (the same SQL on SQLite and PostgreSQL).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.orm import Session, aliased

from portal.domain import PaymentStatus, Reason, RefundStatus, RequestState
from portal.models import Document, Feedback, LookupFailure, Order, Refund, RefundRequest
from portal.money import Money

OVERDUE_AFTER = timedelta(hours=24)
APPROVED_STATES = (RequestState.APPROVED, RequestState.REFUNDED, RequestState.REFUND_FAILED)


@dataclass
class Insights:
    start: datetime
    end: datetime
    reasons_weekly: list[tuple[str, Reason, int]] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    refunded: list[tuple[str, int, Money]] = field(default_factory=list)
    timings: dict[str, float | None] = field(default_factory=dict)
    overdue: int = 0
    overdue_oldest: list[tuple[str, datetime]] = field(default_factory=list)
    refund_rate: list[tuple[str, str, int, int]] = field(default_factory=list)
    saved: list[tuple[Reason, int, int]] = field(default_factory=list)
    feedback_count: int = 0
    feedback_average: float | None = None
    come_back: dict[str, int] = field(default_factory=dict)
    comments: list[tuple[datetime, int, str, str]] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)
    billing_errors: int = 0
    billing_error_list: list[tuple[str, datetime, RequestState, Money, str]] = field(default_factory=list)

    @property
    def approval_rate(self) -> float | None:
        decided = self.decisions.get("approved", 0) + self.decisions.get("declined", 0)
        return self.decisions.get("approved", 0) / decided if decided else None

    @property
    def decline_rate(self) -> float | None:
        rate = self.approval_rate
        return None if rate is None else 1 - rate


def _seconds(later, earlier, dialect: str):
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _week(column, dialect: str):
    """The Monday that starts the column's week, as YYYY-MM-DD."""
    if dialect == "postgresql":
        return func.to_char(func.date_trunc("week", column), "YYYY-MM-DD")
    return func.date(column, "-6 days", "weekday 1")


def median(session: Session, value, *conditions) -> float | None:
    conditions = (*conditions, value.is_not(None))
    count = session.scalar(select(func.count()).select_from(RefundRequest).where(*conditions)) or 0
    if not count:
        return None
    middle = session.scalars(select(value).select_from(RefundRequest).where(*conditions).order_by(value)
                             .offset((count - 1) // 2).limit(2 - count % 2)).all()
    return sum(float(v) for v in middle) / len(middle)


def compute(session: Session, start: datetime, end: datetime, *, now: datetime) -> Insights:
    dialect = session.get_bind().dialect.name
    created = RefundRequest.created_at
    in_range = and_(created >= start, created < end)
    out = Insights(start=start, end=end)

    week = _week(created, dialect).label("week")
    out.reasons_weekly = [(w, reason, n) for w, reason, n in session.execute(
        select(week, RefundRequest.reason, func.count()).where(in_range)
        .group_by(week, RefundRequest.reason).order_by(week, RefundRequest.reason))]

    decided = case((RefundRequest.state.in_(APPROVED_STATES), literal("approved")),
                   (RefundRequest.state == RequestState.DECLINED, literal("declined")),
                   (RefundRequest.state == RequestState.RESOLVED_WITH_OFFER, literal("saved")),
                   (RefundRequest.state == RequestState.WITHDRAWN, literal("withdrawn")),
                   else_=literal("open")).label("outcome")
    out.decisions = dict(session.execute(select(decided, func.count()).where(in_range).group_by(decided)).all())

    completed = and_(Refund.status == RefundStatus.SUCCEEDED, Refund.completed_at >= start, Refund.completed_at < end)
    out.refunded = [(currency, count, Money.from_minor(total, currency)) for currency, count, total in session.execute(
        select(Refund.currency, func.count(), func.sum(Refund.amount_minor)).where(completed)
        .group_by(Refund.currency).order_by(Refund.currency))]

    out.timings = {
        "acknowledge": median(session, _seconds(RefundRequest.acknowledged_at, created, dialect), in_range),
        "first_action": median(session, _seconds(RefundRequest.first_staff_action_at, created, dialect), in_range),
        "resolution": median(session, _seconds(RefundRequest.resolved_at, created, dialect), in_range),
    }

    late = RefundRequest.awaiting_staff_since <= now - OVERDUE_AFTER
    out.overdue = session.scalar(select(func.count()).select_from(RefundRequest).where(late)) or 0
    out.overdue_oldest = list(session.execute(
        select(RefundRequest.reference, RefundRequest.awaiting_staff_since).where(late)
        .order_by(RefundRequest.awaiting_staff_since).limit(10)).all())

    refunded_request = exists().where(RefundRequest.order_id == Order.id, RefundRequest.state == RequestState.REFUNDED)
    refunded_orders = func.sum(case((refunded_request, 1), else_=0))
    out.refund_rate = [(product, plan.value if hasattr(plan, "value") else plan, orders, refunds)
                       for product, plan, orders, refunds in session.execute(
        select(Order.product, Order.plan, func.count(), refunded_orders)
        .where(Order.purchased_at >= start, Order.purchased_at < end)
        .group_by(Order.product, Order.plan).order_by(Order.product, Order.plan))]

    saved = func.sum(case((RefundRequest.state == RequestState.RESOLVED_WITH_OFFER, 1), else_=0))
    out.saved = [(reason, total, kept or 0) for reason, total, kept in session.execute(
        select(RefundRequest.reason, func.count(), saved).where(in_range)
        .group_by(RefundRequest.reason).order_by(RefundRequest.reason))]

    feedback_range = and_(Feedback.created_at >= start, Feedback.created_at < end)
    out.feedback_count, average = session.execute(
        select(func.count(), func.avg(Feedback.rating)).where(feedback_range)).one()
    out.feedback_average = float(average) if average is not None else None
    out.come_back = dict(session.execute(select(Feedback.come_back, func.count()).where(feedback_range)
                                         .group_by(Feedback.come_back)).all())
    out.comments = list(session.execute(
        select(Feedback.created_at, Feedback.rating, Feedback.comment, RefundRequest.reference)
        .join(RefundRequest, Feedback.refund_request_id == RefundRequest.id)
        .where(feedback_range, Feedback.comment != "").order_by(Feedback.created_at.desc()).limit(8)).all())

    out.signals = _signals(session, in_range, now)

    billing = and_(in_range, RefundRequest.reason == Reason.BILLING_ERROR)
    out.billing_errors = session.scalar(select(func.count()).select_from(RefundRequest).where(billing)) or 0
    out.billing_error_list = [(ref, when, state, Money.from_minor(minor, currency), number)
                              for ref, when, state, minor, currency, number in session.execute(
        select(RefundRequest.reference, created, RefundRequest.state, RefundRequest.amount_requested_minor,
               RefundRequest.currency, Order.order_number)
        .join(Order, RefundRequest.order_id == Order.id).where(billing).order_by(created.desc()).limit(20))]
    return out


def _signals(session: Session, in_range, now: datetime) -> dict[str, int]:
    """How many requests in the range raise each fraud signal the database can see at once."""
    def count(*conditions) -> int:
        return session.scalar(select(func.count()).select_from(RefundRequest)
                              .join(Order, RefundRequest.order_id == Order.id).where(in_range, *conditions)) or 0

    other_request = aliased(RefundRequest)
    other_order = aliased(Order)
    other_document = aliased(Document)
    shared = exists().where(
        Document.refund_request_id == RefundRequest.id, other_document.sha256 == Document.sha256,
        other_document.refund_request_id == other_request.id, other_request.order_id == other_order.id,
        other_order.customer_id != Order.customer_id)
    repeat = exists().where(Refund.order_id == other_order.id, other_order.customer_id == Order.customer_id,
                            Refund.status == RefundStatus.SUCCEEDED, Refund.completed_at >= now - timedelta(days=365))
    return {
        "failed_lookups": count(exists().where(LookupFailure.order_number == Order.order_number)),
        "repeat_refunds": count(repeat),
        "shared_document": count(shared),
        "payment_status": count(Order.payment_status != PaymentStatus.PAID),
        "above_refundable": count(RefundRequest.review_requested.is_(True)),
    }

