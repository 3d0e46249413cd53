"""Who acts on a refund request from the staff side, and how a staff action is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.accounts.models import StaffUser
from portal.core.vocabulary import StaffRole
from portal.policy import Policy
from portal.refunds.links import Links

ACTING_ROLES = (StaffRole.AGENT, StaffRole.ADMIN)


class WorkflowError(Exception):
    """The action is refused as asked (not a wrong state: that is InvalidTransition)."""

    def __init__(self, field: str, message: str, **params: object):
        super().__init__(message % params if params else message)
        self.field = field
        self.message = message
        self.params = params


class NotAllowed(Exception):
    """The staff member's role does not permit this action."""


@dataclass(frozen=True)
class Staff:
    user: StaffUser
    now: datetime
    links: Links
    policy: Policy


def require(staff: Staff, *roles: StaffRole) -> None:
    if not staff.user.may(*roles):
        raise NotAllowed(f"{staff.user.email} ({staff.user.role.value}) may not do this")
