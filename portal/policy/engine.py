"""The eligibility engine: one pure function that judges an order by the published policy.

No Flask, no database: it takes plain values and returns a :class:`Decision` that says what
may be refunded, which clauses decided it, and the facts used, so any page, email or PDF can
explain it in the reader's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import Channel, PaymentStatus, Plan, Reason
from portal.policy.loading import Policy
from portal.policy.schema import PolicyVersion, ReviewClause


class Outcome(StrEnum):
    FULL = "full"
    PRORATED = "prorated"
    REVIEW = "review"
    REFUSED = "refused"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for staff pages
        return {
            Outcome.FULL: N_("Full refund"),
            Outcome.PRORATED: N_("Prorated refund"),
            Outcome.REVIEW: N_("Review by staff"),
            Outcome.REFUSED: N_("Refused"),
        }[self]


class Basis(StrEnum):
    """Why the outcome is what it is; each has its own sentence where decisions are explained."""

    WITHIN_FULL_WINDOW = "within_full_window"
    PRORATED = "prorated"
    AFTER_WINDOW = "after_window"
    CHARGED_BACK = "charged_back"
    FULLY_REFUNDED = "fully_refunded"
    REVIEW_ALWAYS = "review_always"
    REVIEW_OUTSIDE_WINDOW = "review_outside_window"
    NO_RULE = "no_rule"


class OrderLike(Protocol):
    """What the engine reads of an order (the ORM model and the plain summaries satisfy it)."""

    @property
    def plan(self) -> Plan: ...
    @property
    def channel(self) -> Channel: ...
    @property
    def amount(self) -> Money: ...
    @property
    def purchased_at(self) -> datetime: ...
    @property
    def period_start(self) -> date | None: ...
    @property
    def period_end(self) -> date | None: ...
    @property
    def payment_status(self) -> PaymentStatus: ...


@dataclass(frozen=True)
class OrderTerms:
    """An order as plain data, for callers that have no ORM object (imports, benchmarks, tests)."""

    plan: Plan
    channel: Channel
    amount: Money
    purchased_at: datetime
    period_start: date | None
    period_end: date | None
    payment_status: PaymentStatus = PaymentStatus.PAID


@dataclass(frozen=True)
class Facts:
    paid: Money
    refunded_before: Money
    remaining: Money
    days_since_purchase: int
    window_days: int | None = None
    window_end: datetime | None = None
    prorated_until_days: int | None = None
    prorated_until: datetime | None = None
    period_days: int | None = None
    days_used: int | None = None
    unused_days: int | None = None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    amount: Money  # the most that may be refunded now; zero when refused
    documents_required: bool
    clauses: tuple[str, ...]
    basis: Basis
    policy_version: str
    as_of: datetime
    facts: Facts = field(repr=False)

    @property
    def refundable(self) -> bool:
        return self.outcome in (Outcome.FULL, Outcome.PRORATED)

    @property
    def primary_clause(self) -> str:
        return self.clauses[0]

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy kept with a refund request, so later policy changes never rewrite it."""

        def plain(value: Any) -> Any:
            if isinstance(value, Money):
                return {"amount": str(value.amount), "currency": value.currency}
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        snapshot: dict[str, Any] = plain(
            {
                "outcome": self.outcome.value,
                "amount": self.amount,
                "documents_required": self.documents_required,
                "clauses": list(self.clauses),
                "basis": self.basis.value,
                "policy_version": self.policy_version,
                "as_of": self.as_of,
                "facts": _fields(self.facts),
            }
        )
        return snapshot

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Decision:
        def money(value: dict[str, str]) -> Money:
            # Snapshots always hold an amount (a None here could never be read: it has no currency).
            return Money.parse(value["amount"], value["currency"])

        facts = dict(data["facts"])
        for key in ("paid", "refunded_before", "remaining"):
            facts[key] = money(facts[key])
        for key in ("window_end", "prorated_until"):
            facts[key] = datetime.fromisoformat(facts[key]) if facts.get(key) else None
        return cls(
            outcome=Outcome(data["outcome"]),
            amount=money(data["amount"]),
            documents_required=data["documents_required"],
            clauses=tuple(data["clauses"]),
            basis=Basis(data["basis"]),
            policy_version=data["policy_version"],
            as_of=datetime.fromisoformat(data["as_of"]),
            facts=Facts(**facts),
        )


