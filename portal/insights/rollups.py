"""Daily rollups behind the insights, kept in step with every change in the caller's transaction:
they subscribe to the refund lifecycle (``portal.refunds.lifecycle``) and to order imports.

Grouping a million requests for every look at the insights page takes seconds; these tables
hold the same counts per day, so the page reads a few hundred rows. ``rebuild`` recomputes them
all from the requests, orders and refunds (the migration and the benchmark use it). No Flask.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.core.database import Base
from portal.core.vocabulary import RefundStatus, RequestState
from portal.insights.models import InsightDay, InsightDuration, InsightOrderDay, InsightRefundDay, InsightSignalDay
from portal.orders import importing
from portal.orders.models import Order
from portal.refunds import lifecycle
from portal.refunds.models import Refund, RefundRequest

APPROVED_STATES = (RequestState.APPROVED, RequestState.REFUNDED, RequestState.REFUND_FAILED)
MEASURES = ("acknowledge", "first_action", "resolution")


def outcome(state: RequestState) -> str:
    if state in APPROVED_STATES:
        return "approved"
    return {
        RequestState.DECLINED: "declined",
        RequestState.RESOLVED_WITH_OFFER: "saved",
        RequestState.WITHDRAWN: "withdrawn",
        RequestState.CLOSED_UNANSWERED: "withdrawn",
    }.get(state, "open")


def bucket(seconds: float) -> int:
    """A duration's histogram bucket: 5 s up to a minute, 1 min up to an hour, 15 min up to two
    days, then hours."""
    s = max(0.0, seconds)
    if s < 60:
        return int(s // 5)
    if s < 3600:
        return 12 + int(s // 60) - 1
    if s < 172_800:
        return 71 + int(s // 900) - 4
    return 259 + int(s // 3600) - 48


def bucket_middle(index: int) -> float:
    if index < 12:
        return index * 5 + 2.5
    if index < 71:
        return (index - 12 + 1) * 60 + 30
    if index < 259:
        return (index - 71 + 4) * 900 + 450
    return (index - 259 + 48) * 3600 + 1800


def median_of(histogram: dict[int, int]) -> float | None:
    """The middle value of a histogram, to the resolution of its buckets (the mean of the two
    middle values when the count is even, as for an exact median)."""
    total = sum(histogram.values())
    if not total:
        return None

    def at_rank(rank: int) -> float:
        seen = 0
        for index in sorted(histogram):
            seen += histogram[index]
            if seen >= rank:
                return bucket_middle(index)
        return bucket_middle(max(histogram))

    return (at_rank((total + 1) // 2) + at_rank(total // 2 + 1)) / 2


def _bump(session: Session, model: type[Base], keys: dict[str, object], **deltas: int) -> None:
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert_(model).values(**keys, **deltas)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys), set_={k: getattr(model, k) + statement.excluded[k] for k in deltas}
        )
    )


def _day(moment: datetime) -> date:
    return moment.date()


# -- kept in step -----------------------------------------------------------------------------------


def request_filed(session: Session, request: RefundRequest, signals: Sequence[str] = ()) -> None:
    _bump(
        session,
        InsightDay,
        {
            "day": _day(request.created_at),
            "reason": request.reason,
            "outcome": outcome(request.state),
            "review": bool(request.review_requested),
        },
        count=1,
    )
    for signal in signals:
        _bump(session, InsightSignalDay, {"day": _day(request.created_at), "signal": signal}, count=1)


def state_changed(session: Session, request: RefundRequest, before: RequestState, after: RequestState) -> None:
    if outcome(before) == outcome(after):
        return
    keys = {"day": _day(request.created_at), "reason": request.reason, "review": bool(request.review_requested)}
    _bump(session, InsightDay, {**keys, "outcome": outcome(before)}, count=-1)
    _bump(session, InsightDay, {**keys, "outcome": outcome(after)}, count=1)


def milestone(session: Session, request: RefundRequest, measure: str, at: datetime) -> None:
    seconds = (at - request.created_at).total_seconds()
    _bump(
        session,
        InsightDuration,
        {"day": _day(request.created_at), "measure": measure, "bucket": bucket(seconds)},
        count=1,
    )


def order_refunded(session: Session, refund: Refund, first_for_order: bool) -> None:
    order = refund.order
    assert refund.completed_at is not None  # set as it succeeded
    _bump(
        session,
        InsightRefundDay,
        {"day": _day(refund.completed_at), "currency": refund.currency},
        count=1,
        amount_minor=refund.amount_minor,
    )
    if first_for_order:
        _bump(
            session,
            InsightOrderDay,
            {"day": _day(order.purchased_at), "product": order.product, "plan": order.plan},
            orders=0,
            refunded=1,
        )


def orders_changed(session: Session, days: set[date]) -> None:
    """Recount the orders of the given purchase days (after an import)."""
    if days:
        _rebuild_orders(session, days)


# -- rebuilt from scratch ---------------------------------------------------------------------------


def _rebuild_orders(session: Session, days: set[date] | None) -> None:
    dialect = session.get_bind().dialect.name
    day = func.date(Order.purchased_at)
    refunded_ids = (select(Refund.order_id).where(Refund.status == RefundStatus.SUCCEEDED).distinct()).subquery()
    query = (
        select(day, Order.product, Order.plan, func.count(), func.count(refunded_ids.c.order_id))
        .outerjoin(refunded_ids, refunded_ids.c.order_id == Order.id)
        .group_by(day, Order.product, Order.plan)
    )
    if days is not None:
        query = query.where(day.in_([d.isoformat() if dialect == "sqlite" else d for d in days]))
        session.execute(delete(InsightOrderDay).where(InsightOrderDay.day.in_(days)))
    else:
        session.execute(delete(InsightOrderDay))
    rows = [
        {"day": _as_date(d), "product": product, "plan": plan, "orders": n, "refunded": r}
        for d, product, plan, n, r in session.execute(query)
    ]
    _insert_all(session, InsightOrderDay, rows)


def _insert_all(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    for chunk in range(0, len(rows), 10_000):
        session.execute(insert(model), rows[chunk : chunk + 10_000])


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def rebuild(session: Session) -> None:
    """Recompute every rollup from the requests, orders and refunds (signals are not recomputed:
    they record what was true when each request was filed). An offline job: the durations are
    bucketed while streaming the rows, which the page itself never does."""
    day = func.date(RefundRequest.created_at)
    state_outcome = case(
        (RefundRequest.state.in_(APPROVED_STATES), literal("approved")),
        (RefundRequest.state == RequestState.DECLINED, literal("declined")),
        (RefundRequest.state == RequestState.RESOLVED_WITH_OFFER, literal("saved")),
        (RefundRequest.state.in_((RequestState.WITHDRAWN, RequestState.CLOSED_UNANSWERED)), literal("withdrawn")),
        else_=literal("open"),
    )
    session.execute(delete(InsightDay))
    rows = [
        {"day": _as_date(d), "reason": reason, "outcome": o, "review": bool(review), "count": n}
        for d, reason, o, review, n in session.execute(
            select(day, RefundRequest.reason, state_outcome, RefundRequest.review_requested, func.count()).group_by(
                day, RefundRequest.reason, state_outcome, RefundRequest.review_requested
            )
        )
    ]
    _insert_all(session, InsightDay, rows)

    # Only its own measures: the decisions' waits (portal/insights/decisions.py) are rebuilt there.
    session.execute(delete(InsightDuration).where(InsightDuration.measure.in_(MEASURES)))
    histogram: dict[tuple[date, str, int], int] = {}
    for measure, column in (
        ("acknowledge", RefundRequest.acknowledged_at),
        ("first_action", RefundRequest.first_staff_action_at),
        ("resolution", RefundRequest.resolved_at),
    ):
        for created, at in session.execute(
            select(RefundRequest.created_at, column).where(column.is_not(None)).execution_options(yield_per=50_000)
        ):
            assert at is not None  # the query asks for rows where it is set
            key = (created.date(), measure, bucket((at - created).total_seconds()))
            histogram[key] = histogram.get(key, 0) + 1
    rows = [{"day": d, "measure": m, "bucket": b, "count": n} for (d, m, b), n in histogram.items()]
    _insert_all(session, InsightDuration, rows)

    session.execute(delete(InsightRefundDay))
    refund_day = func.date(Refund.completed_at)
    rows = [
        {"day": _as_date(d), "currency": c, "count": n, "amount_minor": total}
        for d, c, n, total in session.execute(
            select(refund_day, Refund.currency, func.count(), func.sum(Refund.amount_minor))
            .where(Refund.status == RefundStatus.SUCCEEDED)
            .group_by(refund_day, Refund.currency)
        )
    ]
    _insert_all(session, InsightRefundDay, rows)
    _rebuild_orders(session, None)


# -- subscriptions: the refund lifecycle and order imports keep the rollups in step ------------------


@lifecycle.state_changed.connect
def _on_state_changed(
    session: Session,
    *,
    request: RefundRequest,
    before: RequestState | None,
    after: RequestState,
    signals: Sequence[str] = (),
    **_: Any,
) -> None:
    if before is None:
        request_filed(session, request, signals)
    else:
        state_changed(session, request, before, after)


@lifecycle.milestone_reached.connect
def _on_milestone(session: Session, *, request: RefundRequest, measure: str, at: datetime, **_: Any) -> None:
    milestone(session, request, measure, at)


@lifecycle.refund_settled.connect
def _on_refund_settled(session: Session, *, refund: Refund, first_for_order: bool, **_: Any) -> None:
    order_refunded(session, refund, first_for_order)


@importing.orders_changed.connect
def _on_orders_changed(session: Session, *, days: set[date], **_: Any) -> None:
    orders_changed(session, days)
