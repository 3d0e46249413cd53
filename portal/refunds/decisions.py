"""What staff do to refund requests: ask, review, approve, decline, process, note.

Every action goes through the state machine (``states.transition``), appends its status
event and queues the customer's email in the same transaction, then commits once. Processing
moves money: it locks the order row, checks that refunds of the order never exceed what was
paid, and calls the payment gateway exactly once per attempt with the attempt's idempotency
key. No Flask here; the web layer (and the API) pass in who acts, when, and how to build links.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_decimal
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.core.vocabulary import Actor, RefundStatus, RequestState, StaffRole
from portal.insights import rollups
from portal.outbox.kit import money_variable
from portal.outbox.queue import queue_email
from portal.core.markers import N_
from portal.accounts.models import StaffUser
from portal.orders.models import Order
from portal.refunds.models import InformationRequest, InternalNote, Refund, RefundRequest
from portal.core.money import Money
from portal.payments.base import Gateway, GatewayUnavailable, RefundDeclined
from portal.policy import Outcome, Policy
from portal.refunds.questions import DOCUMENTS, QUESTIONS, item_label
from portal.refunds.filing import decide
from portal.refunds.links import Links
from portal.refunds.states import Action, InvalidTransition, transition

PAYOUT_DAYS = (5, 7)
REMINDER_AFTER = timedelta(days=3)
ORIGINAL_METHOD = N_("Your original payment method")
ACTING_ROLES = (StaffRole.AGENT, StaffRole.ADMIN)


class WorkflowError(Exception):
    """The action is refused as asked (not a wrong state: that is InvalidTransition)."""

    def __init__(self, field: str, message: str, **params):
        super().__init__(message % params if params else message)
        self.field = field
        self.message = message
        self.params = params


class NotAllowed(Exception):
    """The staff member's role does not permit this action."""


class GatewayProblem(Exception):
    """The processor gave no reliable answer; the request stays approved and the same attempt
    (same idempotency key) is retried next time."""


@dataclass(frozen=True)
class Staff:
    user: StaffUser
    now: datetime
    links: Links
    policy: Policy


def _require(staff: Staff, *roles: StaffRole) -> None:
    if not staff.user.may(*roles):
        raise NotAllowed(f"{staff.user.email} ({staff.user.role.value}) may not do this")


def _customer_vars(request: RefundRequest, links: Links) -> dict:
    customer = request.order.customer
    return {"customer_name": customer.name, "reference": request.reference,
            "tracking_url": links.tracking(request.reference)}


def _queue(session: Session, request: RefundRequest, message: str, links: Links, **variables) -> None:
    queue_email(session, message, request.order.customer.email, request.locale,
                {**_customer_vars(request, links), **variables}, refund_request=request, domain=links.domain)


# -- reading --------------------------------------------------------------------------------------


def policy_amount(session: Session, request: RefundRequest, policy: Policy, now: datetime) -> Money:
    """What the policy grants now for this request: the amount staff approve without an admin."""
    decision = decide(session, request.order, policy, now, request.reason)
    return decision.amount if decision.outcome is not Outcome.REFUSED else Money.from_minor(0, request.currency)


def remaining(session: Session, order: Order, *, excluding_request: int | None = None) -> Money:
    """What is left of the payment once refunds made or under way are taken off."""
    query = select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
        Refund.order_id == order.id, Refund.status.in_((RefundStatus.SUCCEEDED, RefundStatus.PENDING)))
    if excluding_request is not None:
        query = query.where(Refund.refund_request_id != excluding_request)
    taken = session.scalar(query) or 0
    return Money.from_minor(order.amount_minor - taken, order.currency)


# -- actions --------------------------------------------------------------------------------------


def ask_for_information(session: Session, request: RefundRequest, staff: Staff, *, questions: list[str],
                        documents: list[str], custom: str = "", message: str = "") -> InformationRequest:
    _require(staff, *ACTING_ROLES)
    items = [{"kind": "question", "key": key} for key in questions if key in QUESTIONS]
    if custom.strip():
        items.append({"kind": "question", "key": "custom", "text": custom.strip()})
    items += [{"kind": "document", "key": key} for key in documents if key in DOCUMENTS]
    if not items and not message.strip():
        raise WorkflowError("questions", N_("Choose at least one question or document, or write a message."))
    transition(session, request, Action.ASK_INFO, actor=Actor.STAFF, staff_user_id=staff.user.id,
               note=message.strip(), now=staff.now)
    info = InformationRequest(refund_request=request, items=items, message=message.strip(),
                              staff_user_id=staff.user.id, created_at=staff.now)
    session.add(info)
    _queue(session, request, "information_request", staff.links, questions=[item_label(i) for i in items],
           note=message.strip(), reminder=False)
    session.commit()
    return info


def start_review(session: Session, request: RefundRequest, staff: Staff) -> None:
    _require(staff, *ACTING_ROLES)
    transition(session, request, Action.START_REVIEW, actor=Actor.STAFF, staff_user_id=staff.user.id, now=staff.now)
    session.commit()


