"""Decisions per day, counted apart by who made them: the automation rules or people.

Kept in step by every approval and decline (a subscriber to the lifecycle, in the transaction of
the change), recounted from the status events by ``portal insights rebuild``. The insights page and
the automation page read these few rows: how much routine work the rules took off people's hands.
How long customers waited for each kind of decision (filing to decision) goes into the duration
histograms under the measures ``decision_rules`` and ``decision_people``: the time the rules saved.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.core.database import Base
from portal.core.vocabulary import Actor, RequestState
from portal.insights.models import InsightDuration
from portal.insights.rollups import _bump, bucket, median_of
from portal.refunds import lifecycle
from portal.refunds.models import RefundRequest, StatusEvent

DECISIONS = {RequestState.APPROVED: "approved", RequestState.DECLINED: "declined"}
WAIT_MEASURES = {"rules": "decision_rules", "people": "decision_people"}


class InsightDecisionDay(Base):
    __tablename__ = "insight_decision_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    decision: Mapped[str] = mapped_column(String(16), primary_key=True)  # approved | declined
    made_by: Mapped[str] = mapped_column(String(16), primary_key=True)  # rules | people
    count: Mapped[int] = mapped_column(BigInteger, default=0)


def _by(actor: Actor) -> str:
    return "rules" if actor is Actor.SYSTEM else "people"


@lifecycle.state_changed.connect
def _on_state_changed(
    session: Session,
    *,
    request: RefundRequest,
    before: RequestState | None,
    after: RequestState,
    event: StatusEvent,
    **_: Any,
) -> None:
    decision = DECISIONS.get(after)
    if before is None or decision is None:
        return
    _bump(
        session,
        InsightDecisionDay,
        {"day": event.created_at.date(), "decision": decision, "made_by": _by(event.actor)},
        count=1,
    )
    waited = (event.created_at - request.created_at).total_seconds()
    _bump(
        session,
        InsightDuration,
        {"day": request.created_at.date(), "measure": WAIT_MEASURES[_by(event.actor)], "bucket": bucket(waited)},
        count=1,
    )


def rebuild(session: Session) -> None:
    session.execute(delete(InsightDecisionDay))
    day = func.date(StatusEvent.created_at)
    rows = session.execute(
        select(day, StatusEvent.to_state, StatusEvent.actor, func.count())
        .where(StatusEvent.to_state.in_(list(DECISIONS)), StatusEvent.from_state.is_not(None))
        .group_by(day, StatusEvent.to_state, StatusEvent.actor)
    ).all()
    counted: dict[tuple[date, str, str], int] = {}
    for d, state, actor, n in rows:
        key = (d if isinstance(d, date) else date.fromisoformat(str(d)[:10]), DECISIONS[state], _by(actor))
        counted[key] = counted.get(key, 0) + n
    if counted:
        session.execute(
            insert(InsightDecisionDay.__table__),  # type: ignore[arg-type]  # a Table at run time
            [{"day": d, "decision": k, "made_by": b, "count": n} for (d, k, b), n in counted.items()],
        )
    session.execute(delete(InsightDuration).where(InsightDuration.measure.in_(list(WAIT_MEASURES.values()))))
    waited: dict[tuple[date, str, int], int] = {}
    for filed, decided, actor in session.execute(
        select(RefundRequest.created_at, StatusEvent.created_at, StatusEvent.actor)
        .join(RefundRequest, StatusEvent.refund_request_id == RefundRequest.id)
        .where(StatusEvent.to_state.in_(list(DECISIONS)), StatusEvent.from_state.is_not(None))
        .execution_options(yield_per=50_000)
    ):
        wait = (filed.date(), WAIT_MEASURES[_by(actor)], bucket((decided - filed).total_seconds()))
        waited[wait] = waited.get(wait, 0) + 1
    if waited:
        session.execute(
            insert(InsightDuration.__table__),  # type: ignore[arg-type]  # a Table at run time
            [{"day": d, "measure": m, "bucket": b, "count": n} for (d, m, b), n in waited.items()],
        )
    session.flush()


def decisions(session: Session, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """{"rules": {"approved": n, "declined": n}, "people": {…}} for days in [start, end)."""
    out = {"rules": {"approved": 0, "declined": 0}, "people": {"approved": 0, "declined": 0}}
    for made_by, decision, n in session.execute(
        select(InsightDecisionDay.made_by, InsightDecisionDay.decision, func.sum(InsightDecisionDay.count))
        .where(InsightDecisionDay.day >= start.date(), InsightDecisionDay.day < end.date())
        .group_by(InsightDecisionDay.made_by, InsightDecisionDay.decision)
    ):
        out[made_by][decision] = int(n or 0)
    return out


def waits(session: Session, start: datetime, end: datetime) -> dict[str, float | None]:
    """The median wait from filing to a decision, in seconds, for requests filed in [start, end):
    {"rules": …, "people": …} (None where there was no such decision)."""
    histograms: dict[str, dict[int, int]] = {by: {} for by in WAIT_MEASURES}
    by_measure = {measure: by for by, measure in WAIT_MEASURES.items()}
    for measure, index, n in session.execute(
        select(InsightDuration.measure, InsightDuration.bucket, func.sum(InsightDuration.count))
        .where(
            InsightDuration.measure.in_(list(by_measure)),
            InsightDuration.day >= start.date(),
            InsightDuration.day < end.date(),
        )
        .group_by(InsightDuration.measure, InsightDuration.bucket)
    ):
        histograms[by_measure[measure]][index] = int(n or 0)
    return {by: median_of(h) for by, h in histograms.items()}
