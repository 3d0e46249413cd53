"""The one place a refund request changes state.

Every action names the states it may start from and the state it leads to. A transition is a
compare-and-set in the database (``UPDATE … WHERE state = :from``), so two racing actions
cannot both succeed, and it appends a status event in the caller's transaction.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session

from portal.database import utcnow
from portal.domain import Actor, RequestState as S
from portal.markers import N_
from portal.models import RefundRequest, StatusEvent


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

    @property
    def title(self) -> str:
        return {
            Action.ASK_INFO: N_("ask for more information"), Action.ANSWER: N_("answer"),
            Action.START_REVIEW: N_("start the review"), Action.APPROVE: N_("approve"),
            Action.DECLINE: N_("decline"), Action.MARK_REFUNDED: N_("mark as refunded"),
            Action.MARK_FAILED: N_("mark the refund as failed"), Action.RETRY: N_("retry the refund"),
            Action.WITHDRAW: N_("withdraw"), Action.ACCEPT_OFFER: N_("accept an offer"),
        }[self]


_DECIDABLE = frozenset({S.RECEIVED, S.IN_REVIEW, S.AWAITING_CUSTOMER})

TRANSITIONS: dict[Action, tuple[frozenset[S], S]] = {
    Action.ASK_INFO: (frozenset({S.RECEIVED, S.IN_REVIEW}), S.AWAITING_CUSTOMER),
    Action.ANSWER: (frozenset({S.AWAITING_CUSTOMER}), S.IN_REVIEW),
    Action.START_REVIEW: (frozenset({S.RECEIVED}), S.IN_REVIEW),
    Action.APPROVE: (frozenset({S.RECEIVED, S.IN_REVIEW}), S.APPROVED),
    Action.DECLINE: (_DECIDABLE, S.DECLINED),
    Action.MARK_REFUNDED: (frozenset({S.APPROVED}), S.REFUNDED),
    Action.MARK_FAILED: (frozenset({S.APPROVED}), S.REFUND_FAILED),
    Action.RETRY: (frozenset({S.REFUND_FAILED}), S.APPROVED),
    Action.WITHDRAW: (_DECIDABLE, S.WITHDRAWN),
    Action.ACCEPT_OFFER: (_DECIDABLE, S.RESOLVED_WITH_OFFER),
}


class InvalidTransition(Exception):
    """The action is not allowed from the request's current state; nothing was changed."""

    message = N_("This request is “%(state)s”, so it is not possible to %(action)s it now.")

    def __init__(self, state: S, action: Action):
        super().__init__(f"cannot {action.value} a request in state {state.value}")
        self.state = state
        self.action = action


def allowed(state: S, action: Action) -> bool:
    return state in TRANSITIONS[action][0]


def available_actions(state: S) -> list[Action]:
    return [action for action in Action if allowed(state, action)]


def transition(session: Session, request: RefundRequest, action: Action, *, actor: Actor,
               staff_user_id: int | None = None, note: str = "", amount_minor: int | None = None,
               now: datetime | None = None) -> StatusEvent:
    """Move ``request`` by ``action`` or raise :class:`InvalidTransition` having changed nothing."""
    sources, target = TRANSITIONS[action]
    current = request.state
    if current not in sources:
        raise InvalidTransition(current, action)
    now = now or utcnow()
    result = session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == request.id, RefundRequest.state == current)
        .values(state=target, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        # Someone else moved it first; report the state it is really in.
        session.refresh(request, ["state"])
        raise InvalidTransition(request.state, action)
    session.refresh(request, ["state", "updated_at"])
    event = StatusEvent(refund_request=request, actor=actor, staff_user_id=staff_user_id, created_at=now,
                        from_state=current, to_state=target, amount_minor=amount_minor, note=note)
    session.add(event)
    return event
