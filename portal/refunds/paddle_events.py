"""Paddle Billing's webhook notifications, stored once and then acted on. No Flask here.

The same promises as Stripe's events (``reconciliation.py``): every event is inserted under its
unique ``event_id`` in the transaction that acts on it, so a redelivery changes nothing twice;
events only move things forward, so an ``adjustment.created`` (pending approval) arriving after
the ``adjustment.updated`` that approved it changes nothing; an event about a transaction whose
order has not arrived yet waits and is applied when ``transaction.completed`` brings the order.

A refund adjustment settles through ``payouts.succeeded()`` (approved) or ``payouts.failed()``
(rejected: the request becomes ``refund_failed`` and a retry is a new attempt), exactly as a
Stripe refund does, with the same fees and affiliate claw-back. Ours are recognised by the
adjustment id, or by the attempt's key that ``PaddleGateway`` writes into the adjustment's reason
(an answer lost on the way back); a refund made in Paddle's dashboard is recorded on the order's
open request (one is opened if there is none).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.money import Money
from portal.core.vocabulary import CLOSED_STATES, Actor, PaymentStatus, RefundStatus
from portal.orders.importing import upsert_orders
from portal.orders.models import Order
from portal.orders.validation import validate_order
from portal.refunds import payouts, processor_events
from portal.refunds.filing import open_on_behalf
from portal.refunds.links import Links
from portal.refunds.models import ProcessorEvent, Refund, RefundRequest
from portal.refunds.payouts import NO_FEES, Fees

PROVIDER = "paddle"
ORDER_EVENTS = ("transaction.completed",)
ADJUSTMENT_EVENTS = ("adjustment.created", "adjustment.updated")
KEY_IN_REASON = re.compile(r"\[(refund-[A-Za-z0-9-]+-attempt-\d+)\]\s*$")


def _when(value: str | None) -> datetime:
    if not value:
        return datetime.fromtimestamp(0, tz=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def transaction_of(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if str(event.get("event_type", "")).startswith("transaction."):
        return str(data.get("id") or "")
    return str(data.get("transaction_id") or "")


def record(session: Session, event: dict[str, Any], *, now: datetime) -> ProcessorEvent | None:
    """Store the event; None when it was stored before (a redelivery)."""
    return processor_events.store_once(
        session,
        provider=PROVIDER,
        event_id=str(event["event_id"]),
        kind=str(event.get("event_type", "")),
        charge=transaction_of(event),
        occurred_at=_when(event.get("occurred_at")),
        payload=event,
        now=now,
    )


def receive(session: Session, event: dict[str, Any], *, now: datetime, links: Links, fees: Fees = NO_FEES) -> str:
    """Store and act on one verified notification in the caller's transaction; say what was done."""
    stored = record(session, event, now=now)
    if stored is None:
        return "duplicate: already received"
    return _act(session, stored, now=now, links=links, fees=fees)


def _act(session: Session, stored: ProcessorEvent, *, now: datetime, links: Links, fees: Fees) -> str:
    data = stored.payload.get("data") or {}
    if stored.type in ORDER_EVENTS:
        outcome = _upsert_order(session, data)
        if outcome.startswith("order"):
            outcome += _replay_waiting(session, stored, now=now, links=links, fees=fees)
    elif stored.type in ADJUSTMENT_EVENTS:
        outcome = _reconcile(session, data, now=now, links=links, fees=fees)
    else:
        outcome = "ignored: not an event the portal acts on"
    return processor_events.finish(stored, outcome, now=now)


def _replay_waiting(session: Session, order_event: ProcessorEvent, *, now: datetime, links: Links, fees: Fees) -> str:
    return processor_events.replay_waiting(
        session,
        order_event,
        order_events=ORDER_EVENTS,
        act=lambda event: _act(session, event, now=now, links=links, fees=fees),
    )


# -- orders ---------------------------------------------------------------------------------------


def order_row(transaction: dict[str, Any]) -> dict[str, str]:
    """A ``transaction.completed`` as a row of the orders import (the same columns, the same rules)."""
    custom = transaction.get("custom_data") or {}
    details = transaction.get("details") or {}
    totals = details.get("totals") or {}
    line = (details.get("line_items") or [{}])[0]
    items = transaction.get("items") or [{}]
    interval = (((items[0].get("price") or {}).get("billing_cycle")) or {}).get("interval")
    plan = custom.get("plan") or {"month": "monthly", "year": "annual"}.get(str(interval), "one-time")
    period = transaction.get("billing_period") or {}
    currency = str(transaction.get("currency_code") or "").upper()
    minor = totals.get("grand_total") or totals.get("total")
    try:
        amount = str(Money.from_minor(int(minor), currency).amount) if minor is not None else ""
    except (TypeError, ValueError):
        amount = ""
    email = custom.get("customer_email") or (transaction.get("customer") or {}).get("email") or ""
    start = _when(period["starts_at"]).date().isoformat() if period.get("starts_at") and plan != "one-time" else ""
    end = _when(period["ends_at"]).date().isoformat() if period.get("ends_at") and plan != "one-time" else ""
    paid_at = transaction.get("billed_at") or transaction.get("created_at")
    return {
        "order_number": str(
            custom.get("order_number") or transaction.get("invoice_number") or transaction.get("id") or ""
        ),
        "customer_email": str(email),
        "customer_name": str(custom.get("customer_name") or email.split("@")[0]),
        "locale": str(custom.get("locale", "en")),
        "product": str(custom.get("product") or (line.get("product") or {}).get("name") or ""),
        "plan": str(plan),
        "amount": amount,
        "currency": currency,
        "purchased_at": _when(paid_at).isoformat() if paid_at else "",
        "period_start": custom.get("period_start", start),
        "period_end": custom.get("period_end", end),
        "payment_reference": str(transaction.get("id") or ""),
        "channel": str(custom.get("channel", "web")),
        "affiliate": str(custom.get("affiliate", "")),
        "affiliate_commission": str(custom.get("affiliate_commission", "")),
    }


