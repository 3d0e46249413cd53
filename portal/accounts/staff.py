"""Staff accounts: created from the command line or by an admin. No Flask here."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import PERMISSIONS, STAFF_API, ApiToken, StaffUser
from portal.accounts.passwords import hash_password
from portal.core.markers import N_
from portal.core.tokens import hash_token
from portal.core.vocabulary import StaffRole

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
    if len(password) < MIN_PASSWORD:
        raise AccountError("password", N_("Use at least 12 characters."))
    if session.scalar(select(StaffUser).where(StaffUser.email == address)):
        raise AccountError("email", N_("There is already a staff account with this email address."))
    user = StaffUser(email=address, name=name.strip(), role=role, password_hash=hash_password(password), active=True)
    session.add(user)
    session.flush()
    return user


def set_active(session: Session, user: StaffUser, active: bool) -> None:
    user.active = active
    session.flush()


# -- API tokens -----------------------------------------------------------------------------------

TOKEN_PREFIX = "rpt_"  # recognisable in logs and by secret scanners


def create_api_token(session: Session, email: str, name: str, *, now: datetime,
                     permissions: tuple[str, ...] = (STAFF_API,)) -> tuple[ApiToken, str]:
    """A new API token for a staff member: the token itself is returned once, only its hash is kept.

    The token acts as its owner, with the owner's role, for as long as both are active.
    """
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise AccountError("email", N_("There is no staff account with this email address."))
    if not name.strip():
        raise AccountError("name", N_("Give the token a name, such as the integration that will use it."))
    if not permissions or any(p not in PERMISSIONS for p in permissions):
        raise AccountError("permissions", N_("Choose the token's permissions: staff_api, portal_sessions or both."))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(staff_user=user, name=name.strip()[:100], prefix=token[:12], token_hash=hash_token(token),
                      created_at=now, permissions=sorted(set(permissions)))
    session.add(record)
    session.flush()
    return record, token


def revoke_api_token(session: Session, token_id: int, *, now: datetime) -> ApiToken | None:
    record = session.get(ApiToken, token_id)
    if record is not None and record.revoked_at is None:
        record.revoked_at = now
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
