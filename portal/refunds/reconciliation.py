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
from sqlalchemy.orm import Session

from portal.core.money import Money
from portal.core.vocabulary import CLOSED_STATES, Actor, PaymentStatus, RefundStatus
from portal.orders.importing import upsert_orders
from portal.orders.models import Order
from portal.orders.validation import validate_order
from portal.payments.base import IN_PROGRESS, UNSUCCESSFUL
from portal.refunds import alerts, payouts, processor_events
from portal.refunds.filing import open_on_behalf
from portal.refunds.links import Links
from portal.refunds.models import ProcessorEvent, Refund, RefundRequest
from portal.refunds.payouts import NO_FEES, Fees

PROVIDER = "stripe"
ORDER_EVENTS = ("charge.succeeded", "invoice.paid")
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
# Every event the portal acts on: the Stripe endpoint subscribes to exactly these (README, "Payments").
EVENTS = (*ORDER_EVENTS, "invoice_payment.paid", *REFUND_EVENTS, "charge.refunded", "charge.dispute.created")


def event_problem(event: dict[str, Any], *, api_version: str, livemode: bool) -> str | None:
    """Why the portal must not act on ``event``, or None: it must be in the pinned API version (its
    shapes are the ones the code reads) and from the same mode (test or live) as the API key."""
    version = event.get("api_version")
    if version != api_version:
        return (
            f"event {event.get('id')} ({event.get('type')}) is in Stripe API version {version}, the portal "
            f"reads {api_version}: set the endpoint's API version in Stripe to {api_version}"
        )
    if bool(event.get("livemode")) != livemode:
        mode, key = ("live", "test") if event.get("livemode") else ("test", "live")
        return f"event {event.get('id')} comes from Stripe's {mode} mode but the portal's API key is a {key} key"
    return None


def _text(money: Money) -> str:
    return f"{money.amount} {money.currency}"


def _when(timestamp: int | str | None) -> datetime:
    return datetime.fromtimestamp(int(timestamp or 0), tz=UTC)


def charge_of(event: dict[str, Any]) -> str:
    obj = event.get("data", {}).get("object", {})
    kind = event.get("type", "")
    if kind.startswith("charge.dispute") or kind.startswith("refund.") or kind == "charge.refund.updated":
        return str(obj.get("charge") or obj.get("payment_intent") or "")
    if kind == "invoice.paid":
        return invoice_payment_reference(obj) or str(obj.get("id") or "")
    if kind == "invoice_payment.paid":
        return _paid_with(obj) or str(obj.get("invoice") or "")
    return str(obj.get("id") or "")


def _paid_with(invoice_payment: dict[str, Any]) -> str:
    payment = invoice_payment.get("payment") or {}
    return str(payment.get("payment_intent") or payment.get("charge") or "")


def invoice_payment_reference(invoice: dict[str, Any]) -> str:
    """What paid the invoice: before 2025-03-31 the Invoice named its ``charge``/``payment_intent``;
    since then its ``payments`` list (InvoicePayment objects) does, and may be absent from the event,
    in which case ``invoice_payment.paid`` names it later."""
    old = invoice.get("payment_intent") or invoice.get("charge")
    if old:
        return str(old)
    payments = (invoice.get("payments") or {}).get("data") or []
    paid = [p for p in payments if p.get("status") == "paid"] or [p for p in payments if p.get("is_default")]
    return _paid_with(paid[0]) if paid else ""


def record(session: Session, event: dict[str, Any], *, now: datetime) -> ProcessorEvent | None:
    """Store the event; None when it was stored before (a redelivery)."""
    return processor_events.store_once(
        session,
        provider=PROVIDER,
        event_id=str(event["id"]),
        kind=str(event.get("type", "")),
        charge=charge_of(event),
        occurred_at=_when(event.get("created")),
        payload=event,
        now=now,
    )


def receive(session: Session, event: dict[str, Any], *, now: datetime, links: Links, fees: Fees = NO_FEES) -> str:
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
    elif kind == "invoice_payment.paid":
        outcome = _invoice_payment_paid(session, obj)
        if outcome.startswith("order"):
            outcome += _replay_waiting(session, stored, now=now, links=links, fees=fees)
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