def approve(session: Session, request: RefundRequest, staff: Staff, *, amount: Money, note: str = "",
            override_reason: str = "") -> None:
    """Approve ``amount``: at most the policy amount, or up to what remains for an admin with a reason."""
    _require(staff, *ACTING_ROLES)
    if amount.currency != request.currency:
        raise WorkflowError("amount", N_("The amount must be in %(currency)s."), currency=request.currency)
    if amount.minor <= 0:
        raise WorkflowError("amount", N_("The amount must be more than zero."))
    left = remaining(session, request.order)
    if left < amount:
        raise WorkflowError("amount", N_("Only %(remaining)s of this order is left to refund."), remaining=left)
    granted = policy_amount(session, request, staff.policy, staff.now)
    if granted < amount:
        if staff.user.role is not StaffRole.ADMIN:
            raise WorkflowError("amount", N_("The policy allows at most %(amount)s; only an admin can approve more."),
                                amount=granted)
        if not override_reason.strip():
            raise WorkflowError("override_reason",
                                N_("Write why you approve more than the policy allows (%(amount)s)."), amount=granted)
    event_note = note.strip()
    if granted < amount:
        event_note = f"[override: {override_reason.strip()}] {event_note}".strip()
    transition(session, request, Action.APPROVE, actor=Actor.STAFF, staff_user_id=staff.user.id,
               note=event_note, amount_minor=amount.minor, now=staff.now)
    request.amount_approved_minor = amount.minor
    _queue(session, request, "approval", staff.links, amount=money_variable(amount),
           partial=amount.minor < request.order.amount_minor, days_min=PAYOUT_DAYS[0], days_max=PAYOUT_DAYS[1],
           note=note.strip())
    session.commit()


def decline(session: Session, request: RefundRequest, staff: Staff, *, clause_id: str, offer_id: str = "",
            note: str = "") -> None:
    _require(staff, *ACTING_ROLES)
    version = staff.policy.version_for(request.order.purchased_at)
    try:
        clause = version.clause(clause_id)
    except KeyError:
        raise WorkflowError("clause", N_("Choose the policy clause the decision rests on.")) from None
    offer = None
    if offer_id:
        try:
            offer = staff.policy.offer(offer_id)
        except KeyError:
            raise WorkflowError("offer", N_("Choose one of the offers in the policy.")) from None
    transition(session, request, Action.DECLINE, actor=Actor.STAFF, staff_user_id=staff.user.id,
               note=note.strip(), now=staff.now)
    request.decline_clause = clause.id
    request.alternative_offer_id = offer.id if offer else None
    locale = request.locale

    def number(n):
        return format_decimal(n, locale=locale)

    _queue(session, request, "decline", staff.links, clause_title=clause.render("title", locale, number),
           clause_url=staff.links.policy_clause(clause.id), note=note.strip(),
           alternative_title=offer.render("title", locale, number) if offer else "",
           alternative_text=offer.render("text", locale, number) if offer else "")
    session.commit()


def add_note(session: Session, request: RefundRequest, staff: Staff, text: str) -> InternalNote:
    _require(staff, *ACTING_ROLES)
    if not text.strip():
        raise WorkflowError("text", N_("The note is empty."))
    note = InternalNote(refund_request=request, staff_user_id=staff.user.id, text=text.strip(), created_at=staff.now)
    session.add(note)
    session.commit()
    return note


# -- money ----------------------------------------------------------------------------------------


