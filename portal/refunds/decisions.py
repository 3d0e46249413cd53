"""What staff decide about refund requests: ask, review, approve, decline, note, remind.

Every action goes through the state machine (``states.transition``), which appends its status
event, and queues the customer's email (``notifications``) in the caller's transaction; the
caller commits once. Moving the money is ``payouts``. No Flask here; the web layer (and the
API) pass in who acts, when, and how to build links.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from portal.core.formatting import local_day
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import Actor, RequestState, StaffRole
from portal.policy import Outcome, Policy
from portal.refunds import notifications, payouts
from portal.refunds.acting import ACTING_ROLES, Staff, WorkflowError, require
from portal.refunds.filing import decide
from portal.refunds.links import Links
from portal.refunds.models import InformationRequest, InternalNote, RefundRequest
from portal.refunds.questions import DOCUMENTS, QUESTIONS
from portal.refunds.states import Action, InvalidTransition, allowed, transition

REMINDER_AFTER = timedelta(days=3)
# An information request unanswered this long closes the request (PORTAL_AWAITING_CLOSE_DAYS; portal/refunds/routine.py).
CLOSE_AFTER = timedelta(days=14)


# -- reading --------------------------------------------------------------------------------------


def policy_amount(session: Session, request: RefundRequest, policy: Policy, now: datetime) -> Money:
    """What the policy grants now for this request: the amount staff approve without an admin."""
    decision = decide(session, request.order, policy, now, request.reason)
    return decision.amount if decision.outcome is not Outcome.REFUSED else Money.from_minor(0, request.currency)


# -- actions --------------------------------------------------------------------------------------


def ask_for_information(
    session: Session,
    request: RefundRequest,
    staff: Staff,
    *,
    questions: list[str],
    documents: list[str],
    custom: str = "",
    message: str = "",
) -> InformationRequest:
    require(staff, *ACTING_ROLES)
    items = [{"kind": "question", "key": key} for key in questions if key in QUESTIONS]
    if custom.strip():
        items.append({"kind": "question", "key": "custom", "text": custom.strip()})
    items += [{"kind": "document", "key": key} for key in documents if key in DOCUMENTS]
    if not items and not message.strip():
        raise WorkflowError("questions", N_("Choose at least one question or document, or write a message."))
    transition(
        session,
        request,
        Action.ASK_INFO,
        actor=Actor.STAFF,
        staff_user_id=staff.user.id,
        note=message.strip(),
        now=staff.now,
    )
    info = InformationRequest(
        refund_request=request, items=items, message=message.strip(), staff_user_id=staff.user.id, created_at=staff.now
    )
    session.add(info)
    session.flush()
    notifications.information_request(
        session, request, info, links=staff.links, closes_on=local_day(staff.now + CLOSE_AFTER, request.time_zone)
    )
    return info


def start_review(session: Session, request: RefundRequest, staff: Staff) -> None:
    require(staff, *ACTING_ROLES)
    transition(session, request, Action.START_REVIEW, actor=Actor.STAFF, staff_user_id=staff.user.id, now=staff.now)


def approve(
    session: Session, request: RefundRequest, staff: Staff, *, amount: Money, note: str = "", override_reason: str = ""
) -> None:
    """Approve ``amount``: at most the policy amount, or up to what remains for an admin with a reason."""
    require(staff, *ACTING_ROLES)
    if amount.currency != request.currency:
        raise WorkflowError("amount", N_("The amount must be in %(currency)s."), currency=request.currency)
    if amount.minor <= 0:
        raise WorkflowError("amount", N_("The amount must be more than zero."))
    left = payouts.remaining(session, request.order)
    if left < amount:
        raise WorkflowError("amount", N_("Only %(remaining)s of this order is left to refund."), remaining=left)
    granted = policy_amount(session, request, staff.policy, staff.now)
    if granted < amount:
        if staff.user.role is not StaffRole.ADMIN:
            raise WorkflowError(
                "amount", N_("The policy allows at most %(amount)s; only an admin can approve more."), amount=granted
            )
        if not override_reason.strip():
            raise WorkflowError(
                "override_reason", N_("Write why you approve more than the policy allows (%(amount)s)."), amount=granted
            )
    transition(
        session,
        request,
        Action.APPROVE,
        actor=Actor.STAFF,
        staff_user_id=staff.user.id,
        note=note.strip(),
        amount_minor=amount.minor,
        now=staff.now,
    )
    request.amount_approved_minor = amount.minor
    if granted < amount:
        _keep_override_reason(session, request, staff, override_reason)
    notifications.approval(session, request, amount, links=staff.links, note=note.strip())


def _keep_override_reason(session: Session, request: RefundRequest, staff: Staff, reason: str) -> None:
    """Why staff went against the policy: an internal note beside the decision, for staff only. The
    timeline's note is the customer's to read (their tracking page shows it)."""
    if reason.strip():
        session.add(
            InternalNote(refund_request=request, staff_user_id=staff.user.id, text=reason.strip(), created_at=staff.now)
        )


def policy_grants(session: Session, request: RefundRequest, policy: Policy, now: datetime) -> Money | None:
    """The refund the policy grants this request today (a full or prorated one), or None."""
    decision = decide(session, request.order, policy, now, request.reason)
    return decision.amount if decision.outcome in (Outcome.FULL, Outcome.PRORATED) else None


def decline(
    session: Session,
    request: RefundRequest,
    staff: Staff,
    *,
    clause_id: str,
    offer_id: str = "",
    note: str = "",
    override_reason: str = "",
) -> None:
    """Decline, citing a clause. A request the policy grants is declined only by an admin or with a
    written reason (the mirror of approving above the policy), which the timeline keeps."""
    require(staff, *ACTING_ROLES)
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
    granted = policy_grants(session, request, staff.policy, staff.now)
    # A request that cannot be declined any more gets the state machine's 409, not this question.
    if (
        granted is not None
        and allowed(request.state, Action.DECLINE)
        and staff.user.role is not StaffRole.ADMIN
        and not override_reason.strip()
    ):
        raise WorkflowError(
            "override_reason",
            N_("The policy grants this request %(amount)s; write why you decline it anyway."),
            # What the customer asked for, when that is less than the policy would give.
            amount=min(granted, request.amount_requested),
        )
    transition(
        session,
        request,
        Action.DECLINE,
        actor=Actor.STAFF,
        staff_user_id=staff.user.id,
        note=note.strip(),
        now=staff.now,
    )
    request.decline_clause = clause.id
    request.alternative_offer_id = offer.id if offer else None
    if granted is not None:
        _keep_override_reason(session, request, staff, override_reason)
    notifications.decline(session, request, clause, offer, links=staff.links, note=note.strip())


class OfferNotWaiting(InvalidTransition):
    """Nothing to set up: the request has no offer taken, or its offer was set up already. Nothing
    was changed (answered as a conflict, like every refused transition)."""

    def __init__(self, state: RequestState, set_up_already: bool):
        super().__init__(state, Action.ACCEPT_OFFER)
        self.set_up_already = set_up_already

    @property
    def message(self) -> str:
        if self.set_up_already:
            return N_("The offer on this request has been set up already.")
        return N_("This request is “%(state)s”: it has no offer waiting to be set up.")


def mark_offer_set_up(session: Session, request: RefundRequest, staff: Staff) -> None:
    """Record, once, that staff set up the offer the customer took: the request stops waiting on staff
    (it leaves "needs action") and the customer is told. A compare-and-set like every transition, so
    two agents pressing at once record it once; the other gets :class:`OfferNotWaiting`."""
    require(staff, *ACTING_ROLES)
    result = session.execute(
        update(RefundRequest)
        .where(
            RefundRequest.id == request.id,
            RefundRequest.state == RequestState.RESOLVED_WITH_OFFER,
            RefundRequest.offer_id.is_not(None),
            RefundRequest.offer_set_up_at.is_(None),
        )
        .values(
            offer_set_up_at=staff.now,
            offer_set_up_by_id=staff.user.id,
            awaiting_staff_since=None,
            updated_at=staff.now,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result; typed as a plain Result
    session.refresh(request, ["state", "offer_set_up_at", "offer_set_up_by_id", "awaiting_staff_since", "updated_at"])
    if result.rowcount != 1:
        raise OfferNotWaiting(request.state, set_up_already=request.offer_set_up_at is not None)
    try:
        offer = staff.policy.offer(request.offer_id or "")
    except KeyError:
        return  # an offer since taken out of the policy: recorded, but there are no words to email
    notifications.offer_set_up(session, request, offer, links=staff.links, on=local_day(staff.now, request.time_zone))


def add_note(session: Session, request: RefundRequest, staff: Staff, text: str) -> InternalNote:
    require(staff, *ACTING_ROLES)
    if not text.strip():
        raise WorkflowError("text", N_("The note is empty."))
    note = InternalNote(refund_request=request, staff_user_id=staff.user.id, text=text.strip(), created_at=staff.now)
    session.add(note)
    session.flush()
    return note


# -- reminders ------------------------------------------------------------------------------------


def send_reminders(session: Session, *, now: datetime, links: Links, close_after: timedelta = CLOSE_AFTER) -> int:
    """Remind customers who have not answered an information request for three days (once), saying
    on which day the request closes without an answer."""
    due = session.scalars(
        select(InformationRequest)
        .join(RefundRequest)
        .where(
            InformationRequest.answered_at.is_(None),
            InformationRequest.reminder_sent_at.is_(None),
            InformationRequest.created_at <= now - REMINDER_AFTER,
            RefundRequest.state == RequestState.AWAITING_CUSTOMER,
        )
    ).all()
    for info in due:
        request = info.refund_request
        info.reminder_sent_at = now
        notifications.information_request(
            session,
            request,
            info,
            links=links,
            reminder=True,
            closes_on=local_day(info.created_at + close_after, request.time_zone),
        )
    return len(due)
