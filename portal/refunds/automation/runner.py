"""Automation at work: look at new requests once, queue the ones a rule approves, and act when due.

:func:`queue_new` reads every request still ``received`` that automation has not looked at, in
batches with set-based queries (no query per request), feeds each to the pure rule engine and
writes one :class:`AutomationAction` per request: queued with its due time (the cooling-off
period, during which the customer may still withdraw or take an offer) or left for staff.
:func:`approve_due` then approves one due request as the system, after checking again that it is
still waiting and that the rule still holds (a fraud signal may have appeared meanwhile). The
caller commits, then sends the refund through the gateway (``payouts.send_refund``) and commits
again: the lock and the idempotency key of processing stay the one path money takes.

Nothing here commits or imports Flask.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from portal.core.database import bulk_insert
from portal.core.money import Money
from portal.core.vocabulary import Actor, Channel, PaymentStatus, Plan, Reason, RefundStatus, RequestState
from portal.documents.models import Document
from portal.orders.models import LookupFailure, Order
from portal.policy import Outcome, Policy
from portal.policy.automation import AutomationRules
from portal.refunds import notifications
from portal.refunds.automation import audit
from portal.refunds.automation.models import ActionStatus, AutomationAction, AutomationSwitch
from portal.refunds.automation.rules import Candidate, Condition, Match, approval_note, match, why_not
from portal.refunds.decisions import policy_amount
from portal.refunds.fraud import LAST_STRETCH, YEAR
from portal.refunds.links import Links
from portal.refunds.models import Refund, RefundRequest
from portal.refunds.states import Action, InvalidTransition, transition

BATCH = 2000


# -- the switch -----------------------------------------------------------------------------------


def is_paused(session: Session) -> bool:
    return bool(session.scalar(select(AutomationSwitch.paused).where(AutomationSwitch.id == 1)))


def set_paused(session: Session, paused: bool, *, staff_user_id: int | None, now: datetime) -> None:
    switch = session.get(AutomationSwitch, 1)
    if switch is None:
        switch = AutomationSwitch(id=1)
        session.add(switch)
    switch.paused, switch.staff_user_id, switch.changed_at = paused, staff_user_id, now
    audit.switched(session, paused, staff_user_id=staff_user_id, now=now)
    session.flush()


# -- facts, in bulk -------------------------------------------------------------------------------


class Row(NamedTuple):
    """A request as read for the rules: plain values from one query, the policy decision kept at
    filing read by the database's JSON functions (a million snapshots are not parsed in Python).
    A named tuple: made a hundred thousand times a run, it costs a third of a frozen dataclass."""

    id: int
    reason: Reason  # the enum columns come back as their members: no conversion per row
    currency: str
    amount_requested_minor: int
    review_requested: bool
    outcome: str | None
    refundable: str | None
    documents_required: bool | None
    window_end: str | None
    policy_version: str | None
    created_at: datetime
    plan: Plan
    channel: Channel
    customer_id: int
    order_number: str
    payment_status: PaymentStatus


def _columns() -> tuple[Any, ...]:
    snapshot = RefundRequest.decision_snapshot
    return (
        RefundRequest.id,
        RefundRequest.reason,
        RefundRequest.currency,
        RefundRequest.amount_requested_minor,
        RefundRequest.review_requested,
        snapshot["outcome"].as_string(),
        snapshot[("amount", "amount")].as_string(),
        snapshot["documents_required"].as_boolean(),
        snapshot[("facts", "window_end")].as_string(),
        RefundRequest.policy_version,
        RefundRequest.created_at,
        Order.plan,
        Order.channel,
        Order.customer_id,
        Order.order_number,
        Order.payment_status,
    )


ROW_WIDTH = len(Row._fields)


def _rows(result: Iterable[Sequence[Any]]) -> list[Row]:
    make = Row._make
    return [make(r) for r in result]


@contextmanager
def bulk_work() -> Iterator[None]:
    """Pause the cycle collector while a pass makes hundreds of thousands of short-lived rows.

    None of them form cycles (reference counting frees them), yet each collection walks every
    object alive, the batch's rows included: about a quarter of a pass's time. It is switched
    back on as it was found, whatever happens.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@lru_cache(maxsize=65_536)
def _money(minor: int, currency: str) -> Money:
    return Money.from_minor(minor, currency)  # a few prices, read for every request