def _lock_order(session: Session, order_id: int) -> Order:
    """Hold the order's row until commit, so refunds of one order happen one at a time."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks; a write takes the database's write lock for the transaction.
        session.execute(update(Order).where(Order.id == order_id).values(id=Order.id)
                        .execution_options(synchronize_session=False))
        return session.get(Order, order_id)
    return session.scalars(select(Order).where(Order.id == order_id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def _share(amount: Money, of: Money, value_minor: int) -> int:
    """``value_minor`` × amount / of, rounded half up to whole minor units."""
    if of.minor == 0:
        return 0
    return int((Decimal(value_minor) * amount.minor / of.minor).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Fees:
    percent: Decimal = Decimal("0")
    fixed_minor: int = 0

    def on(self, order: Order) -> int:
        fee = Decimal(order.amount_minor) * self.percent / 100 + self.fixed_minor
        return int(fee.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def process_refund(session: Session, request_id: int, staff: Staff, gateway: Gateway, *, reference: str = "",
                   fees: Fees = Fees()) -> Refund:
    """Send the approved amount back, exactly once.

    The order's row is locked first, so concurrent calls queue up; each then re-reads the request
    and only the first finds it approved. The gateway is called inside the lock with the key of
    the current attempt, and a refund of the order can never exceed what is left of the payment.
    """
    _require(staff, *ACTING_ROLES)
    if gateway.name == "manual" and not reference.strip():
        raise WorkflowError("reference", N_("Enter the processor's reference of the refund you made."))
    session.rollback()  # start a fresh transaction: the lock must come before any read
    order_id = session.scalar(select(RefundRequest.order_id).where(RefundRequest.id == request_id))
    order = _lock_order(session, order_id)
    request = session.scalars(select(RefundRequest).where(RefundRequest.id == request_id)
                              .execution_options(populate_existing=True)).one()
    if request.state is not RequestState.APPROVED:
        raise InvalidTransition(request.state, Action.MARK_REFUNDED)
    amount = Money.from_minor(request.amount_approved_minor, request.currency)
    key = f"refund-{request.reference}-attempt-{request.processing_attempt}"
    refund = session.scalar(select(Refund).where(Refund.idempotency_key == key))
    if refund is None:
        left = remaining(session, order)
        if left < amount:
            raise WorkflowError("amount", N_("Only %(remaining)s of this order is left to refund."), remaining=left)
        refund = Refund(refund_request=request, order=order, staff_user_id=staff.user.id, gateway=gateway.name,
                        status=RefundStatus.PENDING, amount_minor=amount.minor, currency=amount.currency,
                        attempt=request.processing_attempt, idempotency_key=key, created_at=staff.now)
        session.add(refund)
        session.flush()
    try:
        answer = gateway.refund(charge=order.payment_reference, amount=amount, idempotency_key=key,
                                reference=reference, metadata={"refund_request": request.reference})
    except GatewayUnavailable as error:
        refund.processor_message = str(error)[:2000]
        session.commit()  # keep the pending attempt (and its key) for the retry
        raise GatewayProblem(str(error)) from None
    except RefundDeclined as error:
        refund.status = RefundStatus.FAILED
        refund.processor_message = str(error)[:2000]
        refund.completed_at = staff.now
        request.processing_attempt += 1  # the next try is a new attempt with a new key
        transition(session, request, Action.MARK_FAILED, actor=Actor.STAFF, staff_user_id=staff.user.id,
                   note=str(error)[:500], amount_minor=amount.minor, now=staff.now)
        queue_failed_email(session, request, refund, links=staff.links)
        session.commit()
        return refund
    refund.processor_reference = answer.reference
    if answer.status == "pending":
        # Accepted but not yet done (some payment methods take days): the request stays approved
        # and the processor's webhook completes it (portal/webhooks/stripe_events.py).
        refund.processor_message = "pending at the processor"
        session.commit()
        return refund
    settle(session, refund, fees, now=staff.now)
    transition(session, request, Action.MARK_REFUNDED, actor=Actor.STAFF, staff_user_id=staff.user.id,
               note=answer.reference, amount_minor=amount.minor, now=staff.now)
    queue_refunded_email(session, request, refund, links=staff.links, now=staff.now)
    session.commit()
    return refund


def settle(session: Session, refund: Refund, fees: Fees, *, now: datetime) -> None:
    """The refund succeeded: record it with what it cost the business beyond its amount, and count it
    in the insights' rollups (whichever door the news came through: our call or the processor's)."""
    order = refund.order
    amount = Money.from_minor(refund.amount_minor, refund.currency)
    first_for_order = not session.scalar(select(Refund.id).where(
        Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED).limit(1))
    refund.status = RefundStatus.SUCCEEDED
    refund.completed_at = now
    refund.fee_kept_minor = _share(amount, order.amount, fees.on(order))
    refund.commission_clawback_minor = _share(amount, order.amount, order.affiliate_commission_minor or 0)
    rollups.order_refunded(session, refund, first_for_order)


def queue_refunded_email(session: Session, request: RefundRequest, refund: Refund, *, links: Links,
                         now: datetime) -> None:
    _queue(session, request, "refunded", links, order_number=request.order.order_number,
           amount=money_variable(Money.from_minor(refund.amount_minor, refund.currency)),
           refunded_on=now.date().isoformat(), method=ORIGINAL_METHOD,
           processor_reference=refund.processor_reference, feedback_url=links.feedback(request.reference))


def queue_failed_email(session: Session, request: RefundRequest, refund: Refund, *, links: Links) -> None:
    _queue(session, request, "refund_failed", links,
           amount=money_variable(Money.from_minor(refund.amount_minor, refund.currency)))


def retry_refund(session: Session, request: RefundRequest, staff: Staff) -> None:
    """Back to approved after a failure, so processing can run again (as a new attempt)."""
    _require(staff, *ACTING_ROLES)
    transition(session, request, Action.RETRY, actor=Actor.STAFF, staff_user_id=staff.user.id, now=staff.now)
    session.commit()


# -- reminders ------------------------------------------------------------------------------------


def send_reminders(session: Session, *, now: datetime, links: Links) -> int:
    """Remind customers who have not answered an information request for three days (once)."""
    due = session.scalars(
        select(InformationRequest).join(RefundRequest)
        .where(InformationRequest.answered_at.is_(None), InformationRequest.reminder_sent_at.is_(None),
               InformationRequest.created_at <= now - REMINDER_AFTER,
               RefundRequest.state == RequestState.AWAITING_CUSTOMER)).all()
    for info in due:
        request = info.refund_request
        info.reminder_sent_at = now
        _queue(session, request, "information_request", links, questions=[item_label(i) for i in info.items],
               note=info.message, reminder=True)
    session.commit()
    return len(due)
