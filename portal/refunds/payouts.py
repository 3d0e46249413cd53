"""Moving the money: staff processing an approved request, and every way a refund settles.

A refund settles through one of three doors (staff's call to the gateway, the API's, or the
payment processor's event) and each door goes through the same functions here: one order lock,
one "succeeded", one "failed". Processing locks the order's row, checks that refunds of the
order never exceed what was paid, and calls the gateway exactly once per attempt with the
attempt's idempotency key. Nothing here commits or imports Flask: the caller commits once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import Actor, RefundStatus, RequestState
from portal.orders.models import Order
from portal.payments.base import Gateway, GatewayUnavailable, RefundDeclined
from portal.refunds import lifecycle, notifications
from portal.refunds.acting import ACTING_ROLES, Staff, WorkflowError, require
from portal.refunds.links import Links
from portal.refunds.models import Refund, RefundRequest
from portal.refunds.states import Action, InvalidTransition, transition


class GatewayProblem(Exception):
    """The processor gave no reliable answer. The request stays approved and the pending attempt
    (with its idempotency key) is kept for the retry: the caller commits, then reports it."""


@dataclass(frozen=True)
class Fees:
    """The processor's fee on a charge, which it keeps when refunding (a business cost)."""

    percent: Decimal = Decimal("0")
    fixed_minor: int = 0

    def on(self, order: Order) -> int:
        fee = Decimal(order.amount_minor) * self.percent / 100 + self.fixed_minor
        return int(fee.quantize(Decimal(1), rounding=ROUND_HALF_UP))


NO_FEES = Fees()  # the default where the processor's fee is not configured


