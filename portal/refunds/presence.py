"""Which other staff members have a request open, and whether it changed under an agent's eyes.

A page view touches a presence row (one per agent and request); the others seen within
``PRESENCE_WINDOW`` are shown as "also open by". Forms carry the version of the request they
were shown (its ``updated_at``): a decision sent from an older version is refused as stale,
changing nothing. No Flask.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.accounts.models import StaffUser
from portal.refunds.models import RefundRequest, RequestPresence

PRESENCE_WINDOW = timedelta(minutes=2)


def touch(session: Session, request: RefundRequest, user: StaffUser, *, now: datetime) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(RequestPresence).values(refund_request_id=request.id, staff_user_id=user.id, seen_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[RequestPresence.refund_request_id, RequestPresence.staff_user_id],
            set_={"seen_at": statement.excluded.seen_at},
        )
    )


def others_present(
    session: Session, request: RefundRequest, user: StaffUser, *, now: datetime
) -> list[tuple[StaffUser, datetime]]:
    """The other staff members who viewed the request within the window, most recent first."""
    rows = session.execute(
        select(StaffUser, RequestPresence.seen_at)
        .join(RequestPresence, RequestPresence.staff_user_id == StaffUser.id)
        .where(
            RequestPresence.refund_request_id == request.id,
            RequestPresence.staff_user_id != user.id,
            RequestPresence.seen_at >= now - PRESENCE_WINDOW,
        )
        .order_by(RequestPresence.seen_at.desc())
    ).all()
    return [(u, seen) for u, seen in rows]


def version(request: RefundRequest) -> str:
    return request.updated_at.isoformat()


def changed_since(request: RefundRequest, seen_version: str) -> bool:
    """Whether the request changed after the page carrying ``seen_version`` was shown. An empty
    version (a form without one, an API call) is never stale."""
    if not seen_version:
        return False
    try:
        seen = datetime.fromisoformat(seen_version)
    except ValueError:
        return True
    return request.updated_at > seen
