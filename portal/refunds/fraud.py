"""Fraud signals on a refund request, each with the reason it was raised. No Flask here.

A signal is a prompt to look closer, not a verdict: the staff member reads the reason and decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.core.markers import N_, Nn_, Plural
from portal.core.money import Money
from portal.core.vocabulary import PaymentStatus, RefundStatus
from portal.documents.models import Document
from portal.orders.models import LookupFailure, Order
from portal.refunds.models import Refund, RefundRequest

YEAR = timedelta(days=365)
# One whole sentence per status (a status's title is a label, not a word to put inside a sentence).
PAYMENT_STATUS_SIGNALS = {
    PaymentStatus.CHARGED_BACK: N_("The payment processor marks this order as charged back."),
    PaymentStatus.REFUNDED: N_("The payment processor marks this order as refunded."),
}
LAST_STRETCH = timedelta(hours=24)


@dataclass(frozen=True)
class Signal:
    key: str
    message: str | Plural  # a msgid with %(…)s parameters, or both forms of one that counts
    params: dict[str, object] = field(default_factory=dict)


def fraud_signals(session: Session, request: RefundRequest, *, now: datetime) -> list[Signal]:
    order = request.order
    signals: list[Signal] = []

    failures = (
        session.scalar(
            select(func.count()).select_from(LookupFailure).where(LookupFailure.order_number == order.order_number)
        )
        or 0
    )
    if failures:
        signals.append(
            Signal(
                "failed_lookups",
                Nn_(
                    "%(count)s failed lookup of this order number (a wrong email or a guess).",
                    "%(count)s failed lookups of this order number (a wrong email or a guess).",
                ),
                {"count": failures},
            )
        )

    refunds = (
        session.scalar(
            select(func.count())
            .select_from(Refund)
            .join(Order, Refund.order_id == Order.id)
            .where(
                Order.customer_id == order.customer_id,
                Refund.status == RefundStatus.SUCCEEDED,
                Refund.completed_at >= now - YEAR,
            )
        )
        or 0
    )
    if refunds:
        signals.append(
            Signal(
                "repeat_refunds",
                Nn_(
                    "%(count)s refund to this customer in the last 365 days.",
                    "%(count)s refunds to this customer in the last 365 days.",
                ),
                {"count": refunds},
            )
        )

    hashes = [d.sha256 for d in request.documents]
    if hashes:
        shared = (
            session.execute(
                select(RefundRequest.reference)
                .join(Document, Document.refund_request_id == RefundRequest.id)
                .join(Order, RefundRequest.order_id == Order.id)
                .where(Document.sha256.in_(hashes), Order.customer_id != order.customer_id)
                .limit(3)
            )
            .scalars()
            .all()
        )
        for other in dict.fromkeys(shared):
            signals.append(
                Signal(
                    "shared_document",
                    N_("A document is identical to one sent with request %(other)s by another customer."),
                    {"other": other},
                )
            )

    decision = request.decision_at_filing
    if decision is not None:
        if request.amount_requested_minor > decision.amount.minor:
            signals.append(
                Signal(
                    "above_refundable",
                    N_("Asked for %(asked)s, above the %(refundable)s the policy allowed when filing."),
                    {"asked": request.amount_requested, "refundable": decision.amount},
                )
            )
        window_end = decision.facts.window_end
        if window_end is not None and timedelta(0) <= window_end - request.created_at <= LAST_STRETCH:
            hours = max(1, int((window_end - request.created_at).total_seconds() // 3600))
            signals.append(
                Signal(
                    "end_of_window",
                    Nn_(
                        "Filed %(hours)s hour before the refund window closed.",
                        "Filed %(hours)s hours before the refund window closed.",
                        "hours",
                    ),
                    {"hours": hours},
                )
            )

    refunded = (
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
                Refund.order_id == order.id, Refund.status.in_((RefundStatus.SUCCEEDED, RefundStatus.PENDING))
            )
        )
        or 0
    )
    if refunded > order.amount_minor:
        signals.append(
            Signal(
                "over_refunded",
                N_(
                    "Refunds of this order at the payment processor (%(refunded)s) "
                    "exceed what was paid (%(paid)s): a duplicate refund."
                ),
                {"refunded": Money.from_minor(refunded, order.currency), "paid": order.amount},
            )
        )

    if order.payment_status is not PaymentStatus.PAID:
        signals.append(Signal("payment_status", PAYMENT_STATUS_SIGNALS[order.payment_status]))
    return signals


def filing_signals(session: Session, order: Order, document_hashes: list[str], *, now: datetime) -> list[str]:
    """The signals a new request raises as it is filed, for the insights' daily counts."""
    raised = []
    if session.scalar(select(LookupFailure.id).where(LookupFailure.order_number == order.order_number).limit(1)):
        raised.append("failed_lookups")
    if session.scalar(
        select(Refund.id)
        .join(Order, Refund.order_id == Order.id)
        .where(
            Order.customer_id == order.customer_id,
            Refund.status == RefundStatus.SUCCEEDED,
            Refund.completed_at >= now - YEAR,
        )
        .limit(1)
    ):
        raised.append("repeat_refunds")
    if document_hashes and session.scalar(
        select(Document.id)
        .join(RefundRequest, Document.refund_request_id == RefundRequest.id)
        .join(Order, RefundRequest.order_id == Order.id)
        .where(Document.sha256.in_(document_hashes), Order.customer_id != order.customer_id)
        .limit(1)
    ):
        raised.append("shared_document")
    if order.payment_status is not PaymentStatus.PAID:
        raised.append("payment_status")
    return raised
