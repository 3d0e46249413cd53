import csv
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from portal.orders.validation import validate_order
from portal.policy.engine import OrderTerms

DATA = Path(__file__).resolve().parent / "data"
AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Terms(OrderTerms):
    def but(self, **changes) -> "Terms":
        return replace(self, **changes)


def sample_orders() -> dict[str, Terms]:
    orders = {}
    with open(DATA / "orders.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            order, errors = validate_order(row)
            assert not errors
            orders[order.order_number] = Terms(
                order.plan, order.channel, order.amount, order.purchased_at, order.period_start, order.period_end
            )
    return orders
