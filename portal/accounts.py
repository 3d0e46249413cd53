"""Staff accounts: created from the command line or by an admin. No Flask here."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import StaffRole
from portal.markers import N_
from portal.models import StaffUser
from portal.passwords import hash_password

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
    session.commit()
    return user


def set_active(session: Session, user: StaffUser, active: bool) -> None:
    user.active = active
    session.commit()