def prorated_amount(paid: Money, period_start: date, period_end: date, filed_on: date) -> tuple[Money, int, int]:
    """Amount paid × unused days ÷ days in the period, rounded down to the minor unit.

    Days used count every calendar day from the period's first day up to and including the
    filing day. Integer arithmetic on minor units, so the rounding is exact.
    """
    period_days = (period_end - period_start).days
    days_used = min(max((filed_on - period_start).days + 1, 0), period_days)
    unused = period_days - days_used
    minor = paid.minor * unused // period_days
    return Money.from_minor(minor, paid.currency), days_used, period_days


def evaluate(
    order: OrderLike,
    policy: Policy | PolicyVersion,
    as_of: datetime,
    reason: Reason | None,
    prior_refunds: Money | None = None,
) -> Decision:
    """Judge ``order`` as of ``as_of`` by the policy version in force when it was bought."""
    version = policy.version_for(order.purchased_at) if isinstance(policy, Policy) else policy
    paid = order.amount
    zero = Money.from_minor(0, paid.currency)
    refunded_before = prior_refunds if prior_refunds is not None else zero
    remaining = paid - refunded_before if refunded_before < paid else zero
    elapsed = as_of - order.purchased_at
    facts = Facts(
        paid=paid, refunded_before=refunded_before, remaining=remaining, days_since_purchase=max(elapsed.days, 0)
    )

    def decide(
        outcome: Outcome, amount: Money, clauses: list[str], basis: Basis, facts: Facts = facts, documents: bool = False
    ) -> Decision:
        return Decision(
            outcome=outcome,
            amount=amount,
            documents_required=documents,
            clauses=tuple(clauses),
            basis=basis,
            policy_version=version.id,
            as_of=as_of,
            facts=facts,
        )

    eligibility = next(iter(version.of_kind("eligibility")), None)
    if eligibility is not None and order.payment_status in eligibility.refused_payment_statuses:
        basis = Basis.CHARGED_BACK if order.payment_status is PaymentStatus.CHARGED_BACK else Basis.FULLY_REFUNDED
        return decide(Outcome.REFUSED, zero, [eligibility.id], basis)
    if remaining.minor == 0:
        clause = eligibility.id if eligibility is not None else _first_window_id(version)
        return decide(Outcome.REFUSED, zero, [clause], Basis.FULLY_REFUNDED)

    documents_clause = next(iter(version.of_kind("documents")), None)
    documents = documents_clause is not None and order.channel in documents_clause.channels
    extra = [documents_clause.id] if documents_clause is not None and documents else []

    reviews = version.of_kind("review")
    always = next((c for c in reviews if c.applies == "always" and reason in c.reasons), None)
    if always is not None:
        return decide(Outcome.REVIEW, remaining, [always.id, *extra], Basis.REVIEW_ALWAYS, documents=documents)

    window = version.window_for(order.plan)
    if window is None:
        return decide(
            Outcome.REVIEW, remaining, [*extra] or [version.clauses[0].id], Basis.NO_RULE, documents=documents
        )

    window_end = order.purchased_at + timedelta(days=window.full_refund_days)
    facts = _with(facts, window_days=window.full_refund_days, window_end=window_end)
    if as_of < window_end:
        return decide(Outcome.FULL, remaining, [window.id, *extra], Basis.WITHIN_FULL_WINDOW, facts, documents)

    if window.prorated_until_days is not None and order.period_start and order.period_end:
        prorated_until = order.purchased_at + timedelta(days=window.prorated_until_days)
        facts = _with(facts, prorated_until_days=window.prorated_until_days, prorated_until=prorated_until)
        if as_of < prorated_until:
            amount, used, period = prorated_amount(paid, order.period_start, order.period_end, as_of.date())
            facts = _with(facts, period_days=period, days_used=used, unused_days=period - used)
            capped = amount if amount <= remaining else remaining
            return decide(Outcome.PRORATED, capped, [window.id, *extra], Basis.PRORATED, facts, documents)

    outside = next((c for c in reviews if c.applies == "outside_window" and reason in c.reasons), None)
    if outside is not None:
        return decide(Outcome.REVIEW, remaining, [outside.id, *extra], Basis.REVIEW_OUTSIDE_WINDOW, facts, documents)
    return decide(Outcome.REFUSED, zero, [window.id], Basis.AFTER_WINDOW, facts)