@lru_cache(maxsize=65_536)
def _parsed(amount: str, currency: str) -> Money:
    return Money.parse(amount, currency)  # the refundable amount kept at filing, as text


def candidates(session: Session, rows: Sequence[Row], *, as_of: datetime | None = None) -> dict[int, Candidate]:
    """The rules' view of each row, with its fraud signals, documents and the customer's refunds of
    the year before (before ``as_of``, or before each request's filing when None).

    ``rows`` come in ascending id order; the facts are read for their id range in five queries (a
    range, not a list of thousands of parameters), whatever the number of rows.
    """
    if not rows:
        return {}
    first, last = rows[0].id, rows[-1].id
    in_range = RefundRequest.id.between(first, last)
    failed = set(
        session.scalars(
            select(LookupFailure.order_number)
            .join(Order, Order.order_number == LookupFailure.order_number)
            .join(RefundRequest, RefundRequest.order_id == Order.id)
            .where(in_range)
            .distinct()
        )
    )
    documents: dict[int, int] = {
        request_id: count
        for request_id, count in session.execute(
            select(Document.refund_request_id, func.count())
            .where(Document.refund_request_id.between(first, last))
            .group_by(Document.refund_request_id)
        )
    }
    mine, theirs = aliased(Document), aliased(Document)
    my_request, their_request = aliased(RefundRequest), aliased(RefundRequest)
    my_order, their_order = aliased(Order), aliased(Order)
    shared = set(
        session.scalars(
            select(mine.refund_request_id)
            .join(theirs, and_(theirs.sha256 == mine.sha256, theirs.refund_request_id != mine.refund_request_id))
            .join(my_request, my_request.id == mine.refund_request_id)
            .join(my_order, my_order.id == my_request.order_id)
            .join(their_request, their_request.id == theirs.refund_request_id)
            .join(their_order, their_order.id == their_request.order_id)
            .where(mine.refund_request_id.between(first, last), their_order.customer_id != my_order.customer_id)
            .distinct()
        )
    )
    # The batch's customers' refunds, found through their orders (no date condition in SQL: given one
    # over a year, a planner may scan every refund of the year for each batch).
    customers = select(Order.customer_id).join(RefundRequest, RefundRequest.order_id == Order.id).where(in_range)
    refunds: dict[int, list[datetime]] = defaultdict(list)
    for customer, completed in session.execute(
        select(Order.customer_id, Refund.completed_at)
        .join(Refund, Refund.order_id == Order.id)
        .where(Order.customer_id.in_(customers), Refund.status == RefundStatus.SUCCEEDED)
    ):
        if completed is not None:
            refunds[customer].append(completed)
    out = {}
    for r in rows:
        moment = as_of or r.created_at
        dates = refunds.get(r.customer_id)
        year = sum(1 for at in dates if moment - YEAR <= at < moment) if dates else 0
        out[r.id] = candidate(
            r,
            signals=_signals(r, r.order_number in failed, r.id in shared),
            refunds_last_365_days=year,
            documents=documents.get(r.id, 0),
        )
    return out


def _signals(r: Row, failed_lookups: bool, shared_document: bool) -> frozenset[str]:
    raised = set()
    if failed_lookups:
        raised.add("failed_lookups")
    if shared_document:
        raised.add("shared_document")
    if r.payment_status != PaymentStatus.PAID:
        raised.add("payment_status")
    if r.refundable is not None and _money(r.amount_requested_minor, r.currency) > _parsed(r.refundable, r.currency):
        raised.add("above_refundable")
    if r.window_end:
        left = datetime.fromisoformat(r.window_end) - r.created_at
        if timedelta(0) <= left <= LAST_STRETCH:
            raised.add("end_of_window")
    return frozenset(raised)


def candidate(
    r: Row, *, signals: frozenset[str] = frozenset(), refunds_last_365_days: int = 0, documents: int = 0
) -> Candidate:
    refundable = _parsed(r.refundable, r.currency) if r.refundable else _money(0, r.currency)
    return Candidate(
        reason=r.reason,
        plan=r.plan,
        channel=r.channel,
        outcome=r.outcome or Outcome.REVIEW.value,
        amount=_money(r.amount_requested_minor, r.currency),
        refundable=refundable,
        review_requested=bool(r.review_requested),
        signals=signals,
        refunds_last_365_days=refunds_last_365_days,
        documents_required=bool(r.documents_required),
        documents=documents,
    )


