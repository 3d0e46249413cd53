"""An order as its page reads it: plain data from one query, for the portal's busiest page.

The order page only reads: the order, its refund requests' references, states and refunded
amounts, and the policy decision. Loading ORM objects for that cost as much as deciding and
rendering together (the identity map and the row loaders are rebuilt for every query), so the
page reads rows into frozen dataclasses. Anything that changes an order loads the ORM model.

The one query runs on a connection of its own from the engine, not through an ORM session: a
session's transaction bookkeeping (begun, then closed and its identity map emptied at the end of
the request) cost as much as the query itself, and a page that writes nothing needs none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Engine

from portal.core.money import Money
from portal.core.vocabulary import Channel, PaymentStatus, Plan, Reason, RequestState
from portal.orders.models import Customer, Order
from portal.policy.engine import Decision
from portal.refunds.models import RefundRequest


@dataclass(frozen=True, slots=True)
class RequestSummary:
    reference: str
    state: RequestState
    amount_approved_minor: int | None
    # The open request's own decision is what the order page shows while it is open.
    reason: Reason
    amount_requested_minor: int
    created_at: datetime
    decision_snapshot: dict[str, Any] | None
    offer_id: str | None  # the alternative taken instead of a refund, if any

    @property
    def decision_at_filing(self) -> Decision | None:
        return Decision.from_snapshot(self.decision_snapshot) if self.decision_snapshot else None


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """The fields of :class:`portal.models.Order` that the page and the policy engine read."""

    id: int
    order_number: str
    customer_id: int
    product: str
    plan: Plan
    amount_minor: int
    currency: str
    purchased_at: datetime
    period_start: date | None
    period_end: date | None
    channel: Channel
    payment_status: PaymentStatus
    customer_locale: str  # their pages speak it unless the visitor chose a language
    refund_requests: tuple[RequestSummary, ...]  # oldest first, as on the model

    @property
    def amount(self) -> Money:
        return Money.from_minor(self.amount_minor, self.currency)


ORDER_FIELDS = tuple(
    name for name in OrderSummary.__dataclass_fields__ if name not in ("refund_requests", "customer_locale")
)
REQUEST_FIELDS = tuple(RequestSummary.__dataclass_fields__)


@cache
def _statement() -> Select[*tuple[Any, ...]]:
    orders, requests, customers = Order.__table__, RefundRequest.__table__, Customer.__table__
    return (
        select(
            *(orders.c[name] for name in ORDER_FIELDS),
            customers.c.locale,
            *(requests.c[name].label(f"request_{name}") for name in REQUEST_FIELDS),
        )
        .join(customers, customers.c.id == orders.c.customer_id)
        .outerjoin(requests, requests.c.order_id == orders.c.id)
        .where(orders.c.order_number == bindparam("number"))
        .order_by(requests.c.created_at, requests.c.id)
    )


def order_summary(engine: Engine, order_number: str) -> OrderSummary | None:
    with engine.connect() as connection:
        rows = connection.execute(_statement(), {"number": order_number}).all()
    if not rows:
        return None
    first = rows[0]
    at = len(ORDER_FIELDS) + 1  # the request's columns follow the order's and the customer's language
    requests = tuple(RequestSummary(*row[at:]) for row in rows if row[at] is not None)
    return OrderSummary(
        **dict(zip(ORDER_FIELDS, first, strict=False)), customer_locale=first[at - 1], refund_requests=requests
    )
