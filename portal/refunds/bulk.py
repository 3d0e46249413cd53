"""Bulk work: one action over several requests, each through the same services as one at a time.

Every request gets its own savepoint: an action the state machine or a rule refuses is undone for
that request alone and reported with the reason, and the ones that succeeded stay (the caller
commits once, after the loop). Each succeeded request queues its own email, in its customer's
language, exactly as the single action does. No Flask here.

Assigning in bulk is not here yet: requests have no assignee on this branch. Once they do, it is
one more :class:`BulkAction` whose step calls the assignment service, like the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.markers import N_
from portal.refunds import decisions, replies
from portal.refunds.acting import Staff, WorkflowError
from portal.refunds.models import RefundRequest
from portal.refunds.states import InvalidTransition

# One screenful of the queue, and a bound on how long one form's work may hold the database.
MAX_REQUESTS = 100


class BulkAction(StrEnum):
    NOTE = "note"
    ASK = "ask"
    DECLINE = "decline"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return BULK_TITLES[self]


BULK_TITLES = {
    BulkAction.NOTE: N_("Add an internal note"),
    BulkAction.ASK: N_("Ask the customers a standard question"),
    BulkAction.DECLINE: N_("Decline, citing a clause"),
}


@dataclass(frozen=True)
class BulkInput:
    """What the agent filled in once for every selected request."""

    text: str = ""
    questions: tuple[str, ...] = ()
    clause_id: str = ""
    offer_id: str = ""
    override_reason: str = ""
    reply: replies.SavedReply | None = None
    # The agent's language: an internal note's saved reply is inserted in it (the rest in the customer's).
    staff_locale: str = "en"


@dataclass(frozen=True)
class ItemResult:
    reference: str
    ok: bool
    # A sentence marked for translation and its parameters (a state is passed as the RequestState).
    message: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass
class BulkReport:
    action: BulkAction
    results: list[ItemResult] = field(default_factory=list)

    @property
    def succeeded(self) -> list[ItemResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]


DONE = {
    BulkAction.NOTE: N_("Note added."),
    BulkAction.ASK: N_("Asked; the customer has been emailed in their language."),
    BulkAction.DECLINE: N_("Declined; the customer has been emailed in their language."),
}


def unique(references: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for reference in references:
        cleaned = reference.strip().upper()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def _one(session: Session, request: RefundRequest, staff: Staff, action: BulkAction, given: BulkInput) -> None:
    customer_facing = action is not BulkAction.NOTE
    text = replies.insert(
        session,
        given.text,
        given.reply,
        request,
        used_in=action.value,
        locale=request.locale if customer_facing else given.staff_locale,
        staff_user_id=staff.user.id,
        now=staff.now,
    )
    if action is BulkAction.NOTE:
        decisions.add_note(session, request, staff, text)
    elif action is BulkAction.ASK:
        decisions.ask_for_information(
            session, request, staff, questions=list(given.questions), documents=[], message=text
        )
    else:
        decisions.decline(
            session,
            request,
            staff,
            clause_id=given.clause_id,
            offer_id=given.offer_id,
            note=text,
            override_reason=given.override_reason,
        )


def run(session: Session, references: Iterable[str], staff: Staff, action: BulkAction, given: BulkInput) -> BulkReport:
    """Apply ``action`` to each request in turn; flushes, the caller commits."""
    report = BulkReport(action)
    for reference in unique(references)[:MAX_REQUESTS]:
        request = session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
        if request is None:
            report.results.append(ItemResult(reference, False, N_("No request has this reference.")))
            continue
        savepoint = session.begin_nested()
        try:
            _one(session, request, staff, action, given)
            session.flush()
        except InvalidTransition as refused:
            savepoint.rollback()
            report.results.append(ItemResult(reference, False, refused.message, {"state": refused.state}))
        except WorkflowError as refused:
            savepoint.rollback()
            report.results.append(ItemResult(reference, False, refused.message, dict(refused.params)))
        else:
            savepoint.commit()
            report.results.append(ItemResult(reference, True, DONE[action]))
    return report
