"""The rule engine: pure, no database and no Flask.

:func:`match` takes what is known about one request as plain data (a :class:`Candidate`) and the
rules in force, and answers with the first rule that approves it, or with why none does. The
runner (``runner.py``), the simulation (``simulation.py``) and the benchmark all feed it the same
way, so what is simulated is what would run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import Channel, Plan, Reason
from portal.policy.automation import AutomationRule, RulesVersion

# The fraud signals (portal/refunds/fraud.py) that stop a rule with no_fraud_signals. Refunds in
# the last year have a condition of their own (max_refunds_last_365_days).
BLOCKING_SIGNALS = frozenset(
    {"failed_lookups", "shared_document", "above_refundable", "end_of_window", "payment_status"}
)


class Condition(StrEnum):
    """Why a rule does not approve a request: the first of its conditions that failed. The values
    are what the records and the command line say; pages show the titles."""

    OUTCOME = "outcome"  # not a full or prorated refund within the policy, or a review was asked for
    REASON = "reason"
    PLAN = "plan"
    CHANNEL = "channel"
    AMOUNT = "amount"  # above the rule's ceiling for the currency, or nothing to refund
    FRAUD_SIGNAL = "fraud_signal"
    REFUNDS_LAST_365_DAYS = "refunds_last_365_days"
    DOCUMENTS = "documents"
    # When a queued action falls due (runner.approve_due), and in the simulation.
    RULE_REMOVED = "rule removed"
    POLICY_AMOUNT = "the policy no longer grants the amount"
    NO_RULES = "no rules"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            Condition.OUTCOME: N_("Policy outcome"),
            Condition.REASON: N_("Reason"),
            Condition.PLAN: N_("Plan"),
            Condition.CHANNEL: N_("Channel"),
            Condition.AMOUNT: N_("Amount"),
            Condition.FRAUD_SIGNAL: N_("Fraud signal"),
            Condition.REFUNDS_LAST_365_DAYS: N_("Earlier refunds in the last 365 days"),
            Condition.DOCUMENTS: N_("Documents"),
            Condition.RULE_REMOVED: N_("The rule was removed"),
            Condition.POLICY_AMOUNT: N_("The policy no longer grants the amount"),
            Condition.NO_RULES: N_("No rules in force"),
        }[self]


@dataclass(slots=True)
class Candidate:
    """One request as the rules see it (slots, not frozen: made for every request of a pass, and a
    frozen dataclass's checked assignments cost more than judging it)."""

    reason: Reason
    plan: Plan
    channel: Channel
    outcome: str  # the policy decision's outcome when filed: full, prorated, review, refused
    amount: Money  # what the customer asked for (at most the refundable amount when in policy)
    refundable: Money  # what the policy allows
    review_requested: bool = False
    signals: frozenset[str] = frozenset()
    refunds_last_365_days: int = 0
    documents_required: bool = False
    documents: int = 0


@dataclass(frozen=True)
class Match:
    rule: AutomationRule | None
    version: str | None
    # Why each rule refused, in the rules' order (rule id → the first condition that failed).
    misses: tuple[tuple[str, Condition], ...] = field(default=())

    @property
    def matched(self) -> bool:
        return self.rule is not None


def why_not(rule: AutomationRule, c: Candidate) -> Condition | None:
    """The first condition of ``rule`` that ``c`` fails, or None when the rule approves it."""
    if c.review_requested or c.outcome not in rule.outcomes:
        return Condition.OUTCOME
    if c.amount > c.refundable:
        return Condition.OUTCOME
    if rule.reasons is not None and c.reason not in rule.reasons:
        return Condition.REASON
    if rule.plans is not None and c.plan not in rule.plans:
        return Condition.PLAN
    if rule.channels is not None and c.channel not in rule.channels:
        return Condition.CHANNEL
    ceiling = rule.ceiling(c.amount.currency)
    if ceiling is None or ceiling < c.amount or c.amount.minor <= 0:
        return Condition.AMOUNT
    if rule.no_fraud_signals and c.signals & BLOCKING_SIGNALS:
        return Condition.FRAUD_SIGNAL
    if c.refunds_last_365_days > rule.max_refunds_last_365_days:
        return Condition.REFUNDS_LAST_365_DAYS
    if rule.documents_when_required and c.documents_required and c.documents == 0:
        return Condition.DOCUMENTS
    return None


def match(version: RulesVersion | None, c: Candidate) -> Match:
    """The first rule of ``version`` that approves ``c``; no version means no automation."""
    if version is None:
        return Match(None, None)
    misses: list[tuple[str, Condition]] = []
    for rule in version.rules:
        failed = why_not(rule, c)
        if failed is None:
            return Match(rule, version.id, tuple(misses))
        misses.append((rule.id, failed))
    return Match(None, version.id, tuple(misses))


def approval_note(rule_id: str, policy_version: str) -> str:
    """The timeline's note on an automated approval (also read back by the API and the pages)."""
    return f"approved by rule {rule_id} (policy version {policy_version})"


def parse_note(note: str) -> tuple[str, str] | None:
    """(rule, policy version) from :func:`approval_note`'s text, or None for any other note."""
    prefix = "approved by rule "
    if not note.startswith(prefix) or " (policy version " not in note or not note.endswith(")"):
        return None
    rule, version = note[len(prefix) : -1].split(" (policy version ", 1)
    return rule, version


__all__ = ["BLOCKING_SIGNALS", "Candidate", "Condition", "Match", "approval_note", "match", "parse_note", "why_not"]