def lock_order(session: Session, order_id: int) -> Order:
    """Hold the order's row until the transaction ends, so refunds of one order happen one at a time
    (staff's processing and the processor's events alike)."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks; a write takes the database's write lock for the transaction.
        session.execute(update(Order).where(Order.id == order_id).values(id=Order.id)
                        .execution_options(synchronize_session=False))
        order = session.get(Order, order_id, populate_existing=True)
        assert order is not None
        return order
    return session.scalars(select(Order).where(Order.id == order_id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def remaining(session: Session, order: Order, *, excluding_request: int | None = None) -> Money:
    """What is left of the payment once refunds made or under way are taken off."""
    query = select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
        Refund.order_id == order.id, Refund.status.in_((RefundStatus.SUCCEEDED, RefundStatus.PENDING)))
    if excluding_request is not None:
        query = query.where(Refund.refund_request_id != excluding_request)
    taken = session.scalar(query) or 0
    return Money.from_minor(order.amount_minor - taken, order.currency)


def _share(amount: Money, of: Money, value_minor: int) -> int:
    """``value_minor`` × amount / of, rounded half up to whole minor units."""
    if of.minor == 0:
        return 0
    return int((Decimal(value_minor) * amount.minor / of.minor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def process_refund(session: Session, request_id: int, staff: Staff, gateway: Gateway, *, reference: str = "",
                   fees: Fees = NO_FEES) -> Refund:
    """Send the approved amount back, exactly once.

    The order's row is locked first, so concurrent calls queue up; each then re-reads the request
    and only the first finds it approved. The gateway is called inside the lock with the key of
    the current attempt, and a refund of the order can never exceed what is left of the payment.
    """
    require(staff, *ACTING_ROLES)
    return send_refund(session, request_id, gateway, actor=Actor.STAFF, staff_user_id=staff.user.id, now=staff.now,
                       links=staff.links, reference=reference, fees=fees)


def send_refund(session: Session, request_id: int, gateway: Gateway, *, actor: Actor, now: datetime, links: Links,
                staff_user_id: int | None = None, reference: str = "", fees: Fees = NO_FEES) -> Refund:
    """:func:`process_refund` for whoever acts: a staff member, or automation (``Actor.SYSTEM``)."""
    if gateway.name == "manual" and not reference.strip():
        raise WorkflowError("reference", N_("Enter the processor's reference of the refund you made."))
    # The lock must come before any read, so whatever the caller read is let go first; a caller
    # never has anything unsaved here (processing is the whole of its change).
    session.rollback()
    order_id = session.scalar(select(RefundRequest.order_id).where(RefundRequest.id == request_id))
    if order_id is None:
        raise LookupError(request_id)
    order = lock_order(session, order_id)
    request = session.scalars(select(RefundRequest).where(RefundRequest.id == request_id)
                              .execution_options(populate_existing=True)).one()
    if request.state is not RequestState.APPROVED or request.amount_approved_minor is None:
        raise InvalidTransition(request.state, Action.MARK_REFUNDED)
    amount = Money.from_minor(request.amount_approved_minor, request.currency)
    key = f"refund-{request.reference}-attempt-{request.processing_attempt}"
    refund = session.scalar(select(Refund).where(Refund.idempotency_key == key))
    if refund is None:
        left = remaining(session, order)
        if left < amount:
            raise WorkflowError("amount", N_("Only %(remaining)s of this order is left to refund."), remaining=left)
        refund = Refund(refund_request=request, order=order, staff_user_id=staff_user_id, gateway=gateway.name,
                        status=RefundStatus.PENDING, amount_minor=amount.minor, currency=amount.currency,
                        attempt=request.processing_attempt, idempotency_key=key, created_at=now)
        session.add(refund)
        session.flush()
    try:
        answer = gateway.refund(charge=order.payment_reference, amount=amount, idempotency_key=key,
                                reference=reference, metadata={"refund_request": request.reference})
    except GatewayUnavailable as error:
        refund.processor_message = str(error)[:2000]
        session.flush()
        raise GatewayProblem(str(error)) from None
    except RefundDeclined as error:
        failed(session, refund, str(error), actor=actor, staff_user_id=staff_user_id, now=now, links=links)
        return refund
    refund.processor_reference = answer.reference
    if answer.status == "pending":
        # Accepted but not yet done (some payment methods take days): the request stays approved
        # and the processor's event completes it (portal/refunds/reconciliation.py).
        refund.processor_message = "pending at the processor"
        session.flush()
        return refund
    succeeded(session, refund, fees, actor=actor, staff_user_id=staff_user_id, now=now, links=links)
    return refund


def succeeded(session: Session, refund: Refund, fees: Fees, *, actor: Actor, now: datetime, links: Links,
              staff_user_id: int | None = None) -> None:
    """The refund went through, whichever door the news came through: record what it cost the
    business beyond its amount, move the request to refunded and tell the customer.

    An approved request is marked refunded; an open one that never reached approval (a refund
    made in the processor's dashboard) records the refund; a closed one (declined, withdrawn)
    keeps its state, the refund staying on the order for staff to see.
    """
    order = refund.order
    request = refund.refund_request
    first_for_order = not session.scalar(select(Refund.id).where(
        Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED).limit(1))
    refund.status = RefundStatus.SUCCEEDED
    refund.completed_at = now
    refund.fee_kept_minor = _share(refund.amount, order.amount, fees.on(order))
    refund.commission_clawback_minor = _share(refund.amount, order.amount, order.affiliate_commission_minor or 0)
    lifecycle.refund_settled.send(session, refund=refund, first_for_order=first_for_order)
    if request.state is RequestState.APPROVED:
        action = Action.MARK_REFUNDED
    elif request.state.is_open:
        request.amount_approved_minor = refund.amount_minor
        action = Action.RECORD_REFUND
    else:
        return
    transition(session, request, action, actor=actor, staff_user_id=staff_user_id, note=refund.processor_reference,
               amount_minor=refund.amount_minor, now=now)
    notifications.refunded(session, request, refund, links=links, on=now.date())


def failed(session: Session, refund: Refund, reason: str, *, actor: Actor, now: datetime, links: Links,
           staff_user_id: int | None = None) -> None:
    """The processor refused or gave up on the refund: the next try is a new attempt with a new key.

    Only the request's current attempt fails the request; an older attempt's news changes nothing else.
    """
    request = refund.refund_request
    refund.status = RefundStatus.FAILED
    refund.completed_at = now
    refund.processor_message = reason[:2000]
    if request.state is not RequestState.APPROVED or refund.attempt != request.processing_attempt:
        return
    request.processing_attempt += 1
    transition(session, request, Action.MARK_FAILED, actor=actor, staff_user_id=staff_user_id, note=reason[:500],
               amount_minor=refund.amount_minor, now=now)
    notifications.refund_failed(session, request, refund, links=links)


def retry_refund(session: Session, request: RefundRequest, staff: Staff) -> None:
    """Back to approved after a failure, so processing can run again (as a new attempt)."""
    require(staff, *ACTING_ROLES)
    transition(session, request, Action.RETRY, actor=Actor.STAFF, staff_user_id=staff.user.id, now=staff.now)
