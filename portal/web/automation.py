"""Flask glue for automation: the rules loaded once at start-up, and one round of the runner.

A round looks at new requests, then approves each due one by its rule and sends its refund
through the configured gateway, committing after each step as a worker must: the approval (with
its email) is committed before the gateway is called, so processing takes the order's lock on a
clean transaction exactly as a staff member's click does. Used by ``portal automation run`` and by
the worker loop (``portal outbox send --watch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app

from portal.core.vocabulary import Actor
from portal.payments.base import RefundDeclined
from portal.policy.automation import AutomationRules, load_automation
from portal.refunds import payouts
from portal.refunds.acting import WorkflowError
from portal.refunds.automation import audit, runner
from portal.refunds.states import InvalidTransition
from portal.web.extensions import db
from portal.web.links import links
from portal.web.payments import current_fees, current_gateway
from portal.web.policy import current_policy

EXTENSION = "automation_rules"


def init_app(app) -> None:
    # A broken rules file stops the start with every problem named, like a broken policy.
    app.extensions[EXTENSION] = load_automation(app.config.get("AUTOMATION_FILE"))


def current_rules() -> AutomationRules:
    return current_app.extensions[EXTENSION]


def delay() -> timedelta:
    return timedelta(minutes=float(current_app.config["AUTOMATION_DELAY_MINUTES"]))


@dataclass
class Round:
    paused: bool = False
    queued: int = 0
    left_for_staff: int = 0
    approved: list[str] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.paused:
            return "automation is paused"
        text = (
            f"looked at {self.queued + self.left_for_staff} new request(s): {self.queued} queued, "
            f"{self.left_for_staff} left for staff; approved {len(self.approved)}, refunded {len(self.refunded)}"
        )
        return text + "".join(f"\n  {p}" for p in self.problems)


def run_round(now: datetime | None = None) -> Round:
    session = db.session
    now = now or datetime.now(UTC)
    result = Round()
    rules = current_rules()
    if audit.rules_in_use(session(), rules, now=now):  # a new rules file is in the security log before it acts
        session.commit()
    if runner.is_paused(session()):
        result.paused = True
        session.rollback()
        return result
    policy, made = current_policy(), links()
    counts = runner.queue_new(session(), rules, now=now, delay=delay())
    session.commit()
    result.queued, result.left_for_staff = counts.queued, counts.left_for_staff
    gateway = current_gateway()
    for action_id in runner.due(session(), now=now):
        if runner.is_paused(session()):  # an admin paused it during the round
            break
        request = runner.approve_due(session(), action_id, rules, policy, now=now, links=made)
        session.commit()
        if request is None:
            continue
        result.approved.append(request.reference)
        if gateway.name == "manual":
            continue  # nothing can be sent for a manual gateway: staff refund and record the reference
        try:
            refund = payouts.send_refund(
                session(), request.id, gateway, actor=Actor.SYSTEM, now=now, links=made, fees=current_fees()
            )
            audit.processed(session(), request, refund, outcome=refund.status.value, now=now)
            session.commit()
            if refund.status.value == "succeeded":
                result.refunded.append(request.reference)
            elif refund.status.value == "failed":
                result.problems.append(f"{request.reference}: refund failed: {refund.processor_message}")
        except payouts.GatewayProblem as error:
            audit.processed(session(), request, None, outcome=f"sent, no answer ({error}); left approved", now=now)
            session.commit()  # keep the pending attempt and its key for the retry
            result.problems.append(f"{request.reference}: the processor did not answer ({error}); left approved")
        except (InvalidTransition, WorkflowError, RefundDeclined) as error:
            session.rollback()
            audit.processed(session(), request, None, outcome=f"not sent: {error}", now=now)
            session.commit()
            result.problems.append(f"{request.reference}: {error}")
    return result
