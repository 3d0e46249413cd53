"""Moving the money: staff processing an approved request, and every way a refund settles.

A refund settles through one of three doors (staff's call to the gateway, the API's, or the
payment processor's event) and each door goes through the same functions here: one order lock,
one "succeeded", one "failed". Processing locks the order's row, checks that refunds of the
order never exceed what was paid, and calls the gateway exactly once per attempt with the
attempt's idempotency key. Nothing here commits or imports Flask: the caller commits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.core.formatting import local_day
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import Actor, PaymentStatus, RefundStatus, RequestState
from portal.orders.models import Order
from portal.payments.base import (
    IN_PROGRESS,
    SUCCEEDED,
    UNSUCCESSFUL,
    Gateway,
    GatewayMisconfigured,
    GatewayRefund,
    GatewayUnavailable,
    RefundDeclined,
)
from portal.refunds import alerts, lifecycle, notifications
from portal.refunds.acting import ACTING_ROLES, Staff, WorkflowError, require
from portal.refunds.links import Links
from portal.refunds.models import Refund, RefundRequest
from portal.refunds.states import Action, InvalidTransition, record_progress, transition


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
        session.execute(
            update(Order).where(Order.id == order_id).values(id=Order.id).execution_options(synchronize_session=False)
        )
        order = session.get(Order, order_id, populate_existing=True)
        assert order is not None
        return order
    return session.scalars(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).one()


def remaining(session: Session, order: Order, *, excluding_request: int | None = None) -> Money:
    """What is left of the payment once refunds made or under way are taken off."""
    query = select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
        Refund.order_id == order.id, Refund.status.in_((RefundStatus.SUCCEEDED, RefundStatus.PENDING))
    )
    if excluding_request is not None:
        query = query.where(Refund.refund_request_id != excluding_request)
    taken = session.scalar(query) or 0
    return Money.from_minor(order.amount_minor - taken, order.currency)


def _share(amount: Money, of: Money, value_minor: int) -> int:
    """``value_minor`` × amount / of, rounded half up to whole minor units."""
    if of.minor == 0:
        return 0
    return int((Decimal(value_minor) * amount.minor / of.minor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


UNKNOWN_SERVER_ERROR = "server_error"  # the processor answered 5xx: it replays that answer for the key
UNKNOWN_NO_ANSWER = "no_answer"  # the answer was lost (network, timeout): the key still tells the truth
KEY_LIFETIME = timedelta(hours=24)  # Stripe may forget a key after a day; a forgotten key refunds again


class ProcessorRefused(Exception):
    """The processor refused the portal's own request (credentials, permissions, the charge's state).
    The request stays approved, staff are alerted, the customer is not told: the caller commits, then
    reports it."""


def process_refund(
    session: Session, request_id: int, staff: Staff, gateway: Gateway, *, reference: str = "", fees: Fees = NO_FEES
) -> Refund:
    """Send the approved amount back, exactly once, as a staff member (see :func:`send_refund`)."""
    require(staff, *ACTING_ROLES)
    return send_refund(
        session,
        request_id,
        gateway,
        actor=Actor.STAFF,
        staff_user_id=staff.user.id,
        now=staff.now,
        links=staff.links,
        reference=reference,
        fees=fees,
    )


def send_refund(
    session: Session,
    request_id: int,
    gateway: Gateway,
    *,
    actor: Actor,
    now: datetime,
    links: Links,
    staff_user_id: int | None = None,
    reference: str = "",
    fees: Fees = NO_FEES,
) -> Refund:
    """Send the approved amount back, exactly once, for whoever acts: a staff member, or automation
    (``Actor.SYSTEM``).

    The order's row is locked first, so concurrent calls queue up; each then re-reads the request
    and only the first finds it approved. The gateway is called inside the lock with the key of
    the current attempt, and a refund of the order can never exceed what is left of the payment.

    When an earlier call of this attempt ended without a reliable answer, the processor is asked
    first whether the refund exists (by our metadata) and an existing one is adopted. Otherwise
    the same key is sent again only if it can still tell the truth (the answer was lost and the key
    is under 24 hours old); after a 5xx, which the processor replays for the key, or an old key,
    the attempt ends and a new one starts with a new key.
    """
    if gateway.name == "manual" and not reference.strip():
        raise WorkflowError("reference", N_("Enter the processor's reference of the refund you made."))
    # The lock must come before any read, so whatever the caller read is let go first; a caller
    # never has anything unsaved here (processing is the whole of its change).
    session.rollback()
    order_id = session.scalar(select(RefundRequest.order_id).where(RefundRequest.id == request_id))
    if order_id is None:
        raise LookupError(request_id)
    order = lock_order(session, order_id)
    request = session.scalars(
        select(RefundRequest).where(RefundRequest.id == request_id).execution_options(populate_existing=True)
    ).one()
    if request.state is not RequestState.APPROVED or request.amount_approved_minor is None:
        raise InvalidTransition(request.state, Action.MARK_REFUNDED)
    amount = Money.from_minor(request.amount_approved_minor, request.currency)
    refund = session.scalar(select(Refund).where(Refund.idempotency_key == _key(request)))
    if refund is not None and refund.processor_reference and refund.status is RefundStatus.PENDING:
        return refund  # accepted and in progress at the processor: its events finish it
    if refund is not None and refund.status is RefundStatus.PENDING:
        try:
            found = gateway.find_refund(payment=order.payment_reference, metadata=_metadata(request))
        except GatewayUnavailable as error:
            refund.processor_message = str(error)[:2000]
            session.flush()
            raise GatewayProblem(str(error)) from None
        if found is not None:
            _apply(session, refund, found, fees, actor=actor, staff_user_id=staff_user_id, now=now, links=links)
            return refund
        if refund.processor_status == UNKNOWN_SERVER_ERROR or now - refund.created_at >= KEY_LIFETIME:
            refund.status = RefundStatus.FAILED
            refund.completed_at = now
            refund.processor_message = (
                f"not found at the processor after an unknown outcome "
                f"({refund.processor_message}); tried again as attempt "
                f"{request.processing_attempt + 1} with a new key"
            )[:2000]
            request.processing_attempt += 1
            refund = None
    if refund is None:
        left = remaining(session, order)
        if left < amount:
            raise WorkflowError("amount", N_("Only %(remaining)s of this order is left to refund."), remaining=left)
        refund = Refund(
            refund_request=request,
            order=order,
            staff_user_id=staff_user_id,
            gateway=gateway.name,
            status=RefundStatus.PENDING,
            amount_minor=amount.minor,
            currency=amount.currency,
            attempt=request.processing_attempt,
            idempotency_key=_key(request),
            created_at=now,
        )
        session.add(refund)
        session.flush()
    try:
        answer = gateway.refund(
            payment=order.payment_reference,
            amount=amount,
            idempotency_key=refund.idempotency_key,
            reference=reference,
            metadata=_metadata(request),
        )
    except GatewayUnavailable as error:
        refund.processor_message = str(error)[:2000]
        refund.processor_status = UNKNOWN_SERVER_ERROR if error.server_error else UNKNOWN_NO_ANSWER
        session.flush()
        raise GatewayProblem(str(error)) from None
    except RefundDeclined as error:
        failed(
            session, refund, str(error), code=error.code, actor=actor, staff_user_id=staff_user_id, now=now, links=links
        )
        return refund
    except GatewayMisconfigured as error:
        # Nothing was refunded and nothing the customer did caused it: the attempt ends (the next
        # try has a new key), the request stays approved, staff hear of it and the customer does not.
        refund.status = RefundStatus.FAILED
        refund.completed_at = now
        refund.processor_message = str(error)[:2000]
        refund.failure_reason = error.code[:64]
        request.processing_attempt += 1
        alerts.raise_alert(
            session,
            alerts.CREDENTIALS,
            f"{gateway.name} refused the refund of {amount.amount} {amount.currency} for "
            f"{request.reference} ({error.code}): {error}",
            now=now,
            request=request,
        )
        session.flush()
        raise ProcessorRefused(str(error)) from None
    _apply(session, refund, answer, fees, actor=actor, staff_user_id=staff_user_id, now=now, links=links)
    return refund


def _key(request: RefundRequest) -> str:
    return f"refund-{request.reference}-attempt-{request.processing_attempt}"


def _metadata(request: RefundRequest) -> dict[str, str]:
    return {"refund_request": request.reference, "attempt": str(request.processing_attempt)}


def _apply(
    session: Session,
    refund: Refund,
    answer: GatewayRefund,
    fees: Fees,
    *,
    actor: Actor,
    staff_user_id: int | None,
    now: datetime,
    links: Links,
) -> None:
    refund.processor_reference = answer.reference
    if answer.status in UNSUCCESSFUL:
        failed(
            session,
            refund,
            answer.failure_reason or answer.status,
            code=answer.failure_reason,
            status=answer.status,
            actor=actor,
            staff_user_id=staff_user_id,
            now=now,
            links=links,
        )
    elif answer.status in IN_PROGRESS:
        # Accepted but not done (some payment methods take days, some need the customer's bank
        # details): the request stays approved and the processor's events complete it.
        progressed(session, refund, answer.status, now=now)
    else:
        succeeded(session, refund, fees, actor=actor, staff_user_id=staff_user_id, now=now, links=links)


def progressed(session: Session, refund: Refund, status: str, *, now: datetime) -> None:
    """The processor still works on the refund (pending, or requires_action from the customer): the
    request stays where it is, and a change of the processor's word shows on its timeline."""
    refund.processor_message = ""
    if refund.processor_status == status:
        return
    refund.processor_status = status
    request = refund.refund_request
    if request.state is RequestState.APPROVED and refund.attempt == request.processing_attempt:
        record_progress(session, request, processor_status=status, now=now, amount_minor=refund.amount_minor)
    session.flush()