def _order_row(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    currency = str(obj.get("currency") or "").upper()
    if kind == "invoice.paid":
        line = ((obj.get("lines") or {}).get("data") or [{}])[0]
        period = line.get("period") or {}
        interval = _interval(line)
        minor, email, name = obj.get("amount_paid"), obj.get("customer_email"), obj.get("customer_name")
        reference = invoice_payment_reference(obj) or obj.get("id")
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
    return {
        "order_number": str(number or ""),
        "customer_email": str(email or ""),
        "customer_name": str(name or metadata.get("customer_name") or (email or "").split("@")[0]),
        "locale": metadata.get("locale", "en"),
        "product": str(product),
        "plan": str(plan),
        "amount": amount,
        "currency": currency,
        "purchased_at": _when(paid_at).isoformat() if paid_at else "",
        "period_start": start,
        "period_end": end,
        "payment_reference": str(reference or ""),
        "channel": metadata.get("channel", "web"),
        "affiliate": metadata.get("affiliate", ""),
        "affiliate_commission": metadata.get("affiliate_commission", ""),
    }


def _interval(line: dict[str, Any]) -> str | None:
    """The line's billing interval: ``price.recurring`` before 2025-03-31; since then the line has
    ``pricing.price_details.price`` (an id unless expanded), so the period's length tells."""
    price = line.get("price") or ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    if isinstance(price, dict) and (price.get("recurring") or {}).get("interval"):
        return str(price["recurring"]["interval"])
    period = line.get("period") or {}
    if period.get("start") and period.get("end"):
        days = (int(period["end"]) - int(period["start"])) / 86400
        if 27 <= days <= 32:
            return "month"
        if 360 <= days <= 370:
            return "year"
    return None


def _invoice_payment_paid(session: Session, invoice_payment: dict[str, Any]) -> str:
    """The payment of an invoice whose event did not carry it: the order learns what to refund."""
    invoice, paid_with = str(invoice_payment.get("invoice") or ""), _paid_with(invoice_payment)
    if not invoice or not paid_with:
        return "ignored: no invoice or payment"
    order_id = session.scalar(select(Order.id).where(Order.payment_reference == invoice))
    if order_id is None:
        return "ignored: no order waits for this invoice's payment"
    order = payouts.lock_order(session, order_id)
    order.payment_reference = paid_with
    return f"order {order.order_number} paid with {paid_with}"


def _upsert_order(session: Session, kind: str, obj: dict[str, Any]) -> str:
    order, errors = validate_order(_order_row(kind, obj))
    if order is None:
        # The same rules as the CSV import; what they refuse is kept for staff to see.
        return "ignored: " + "; ".join(f"{e.column}: {e.render()}" for e in errors)
    result = upsert_orders(session, [order])
    verb = "created" if result.created else "updated" if result.updated else "unchanged"
    return f"order {order.order_number} {verb}"


def _order_for_charge(session: Session, *payments: object) -> Order | None:
    """The order paid by one of ``payments`` (a charge or a PaymentIntent), locked
    (``payouts.lock_order``) against staff processing it at the same time."""
    names = [str(p) for p in payments if p]
    if not names:
        return None
    order_id = session.scalar(select(Order.id).where(Order.payment_reference.in_(names)).limit(1))
    return payouts.lock_order(session, order_id) if order_id is not None else None


def _disputed(session: Session, dispute: dict[str, Any]) -> str:
    order = _order_for_charge(session, dispute.get("charge"), dispute.get("payment_intent"))
    if order is None:
        return "waiting: no order for this charge yet"
    order.payment_status = PaymentStatus.CHARGED_BACK
    return f"order {order.order_number} charged back"


# -- refunds --------------------------------------------------------------------------------------


def _charge_refunded(session: Session, charge: dict[str, Any], *, now: datetime, links: Links, fees: Fees) -> str:
    """Since 2022-11-15 a Charge no longer carries its refunds: each refund comes in its own
    ``refund.*`` event. This one only says how much of the charge Stripe has refunded."""
    order = _order_for_charge(session, charge.get("id"), charge.get("payment_intent"))
    if order is None:
        return "waiting: no order for this charge yet"
    refunded = int(charge.get("amount_refunded") or 0)
    if refunded > order.amount_minor:
        alerts.raise_alert(
            session,
            alerts.OVER_REFUND,
            f"Stripe has refunded {refunded} of charge {charge.get('id')} ({order.order_number}), "
            f"more than the {order.amount_minor} paid",
            now=now,
            order=order,
        )
    if (
        charge.get("refunded") or refunded >= order.amount_minor
    ) and order.payment_status is not PaymentStatus.CHARGED_BACK:
        order.payment_status = PaymentStatus.REFUNDED
        return f"order {order.order_number} fully refunded"
    return f"order {order.order_number}: {refunded} refunded at Stripe"


def _ours(session: Session, refund: dict[str, Any]) -> Refund | None:
    found = session.scalar(select(Refund).where(Refund.processor_reference == refund["id"]))
    if found is not None:
        return found
    reference = (refund.get("metadata") or {}).get("refund_request")
    if reference:
        # Our own refund whose answer was lost on the way back: the attempt still pending.
        query = (
            select(Refund)
            .join(RefundRequest)
            .where(
                RefundRequest.reference == reference,
                Refund.status == RefundStatus.PENDING,
                Refund.amount_minor == int(refund.get("amount") or 0),
            )
        )
        attempt = (refund.get("metadata") or {}).get("attempt")
        if attempt and str(attempt).isdigit():
            query = query.where(Refund.attempt == int(attempt))
        return session.scalar(query.order_by(Refund.id.desc()))
    return None


def _reconcile_refund(session: Session, refund: dict[str, Any], *, now: datetime, links: Links, fees: Fees) -> str:
    if not refund.get("id"):
        return "ignored: no refund id"
    status = str(refund.get("status") or "pending")
    ours = _ours(session, refund)
    if ours is None:
        order = _order_for_charge(session, refund.get("charge"), refund.get("payment_intent"))
        if order is None:
            return "waiting: no order for this charge yet"
        ours, beyond = _refund_from_stripe(session, order, refund, now=now, links=links)
        if beyond:
            _settle(session, ours, status, refund, now=now, links=links, fees=fees, quiet=True)
            return (
                f"refund {refund['id']} is beyond what was paid for order {order.order_number}: "
                f"recorded {ours.status.value}, staff alerted"
            )
    else:
        payouts.lock_order(session, ours.order_id)
        session.refresh(ours)  # as it is now that no one else is changing it
    ours.processor_reference = ours.processor_reference or refund["id"]
    return _settle(session, ours, status, refund, now=now, links=links, fees=fees)


def _settle(
    session: Session,
    ours: Refund,
    status: str,
    refund: dict[str, Any],
    *,
    now: datetime,
    links: Links,
    fees: Fees,
    quiet: bool = False,
) -> str:
    """Move our refund (and its request) by Stripe's status; ``quiet`` records money without a word to anyone
    but staff (a refund beyond what was paid)."""
    if ours.status is RefundStatus.FAILED:
        return f"refund {refund['id']} already failed"
    if ours.status is RefundStatus.SUCCEEDED and status not in UNSUCCESSFUL:
        return f"refund {refund['id']} already succeeded"
    reason = str(refund.get("failure_reason") or "")
    if status in UNSUCCESSFUL:
        # Also after "succeeded": a card refund can fail days later, and the money comes back to us.
        if quiet:
            ours.status, ours.processor_status, ours.failure_reason = RefundStatus.FAILED, status, reason
            return f"refund {refund['id']} {status}"
        payouts.failed(
            session,
            ours,
            reason or status,
            code=reason or status,
            status=status,
            actor=Actor.SYSTEM,
            now=now,
            links=links,
        )
        return f"refund {refund['id']} {status}" + (f" ({reason})" if reason else "")
    if status == "succeeded":
        if quiet:
            ours.status, ours.processor_status, ours.completed_at = RefundStatus.SUCCEEDED, status, now
            payouts._settle_payment_status(session, ours.order)
            return f"refund {refund['id']} succeeded"
        payouts.succeeded(session, ours, fees, actor=Actor.SYSTEM, now=now, links=links)
        return f"refund {refund['id']} succeeded; request {ours.refund_request.reference} refunded"
    if status in IN_PROGRESS:
        if quiet:
            ours.processor_status = status
        else:
            payouts.progressed(session, ours, status, now=now)
        return f"refund {refund['id']} {status}: waiting for the processor"
    return f"refund {refund['id']} {status}: not a status the portal knows, left for staff"


def _refund_from_stripe(
    session: Session, order: Order, refund: dict[str, Any], *, now: datetime, links: Links
) -> tuple[Refund, bool]:
    """A refund the portal did not make (Stripe's dashboard, or a second refund after a lost answer).

    Within what was paid, it is recorded on the order's open request (one is opened for the customer
    if none is). Beyond it, nobody is told it was a refund for them: it is recorded on the order's
    latest request as it is, and staff get an accounting alert (the True returned)."""
    amount = int(refund.get("amount") or 0)
    left = payouts.remaining(session, order)
    beyond = amount > left.minor
    request = session.scalar(
        select(RefundRequest).where(RefundRequest.order_id == order.id, RefundRequest.state.not_in(CLOSED_STATES))
    )
    if beyond:
        request = request or session.scalar(
            select(RefundRequest).where(RefundRequest.order_id == order.id).order_by(RefundRequest.id.desc())
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
        idempotency_key=f"stripe-{refund['id']}",
        processor_reference=refund["id"],
        created_at=_when(refund.get("created")) if refund.get("created") else now,
    )
    session.add(found)
    session.flush()
    if beyond:
        metadata = refund.get("metadata") or {}
        alerts.raise_alert(
            session,
            alerts.OVER_REFUND,
            f"Stripe reports refund {refund['id']} of {_text(Money.from_minor(amount, order.currency))} on order "
            f"{order.order_number}, but only {_text(left)} of {_text(order.amount)} was left to refund"
            + (
                f" (its metadata names {metadata.get('refund_request')} attempt {metadata.get('attempt')})"
                if metadata.get("refund_request")
                else ""
            )
            + ": a duplicate refund or a refund made twice",
            now=now,
            request=request,
            order=order,
        )
    return found, beyond
