"""Staff sessions kept on the server, and the security log. No Flask here.

A signed cookie alone cannot be taken back: a copy made before signing out would keep working.
So each sign-in makes a row here, the cookie carries only its random id, and every staff request
looks the row up. Ending the row ends every copy of the cookie at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from portal.accounts.models import SecurityEvent, StaffSession, StaffUser
from portal.core.tokens import hash_token, new_token

# However active, a staff session ends this long after sign-in (besides the idle limit).
ABSOLUTE_LIFETIME = timedelta(hours=12)


class Event:
    """The kinds of security events; their titles are translated by the console."""

    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    MFA_FAILED = "mfa_failed"
    SIGN_OUT = "sign_out"
    SIGN_OUT_EVERYWHERE = "sign_out_everywhere"
    MFA_ADDED = "mfa_added"
    MFA_REMOVED = "mfa_removed"
    RECOVERY_CODE_USED = "recovery_code_used"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    ROLE_CHANGED = "role_changed"
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    ACCOUNT_ACTIVATED = "account_activated"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
    EXPORT = "export"
    CUSTOMER_ERASED = "customer_erased"
    DOCUMENT_DOWNLOADED = "document_downloaded"
    # What automation did, with no person's account behind it (the log names the actor "automation").
    AUTOMATION_APPROVED = "automation_approved"
    AUTOMATION_PROCESSED = "automation_processed"
    AUTOMATION_RULES_CHANGED = "automation_rules_changed"
    CLOSED_UNANSWERED = "closed_unanswered"
    # An admin's switch (or the command line's, with no account).
    AUTOMATION_PAUSED = "automation_paused"
    AUTOMATION_RESUMED = "automation_resumed"

    AUTOMATED = frozenset({AUTOMATION_APPROVED, AUTOMATION_PROCESSED, AUTOMATION_RULES_CHANGED, CLOSED_UNANSWERED})


# The actor the security log names for what automation did.
AUTOMATION_ACTOR = "automation"


def actor_name(event: SecurityEvent) -> str:
    """Who did it, as the log and its CSV say: a staff member's address, or automation."""
    if event.actor is not None:
        return event.actor.email
    return AUTOMATION_ACTOR if event.kind in Event.AUTOMATED else ""


def record(
    session: Session,
    kind: str,
    *,
    now: datetime,
    actor: StaffUser | None = None,
    subject: StaffUser | None = None,
    email: str = "",
    ip: str = "",
    detail: str = "",
) -> SecurityEvent:
    """Add an event to the caller's transaction (committed with the change it describes)."""
    event = SecurityEvent(
        kind=kind,
        created_at=now,
        actor_id=actor.id if actor else None,
        subject_id=subject.id if subject else None,
        email=(email or (subject.email if subject else "") or (actor.email if actor else ""))[:320],
        ip=(ip or "")[:64],
        detail=(detail or "")[:500],
    )
    session.add(event)
    return event


def recent_failures(session: Session, email: str, *, now: datetime, within: timedelta) -> int:
    """Failed sign-ins for an address lately, from any client: used to slow a flood, never to lock out."""
    return len(
        session.scalars(
            select(SecurityEvent.id)
            .where(
                SecurityEvent.kind == Event.SIGN_IN_FAILED,
                SecurityEvent.email == email[:320],
                SecurityEvent.created_at > now - within,
            )
            .limit(50)
        ).all()
    )


def start_session(
    session: Session, user: StaffUser, *, now: datetime, ip: str = "", user_agent: str = "", mfa: bool = False
) -> str:
    """A new server-side session; the returned id goes into the cookie and is stored only as a hash."""
    token, token_hash = new_token()
    session.add(
        StaffSession(
            staff_user_id=user.id,
            token_hash=token_hash,
            created_at=now,
            mfa_at=now if mfa else None,
            ip=(ip or "")[:64],
            user_agent=(user_agent or "")[:300],
        )
    )
    return token


def find_session(session: Session, token: str | None, *, now: datetime) -> StaffSession | None:
    """The live session for a cookie's id: not ended, not older than the absolute lifetime."""
    if not token:
        return None
    found = session.scalar(select(StaffSession).where(StaffSession.token_hash == hash_token(token)))
    if found is None or found.ended_at is not None or found.created_at <= now - ABSOLUTE_LIFETIME:
        return None
    return found


def end_session(session: Session, token: str | None, *, now: datetime) -> None:
    if token:
        session.execute(
            update(StaffSession)
            .where(StaffSession.token_hash == hash_token(token), StaffSession.ended_at.is_(None))
            .values(ended_at=now)
        )


def end_all_sessions(session: Session, user: StaffUser, *, now: datetime, keep: str | None = None) -> int:
    """End every session of ``user`` (but the one whose id is ``keep``); returns how many ended."""
    query = update(StaffSession).where(StaffSession.staff_user_id == user.id, StaffSession.ended_at.is_(None))
    if keep:
        query = query.where(StaffSession.token_hash != hash_token(keep))
    result = session.execute(query.values(ended_at=now).execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)  # an UPDATE's result; typed as a plain Result
    return result.rowcount


def live_sessions(session: Session, user: StaffUser, *, now: datetime) -> list[StaffSession]:
    return list(
        session.scalars(
            select(StaffSession)
            .where(
                StaffSession.staff_user_id == user.id,
                StaffSession.ended_at.is_(None),
                StaffSession.created_at > now - ABSOLUTE_LIFETIME,
            )
            .order_by(StaffSession.created_at.desc())
        )
    )
