"""What customers do to refund requests: file, take an offer, answer questions, withdraw.

Each service makes the whole change in the caller's transaction and flushes; the caller (a view,
a command) commits once, and the emails queued on the way are committed with it (the outbox),
so a change that fails sends nothing. No Flask here: the web layer passes in what it knows (the
time, the policy, how to build links).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.core.formatting import local_day
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.tokens import hash_token
from portal.core.vocabulary import CLOSED_STATES, Actor, Reason, RequestState
from portal.documents.models import Document
from portal.documents.storage import Storage
from portal.documents.uploads import StoredFile, move_into
from portal.orders.models import Order
from portal.policy import Decision, Outcome, Policy, evaluate
from portal.policy.offers import offers_that_fit
from portal.refunds import notifications, states
from portal.refunds.fraud import filing_signals
from portal.refunds.links import Links
from portal.refunds.models import InformationRequest, RefundRequest, new_reference
from portal.refunds.states import Action, transition
from portal.refunds.summary import OrderSummary
from portal.refunds.timing import add_business_days


class FilingError(Exception):
    """The request cannot be filed as given; ``field`` says which input, ``message`` why."""

    def __init__(self, field: str, message: str, existing: RefundRequest | None = None, **params: object):
        super().__init__(message % params if params else message)
        self.field = field
        self.message = message
        self.params = params
        self.existing = existing


@dataclass
class Filing:
    reason: Reason
    details: str
    locale: str
    submission_key: str
    amount: Money | None = None  # None: the most the customer can ask for
    review_requested: bool = False
    documents: list[StoredFile] = field(default_factory=list)
    time_zone: str = "UTC"  # the customer's, for the times in the request's emails and receipts


@dataclass
class Filed:
    request: RefundRequest
    created: bool  # False when a resubmitted form found the request it had already made


def refunded_so_far(order: Order | OrderSummary) -> Money:
    # From the order's requests, which the order page loads anyway: one query fewer per page.
    total = sum(r.amount_approved_minor or 0 for r in order.refund_requests if r.state is RequestState.REFUNDED)
    return Money.from_minor(total, order.currency)


def open_request(session: Session, order: Order) -> RefundRequest | None:
    return session.scalar(
        select(RefundRequest).where(RefundRequest.order_id == order.id, RefundRequest.state.not_in(CLOSED_STATES))
    )


def offer_taken(session: Session, order: Order) -> RefundRequest | None:
    """The request through which the customer took an alternative instead of a refund, if they did."""
    return session.scalar(
        select(RefundRequest)
        .where(RefundRequest.order_id == order.id, RefundRequest.state == RequestState.RESOLVED_WITH_OFFER)
        .order_by(RefundRequest.id.desc())
    )


OFFER_TAKEN = N_(
    "You chose an alternative instead of a refund for this order, so a refund cannot be asked for here. "
    "If it did not help, please contact our support team."
)


def decide(
    session: Session, order: Order | OrderSummary, policy: Policy, now: datetime, reason: Reason | None
) -> Decision:
    return evaluate(order, policy, now, reason, refunded_so_far(order))


def decision_due(policy: Policy, order: Order, filed_at: datetime, zone: str = "UTC") -> date:
    """The day we promise a decision by, counted from the day of filing where the customer lives."""
    process = next(iter(policy.version_for(order.purchased_at).of_kind("process")), None)
    return add_business_days(local_day(filed_at, zone), process.decision_business_days if process else 2)


def most_requestable(decision: Decision) -> Money:
    """What the customer may ask for: the policy amount, or what remains to refund when asking for review."""
    return decision.amount if decision.outcome is not Outcome.REFUSED else decision.facts.remaining


def _check(filing: Filing, decision: Decision) -> Money:
    if decision.outcome is Outcome.REFUSED:
        if decision.facts.remaining.minor == 0 or decision.basis.value == "charged_back":
            raise FilingError(
                "reason", N_("This order cannot be refunded: it has been charged back or refunded in full already.")
            )
        if not filing.review_requested:
            raise FilingError(
                "review_requested",
                N_(
                    "Our policy does not grant a refund for this order. "
                    "Tick “Ask for a review” to have our staff look at it."
                ),
            )
    maximum = most_requestable(decision)
    amount = filing.amount if filing.amount is not None else maximum
    if amount.currency != maximum.currency:
        raise FilingError("amount", N_("The amount must be in %(currency)s."), currency=maximum.currency)
    if amount.minor <= 0:
        raise FilingError("amount", N_("The amount must be more than zero."))
    if maximum < amount:
        raise FilingError("amount", N_("You can ask for at most %(maximum)s."), maximum=maximum)
    if decision.documents_required and not filing.documents:
        raise FilingError(
            "documents",
            N_(
                "Please attach proof of purchase (an invoice or bank statement): our policy requires it for this order."
            ),
        )
    return amount


def file_refund(
    session: Session, order: Order, filing: Filing, *, policy: Policy, now: datetime, links: Links, storage: Storage
) -> Filed:
    """File a refund request for ``order``: state received, first event, acknowledgement queued."""
    earlier = _filed_with_key(session, order, filing.submission_key)
    if earlier is not None:
        return Filed(earlier, created=False)
    existing = open_request(session, order)
    if existing is not None:
        raise FilingError("order", N_("There is already an open refund request for this order."), existing=existing)
    taken = offer_taken(session, order)
    if taken is not None:  # "instead of a refund": the matter was closed by the customer's choice
        raise FilingError("order", OFFER_TAKEN, existing=taken)

    decision = decide(session, order, policy, now, filing.reason)
    amount = _check(filing, decision)
    # Computed before the new rows join the session: the first flush is then the one inside the try,
    # where a concurrent twin's unique key must surface (not from an autoflush on the way).
    signals = filing_signals(session, order, [d.sha256 for d in filing.documents], now=now)
    request = RefundRequest(
        reference=new_reference(),
        order=order,
        reason=filing.reason,
        details=filing.details.strip(),
        currency=order.currency,
        amount_requested_minor=amount.minor,
        locale=filing.locale,
        time_zone=filing.time_zone,
        channel=order.channel,
        review_requested=not decision.refundable,
        submission_key=filing.submission_key or None,
        created_at=now,
        updated_at=now,
    )
    request.tracking_token_hash = hash_token(links.tracking_token(request.reference))
    request.record_decision(decision)
    for stored in filing.documents:
        session.add(
            Document(
                refund_request=request,
                original_name=stored.original_name,
                stored_name=stored.stored_name,
                content_type=stored.content_type,
                size=stored.size,
                sha256=stored.sha256,
                uploaded_by=Actor.CUSTOMER,
                created_at=now,
            )
        )
    try:
        states.open(session, request, actor=Actor.CUSTOMER, now=now, amount_minor=amount.minor, signals=signals)
    except IntegrityError:
        # Two submissions raced past the check above; the database kept exactly one. A failed flush
        # leaves the transaction unusable, so it is rolled back; the same form then lands on the
        # request it made, and another form for the order is told there is one already.
        session.rollback()
        earlier = _filed_with_key(session, order, filing.submission_key)
        if earlier is not None:
            return Filed(earlier, created=False)
        raise FilingError(
            "order",
            N_("There is already an open refund request for this order."),
            existing=open_request(session, order),
        ) from None
    notifications.acknowledgement(
        session, request, links=links, decision_due=decision_due(policy, order, now, request.time_zone)
    )
    session.flush()
    for stored in filing.documents:
        move_into(stored, storage)
    return Filed(request, created=True)


def _filed_with_key(session: Session, order: Order, key: str) -> RefundRequest | None:
    """The request this very form made already (a double submission), never another order's."""
    if not key:
        return None
    return session.scalar(
        select(RefundRequest).where(RefundRequest.submission_key == key, RefundRequest.order_id == order.id)
    )


