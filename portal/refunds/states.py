"""The one place a refund request changes state.

Every action names the states it may start from and the state it leads to. A transition is a
compare-and-set in the database (``UPDATE … WHERE state = :from``), so two racing actions
cannot both succeed; it appends a status event in the caller's transaction and announces the
change (``portal.refunds.lifecycle``) to whatever subscribes. :func:`open` is the first state of
a new request, announced the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from portal.core.database import utcnow
from portal.core.markers import N_
from portal.core.vocabulary import CLOSED_STATES, Actor
from portal.core.vocabulary import RequestState as S
from portal.refunds import lifecycle, queue
from portal.refunds.models import RefundRequest, StatusEvent


class Action(StrEnum):
    ASK_INFO = "ask_info"
    ANSWER = "answer"
    START_REVIEW = "start_review"
    APPROVE = "approve"
    DECLINE = "decline"
    MARK_REFUNDED = "mark_refunded"
    MARK_FAILED = "mark_failed"
    RETRY = "retry"
    WITHDRAW = "withdraw"
    ACCEPT_OFFER = "accept_offer"
    RECORD_REFUND = "record_refund"
    CLOSE_UNANSWERED = "close_unanswered"


_DECIDABLE = frozenset({S.RECEIVED, S.IN_REVIEW, S.AWAITING_CUSTOMER})

TRANSITIONS: dict[Action, tuple[frozenset[S], S]] = {
    Action.ASK_INFO: (frozenset({S.RECEIVED, S.IN_REVIEW}), S.AWAITING_CUSTOMER),
    Action.ANSWER: (frozenset({S.AWAITING_CUSTOMER}), S.IN_REVIEW),
    Action.START_REVIEW: (frozenset({S.RECEIVED}), S.IN_REVIEW),
    Action.APPROVE: (frozenset({S.RECEIVED, S.IN_REVIEW}), S.APPROVED),
    Action.DECLINE: (_DECIDABLE, S.DECLINED),
    Action.MARK_REFUNDED: (frozenset({S.APPROVED}), S.REFUNDED),
    # From refunded too: a card refund Stripe reported succeeded can fail days later (a closed card),
    # and the money comes back to us.
    Action.MARK_FAILED: (frozenset({S.APPROVED, S.REFUNDED}), S.REFUND_FAILED),
    Action.RETRY: (frozenset({S.REFUND_FAILED}), S.APPROVED),
    Action.WITHDRAW: (_DECIDABLE, S.WITHDRAWN),
    Action.ACCEPT_OFFER: (_DECIDABLE, S.RESOLVED_WITH_OFFER),
    # The processor reports a refund made outside the portal (in its dashboard): the request is
    # refunded whatever step it had reached, since the money has already gone back.
    Action.RECORD_REFUND: (_DECIDABLE | {S.APPROVED, S.REFUND_FAILED}, S.REFUNDED),
    # The customer did not answer an information request, even after the reminder that said so.
    Action.CLOSE_UNANSWERED: (frozenset({S.AWAITING_CUSTOMER}), S.CLOSED_UNANSWERED),
}


# One whole sentence per action, so each language can order it as it must ("approved" and the
# state's own title are not glued into an English frame at run time).
REFUSALS: dict[Action, str] = {
    Action.ASK_INFO: N_("This request is “%(state)s”: the customer cannot be asked for more information now."),
    Action.ANSWER: N_("This request is “%(state)s”: it is not waiting for an answer now."),
    Action.START_REVIEW: N_("This request is “%(state)s”: its review cannot be started now."),
    Action.APPROVE: N_("This request is “%(state)s”: it cannot be approved now."),
    Action.DECLINE: N_("This request is “%(state)s”: it cannot be declined now."),
    Action.MARK_REFUNDED: N_("This request is “%(state)s”: it cannot be refunded now."),
    Action.MARK_FAILED: N_("This request is “%(state)s”: its refund cannot be marked as failed now."),
    Action.RETRY: N_("This request is “%(state)s”: its refund cannot be retried now."),
    Action.WITHDRAW: N_("This request is “%(state)s”: it can no longer be withdrawn."),
    Action.ACCEPT_OFFER: N_("This request is “%(state)s”: an offer can no longer be accepted for it."),
    Action.RECORD_REFUND: N_(
        "This request is “%(state)s”: a refund made in the payment processor cannot be recorded on it."
    ),
    Action.CLOSE_UNANSWERED: N_(
        "This request is “%(state)s”: it is not waiting for the customer's answer, so it "
        "cannot be closed for the lack of one."
    ),
}


class InvalidTransition(Exception):
    """The action is not allowed from the request's current state; nothing was changed."""

    def __init__(self, state: S, action: Action):
        super().__init__(f"cannot {action.value} a request in state {state.value}")
        self.state = state
        self.action = action

    @property
    def message(self) -> str:
        """The sentence to show, with ``%(state)s`` for the state's translated title."""
        return REFUSALS[self.action]


