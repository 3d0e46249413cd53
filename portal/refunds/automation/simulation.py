"""Replaying rules over past requests: what they would have automated, and where staff disagreed.

Every request filed since a date is read as it was when filed (the policy decision kept with it,
its documents, the signals and the customer's refunds of the year before), judged by the rules
with the same engine the runner uses, and compared with what people actually did: a request a
rule would have approved that staff declined, or approved for less than was asked, is a false
positive of that rule. The newest version in the rules file is the one judged, so a change can be
simulated before it is saved or comes into force. Reads only; nothing here writes or imports Flask.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.core.money import Money
from portal.core.vocabulary import RequestState
from portal.orders.models import Order
from portal.policy.automation import AutomationRules
from portal.refunds.automation.rules import Condition, match
from portal.refunds.automation.runner import ROW_WIDTH, Row, _columns, bulk_work, candidates
from portal.refunds.models import RefundRequest

# Large batches: PostgreSQL joins a batch to its orders by scanning the order table once (a hash
# join; it judges that cheaper than thousands of index lookups), so the number of batches sets the
# number of scans. 5,000 took 80 s over a million requests on PostgreSQL, 50,000 took 34 s; a batch
# holds about 70 MB of rows at its peak.
BATCH = 50_000
EXAMPLES = 20  # references listed per rule and kind of false positive


@dataclass
class RuleFigures:
    rule: str
    requests: int = 0
    money: Counter[str] = field(default_factory=Counter)  # minor units per currency
    declined: int = 0
    reduced: int = 0
    declined_examples: list[str] = field(default_factory=list)
    reduced_examples: list[str] = field(default_factory=list)

    @property
    def false_positives(self) -> int:
        return self.declined + self.reduced

    def amounts(self) -> list[Money]:
        return [Money.from_minor(minor, currency) for currency, minor in sorted(self.money.items())]


@dataclass
class Simulation:
    version: str | None
    since: datetime
    requests: int = 0
    by_rule: dict[str, RuleFigures] = field(default_factory=dict)
    misses: Counter[Condition] = field(default_factory=Counter)  # the first failed condition of requests left for staff

    @property
    def automated(self) -> int:
        return sum(f.requests for f in self.by_rule.values())

    @property
    def false_positives(self) -> int:
        return sum(f.false_positives for f in self.by_rule.values())

    def money(self) -> list[Money]:
        total: Counter[str] = Counter()
        for figures in self.by_rule.values():
            total.update(figures.money)
        return [Money.from_minor(minor, currency) for currency, minor in sorted(total.items())]


def simulate(session: Session, rules: AutomationRules, *, since: datetime, batch: int = BATCH) -> Simulation:
    version = rules.versions[-1] if rules.versions else None
    result = Simulation(version=version.id if version else None, since=since)
    for rule in version.rules if version else ():
        result.by_rule[rule.id] = RuleFigures(rule.id)
    extra = (RefundRequest.reference, RefundRequest.state, RefundRequest.amount_approved_minor)
    query = (
        select(*_columns(), *extra)
        .join(Order, RefundRequest.order_id == Order.id)
        .where(RefundRequest.created_at >= since)
        .order_by(RefundRequest.id)
    )
    first, last = session.execute(
        select(func.min(RefundRequest.id), func.max(RefundRequest.id)).where(RefundRequest.created_at >= since)
    ).one()
    # Batches are ranges of the primary key, so each costs the same however many came before (an
    # OFFSET, or "id > last LIMIT n" planned on the date's index, re-reads the year for every batch).
    with bulk_work():
        for low in range(first or 0, (last or -1) + 1, batch):
            chunk = session.execute(query.where(RefundRequest.id.between(low, low + batch - 1))).all()
            if not chunk:
                continue
            rows = [Row._make(r[:ROW_WIDTH]) for r in chunk]
            facts = candidates(session, rows)
            for r, (reference, state, approved) in zip(rows, (c[ROW_WIDTH:] for c in chunk), strict=True):
                result.requests += 1
                found = match(version, facts[r.id])
                if found.rule is None:
                    result.misses[found.misses[0][1] if found.misses else Condition.NO_RULES] += 1
                    continue
                figures = result.by_rule[found.rule.id]
                figures.requests += 1
                figures.money[r.currency] += r.amount_requested_minor
                if state is RequestState.DECLINED:
                    figures.declined += 1
                    if len(figures.declined_examples) < EXAMPLES:
                        figures.declined_examples.append(reference)
                elif approved is not None and approved < r.amount_requested_minor:
                    figures.reduced += 1
                    if len(figures.reduced_examples) < EXAMPLES:
                        figures.reduced_examples.append(reference)
    return result
