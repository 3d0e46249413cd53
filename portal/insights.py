"""Insights for the team: every figure aggregated by the database, over a date range. No Flask.

Nothing here loads requests into Python to count them: each figure is one grouped query on
indexed columns, and medians are found by the database sorting the values and reading the
middle one (the same SQL on SQLite and PostgreSQL).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal, select
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


def _medians(session: Session, values: dict, in_range, dialect: str) -> dict[str, float | None]:
    """The median of each duration, computed by the database."""
    if dialect == "postgresql":
        # One pass: PostgreSQL's ordered-set aggregate finds each middle value itself.
        row = session.execute(select(*[func.percentile_cont(0.5).within_group(value).label(name)
                                       for name, value in values.items()]).where(in_range)).one()
        return {name: float(v) if v is not None else None for name, v in row._mapping.items()}
    # SQLite has no median: count the values, then let it sort them and read the middle one or two.
    counts = session.execute(select(*[func.count(value).label(name) for name, value in values.items()])
                             .where(in_range)).one()._mapping
    medians = {}
    for name, value in values.items():
        count = counts[name]
        if not count:
            medians[name] = None
            continue
        middle = session.scalars(select(value).where(in_range, value.is_not(None)).order_by(value)
                                 .offset((count - 1) // 2).limit(2 - count % 2)).all()
        medians[name] = sum(float(v) for v in middle) / len(middle)
    return medians


def compute(session: Session, start: datetime, end: datetime, *, now: datetime) -> Insights:
    dialect = session.get_bind().dialect.name
    created = RefundRequest.created_at
    in_range = and_(created >= start, created < end)
    out = Insights(start=start, end=end)

    # One pass over the period's requests gives the weekly reasons, the outcomes, the saved rate
    # by reason and the billing errors: grouped by week, reason and outcome, summed up below.
    week = _week(created, dialect).label("week")
    outcome = case((RefundRequest.state.in_(APPROVED_STATES), literal("approved")),
                   (RefundRequest.state == RequestState.DECLINED, literal("declined")),
                   (RefundRequest.state == RequestState.RESOLVED_WITH_OFFER, literal("saved")),
                   (RefundRequest.state == RequestState.WITHDRAWN, literal("withdrawn")),
                   else_=literal("open")).label("outcome")
    review = func.sum(case((RefundRequest.review_requested.is_(True), 1), else_=0))
    grouped = session.execute(select(week, RefundRequest.reason, outcome, func.count(), review).where(in_range)
                              .group_by(week, RefundRequest.reason, outcome)).all()
    weekly, decisions, totals, kept = {}, {}, {}, {}
    outside_policy = 0
    for w, reason, result, count, reviews in grouped:
        weekly[(w, reason)] = weekly.get((w, reason), 0) + count
        decisions[result] = decisions.get(result, 0) + count
        totals[reason] = totals.get(reason, 0) + count
        kept[reason] = kept.get(reason, 0) + (count if result == "saved" else 0)
        outside_policy += reviews or 0
    out.reasons_weekly = sorted((w, reason, n) for (w, reason), n in weekly.items())
    out.decisions = decisions
    out.saved = [(reason, totals[reason], kept[reason]) for reason in Reason if reason in totals]
    out.billing_errors = totals.get(Reason.BILLING_ERROR, 0)

    completed = and_(Refund.status == RefundStatus.SUCCEEDED, Refund.completed_at >= start, Refund.completed_at < end)
    out.refunded = [(currency, count, Money.from_minor(total, currency)) for currency, count, total in session.execute(
        select(Refund.currency, func.count(), func.sum(Refund.amount_minor)).where(completed)
        .group_by(Refund.currency).order_by(Refund.currency))]

    out.timings = _medians(session, {
        "acknowledge": _seconds(RefundRequest.acknowledged_at, created, dialect),
        "first_action": _seconds(RefundRequest.first_staff_action_at, created, dialect),
        "resolution": _seconds(RefundRequest.resolved_at, created, dialect),
    }, in_range, dialect)

    late = RefundRequest.awaiting_staff_since <= now - OVERDUE_AFTER
    out.overdue = session.scalar(select(func.count()).select_from(RefundRequest).where(late)) or 0
    out.overdue_oldest = list(session.execute(
        select(RefundRequest.reference, RefundRequest.awaiting_staff_since).where(late)
        .order_by(RefundRequest.awaiting_staff_since).limit(10)).all())

    # Orders of the period per product and plan, and how many of them were refunded: two grouped
    # queries joined by the database, never a lookup per order.
    bought = and_(Order.purchased_at >= start, Order.purchased_at < end)
    orders = {(product, plan): n for product, plan, n in session.execute(
        select(Order.product, Order.plan, func.count()).where(bought).group_by(Order.product, Order.plan))}
    refunded_orders = {(product, plan): n for product, plan, n in session.execute(
        select(Order.product, Order.plan, func.count(func.distinct(Order.id)))
        .join(RefundRequest, RefundRequest.order_id == Order.id)
        .where(bought, RefundRequest.state == RequestState.REFUNDED).group_by(Order.product, Order.plan))}
    out.refund_rate = [(product, plan.value, n, refunded_orders.get((product, plan), 0))
                       for (product, plan), n in sorted(orders.items(), key=lambda item: (item[0][0], item[0][1].value))]

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
    out.signals["above_refundable"] = outside_policy

    billing = and_(in_range, RefundRequest.reason == Reason.BILLING_ERROR)
    out.billing_error_list = [(ref, when, state, Money.from_minor(minor, currency), number)
                              for ref, when, state, minor, currency, number in session.execute(
        select(RefundRequest.reference, created, RefundRequest.state, RefundRequest.amount_requested_minor,
               RefundRequest.currency, Order.order_number)
        .join(Order, RefundRequest.order_id == Order.id).where(billing).order_by(created.desc()).limit(20))]
    return out


def _signals(session: Session, in_range, now: datetime) -> dict[str, int]:
    """How many requests in the range raise each fraud signal the database can see at once.

    Each signal is a set (order numbers with failed lookups, customers refunded this year,
    documents sent by two customers) that the database builds once and joins, in one pass.
    """
    looked_up = select(LookupFailure.order_number).distinct()
    refunded_customers = (select(Order.customer_id).join(Refund, Refund.order_id == Order.id)
                          .where(Refund.status == RefundStatus.SUCCEEDED, Refund.completed_at >= now - timedelta(days=365))
                          .distinct())
    owner = aliased(Order)
    owning_request = aliased(RefundRequest)
    shared_hashes = (select(Document.sha256)
                     .join(owning_request, Document.refund_request_id == owning_request.id)
                     .join(owner, owning_request.order_id == owner.id)
                     .group_by(Document.sha256).having(func.count(func.distinct(owner.customer_id)) > 1))
    with_shared = select(Document.refund_request_id).where(Document.sha256.in_(shared_hashes)).distinct()

    def flag(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(flag(Order.order_number.in_(looked_up)), flag(Order.customer_id.in_(refunded_customers)),
               flag(RefundRequest.id.in_(with_shared)), flag(Order.payment_status != PaymentStatus.PAID))
        .select_from(RefundRequest).join(Order, RefundRequest.order_id == Order.id).where(in_range)).one()
    return dict(zip(("failed_lookups", "repeat_refunds", "shared_document", "payment_status"), map(int, row)))
