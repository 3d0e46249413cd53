"""The staff queue: every refund request, filtered and searched, oldest first, a page at a time.

Pages are cut by keyset (the last row's creation time and id), never by OFFSET, and each filter
walks an index in that order, so the first page and any later page cost the same with a million
requests. Counts per state come from a counter table kept by every change of state. No Flask.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.core.money import Money
from portal.core.vocabulary import Channel, Reason, RequestState
from portal.orders.lookup import normalize_order_number
from portal.orders.models import Customer, Order
from portal.refunds import lifecycle
from portal.refunds.automation.models import ActionStatus, AutomationAction
from portal.refunds.models import RefundRequest, RequestStateCount

OVERDUE_AFTER = timedelta(hours=24)
PAGE_SIZE = 50


@dataclass(frozen=True)
class QueueFilter:
    state: RequestState | None = None
    reason: Reason | None = None
    locale: str | None = None
    channel: Channel | None = None
    overdue: bool = False
    search: str = ""


@dataclass(frozen=True)
class QueueRow:
    id: int
    reference: str
    state: RequestState
    reason: Reason
    locale: str
    amount_requested_minor: int
    currency: str
    created_at: datetime
    awaiting_staff_since: datetime | None
    order_number: str
    channel: Channel
    customer_name: str
    customer_email: str
    # Set while an automation rule has the request queued: which rule, and when it acts.
    automation_rule: str | None = None
    automation_due: datetime | None = None

    @property
    def amount_requested(self) -> Money:
        return Money.from_minor(self.amount_requested_minor, self.currency)

    def overdue(self, now: datetime) -> bool:
        return self.awaiting_staff_since is not None and self.awaiting_staff_since <= now - OVERDUE_AFTER


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None
    counts: dict[RequestState, int]


def encode_cursor(created_at: datetime, request_id: int) -> str:
    raw = json.dumps([created_at.isoformat(), request_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, request_id = json.loads(raw)
        return datetime.fromisoformat(created), int(request_id)
    except (ValueError, TypeError):
        return None  # a tampered or stale cursor starts from the first page


def state_counts(session: Session) -> dict[RequestState, int]:
    counts = {state: 0 for state in RequestState}
    for state, count in session.execute(select(RequestStateCount.state, RequestStateCount.count)):
        counts[state] = count
    return counts


def queue_page(
    session: Session, f: QueueFilter, *, now: datetime, cursor: str | None = None, size: int = PAGE_SIZE
) -> QueuePage:
    query = (
        select(
            RefundRequest.id,
            RefundRequest.reference,
            RefundRequest.state,
            RefundRequest.reason,
            RefundRequest.locale,
            RefundRequest.amount_requested_minor,
            RefundRequest.currency,
            RefundRequest.created_at,
            RefundRequest.awaiting_staff_since,
            Order.order_number,
            Order.channel,
            Customer.name,
            Customer.email,
            AutomationAction.rule_id,
            AutomationAction.due_at,
        )
        .join(Order, RefundRequest.order_id == Order.id)
        .join(Customer, Order.customer_id == Customer.id)
        .outerjoin(
            AutomationAction,
            and_(
                AutomationAction.refund_request_id == RefundRequest.id, AutomationAction.status == ActionStatus.QUEUED
            ),
        )
    )
    if f.state:
        query = query.where(RefundRequest.state == f.state)
    if f.reason:
        query = query.where(RefundRequest.reason == f.reason)
    if f.locale:
        query = query.where(RefundRequest.locale == f.locale)
    if f.channel:
        query = query.where(RefundRequest.channel == f.channel)
    if f.overdue:
        query = query.where(RefundRequest.awaiting_staff_since <= now - OVERDUE_AFTER)
    term = f.search.strip()
    if term:
        if "@" in term:
            query = query.where(Customer.email_normalized == Customer.normalize_email(term))
        elif term.upper().startswith("RF-"):
            query = query.where(RefundRequest.reference == term.upper())
        else:
            query = query.where(Order.order_number == normalize_order_number(term))
    after = decode_cursor(cursor) if cursor else None
    if after:
        query = query.where(tuple_(RefundRequest.created_at, RefundRequest.id) > tuple_(*after))
    query = query.order_by(RefundRequest.created_at, RefundRequest.id).limit(size + 1)
    rows = [QueueRow(*tuple(row)) for row in session.execute(query)]
    next_cursor = encode_cursor(rows[size - 1].created_at, rows[size - 1].id) if len(rows) > size else None
    return QueuePage(rows[:size], next_cursor, state_counts(session))


def count_state(session: Session, state: RequestState, delta: int) -> None:
    """Keep the per-state counters in step, in the caller's transaction."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(RequestStateCount).values(state=state, count=delta)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[RequestStateCount.state], set_={"count": RequestStateCount.count + statement.excluded.count}
        )
    )


@lifecycle.state_changed.connect
def _count(session: Session, *, before: RequestState | None, after: RequestState, **_: Any) -> None:
    if before is not None:
        count_state(session, before, -1)
    count_state(session, after, +1)
