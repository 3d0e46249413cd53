"""Stripe's webhook events, stored once and then acted on. No Flask here.

Every event is inserted under its unique id in the same transaction as what it changes, so a
redelivered event finds itself stored and changes nothing. Events can arrive in any order, so
each handler only moves things forward: a refund that succeeded never goes back to pending, a
charged-back order is not made paid again by an older event, and an event about a charge we do
not know yet waits until the charge's order arrives.

What the processor says is the truth about money: a refund made in Stripe's dashboard is
recorded on the order's request (one is opened for the customer if none was), and a pending
refund becomes "refunded" only once Stripe says it succeeded.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.core.money import Money
from portal.core.vocabulary import CLOSED_STATES, Actor, PaymentStatus, RefundStatus
from portal.orders.importing import upsert_orders
from portal.orders.models import Order
from portal.orders.validation import validate_order
from portal.refunds import payouts
from portal.refunds.filing import open_on_behalf
from portal.refunds.links import Links
from portal.refunds.models import ProcessorEvent, Refund, RefundRequest
from portal.refunds.payouts import NO_FEES, Fees

PROVIDER = "stripe"
ORDER_EVENTS = ("charge.succeeded", "invoice.paid")
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed")


def _when(timestamp: int | str | None) -> datetime:
    return datetime.fromtimestamp(int(timestamp or 0), tz=UTC)


def charge_of(event: dict[str, Any]) -> str:
    obj = event.get("data", {}).get("object", {})
    if event.get("type", "").startswith("charge.dispute") or event.get("type", "").startswith("refund."):
        return str(obj.get("charge") or "")
    if event.get("type") == "invoice.paid":
        return str(obj.get("charge") or obj.get("payment_intent") or obj.get("id") or "")
    return str(obj.get("id") or "")


def record(session: Session, event: dict[str, Any], *, now: datetime) -> ProcessorEvent | None:
    """Store the event; None when it was stored before (a redelivery)."""
    stored = ProcessorEvent(provider=PROVIDER, event_id=str(event["id"]), type=str(event.get("type", ""))[:64],
                            charge=charge_of(event)[:255], occurred_at=_when(event.get("created")),
                            payload=event, received_at=now)
    session.add(stored)
    try:
        session.flush()
    except IntegrityError:
        # Stored before (a redelivery, or the same event racing itself). A failed flush leaves the
        # transaction unusable, and this event is all it held, so it is rolled back.
        session.rollback()
        return None
    return stored


def receive(session: Session, event: dict[str, Any], *, now: datetime, links: Links,
            fees: Fees = NO_FEES) -> str:
    """Store and act on one verified event in the caller's transaction; say what was done."""
    stored = record(session, event, now=now)
    if stored is None:
        return "duplicate: already received"
    return _act(session, stored, now=now, links=links, fees=fees)


def _act(session: Session, stored: ProcessorEvent, *, now: datetime, links: Links, fees: Fees) -> str:
    event = stored.payload
    obj = event.get("data", {}).get("object", {})
    kind = stored.type
    if kind in ORDER_EVENTS:
        outcome = _upsert_order(session, kind, obj)
        if outcome.startswith("order"):
            outcome += _replay_waiting(session, stored, now=now, links=links, fees=fees)
    elif kind in REFUND_EVENTS:
        outcome = _reconcile_refund(session, obj, now=now, links=links, fees=fees)
    elif kind == "charge.refunded":
        outcome = _charge_refunded(session, obj, now=now, links=links, fees=fees)
    elif kind == "charge.dispute.created":
        outcome = _disputed(session, obj)
    else:
        outcome = "ignored: not an event the portal acts on"
    if not outcome.startswith("waiting"):
        stored.processed_at = now
    stored.outcome = outcome[:2000]
    return outcome