def refunded_minor(session: Session, order: Order) -> int:
    return (
        session.scalar(
            select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
                Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED
            )
        )
        or 0
    )


def _settle_payment_status(session: Session, order: Order) -> None:
    """Refunded once refunds that succeeded cover the payment; paid again if one of them failed later."""
    session.flush()
    if order.payment_status is PaymentStatus.CHARGED_BACK:
        return
    full = refunded_minor(session, order) >= order.amount_minor
    order.payment_status = PaymentStatus.REFUNDED if full else PaymentStatus.PAID


def succeeded(
    session: Session,
    refund: Refund,
    fees: Fees,
    *,
    actor: Actor,
    now: datetime,
    links: Links,
    staff_user_id: int | None = None,
) -> None:
    """The refund went through, whichever door the news came through: record what it cost the
    business beyond its amount, move the request to refunded and tell the customer.

    An approved request is marked refunded; an open one that never reached approval (a refund
    made in the processor's dashboard) records the refund; a closed one (declined, withdrawn)
    keeps its state, the refund staying on the order for staff to see.
    """
    order = refund.order
    request = refund.refund_request
    first_for_order = not session.scalar(
        select(Refund.id).where(Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED).limit(1)
    )
    refund.status = RefundStatus.SUCCEEDED
    refund.processor_status = SUCCEEDED
    refund.processor_message = ""  # an earlier network error is history, not the refund's state
    refund.completed_at = now
    refund.fee_kept_minor = _share(refund.amount, order.amount, fees.on(order))
    refund.commission_clawback_minor = _share(refund.amount, order.amount, order.affiliate_commission_minor or 0)
    lifecycle.refund_settled.send(session, refund=refund, first_for_order=first_for_order)
    _settle_payment_status(session, order)
    if request.state is RequestState.APPROVED:
        action = Action.MARK_REFUNDED
    elif request.state.is_open:
        request.amount_approved_minor = refund.amount_minor
        action = Action.RECORD_REFUND
    else:
        return
    transition(
        session,
        request,
        action,
        actor=actor,
        staff_user_id=staff_user_id,
        amount_minor=refund.amount_minor,
        now=now,
        processor_status=SUCCEEDED,
    )
    notifications.refunded(session, request, refund, links=links, on=local_day(now, request.time_zone))