def open_on_behalf(
    session: Session,
    order: Order,
    *,
    actor: Actor,
    locale: str,
    amount_minor: int,
    now: datetime,
    links: Links,
    decision: Decision | None = None,
    time_zone: str = "UTC",
) -> RefundRequest:
    """A request opened without the filing form: for an offer the customer took, or a refund made
    in the payment processor's dashboard, so the outcome has a request and a tracking page."""
    request = RefundRequest(
        reference=new_reference(),
        order=order,
        reason=Reason.OTHER,
        details="",
        channel=order.channel,
        currency=order.currency,
        amount_requested_minor=amount_minor,
        locale=locale,
        time_zone=time_zone,
        created_at=now,
        updated_at=now,
    )
    request.tracking_token_hash = hash_token(links.tracking_token(request.reference))
    if decision is not None:
        request.record_decision(decision)
    states.open(session, request, actor=actor, now=now)
    return request


def accept_offer(
    session: Session, order: Order, offer_id: str, *, policy: Policy, locale: str, now: datetime, links: Links
) -> RefundRequest:
    """The customer takes an alternative instead of a refund: recorded as a request resolved with an
    offer, which waits on staff until they set it up; the customer's confirmation is queued."""
    offer = policy.offer(offer_id)
    if offer not in offers_that_fit(policy, order, now):  # another plan's, or one for a plan that has ended
        raise KeyError(offer_id)
    taken = offer_taken(session, order)
    if taken is not None:  # a second click, a replayed form: the choice already made, not another one
        return taken
    request = open_request(session, order)
    if request is None:
        request = open_on_behalf(
            session,
            order,
            actor=Actor.CUSTOMER,
            locale=locale,
            amount_minor=0,
            now=now,
            links=links,
            decision=decide(session, order, policy, now, None),
            time_zone=order.customer.time_zone or "UTC",
        )
    request.offer_id = offer.id
    transition(session, request, Action.ACCEPT_OFFER, actor=Actor.CUSTOMER, note=offer.id, now=now)
    notifications.offer_accepted(
        session, request, offer, links=links, set_up_by=decision_due(policy, order, now, request.time_zone)
    )
    return request