def _replay_waiting(session: Session, order_event: ProcessorEvent, *, now: datetime, links: Links,
                    fees: Fees) -> str:
    """The events that came before their charge's order, handled now in the order Stripe made them."""
    waiting = session.scalars(select(ProcessorEvent).where(
        ProcessorEvent.provider == PROVIDER, ProcessorEvent.charge == order_event.charge,
        ProcessorEvent.processed_at.is_(None), ProcessorEvent.id != order_event.id,
        ProcessorEvent.type.not_in(ORDER_EVENTS))
        .order_by(ProcessorEvent.occurred_at, ProcessorEvent.id)).all()
    for event in waiting:
        _act(session, event, now=now, links=links, fees=fees)
    return f"; {len(waiting)} waiting event(s) handled" if waiting else ""


# -- orders ---------------------------------------------------------------------------------------


def _order_row(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    currency = str(obj.get("currency") or "").upper()
    if kind == "invoice.paid":
        line = ((obj.get("lines") or {}).get("data") or [{}])[0]
        period = line.get("period") or {}
        interval = ((line.get("price") or {}).get("recurring") or {}).get("interval")
        minor, email, name = obj.get("amount_paid"), obj.get("customer_email"), obj.get("customer_name")
        reference = obj.get("charge") or obj.get("payment_intent") or obj.get("id")
        number = metadata.get("order_number") or obj.get("number") or obj.get("id")
        product = metadata.get("product") or line.get("description") or ""
        plan = metadata.get("plan") or {"month": "monthly", "year": "annual"}.get(str(interval), "one-time")
        paid_at = (obj.get("status_transitions") or {}).get("paid_at") or obj.get("created")
        start = _when(period["start"]).date().isoformat() if period.get("start") and plan != "one-time" else ""
        end = _when(period["end"]).date().isoformat() if period.get("end") and plan != "one-time" else ""
    else:
        billing = obj.get("billing_details") or {}
        minor, email, name = obj.get("amount"), billing.get("email") or obj.get("receipt_email"), billing.get("name")
        reference, number = obj.get("id"), metadata.get("order_number") or obj.get("id")
        product, plan = metadata.get("product") or obj.get("description") or "", metadata.get("plan") or "one-time"
        paid_at, start, end = obj.get("created"), metadata.get("period_start", ""), metadata.get("period_end", "")
    try:
        amount = str(Money.from_minor(int(minor), currency).amount) if minor is not None else ""
    except (TypeError, ValueError):
        amount = ""
    return {"order_number": str(number or ""), "customer_email": str(email or ""),
            "customer_name": str(name or metadata.get("customer_name") or (email or "").split("@")[0]),
            "locale": metadata.get("locale", "en"), "product": str(product), "plan": str(plan), "amount": amount,
            "currency": currency, "purchased_at": _when(paid_at).isoformat() if paid_at else "",
            "period_start": start, "period_end": end, "payment_reference": str(reference or ""),
            "channel": metadata.get("channel", "web"), "affiliate": metadata.get("affiliate", ""),
            "affiliate_commission": metadata.get("affiliate_commission", "")}


def _upsert_order(session: Session, kind: str, obj: dict[str, Any]) -> str:
    order, errors = validate_order(_order_row(kind, obj))
    if order is None:
        # The same rules as the CSV import; what they refuse is kept for staff to see.
        return "ignored: " + "; ".join(f"{e.column}: {e.render()}" for e in errors)
    result = upsert_orders(session, [order])
    verb = "created" if result.created else "updated" if result.updated else "unchanged"
    return f"order {order.order_number} {verb}"


def _order_for_charge(session: Session, charge: str) -> Order | None:
    """The charge's order, locked (``payouts.lock_order``) against staff processing it at the same time."""
    if not charge:
        return None
    order_id = session.scalar(select(Order.id).where(Order.payment_reference == charge))
    return payouts.lock_order(session, order_id) if order_id is not None else None


def _disputed(session: Session, dispute: dict[str, Any]) -> str:
    order = _order_for_charge(session, str(dispute.get("charge") or ""))
    if order is None:
        return "waiting: no order for this charge yet"
    order.payment_status = PaymentStatus.CHARGED_BACK
    return f"order {order.order_number} charged back"


# -- refunds --------------------------------------------------------------------------------------


def _charge_refunded(session: Session, charge: dict[str, Any], *, now: datetime, links: Links, fees: Fees) -> str:
    refunds = (charge.get("refunds") or {}).get("data") or []
    outcomes = [_reconcile_refund(session, {**r, "charge": r.get("charge") or charge.get("id")}, now=now, links=links, fees=fees)
                for r in refunds]
    order = _order_for_charge(session, str(charge.get("id") or ""))
    if order is None:
        return "waiting: no order for this charge yet"
    if charge.get("refunded") or int(charge.get("amount_refunded") or 0) >= order.amount_minor:
        order.payment_status = PaymentStatus.REFUNDED
        outcomes.append(f"order {order.order_number} fully refunded")
    return "; ".join(outcomes) or f"order {order.order_number}: nothing to reconcile"


def _ours(session: Session, refund: dict[str, Any]) -> Refund | None:
    found = session.scalar(select(Refund).where(Refund.processor_reference == refund["id"]))
    if found is not None:
        return found
    reference = (refund.get("metadata") or {}).get("refund_request")
    if reference:
        # Our own refund whose answer was lost on the way back: the attempt still pending.
        return session.scalar(select(Refund).join(RefundRequest).where(
            RefundRequest.reference == reference, Refund.status == RefundStatus.PENDING,
            Refund.amount_minor == int(refund.get("amount") or 0)).order_by(Refund.id.desc()))
    return None


def _reconcile_refund(session: Session, refund: dict[str, Any], *, now: datetime, links: Links, fees: Fees) -> str:
    if not refund.get("id"):
        return "ignored: no refund id"
    status = refund.get("status")
    ours = _ours(session, refund)
    if ours is None:
        order = _order_for_charge(session, str(refund.get("charge") or ""))
        if order is None:
            return "waiting: no order for this charge yet"
        ours = _dashboard_refund(session, order, refund, now=now, links=links, fees=fees)
    else:
        payouts.lock_order(session, ours.order_id)
        session.refresh(ours)  # as it is now that no one else is changing it
    ours.processor_reference = ours.processor_reference or refund["id"]
    if ours.status is not RefundStatus.PENDING:
        # Settled before; an older or repeated report does not move it back.
        if status in ("failed", "canceled") and ours.status is RefundStatus.SUCCEEDED:
            return f"refund {refund['id']} reported {status} after it succeeded: left for staff"
        return f"refund {refund['id']} already {ours.status.value}"
    if status == "succeeded":
        payouts.succeeded(session, ours, fees, actor=Actor.SYSTEM, now=now, links=links)
        return f"refund {refund['id']} succeeded; request {ours.refund_request.reference} refunded"
    if status in ("failed", "canceled"):
        payouts.failed(session, ours, str(refund.get("failure_reason") or status), actor=Actor.SYSTEM, now=now,
                       links=links)
        return f"refund {refund['id']} {status}"
    return f"refund {refund['id']} {status or 'pending'}: waiting for the processor"


def _dashboard_refund(session: Session, order: Order, refund: dict[str, Any], *, now: datetime, links: Links, fees: Fees) -> Refund:
    request = session.scalar(select(RefundRequest).where(RefundRequest.order_id == order.id,
                                                         RefundRequest.state.not_in(CLOSED_STATES)))
    if request is None:
        request = open_on_behalf(session, order, actor=Actor.SYSTEM, locale=order.customer.locale,
                                 amount_minor=int(refund.get("amount") or 0), now=now, links=links)
    found = Refund(refund_request=request, order=order, gateway=PROVIDER, status=RefundStatus.PENDING,
                   amount_minor=int(refund.get("amount") or 0), currency=order.currency,
                   attempt=request.processing_attempt, idempotency_key=f"stripe-{refund['id']}",
                   processor_reference=refund["id"], created_at=_when(refund.get("created")) if refund.get("created")
                   else now)
    session.add(found)
    session.flush()
    return found
