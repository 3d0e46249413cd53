"""What the customer (and subscribed systems) hear about a refund request.

One typed function per customer email. Each is called in the transaction of the change it
reports and queues the message there (the outbox); ``queue_email`` checks the variables against
the kit's declarations (``emails/messages.toml``) at once, so a wrong or missing variable fails the
action that queued it instead of becoming a dead letter after the commit. Outgoing webhooks
subscribe to the request's lifecycle here. No Flask.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from portal.core import formatting
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import RequestState
from portal.outbox import webhooks
from portal.outbox.queue import queue_email
from portal.payments.base import failure_sentence
from portal.policy.schema import Clause, Offer
from portal.refunds import lifecycle
from portal.refunds.links import Links
from portal.refunds.models import InformationRequest, Refund, RefundRequest, StatusEvent
from portal.refunds.questions import item_label

PAYOUT_DAYS = (5, 7)
ORIGINAL_METHOD = N_("Your original payment method")


def _queue(session: Session, request: RefundRequest, message: str, links: Links, **variables: Any) -> None:
    customer = request.order.customer
    queue_email(
        session,
        message,
        customer.email,
        request.locale,
        {
            "customer_name": customer.name,
            "reference": request.reference,
            "tracking_url": links.tracking(request.reference),
            **variables,
        },
        refund_request_id=request.id,
        domain=links.domain,
    )


def acknowledgement(session: Session, request: RefundRequest, *, links: Links, decision_due: date) -> None:
    order = request.order
    _queue(
        session,
        request,
        "acknowledgement",
        links,
        order_number=order.order_number,
        product=order.product,
        amount=request.amount_requested,
        review=request.review_requested,
        decision_due=decision_due,
    )


def information_request(
    session: Session,
    request: RefundRequest,
    info: InformationRequest,
    *,
    links: Links,
    closes_on: date,
    reminder: bool = False,
) -> None:
    _queue(
        session,
        request,
        "information_request",
        links,
        questions=[item_label(i) for i in info.items],
        note=info.message,
        reminder=reminder,
        closes_on=closes_on,
    )


def closed_unanswered(session: Session, request: RefundRequest, *, links: Links, asked_on: date) -> None:
    _queue(session, request, "closed_unanswered", links, order_number=request.order.order_number, asked_on=asked_on)


def reply_received(session: Session, request: RefundRequest, *, links: Links) -> None:
    _queue(session, request, "reply_received", links)


def approval(session: Session, request: RefundRequest, amount: Money, *, links: Links, note: str) -> None:
    _queue(
        session,
        request,
        "approval",
        links,
        amount=amount,
        partial=amount.minor < request.order.amount_minor,
        days_min=PAYOUT_DAYS[0],
        days_max=PAYOUT_DAYS[1],
        note=note,
    )


def decline(
    session: Session, request: RefundRequest, clause: Clause, offer: Offer | None, *, links: Links, note: str
) -> None:
    locale = request.locale

    def number(n: int) -> str:
        return formatting.number(n, locale)

    _queue(
        session,
        request,
        "decline",
        links,
        clause_title=clause.render("title", locale, number),
        clause_url=links.policy_clause(clause.id),
        note=note,
        alternative_title=offer.render("title", locale, number) if offer else "",
        alternative_text=offer.render("text", locale, number) if offer else "",
    )


def _offer_words(offer: Offer, locale: str) -> dict[str, str]:
    def number(n: int) -> str:
        return formatting.number(n, locale)

    return {"offer_title": offer.render("title", locale, number), "offer_text": offer.render("text", locale, number)}


def offer_accepted(session: Session, request: RefundRequest, offer: Offer, *, links: Links, set_up_by: date) -> None:
    """The customer took ``offer`` instead of a refund: what they chose, and the day our team sets it up by."""
    _queue(
        session,
        request,
        "offer_accepted",
        links,
        order_number=request.order.order_number,
        product=request.order.product,
        set_up_by=set_up_by,
        **_offer_words(offer, request.locale),
    )


def offer_set_up(session: Session, request: RefundRequest, offer: Offer, *, links: Links, on: date) -> None:
    """Staff set up the offer the customer took."""
    _queue(
        session,
        request,
        "offer_set_up",
        links,
        order_number=request.order.order_number,
        product=request.order.product,
        set_up_on=on,
        **_offer_words(offer, request.locale),
    )


def refunded(session: Session, request: RefundRequest, refund: Refund, *, links: Links, on: date) -> None:
    _queue(
        session,
        request,
        "refunded",
        links,
        order_number=request.order.order_number,
        amount=refund.amount,
        refunded_on=on,
        method=ORIGINAL_METHOD,
        feedback_url=links.feedback(request.reference),
    )


def refund_failed(session: Session, request: RefundRequest, refund: Refund, *, links: Links, reason: str = "") -> None:
    """``reason`` is the processor's failure code; the email explains it in the customer's language."""
    _queue(
        session,
        request,
        "refund_failed",
        links,
        amount=refund.amount,
        reason=failure_sentence(reason or refund.processor_status or "unknown"),
    )


@lifecycle.state_changed.connect
def _tell_subscribers(
    session: Session,
    *,
    request: RefundRequest,
    before: RequestState | None,
    after: RequestState,
    event: StatusEvent,
    **_: Any,
) -> None:
    """Every change of state, filing included, goes to the outgoing webhooks' endpoints."""
    amount = Money.from_minor(event.amount_minor, request.currency) if event.amount_minor else None
    webhooks.queue_event(
        session,
        webhooks.STATE_CHANGED,
        {
            "reference": request.reference,
            "order_number": request.order.order_number,
            "from_state": before.value if before else None,
            "to_state": after.value,
            "actor": event.actor.value,
            "note": event.note,
            "amount": str(amount.amount) if amount else None,
            "currency": request.currency,
            "occurred_at": event.created_at.isoformat(),
        },
        at=event.created_at,
        refund_request_id=request.id,
    )