def allowed(state: S, action: Action) -> bool:
    return state in TRANSITIONS[action][0]


def awaiting_staff_since(target: S, actor: Actor, before: datetime | None, now: datetime) -> datetime | None:
    """When the overdue clock started: it runs while the customer waits on staff.

    A customer's message starts it; a staff action restarts it if staff still owe the next step
    (processing an approval, retrying a failed refund); it stops while we wait on the customer
    and once the request is closed. An offer the customer takes closes the request but starts the
    clock: staff owe its set-up (``decisions.mark_offer_set_up`` stops it).
    """
    if target is S.RESOLVED_WITH_OFFER:
        return now
    if target in CLOSED_STATES or target is S.AWAITING_CUSTOMER:
        return None
    if actor is Actor.CUSTOMER or before is None:
        return now
    return now if actor is Actor.STAFF else before


def transition(
    session: Session,
    request: RefundRequest,
    action: Action,
    *,
    actor: Actor,
    staff_user_id: int | None = None,
    note: str = "",
    amount_minor: int | None = None,
    now: datetime | None = None,
    processor_status: str = "",
    failure_reason: str = "",
) -> StatusEvent:
    """Move ``request`` by ``action`` or raise :class:`InvalidTransition` having changed nothing."""
    sources, target = TRANSITIONS[action]
    current = request.state
    if current not in sources:
        raise InvalidTransition(current, action)
    now = now or utcnow()
    since = awaiting_staff_since(target, actor, request.awaiting_staff_since, now)
    clock_at, paused_at = queue.sla_clock(target, request.sla_clock_at, request.sla_paused_at, now)
    milestones = {}
    if actor is Actor.STAFF and request.first_staff_action_at is None:
        milestones["first_staff_action_at"] = now
    if target in CLOSED_STATES:
        milestones["resolved_at"] = now
    result = session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == request.id, RefundRequest.state == current)
        .values(
            state=target,
            updated_at=now,
            awaiting_staff_since=since,
            sla_clock_at=clock_at,
            sla_paused_at=paused_at,
            **milestones,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result; typed as a plain Result
    if result.rowcount != 1:
        # Someone else moved it first; report the state it is really in.
        session.refresh(request, ["state"])
        raise InvalidTransition(request.state, action)
    session.refresh(
        request,
        [
            "state",
            "updated_at",
            "awaiting_staff_since",
            "sla_clock_at",
            "sla_paused_at",
            "first_staff_action_at",
            "resolved_at",
        ],
    )
    event = StatusEvent(
        refund_request=request,
        actor=actor,
        staff_user_id=staff_user_id,
        created_at=now,
        from_state=current,
        to_state=target,
        amount_minor=amount_minor,
        note=note,
        processor_status=processor_status,
        failure_reason=failure_reason,
    )
    session.add(event)
    lifecycle.state_changed.send(session, request=request, before=current, after=target, event=event)
    for measure, column in (("first_action", "first_staff_action_at"), ("resolution", "resolved_at")):
        if column in milestones:
            lifecycle.milestone_reached.send(session, request=request, measure=measure, at=now)
    return event


def record_progress(
    session: Session, request: RefundRequest, *, processor_status: str, now: datetime, amount_minor: int | None = None
) -> StatusEvent:
    """The processor's news about a refund in progress (pending, requires_action): the request keeps its
    state, and the timeline shows the news as an event that does not change it."""
    event = StatusEvent(
        refund_request=request,
        actor=Actor.SYSTEM,
        created_at=now,
        from_state=request.state,
        to_state=request.state,
        amount_minor=amount_minor,
        processor_status=processor_status,
    )
    session.add(event)
    session.flush()
    return event


def open(
    session: Session,
    request: RefundRequest,
    *,
    actor: Actor,
    now: datetime,
    amount_minor: int | None = None,
    signals: Sequence[str] = (),
) -> StatusEvent:
    """Give a new request its first state (received) and first status event, and announce it.

    ``request`` is new (not yet flushed); ``signals`` are the fraud signals its filing raised.
    """
    request.state = S.RECEIVED
    request.awaiting_staff_since = now
    request.sla_clock_at = now
    event = StatusEvent(
        refund_request=request,
        actor=actor,
        created_at=now,
        from_state=None,
        to_state=S.RECEIVED,
        amount_minor=amount_minor,
    )
    session.add_all([request, event])
    session.flush()
    lifecycle.state_changed.send(
        session, request=request, before=None, after=S.RECEIVED, event=event, signals=tuple(signals)
    )
    return event
