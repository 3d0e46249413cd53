"""Automation's entries in the staff security log (``portal.accounts.sessions``).

Whatever automation does on its own is written there with the actor "automation" (no staff
account), the rule and the policy version: a rule's approval, the refund it sent, a new rules file
coming into use, a request closed for want of an answer. An admin pausing or resuming it is there
under the admin's account. Each entry is added to the caller's transaction, so it is committed with
the change it describes or not at all. No Flask here.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import SecurityEvent, StaffUser
from portal.accounts.sessions import Event, record
from portal.core.money import Money
from portal.policy.automation import AutomationRules
from portal.refunds.automation.models import AutomationAction
from portal.refunds.models import Refund, RefundRequest


def _amount(minor: int, currency: str) -> str:
    money = Money.from_minor(minor, currency)
    return f"{money.amount} {money.currency}"


def approved(
    session: Session,
    request: RefundRequest,
    *,
    rule_id: str,
    rules_version: str | None,
    policy_version: str,
    now: datetime,
) -> None:
    record(
        session,
        Event.AUTOMATION_APPROVED,
        now=now,
        detail=(
            f"{request.reference}: {_amount(request.amount_requested_minor, request.currency)} approved by rule "
            f"{rule_id} (rules version {rules_version or '-'}, policy version {policy_version})"
        ),
    )


def processed(session: Session, request: RefundRequest, refund: Refund | None, *, outcome: str, now: datetime) -> None:
    """The refund automation sent after its approval, with the gateway's answer (or the problem)."""
    rule = request_rule(session, request)
    sent = f"{_amount(refund.amount_minor, refund.currency)} through {refund.gateway}, " if refund else ""
    record(
        session,
        Event.AUTOMATION_PROCESSED,
        now=now,
        detail=f"{request.reference}: refund {sent}{outcome} ({rule})",
    )


def request_rule(session: Session, request: RefundRequest) -> str:
    found = session.execute(
        select(AutomationAction.rule_id, AutomationAction.policy_version).where(
            AutomationAction.refund_request_id == request.id
        )
    ).first()
    if found is None or found.rule_id is None:
        return "no rule"
    return f"rule {found.rule_id}, policy version {request.policy_version or found.policy_version}"


def switched(session: Session, paused: bool, *, staff_user_id: int | None, now: datetime) -> None:
    staff = session.get(StaffUser, staff_user_id) if staff_user_id is not None else None
    record(
        session,
        Event.AUTOMATION_PAUSED if paused else Event.AUTOMATION_RESUMED,
        now=now,
        actor=staff,
        detail="" if staff else "from the command line",
    )


def fingerprint(rules: AutomationRules) -> str:
    return hashlib.sha256(rules.text.encode()).hexdigest()[:16]


def rules_in_use(session: Session, rules: AutomationRules, *, now: datetime) -> bool:
    """Log the rules file when it differs from the one last logged (a new file, or the first run);
    True when it was logged now."""
    mark = f"sha256 {fingerprint(rules)}"
    last = session.scalar(
        select(SecurityEvent.detail)
        .where(SecurityEvent.kind == Event.AUTOMATION_RULES_CHANGED)
        .order_by(SecurityEvent.id.desc())
        .limit(1)
    )
    if last is not None and last.endswith(mark):
        return False
    newest = rules.versions[-1] if rules.versions else None
    in_force = rules.version_for(now)
    record(
        session,
        Event.AUTOMATION_RULES_CHANGED,
        now=now,
        detail=(
            f"{rules.file_name}: {len(rules.versions)} version(s), newest {newest.id if newest else '-'}, "
            f"in force {in_force.id if in_force else 'none'}; {mark}"
        )[-500:],
    )
    return True


def closed_unanswered(session: Session, request: RefundRequest, *, asked_on: date, now: datetime) -> None:
    record(
        session,
        Event.CLOSED_UNANSWERED,
        now=now,
        detail=f"{request.reference}: closed, no answer to the question of {asked_on.isoformat()}",
    )
