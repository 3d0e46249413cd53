"""What automation keeps: one row per request it looked at, and the admins' pause switch."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.core.database import Base, UTCDateTime, enum_column, utcnow
from portal.core.markers import N_
from portal.refunds.models import RefundRequest


class ActionStatus(StrEnum):
    QUEUED = "queued"  # a rule matched; waiting for the cooling-off period to end
    DONE = "done"  # approved by the rule (and sent to the gateway)
    LEFT_FOR_STAFF = "left_for_staff"  # no rule matched, or one no longer does when due
    CANCELLED = "cancelled"  # the customer withdrew, took an offer, or staff acted first

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            ActionStatus.QUEUED: N_("Waiting for the cooling-off period"),
            ActionStatus.DONE: N_("Approved by a rule"),
            ActionStatus.LEFT_FOR_STAFF: N_("Left for staff"),
            ActionStatus.CANCELLED: N_("Cancelled"),
        }[self]


class AutomationAction(Base):
    """Automation's decision about one request, made once when it is first seen after filing."""

    __tablename__ = "automation_action"
    __table_args__ = (Index("ix_automation_action_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_request_id: Mapped[int] = mapped_column(ForeignKey("refund_request.id"), unique=True)
    status: Mapped[ActionStatus] = mapped_column(enum_column(ActionStatus))
    rule_id: Mapped[str | None] = mapped_column(String(48))
    rules_version: Mapped[str | None] = mapped_column(String(32))
    policy_version: Mapped[str | None] = mapped_column(String(32))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    refund_request: Mapped[RefundRequest] = relationship()


class AutomationSwitch(Base):
    """One row: whether an admin has paused all automation, who and when."""

    __tablename__ = "automation_switch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