def failed(
    session: Session,
    refund: Refund,
    reason: str,
    *,
    actor: Actor,
    now: datetime,
    links: Links,
    staff_user_id: int | None = None,
    code: str = "",
    status: str = "failed",
    note: str = "",
) -> None:
    """The processor refused or gave up on the refund (``failed``, ``canceled``, or a card that
    refused it): the next try is a new attempt with a new key. ``note``: the processor's own words,
    for staff in the timeline (customers read the sentence for ``code`` or ``status``).

    Only the request's current attempt fails the request, from approved or (a card refund that
    Stripe reported succeeded and then failed) from refunded; an older attempt's news changes
    nothing else. The customer hears why, in their language.
    """
    request = refund.refund_request
    was_succeeded = refund.status is RefundStatus.SUCCEEDED
    refund.status = RefundStatus.FAILED
    refund.processor_status = status
    refund.failure_reason = code[:64]
    refund.completed_at = now
    refund.processor_message = reason[:2000]
    if was_succeeded:
        refund.fee_kept_minor = refund.commission_clawback_minor = 0
        _settle_payment_status(session, refund.order)
    if (
        request.state not in (RequestState.APPROVED, RequestState.REFUNDED)
        or refund.attempt != request.processing_attempt
    ):
        return
    if request.state is RequestState.REFUNDED and not was_succeeded:
        return
    request.processing_attempt += 1
    transition(
        session,
        request,
        Action.MARK_FAILED,
        actor=actor,
        staff_user_id=staff_user_id,
        amount_minor=refund.amount_minor,
        now=now,
        processor_status=status,
        failure_reason=code[:64],
        note=note,
    )
    notifications.refund_failed(session, request, refund, links=links, reason=code)


def retry_refund(session: Session, request: RefundRequest, staff: Staff) -> None:
    """Back to approved after a failure, so processing can run again (as a new attempt)."""
    require(staff, *ACTING_ROLES)
    transition(session, request, Action.RETRY, actor=Actor.STAFF, staff_user_id=staff.user.id, now=staff.now)
