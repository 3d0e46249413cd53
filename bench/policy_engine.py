"""How fast the eligibility engine judges orders (target: 100,000 orders in under 5 s).

The baseline, measured in the same run over the same orders, is the least any judgement must
do: the time since purchase of each order. The engine is reported as its ratio to that.

    .venv/bin/python bench/policy_engine.py [ORDERS]
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

from portal.core.money import Money
from portal.core.vocabulary import Channel, PaymentStatus, Plan, Reason
from portal.policy import evaluate, load_policy
from portal.policy.engine import OrderTerms as Terms

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
AS_OF = datetime.now(UTC).replace(second=0, microsecond=0)  # orders are bought in the 200 days before


def make_orders(count: int, as_of: datetime) -> list[Terms]:
    rng = random.Random(3)
    prices = {Plan.MONTHLY: ("29.00", "USD"), Plan.ANNUAL: ("3999.00", "CNY"), Plan.ONE_TIME: ("4300", "JPY")}
    orders = []
    for _ in range(count):
        plan = rng.choice(list(Plan))
        bought = as_of - timedelta(minutes=rng.randrange(0, 200 * 24 * 60))
        start = end = None
        if plan is not Plan.ONE_TIME:
            start = bought.date()
            end = start + timedelta(days=30 if plan is Plan.MONTHLY else 365)
        amount, currency = prices[plan]
        status = PaymentStatus.CHARGED_BACK if rng.random() < 0.01 else PaymentStatus.PAID
        orders.append(Terms(plan, rng.choice(list(Channel)), Money.parse(amount, currency), bought, start, end, status))
    return orders


def main() -> None:
    policy = load_policy()
    as_of = AS_OF
    orders = make_orders(COUNT, as_of)
    reasons = list(Reason)

    started = time.perf_counter()
    for order in orders:
        _ = (as_of - order.purchased_at).days
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    outcomes: dict[str, int] = {}
    for i, order in enumerate(orders):
        decision = evaluate(order, policy, as_of, reasons[i % len(reasons)])
        outcomes[decision.outcome.value] = outcomes.get(decision.outcome.value, 0) + 1
    engine = time.perf_counter() - started

    print(f"orders: {COUNT}; outcomes: {dict(sorted(outcomes.items()))}")
    print(f"baseline (days since purchase only): {baseline:.3f} s")
    print(
        f"engine: {engine:.2f} s, {COUNT / engine:,.0f} orders/s, {engine / COUNT * 1e6:.1f} µs each, "
        f"{engine / baseline:.0f}x baseline; target < 5 s: {'met' if engine < 5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
