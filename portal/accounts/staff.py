"""Staff accounts: created from the command line or by an admin. No Flask here."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.accounts import sessions
from portal.accounts.models import PERMISSIONS, STAFF_API, ApiToken, PasswordReset, StaffUser
from portal.accounts.passwords import hash_password, password_problem
from portal.core.database import utcnow
from portal.core.markers import N_
from portal.core.tokens import hash_token, new_token
from portal.core.vocabulary import StaffRole
from portal.outbox.queue import queue_email

MIN_PASSWORD = 12


class AccountError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def create_staff(session: Session, email: str, role: StaffRole, password: str, name: str = "") -> StaffUser:
    try:
        address = validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise AccountError("email", N_("Enter a valid email address.")) from None
    problem = password_problem(password, (address, name))
    if problem:
        raise AccountError("password", problem)
    if session.scalar(select(StaffUser).where(StaffUser.email == address)):
        raise AccountError("email", N_("There is already a staff account with this email address."))
    user = StaffUser(email=address, name=name.strip(), role=role, password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    return user


def set_active(session: Session, user: StaffUser, active: bool, *, now: datetime | None = None) -> None:
    """Deactivating an account ends every session of it at once (its API tokens stop working too)."""
    user.active = active
    if not active:
        sessions.end_all_sessions(session, user, now=now or utcnow())
    session.flush()


def set_role(session: Session, user: StaffUser, role: StaffRole, *, now: datetime) -> None:
    """A new role ends every session: each signs in again with the rights and factors the role asks for."""
    if user.role is not role:
        user.role = role
        sessions.end_all_sessions(session, user, now=now)


def set_password(session: Session, user: StaffUser, password: str, *, now: datetime, keep: str | None = None) -> None:
    """Check and store a new password; every session but ``keep`` (the one that changed it) ends."""
    problem = password_problem(password, (user.email, user.name))
    if problem:
        raise AccountError("password", problem)
    user.password_hash = hash_password(password)
    sessions.end_all_sessions(session, user, now=now, keep=keep)


# -- password reset by email ----------------------------------------------------------------------

RESET_LIFETIME = timedelta(minutes=30)


def request_password_reset(
    session: Session, email: str, *, base_url: str, locale: str, now: datetime
) -> StaffUser | None:
    """Queue a reset link for an active account; the caller answers the same for any address."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None or not user.active:
        return None
    token, token_hash = new_token()
    session.add(
        PasswordReset(staff_user_id=user.id, token_hash=token_hash, created_at=now, expires_at=now + RESET_LIFETIME)
    )
    queue_email(
        session,
        "staff_password_reset",
        user.email,
        locale,
        {
            "name": user.name or user.email,
            "link": f"{base_url}/staff/reset/{token}",
            "expires_minutes": int(RESET_LIFETIME.total_seconds() // 60),
        },
        domain=base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0],
    )
    return user


def valid_reset(session: Session, token: str, *, now: datetime) -> PasswordReset | None:
    reset = session.scalar(select(PasswordReset).where(PasswordReset.token_hash == hash_token(token)))
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        return None
    return reset


def reset_password(session: Session, token: str, password: str, *, now: datetime) -> StaffUser | None:
    """Use a reset link once: the new password is set and every session of the account ends."""
    reset = valid_reset(session, token, now=now)
    if reset is None:
        return None
    user = session.get(StaffUser, reset.staff_user_id)
    if user is None or not user.active:
        return None
    problem = password_problem(password, (user.email, user.name))
    if problem:
        raise AccountError("password", problem)
    # Compare-and-set first, so two tabs racing with the same link cannot both use it.
    used = session.execute(
        update(PasswordReset)
        .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
        return None
    set_password(session, user, password, now=now)
    return user


# -- API tokens -----------------------------------------------------------------------------------

TOKEN_PREFIX = "rpt_"  # recognisable in logs and by secret scanners


def create_api_token(
    session: Session, email: str, name: str, *, now: datetime, permissions: tuple[str, ...] = (STAFF_API,)
) -> tuple[ApiToken, str]:
    """A new API token for a staff member: the token itself is returned once, only its hash is kept.

    The token acts as its owner, with the owner's role, for as long as both are active. Its creation
    is recorded in the staff security log (from the command line: no staff actor).
    """
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise AccountError("email", N_("There is no staff account with this email address."))
    if not name.strip():
        raise AccountError("name", N_("Give the token a name, such as the integration that will use it."))
    if not permissions or any(p not in PERMISSIONS for p in permissions):
        raise AccountError("permissions", N_("Choose the token's permissions: staff_api, portal_sessions or both."))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        staff_user=user,
        name=name.strip()[:100],
        prefix=token[:12],
        token_hash=hash_token(token),
        created_at=now,
        permissions=sorted(set(permissions)),
    )
    session.add(record)
    # In the staff security log like its revocation: the owner, the token's name and first
    # characters, never the token itself.
    sessions.record(
        session,
        sessions.Event.TOKEN_CREATED,
        now=now,
        subject=user,
        detail=f"{record.name} {record.prefix} ({', '.join(record.permissions)})",
    )
    session.flush()
    return record, token


def revoke_api_token(session: Session, token_id: int, *, now: datetime) -> ApiToken | None:
    record = session.get(ApiToken, token_id)
    if record is not None and record.revoked_at is None:
        record.revoked_at = now
        sessions.record(
            session,
            sessions.Event.TOKEN_REVOKED,
            now=now,
            subject=record.staff_user,
            detail=f"{record.name} {record.prefix}",
        )
        session.flush()
    return record


def staff_for_token(session: Session, token: str, *, now: datetime) -> StaffUser | None:
    """The active staff member a token belongs to, or None for an unknown, revoked or disabled one."""
    record = api_token_for(session, token, now=now)
    return record.staff_user if record is not None else None


def api_token_for(session: Session, token: str, *, now: datetime) -> ApiToken | None:
    """The token's record if it is known, not revoked and its owner active; None otherwise."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if record is None or record.revoked_at is not None or not record.staff_user.active:
        return None
    # Written at most once a minute: a busy integration should not turn every read into a write.
    if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
        record.last_used_at = now
        session.flush()
    return record