def _with(facts: Facts, **changes: Any) -> Facts:
    return Facts(**{**_fields(facts), **changes})


def _fields(facts: Facts) -> dict[str, Any]:
    # dataclasses.asdict would recurse into Money and lose its type.
    return {name: getattr(facts, name) for name in facts.__dataclass_fields__}


def _first_window_id(version: PolicyVersion) -> str:
    windows = version.of_kind("window")
    return windows[0].id if windows else version.clauses[0].id


# The reason the customer is asked first on the order page: the one a change of mind files under.
GENERAL_REASON = Reason.NO_LONGER_NEEDED


@dataclass(frozen=True)
class ReasonVerdict:
    """Reasons that get the same decision, so a page can say each verdict once with its reasons."""

    reasons: tuple[Reason, ...]
    decision: Decision

    @property
    def general(self) -> bool:
        return GENERAL_REASON in self.reasons


def _same(a: Decision, b: Decision) -> bool:
    return (a.outcome, a.basis, a.amount, a.documents_required) == (b.outcome, b.basis, b.amount, b.documents_required)


def verdicts_by_reason(
    order: OrderLike, policy: Policy | PolicyVersion, as_of: datetime, prior_refunds: Money | None = None
) -> list[ReasonVerdict]:
    """The decision for every reason a customer can give, reasons with the same decision together.

    The group holding a change of mind comes first: it is the verdict the order page leads with;
    a reason the policy treats differently (a billing error, an unresolved problem) follows with its own.
    """
    version = policy.version_for(order.purchased_at) if isinstance(policy, Policy) else policy
    # A reason changes a decision only through the review clauses that name it: every other
    # reason gets the change-of-mind decision, which is judged once.
    reviews = version.of_kind("review")
    named = {r for clause in reviews for r in clause.reasons}
    general = evaluate(order, version, as_of, GENERAL_REASON, prior_refunds)
    # The "outside the window" review clauses are the last thing ``evaluate`` looks at: a decision
    # reached before them (a window still open, a prorated refund, a charge-back) is the same for a
    # reason that differs from a change of mind only there, so it is not judged again.
    decided_before_outside = general.basis not in (Basis.REVIEW_OUTSIDE_WINDOW, Basis.AFTER_WINDOW)

    def always_clause(reason: Reason) -> ReviewClause | None:
        return next((c for c in reviews if c.applies == "always" and reason in c.reasons), None)

    general_always = always_clause(GENERAL_REASON)
    groups: list[ReasonVerdict] = []
    for reason in (GENERAL_REASON, *(r for r in Reason if r is not GENERAL_REASON)):
        if reason not in named or (decided_before_outside and always_clause(reason) is general_always):
            decision = general
        else:
            decision = evaluate(order, version, as_of, reason, prior_refunds)
        for i, group in enumerate(groups):
            if _same(group.decision, decision):
                groups[i] = ReasonVerdict((*group.reasons, reason), group.decision)
                break
        else:
            groups.append(ReasonVerdict((reason,), decision))
    return groups


def closes_at(decision: Decision) -> datetime | None:
    """When what the decision grants ends: the full-refund window, or the last prorated day."""
    if decision.outcome is Outcome.FULL:
        return decision.facts.window_end
    if decision.outcome is Outcome.PRORATED:
        return decision.facts.prorated_until
    return None


def daily_decrease(decision: Decision) -> Money | None:
    """How much a prorated refund falls each day (one day of the period), rounded to the minor unit."""
    f = decision.facts
    if decision.outcome is not Outcome.PRORATED or not f.period_days:
        return None
    minor = (f.paid.minor * 2 + f.period_days) // (2 * f.period_days)  # half up: "about" this much
    return Money.from_minor(minor, f.paid.currency)