def answer_information_request(
    session: Session,
    request: RefundRequest,
    answer: str,
    documents: list[StoredFile],
    *,
    now: datetime,
    links: Links,
    storage: Storage,
) -> None:
    """The customer answers staff's questions with text and documents; the request goes back to review."""
    info = session.scalar(
        select(InformationRequest)
        .where(InformationRequest.refund_request_id == request.id, InformationRequest.answered_at.is_(None))
        .order_by(InformationRequest.id.desc())
    )
    missing = [
        item["key"]
        for item in (info.items if info else [])
        if item.get("kind") == "document" and item["key"] not in {stored.checklist_item for stored in documents}
    ]
    if not answer.strip() and not documents:
        raise FilingError("answer", N_("Please write an answer or attach a document."))
    if missing:
        raise FilingError("documents", N_("Please attach every document asked for."))
    transition(session, request, Action.ANSWER, actor=Actor.CUSTOMER, note=answer.strip(), now=now)
    if info is not None:
        info.answered_at = now
        info.answer = answer.strip()
    for stored in documents:
        session.add(
            Document(
                refund_request=request,
                information_request=info,
                checklist_item=stored.checklist_item,
                original_name=stored.original_name,
                stored_name=stored.stored_name,
                content_type=stored.content_type,
                size=stored.size,
                sha256=stored.sha256,
                uploaded_by=Actor.CUSTOMER,
                created_at=now,
            )
        )
    notifications.reply_received(session, request, links=links)
    session.flush()
    for stored in documents:
        move_into(stored, storage)


def withdraw_refund(session: Session, request: RefundRequest, *, now: datetime) -> None:
    transition(session, request, Action.WITHDRAW, actor=Actor.CUSTOMER, now=now)