def _upsert_order(session: Session, transaction: dict[str, Any]) -> str:
    order, errors = validate_order(order_row(transaction))
    if order is None:
        return "ignored: " + "; ".join(f"{e.column}: {e.render()}" for e in errors)
    result = upsert_orders(session, [order])
    verb = "created" if result.created else "updated" if result.updated else "unchanged"
    return f"order {order.order_number} {verb}"


# -- refunds --------------------------------------------------------------------------------------


def _order_for(session: Session, transaction_id: str) -> Order | None:
    if not transaction_id:
        return None
    order_id = session.scalar(select(Order.id).where(Order.payment_reference == transaction_id))
    return payouts.lock_order(session, order_id) if order_id is not None else None


def _ours(session: Session, adjustment: dict[str, Any]) -> Refund | None:
    found = session.scalar(
        select(Refund).where(Refund.gateway == PROVIDER, Refund.processor_reference == adjustment["id"])
    )
    if found is not None:
        return found
    key = KEY_IN_REASON.search(str(adjustment.get("reason") or ""))
    return session.scalar(select(Refund).where(Refund.idempotency_key == key.group(1))) if key else None


def _reconcile(session: Session, adjustment: dict[str, Any], *, now: datetime, links: Links, fees: Fees) -> str:
    if adjustment.get("action") != "refund":
        return f"ignored: a {adjustment.get('action')} adjustment"
    if not adjustment.get("id"):
        return "ignored: no adjustment id"
    status = adjustment.get("status")
    ours = _ours(session, adjustment)
    if ours is None:
        order = _order_for(session, str(adjustment.get("transaction_id") or ""))
        if order is None:
            return "waiting: no order for this transaction yet"
        ours = _dashboard_refund(session, order, adjustment, now=now, links=links)
    else:
        payouts.lock_order(session, ours.order_id)
        session.refresh(ours)
    ours.processor_reference = ours.processor_reference or adjustment["id"]
    if ours.status is not RefundStatus.PENDING:
        if status in ("rejected", "reversed") and ours.status is RefundStatus.SUCCEEDED:
            return f"adjustment {adjustment['id']} reported {status} after it was approved: left for staff"
        return f"adjustment {adjustment['id']} already {ours.status.value}"
    if status == "approved":
        payouts.succeeded(session, ours, fees, actor=Actor.SYSTEM, now=now, links=links)
        order = ours.order
        if payouts.remaining(session, order).minor <= 0:
            order.payment_status = PaymentStatus.REFUNDED
        return f"adjustment {adjustment['id']} approved; request {ours.refund_request.reference} refunded"
    if status in ("rejected", "reversed"):
        words = paddles_words(adjustment)
        payouts.failed(session, ours, words, actor=Actor.SYSTEM, now=now, links=links, status=status, note=words)
        return f"adjustment {adjustment['id']} {status}"
    return f"adjustment {adjustment['id']} {status or 'pending_approval'}: waiting for Paddle's approval"


def paddles_words(adjustment: dict[str, Any]) -> str:
    """What Paddle said about a refund it turned down, as it said it: the status, the adjustment and
    the reason the adjustment carries. Paddle's adjustment has no field of its own for why it was
    rejected; its ``reason`` is the one given when the refund was asked for (ours, with the attempt's
    key, or the one typed in Paddle's dashboard)."""
    said = f"Paddle {adjustment.get('status')} adjustment {adjustment.get('id')}"
    reason = str(adjustment.get("reason") or "").strip()
    return f"{said}: {reason}" if reason else said


def _dashboard_refund(
    session: Session, order: Order, adjustment: dict[str, Any], *, now: datetime, links: Links
) -> Refund:
    amount = int((adjustment.get("totals") or {}).get("total") or 0)
    request = session.scalar(
        select(RefundRequest).where(RefundRequest.order_id == order.id, RefundRequest.state.not_in(CLOSED_STATES))
    )
    if request is None:
        request = open_on_behalf(
            session, order, actor=Actor.SYSTEM, locale=order.customer.locale, amount_minor=amount, now=now, links=links
        )
    found = Refund(
        refund_request=request,
        order=order,
        gateway=PROVIDER,
        status=RefundStatus.PENDING,
        amount_minor=amount,
        currency=order.currency,
        attempt=request.processing_attempt,
        idempotency_key=f"paddle-{adjustment['id']}",
        processor_reference=adjustment["id"],
        created_at=_when(adjustment.get("created_at")) if adjustment.get("created_at") else now,
    )
    session.add(found)
    session.flush()
    return found