# -- looking at new requests ----------------------------------------------------------------------


def _unseen_ids(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(RefundRequest.id)
            .outerjoin(AutomationAction, AutomationAction.refund_request_id == RefundRequest.id)
            .where(RefundRequest.state == RequestState.RECEIVED, AutomationAction.id.is_(None))
            .order_by(RefundRequest.id)
        )
    )


def _unseen(session: Session, first: int, last: int) -> list[Row]:
    """The unseen requests with ids from ``first`` to ``last``: a range of the primary key, so each
    batch costs the same however many came before it."""
    return _rows(
        session.execute(
            select(*_columns())
            .join(Order, RefundRequest.order_id == Order.id)
            .outerjoin(AutomationAction, AutomationAction.refund_request_id == RefundRequest.id)
            .where(
                RefundRequest.id.between(first, last),
                RefundRequest.state == RequestState.RECEIVED,
                AutomationAction.id.is_(None),
            )
            .order_by(RefundRequest.id)
        )
    )


@dataclass
class Queued:
    queued: int = 0
    left_for_staff: int = 0


def queue_new(
    session: Session, rules: AutomationRules, *, now: datetime, delay: timedelta, batch: int = BATCH
) -> Queued:
    """Give every request not yet looked at its automation action (queued or left for staff)."""
    counts = Queued()
    ids = _unseen_ids(session)
    with bulk_work():
        for start in range(0, len(ids), batch):
            rows = _unseen(session, ids[start], ids[min(start + batch, len(ids)) - 1])
            if not rows:
                continue
            facts = candidates(session, rows)
            values = []
            for r in rows:
                found = match(rules.version_for(r.created_at), facts[r.id])
                values.append(_action_values(r, found, now=now, delay=delay))
                if found.matched:
                    counts.queued += 1
                else:
                    counts.left_for_staff += 1
            # Core, not the ORM's bulk path, which costs more than the rules themselves here.
            bulk_insert(session, AutomationAction.__table__, values)  # type: ignore[arg-type]  # a Table at run time
    session.flush()
    return counts


def _action_values(r: Row, found: Match, *, now: datetime, delay: timedelta) -> dict[str, Any]:
    policy_version = r.policy_version
    if found.rule is None:
        return {
            "refund_request_id": r.id,
            "status": ActionStatus.LEFT_FOR_STAFF,
            "rule_id": None,
            "rules_version": found.version,
            "policy_version": policy_version,
            "amount_minor": None,
            "currency": r.currency,
            "due_at": None,
            "outcome": _no_rule_matched(found),
            "created_at": now,
            "done_at": now,
        }
    return {
        "refund_request_id": r.id,
        "status": ActionStatus.QUEUED,
        "rule_id": found.rule.id,
        "rules_version": found.version,
        "policy_version": policy_version,
        "amount_minor": r.amount_requested_minor,
        "currency": r.currency,
        "due_at": max(now, r.created_at + delay),
        "outcome": "",
        "created_at": now,
        "done_at": None,
    }


# -- acting when due ------------------------------------------------------------------------------


def due(session: Session, *, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(AutomationAction.id)
            .where(AutomationAction.status == ActionStatus.QUEUED, AutomationAction.due_at <= now)
            .order_by(AutomationAction.due_at, AutomationAction.id)
        )
    )


