"""Staff accounts and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, enum_column, utcnow
from portal.core.vocabulary import StaffRole


class StaffUser(Base):
    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[StaffRole] = mapped_column(enum_column(StaffRole))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # What Flask-Login asks of a user, without importing Flask into the models.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return str(self.id)

    def may(self, *roles: StaffRole) -> bool:
        return self.active and self.role in roles


STAFF_API = "staff_api"
PORTAL_SESSIONS = "portal_sessions"
PERMISSIONS = (STAFF_API, PORTAL_SESSIONS)


class ApiToken(Base):
    """A staff member's key to the JSON API; only its hash is kept, the token is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters, shown in lists so a token can be recognised without being stored.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the token may do: "staff_api" (the staff workflow, as its owner's role allows) and/or
    # "portal_sessions" (open signed-in order pages for a SaaS's own app). Tokens made before
    # permissions existed keep the staff API.
    permissions: Mapped[list[str]] = mapped_column(JSON, default=lambda: [STAFF_API], server_default='["staff_api"]')

    staff_user: Mapped[StaffUser] = relationship()

    def allows(self, permission: str) -> bool:
        return permission in (self.permissions or [])


class StaffSession(Base):
    """One signed-in browser of a staff member, kept on the server so it can be ended at once.

    The cookie holds a random id; only its hash is stored. Signing out ends this row; a password or
    role change, deactivation and "sign out everywhere" end every row of the person.
    """

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the second factor was given; None while only the password has been checked.
    mfa_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecurityEvent(Base):
    """What happened to staff accounts: sign-ins, failures, MFA, roles, tokens, exports, downloads."""

    __tablename__ = "security_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    # Who did it (None: nobody signed in, such as a failed sign-in) and whom it concerns.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    email: Mapped[str] = mapped_column(String(320), default="", index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")

    actor: Mapped[StaffUser | None] = relationship(foreign_keys=[actor_id])


class TotpFactor(Base):
    """An authenticator app's shared secret; confirmed once a first code from it was accepted."""

    __tablename__ = "staff_totp"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), unique=True)
    secret: Mapped[str] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The time step of the last accepted code, so one code cannot be used twice.
    last_step: Mapped[int] = mapped_column(default=0)


class RecoveryCode(Base):
    """A single-use code for when the second factor is lost; only its hash is kept."""

    __tablename__ = "staff_recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebAuthnCredential(Base):
    """A passkey or security key registered by a staff member."""

    __tablename__ = "staff_webauthn"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1024), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(2048))
    sign_count: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordReset(Base):
    """A password-reset link: single use, 30 minutes, stored as a hash."""

    __tablename__ = "staff_password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
