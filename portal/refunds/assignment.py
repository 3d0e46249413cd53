"""Who owns a refund request: assigning, unassigning, round-robin for new requests, and giving
back the requests of an agent whose account is deactivated. No Flask.

Every change is written on the request (``assignee_id``) and appended to the assignment history,
which the staff timeline reads as "assigned to X by Y".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.accounts.models import StaffUser
from portal.core.markers import N_
from portal.core.vocabulary import CLOSED_STATES, StaffRole
from portal.refunds.acting import ACTING_ROLES, WorkflowError
from portal.refunds.models import AssignmentEvent, RefundRequest

ROUND_ROBIN = "round_robin"
DEACTIVATED = "deactivated"


def assignable(session: Session) -> list[StaffUser]:
    """The active agents and admins a request can be given to, by name."""
    return list(
        session.scalars(
            select(StaffUser)
            .where(StaffUser.active.is_(True), StaffUser.role.in_(ACTING_ROLES))
            .order_by(func.lower(func.coalesce(func.nullif(StaffUser.name, ""), StaffUser.email)))
        )
    )


def _record(
    session: Session,
    request: RefundRequest,
    assignee: StaffUser | None,
    *,
    by: StaffUser | None,
    now: datetime,
    cause: str = "",
) -> AssignmentEvent:
    event = AssignmentEvent(
        refund_request_id=request.id,
        previous_id=request.assignee_id,
        assignee_id=assignee.id if assignee else None,
        by_id=by.id if by else None,
        cause=cause,
        created_at=now,
    )
    request.assignee = assignee
    session.add(event)
    session.flush()
    return event


def assign(
    session: Session, request: RefundRequest, assignee: StaffUser | None, *, by: StaffUser, now: datetime
) -> AssignmentEvent | None:
    """Give ``request`` to ``assignee`` (None: unassign). Only an active agent or admin can own a
    request; giving it to its owner again changes nothing and returns None."""
    if assignee is not None and not assignee.may(*ACTING_ROLES):
        raise WorkflowError(
            "assignee",
            N_("%(name)s cannot be given requests: only active agents and admins can."),
            name=assignee.name or assignee.email,
        )
    if request.assignee_id == (assignee.id if assignee else None):
        return None
    return _record(session, request, assignee, by=by, now=now)


def assign_round_robin(session: Session, request: RefundRequest, *, now: datetime) -> AssignmentEvent | None:
    """Give a new request to the active agent who was given one longest ago (never: first), so new
    requests take turns among the agents. Admins are left out: they assign by hand."""
    agents = list(
        session.scalars(
            select(StaffUser)
            .where(StaffUser.active.is_(True), StaffUser.role == StaffRole.AGENT)
            .order_by(StaffUser.id)
        )
    )
    if not agents:
        return None
    last_given = dict(
        session.execute(
            select(AssignmentEvent.assignee_id, func.max(AssignmentEvent.id))
            .where(AssignmentEvent.assignee_id.in_([a.id for a in agents]))
            .group_by(AssignmentEvent.assignee_id)
        ).all()
    )
    chosen = min(agents, key=lambda a: (last_given.get(a.id, 0), a.id))
    return _record(session, request, chosen, by=None, now=now, cause=ROUND_ROBIN)


def release_all(session: Session, user: StaffUser, *, by: StaffUser | None, now: datetime) -> int:
    """Return the open requests of ``user`` (deactivated) to the unassigned view; how many."""
    requests = list(
        session.scalars(
            select(RefundRequest).where(
                RefundRequest.assignee_id == user.id, RefundRequest.state.not_in(sorted(CLOSED_STATES))
            )
        )
    )
    for request in requests:
        _record(session, request, None, by=by, now=now, cause=DEACTIVATED)
    return len(requests)
