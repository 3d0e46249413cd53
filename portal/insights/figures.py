"""Insights for the team: every figure aggregated by the database, over a date range. No Flask.

Nothing here loads requests into Python to count them. The counts come from the daily rollups
kept in step with every change (portal/insights/rollups.py), grouped by the database over the days of
the range; medians come from the rollups' duration histograms (to the resolution of a bucket:
5 s under a minute, 1 min under an hour, 15 min under two days). Overdue requests, billing
errors and feedback are read live, through their indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from portal.core.money import Money
from portal.core.vocabulary import Reason, RequestState
from portal.insights.models import InsightDay, InsightDuration, InsightOrderDay, InsightRefundDay, InsightSignalDay
from portal.insights.rollups import MEASURES, median_of
from portal.orders.models import Order
from portal.refunds.automation.models import ActionStatus, AutomationAction
from portal.refunds.models import Feedback, RefundRequest

OVERDUE_AFTER = timedelta(hours=24)
APPROVED_STATES = (RequestState.APPROVED, RequestState.REFUNDED, RequestState.REFUND_FAILED)
SIGNAL_KEYS = ("failed_lookups", "repeat_refunds", "shared_document", "payment_status")


@dataclass
class Insights:
    start: datetime
    end: datetime
    reasons_weekly: list[tuple[str, Reason, int]] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    refunded: list[tuple[str, int, Money]] = field(default_factory=list)
    timings: dict[str, float | None] = field(default_factory=dict)
    overdue: int = 0  # waiting on people
    overdue_automation: int = 0  # late too, but queued for an automation rule (the rules or their pause owe it)
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


def compute(session: Session, start: datetime, end: datetime, *, now: datetime) -> Insights:
    out = Insights(start=start, end=end)
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    days = and_(InsightDay.day >= first, InsightDay.day <= last)

    # The daily rollups (portal/insights/rollups.py): a few hundred rows, whatever the number of requests.
    weekly: dict[tuple[str, Reason], int] = {}
    decisions: dict[str, int] = {}
    totals: dict[Reason, int] = {}
    kept: dict[Reason, int] = {}
    outside_policy = 0
    for day, reason, result, review, count in session.execute(
        select(InsightDay.day, InsightDay.reason, InsightDay.outcome, InsightDay.review, func.sum(InsightDay.count))
        .where(days)
        .group_by(InsightDay.day, InsightDay.reason, InsightDay.outcome, InsightDay.review)
    ):
        if not count:
            continue
        week = (day - timedelta(days=day.weekday())).isoformat()
        weekly[(week, reason)] = weekly.get((week, reason), 0) + count
        decisions[result] = decisions.get(result, 0) + count
        totals[reason] = totals.get(reason, 0) + count
        kept[reason] = kept.get(reason, 0) + (count if result == "saved" else 0)
        outside_policy += count if review else 0
    out.reasons_weekly = sorted((w, reason, n) for (w, reason), n in weekly.items())
    out.decisions = decisions
    out.saved = [(reason, totals[reason], kept[reason]) for reason in Reason if reason in totals]
    out.billing_errors = totals.get(Reason.BILLING_ERROR, 0)

    out.refunded = [
        (currency, count, Money.from_minor(total, currency))
        for currency, count, total in session.execute(
            select(InsightRefundDay.currency, func.sum(InsightRefundDay.count), func.sum(InsightRefundDay.amount_minor))
            .where(InsightRefundDay.day >= first, InsightRefundDay.day <= last)
            .group_by(InsightRefundDay.currency)
            .order_by(InsightRefundDay.currency)
        )
        if count
    ]

    histograms: dict[str, dict[int, int]] = {measure: {} for measure in MEASURES}
    for measure, index, count in session.execute(
        select(InsightDuration.measure, InsightDuration.bucket, func.sum(InsightDuration.count))
        .where(InsightDuration.day >= first, InsightDuration.day <= last)
        .group_by(InsightDuration.measure, InsightDuration.bucket)
    ):
        histograms.setdefault(measure, {})[index] = count
    out.timings = {
        "acknowledge": median_of(histograms["acknowledge"]),
        "first_action": median_of(histograms["first_action"]),
        "resolution": median_of(histograms["resolution"]),
    }

    late = RefundRequest.awaiting_staff_since <= now - OVERDUE_AFTER
    # Counted apart: a request a rule has queued waits on automation, not on a person.
    queued = and_(
        AutomationAction.refund_request_id == RefundRequest.id, AutomationAction.status == ActionStatus.QUEUED
    )
    by_rules = AutomationAction.id.is_not(None)
    for automated, count in session.execute(
        select(by_rules, func.count())
        .select_from(RefundRequest)
        .outerjoin(AutomationAction, queued)
        .where(late)
        .group_by(by_rules)
    ):
        if automated:
            out.overdue_automation = count
        else:
            out.overdue = count
    out.overdue_oldest = [
        (reference, since)
        for reference, since in session.execute(
            select(RefundRequest.reference, RefundRequest.awaiting_staff_since)
            .outerjoin(AutomationAction, queued)
            .where(late, AutomationAction.id.is_(None))
            .order_by(RefundRequest.awaiting_staff_since)
            .limit(10)
        )
        if since is not None
    ]  # always, being late

    out.refund_rate = [
        (product, plan.value, orders, refunded)
        for product, plan, orders, refunded in session.execute(
            select(
                InsightOrderDay.product,
                InsightOrderDay.plan,
                func.sum(InsightOrderDay.orders),
                func.sum(InsightOrderDay.refunded),
            )
            .where(InsightOrderDay.day >= first, InsightOrderDay.day <= last)
            .group_by(InsightOrderDay.product, InsightOrderDay.plan)
            .order_by(InsightOrderDay.product, InsightOrderDay.plan)
        )
        if orders
    ]

    feedback_range = and_(Feedback.created_at >= start, Feedback.created_at < end)
    out.feedback_count, average = session.execute(
        select(func.count(), func.avg(Feedback.rating)).where(feedback_range)
    ).one()
    out.feedback_average = float(average) if average is not None else None
    out.come_back = dict(
        session.execute(
            select(Feedback.come_back, func.count()).where(feedback_range).group_by(Feedback.come_back)
        ).all()
    )
    out.comments = list(
        session.execute(
            select(Feedback.created_at, Feedback.rating, Feedback.comment, RefundRequest.reference)
            .join(RefundRequest, Feedback.refund_request_id == RefundRequest.id)
            .where(feedback_range, Feedback.comment != "")
            .order_by(Feedback.created_at.desc())
            .limit(8)
        ).all()
    )

    signals = dict(
        session.execute(
            select(InsightSignalDay.signal, func.sum(InsightSignalDay.count))
            .where(InsightSignalDay.day >= first, InsightSignalDay.day <= last)
            .group_by(InsightSignalDay.signal)
        ).all()
    )
    out.signals = {key: int(signals.get(key, 0)) for key in SIGNAL_KEYS}
    out.signals["above_refundable"] = outside_policy

    created = RefundRequest.created_at
    billing = and_(created >= start, created < end, RefundRequest.reason == Reason.BILLING_ERROR)
    out.billing_error_list = [
        (ref, when, state, Money.from_minor(minor, currency), number)
        for ref, when, state, minor, currency, number in session.execute(
            select(
                RefundRequest.reference,
                created,
                RefundRequest.state,
                RefundRequest.amount_requested_minor,
                RefundRequest.currency,
                Order.order_number,
            )
            .join(Order, RefundRequest.order_id == Order.id)
            .where(billing)
            .order_by(created.desc())
            .limit(20)
        )
    ]
    return out
