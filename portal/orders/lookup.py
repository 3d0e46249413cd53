"""Finding an order by number and email without telling anyone which orders or emails exist.

A wrong number and a wrong email take the same path: one indexed query, one constant-time
comparison, one failure record. Nothing in the answer or its timing depends on which was wrong.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from portal.core.database import utcnow
from portal.core.tokens import same
from portal.orders.models import Customer, LookupFailure, Order

# Compared against when no order matched, so both paths do the same work.
_NOBODY = "\x00" * 32


def normalize_order_number(number: str) -> str:
    return "".join(number.split()).upper()


def client_fingerprint(address: str | None, secret: str) -> str:
    # Kept for fraud signals without storing the address itself.
    return hashlib.sha256(f"{secret}:{address or '-'}".encode()).hexdigest()


def find_order(session: Session, order_number: str, email: str, client_hash: str) -> Order | None:
    number = normalize_order_number(order_number)
    wanted = Customer.normalize_email(email)
    order = session.scalar(select(Order).options(joinedload(Order.customer)).where(Order.order_number == number))
    actual = order.customer.email_normalized if order is not None else _NOBODY
    if order is not None and same(actual, wanted):
        return order
    same(actual, wanted)  # keep the comparison count equal on both failure paths
    session.add(LookupFailure(order_number=number[:64], client_hash=client_hash))
    session.flush()
    return None


def recent_failures(session: Session, order_number: str, since: datetime | None = None) -> int:
    since = since or utcnow() - timedelta(days=30)
    return session.execute(
        select(func.count())
        .select_from(LookupFailure)
        .where(LookupFailure.order_number == order_number, LookupFailure.created_at >= since)
    ).scalar_one()