def approve_due(
    session: Session, action_id: int, rules: AutomationRules, policy: Policy, *, now: datetime, links: Links
) -> RefundRequest | None:
    """Approve the action's request by its rule when everything still holds; None otherwise.

    The request must still be ``received`` (the customer may have withdrawn or taken an offer,
    staff may have acted), the rule must still approve it with today's facts, and the policy must
    still grant the amount. Whatever stops it is written on the action.
    """
    action = session.get(AutomationAction, action_id, populate_existing=True)
    if action is None or action.status is not ActionStatus.QUEUED:
        return None
    request = session.get(RefundRequest, action.refund_request_id, populate_existing=True)
    assert request is not None
    action.done_at = now
    if request.state is not RequestState.RECEIVED:
        action.status = ActionStatus.CANCELLED
        action.outcome = _not_approved(request.state)
        session.flush()
        return None
    [row] = _rows(
        session.execute(
            select(*_columns()).join(Order, RefundRequest.order_id == Order.id).where(RefundRequest.id == request.id)
        )
    )
    facts = candidates(session, [row], as_of=now)[row.id]
    version = rules.version_for(row.created_at)
    rule = next((r for r in version.rules if r.id == action.rule_id), None) if version else None

    failed = Condition.RULE_REMOVED if rule is None else why_not(rule, facts)
    amount = request.amount_requested
    if failed is None and policy_amount(session, request, policy, now) < amount:
        failed = Condition.POLICY_AMOUNT
    if failed is not None:
        action.status = ActionStatus.LEFT_FOR_STAFF
        action.outcome = f"{LEFT_WHEN_DUE}{failed}"
        session.flush()
        return None
    policy_version = request.policy_version or str(action.policy_version)
    try:
        transition(
            session,
            request,
            Action.APPROVE,
            actor=Actor.SYSTEM,
            note=approval_note(str(action.rule_id), policy_version),
            amount_minor=amount.minor,
            now=now,
        )
    except InvalidTransition as error:  # someone acted between our read and our write
        action.status = ActionStatus.CANCELLED
        action.outcome = _not_approved(error.state)
        session.flush()
        return None
    request.amount_approved_minor = amount.minor
    notifications.approval(session, request, amount, links=links, note="")
    audit.approved(
        session,
        request,
        rule_id=str(action.rule_id),
        rules_version=action.rules_version,
        policy_version=policy_version,
        now=now,
    )
    action.status = ActionStatus.DONE
    action.outcome = APPROVED
    session.flush()
    return request


# -- what an action's outcome says -----------------------------------------------------------------
# The outcome is one line of English for the records and the command line ("no rule matched
# (routine-monthly: plan)"); the console reads it back with explain() to say it in the reader's words.

NO_RULE_MATCHED = "no rule matched ("
NO_RULES_IN_FORCE = "no rules in force"
LEFT_WHEN_DUE = "left for staff when due: "
NOT_APPROVED = "not approved: the request is "
APPROVED = "approved"


def _no_rule_matched(found: Match) -> str:
    misses = ", ".join(f"{rule}: {why}" for rule, why in found.misses) or NO_RULES_IN_FORCE
    return f"{NO_RULE_MATCHED}{misses})"[:2000]


def _not_approved(state: RequestState) -> str:
    return f"{NOT_APPROVED}{state.value}"


@dataclass(frozen=True)
class Explained:
    """An action's outcome taken apart: the conditions that failed (with the rule each belongs to,
    None for the action's own rule or for no rule at all), the state that stopped the approval, or
    the text as written when it is in no known form."""

    misses: tuple[tuple[str | None, Condition], ...] = ()
    state: RequestState | None = None
    text: str = ""


_CONDITIONS = {c.value: c for c in Condition}
_STATES = {s.value: s for s in RequestState}


def explain(outcome: str) -> Explained:
    if outcome in ("", APPROVED):
        return Explained()  # the status says it all
    if outcome.startswith(NO_RULE_MATCHED) and outcome.endswith(")"):
        inner = outcome[len(NO_RULE_MATCHED) : -1]
        if inner == NO_RULES_IN_FORCE:
            return Explained(misses=((None, Condition.NO_RULES),))
        misses: list[tuple[str | None, Condition]] = []
        for part in inner.split(", "):
            rule, sep, why = part.partition(": ")
            if not sep or why not in _CONDITIONS:
                return Explained(text=outcome)
            misses.append((rule, _CONDITIONS[why]))
        return Explained(misses=tuple(misses))
    if outcome.startswith(LEFT_WHEN_DUE) and outcome[len(LEFT_WHEN_DUE) :] in _CONDITIONS:
        return Explained(misses=((None, _CONDITIONS[outcome[len(LEFT_WHEN_DUE) :]]),))
    if outcome.startswith(NOT_APPROVED) and outcome[len(NOT_APPROVED) :] in _STATES:
        return Explained(state=_STATES[outcome[len(NOT_APPROVED) :]])
    return Explained(text=outcome)


def actions_of(session: Session, request_ids: Iterable[int]) -> Iterator[AutomationAction]:
    yield from session.scalars(
        select(AutomationAction).where(AutomationAction.refund_request_id.in_(list(request_ids)))
    )
