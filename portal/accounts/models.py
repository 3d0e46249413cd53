"""Staff accounts and their API tokens."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
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

