"""The staff queue: every refund request, in views, filtered and searched, a page at a time.

The open views ("needs action" first) are worked in due order: a request is due
``PORTAL_SLA_HOURS`` after filing, and the clock stands still while we wait on the customer
(``sla_clock``, called by every change of state). Closed and all requests come oldest first.
Pages are cut by keyset (the last row's sort key and id), never by OFFSET, and each view walks
an index in its order, so the first page and any later page cost the same with a million
requests. Counts per state come from a counter table kept by every change of state. Search is a
case-insensitive substring over reference, order number, product, customer name and email,
through a trigram index kept by triggers (``request_search``: FTS5 on SQLite, pg_trgm on
PostgreSQL; see migration 0014). No Flask.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, Select, Text, and_, column, false, func, literal_column, select, table, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from portal.accounts.models import StaffUser
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import CLOSED_STATES, Channel, Reason, RequestState
from portal.orders.models import Customer, Order
from portal.refunds import lifecycle
from portal.refunds.automation.models import ActionStatus, AutomationAction
from portal.refunds.models import RefundRequest, RequestStateCount

OVERDUE_AFTER = timedelta(hours=24)
PAGE_SIZE = 50
# A search whose index finds more requests than this is common enough ("example.com") that walking
# the view in its order and testing each row finds a page sooner than sorting every match.
SEARCH_CAP = 5000
# The states in which nobody waits on staff: the due clock stands still while we wait on the customer.
PAUSED_STATES = frozenset({RequestState.AWAITING_CUSTOMER})
_OPEN = sorted(s for s in RequestState if s not in CLOSED_STATES)
_OPEN_SQL = text("state NOT IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(CLOSED_STATES))))
# Written as the partial index's own predicate (a bound state would keep SQLite off the index).
_OFFER_TO_SET_UP_SQL = text(f"state = '{RequestState.RESOLVED_WITH_OFFER.value}' AND awaiting_staff_since IS NOT NULL")
_SEARCH = table("request_search", column("rowid", Integer), column("request_id", Integer), column("body", Text))


class View(StrEnum):
    """The desk's views of the queue, each with its own scope and order."""

    NEEDS_ACTION = "needs_action"
    MINE = "mine"
    UNASSIGNED = "unassigned"
    WAITING = "waiting"
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"

    @property
    def title(self) -> str:  # type: ignore[override]  # a translatable title for templates
        return {
            View.NEEDS_ACTION: N_("Needs action"),
            View.MINE: N_("Mine"),
            View.UNASSIGNED: N_("Unassigned"),
            View.WAITING: N_("Waiting on the customer"),
            View.OPEN: N_("All open"),
            View.CLOSED: N_("Closed"),
            View.ALL: N_("All"),
        }[self]

    @property
    def by_due(self) -> bool:
        """Open views are worked in due order; closed and all in filing order."""
        return self not in (View.CLOSED, View.ALL)


@dataclass(frozen=True)
class QueueFilter:
    state: RequestState | None = None
    reason: Reason | None = None
    locale: str | None = None
    channel: Channel | None = None
    overdue: bool = False
    search: str = ""
    view: View = View.ALL
    # Only the requests of this staff member (the "mine" view passes the viewer's own id).
    assignee_id: int | None = None
    unassigned: bool = False


@dataclass(frozen=True)
class QueueRow:
    id: int
    reference: str
    state: RequestState
    reason: Reason
    locale: str
    amount_requested_minor: int
    currency: str
    created_at: datetime
    awaiting_staff_since: datetime | None
    order_number: str
    channel: Channel
    customer_name: str
    customer_email: str
    assignee_id: int | None = None
    assignee_name: str = ""
    assignee_email: str = ""
    sla_clock_at: datetime | None = None
    sla_paused_at: datetime | None = None
    # Set while an automation rule has the request queued: which rule, and when it acts.
    automation_rule: str | None = None
    automation_due: datetime | None = None
    # The offer the customer took instead of a refund (a resolved_with_offer request).
    offer_id: str | None = None

    @property
    def amount_requested(self) -> Money:
        return Money.from_minor(self.amount_requested_minor, self.currency)

    def overdue(self, now: datetime) -> bool:
        return self.awaiting_staff_since is not None and self.awaiting_staff_since <= now - OVERDUE_AFTER

    def due_at(self, sla: timedelta, now: datetime) -> datetime | None:
        return due_at(self.state, self.sla_clock_at, self.sla_paused_at, sla, now, self.awaiting_staff_since)

    @property
    def offer_waiting(self) -> bool:
        """The customer took an offer (``offer_id``) that staff have not set up yet."""
        return (
            self.state is RequestState.RESOLVED_WITH_OFFER
            and self.offer_id is not None
            and self.awaiting_staff_since is not None
        )


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None
    counts: dict[RequestState, int]


def sla_clock(
    target: RequestState, clock_at: datetime | None, paused_at: datetime | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The service-level clock after a change to ``target``: it stops when we start waiting on the
    customer and, when they answer, starts again with the wait added (the due time moves by it)."""
    if target in PAUSED_STATES:
        return clock_at, paused_at or now
    if target is RequestState.RESOLVED_WITH_OFFER:
        return now, None  # the offer's set-up is a new task for staff, due from the moment it was taken
    if paused_at is not None and clock_at is not None:
        return clock_at + (now - paused_at), None
    return clock_at, None


def due_at(
    state: RequestState,
    clock_at: datetime | None,
    paused_at: datetime | None,
    sla: timedelta,
    now: datetime,
    awaiting_staff_since: datetime | None = None,
) -> datetime | None:
    """When staff owe the next step: ``sla`` after filing, later by every wait on the customer.
    None for a closed request, unless staff still owe it something (an offer taken and not yet set
    up: ``awaiting_staff_since`` is set). While the clock stands still the due time moves on with it."""
    if clock_at is None or (state in CLOSED_STATES and awaiting_staff_since is None):
        return None
    return clock_at + sla + (now - paused_at if paused_at is not None else timedelta(0))


def encode_cursor(created_at: datetime, request_id: int) -> str:
    raw = json.dumps([created_at.isoformat(), request_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, request_id = json.loads(raw)
        return datetime.fromisoformat(created), int(request_id)
    except (ValueError, TypeError):
        return None  # a tampered or stale cursor starts from the first page


def state_counts(session: Session) -> dict[RequestState, int]:
    counts = {state: 0 for state in RequestState}
    for state, count in session.execute(select(RequestStateCount.state, RequestStateCount.count)):
        counts[state] = count
    return counts


def view_counts(session: Session, viewer_id: int | None) -> dict[View, int]:
    """A count per view: the state-wide ones from the counters, the per-assignee ones from the open
    requests' index."""
    by_state = state_counts(session)
    open_total = sum(by_state[s] for s in _OPEN)
    assigned = select(func.count()).select_from(RefundRequest).where(_OPEN_SQL)
    # Closed, yet waiting on staff: the offers taken and not yet set up (a partial index of their own).
    offers_to_set_up = session.scalar(select(func.count()).select_from(RefundRequest).where(_OFFER_TO_SET_UP_SQL)) or 0
    return {
        View.NEEDS_ACTION: open_total - by_state[RequestState.AWAITING_CUSTOMER] + offers_to_set_up,
        View.MINE: (session.scalar(assigned.where(RefundRequest.assignee_id == viewer_id)) or 0) if viewer_id else 0,
        View.UNASSIGNED: session.scalar(assigned.where(RefundRequest.assignee_id.is_(None))) or 0,
        View.WAITING: by_state[RequestState.AWAITING_CUSTOMER],
        View.OPEN: open_total,
        View.CLOSED: sum(by_state[s] for s in CLOSED_STATES),
        View.ALL: sum(by_state.values()),
    }


def normalize_search(term: str) -> str:
    return " ".join(term.split()).lower()


def _matching_ids(session: Session, term: str) -> list[int] | None:
    """The requests whose reference, order number, product, customer name or email contain
    ``term`` (found by the trigram index), or None when there are too many to list (or the term is
    shorter than a trigram) and the caller should test each row of the view instead."""
    if len(term) < 3:
        return None
    if session.get_bind().dialect.name == "postgresql":
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found = select(_SEARCH.c.request_id).where(_SEARCH.c.body.like(f"%{escaped}%", escape="\\"))
        ids = list(session.scalars(found.limit(SEARCH_CAP + 1)))
        return ids if len(ids) <= SEARCH_CAP else None
    return _sqlite_matching_ids(session, term)


# FTS5 reads every trigram's whole list of rows for a phrase, and "ord", "rf-" or ".com" are in every
# row: a phrase of common trigrams took 100-400 ms at a million requests. So the rarest three trigrams
# of the term (counted, at most SAMPLE_CAP each, among the newest SAMPLE rows) find the candidates and
# each candidate's text is then tested for the whole term.
SAMPLE = 20_000
SAMPLE_CAP = 400


def _sqlite_matching_ids(session: Session, term: str) -> list[int] | None:
    # Every third trigram (and the last) covers the term; counting all of them costs more than it saves.
    grams = sorted({term[i : i + 3] for i in [*range(0, len(term) - 2, 3), len(term) - 3]})
    newest = session.scalar(text("SELECT max(rowid) FROM request_search")) or 0
    seen = {}
    for gram in grams:
        seen[gram] = session.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM request_search WHERE request_search MATCH :gram "
                "AND rowid > :since LIMIT :cap)"
            ).bindparams(gram=_fts_string(gram), since=newest - SAMPLE, cap=SAMPLE_CAP)
        )
    rarest = sorted(grams, key=lambda g: seen[g])[:3]
    sampled = min(SAMPLE, newest) or 1
    if seen[rarest[0]] * newest / sampled > SEARCH_CAP * 4:
        return None  # common enough that the view's own order finds a page sooner
    found = text(
        "SELECT rowid FROM request_search WHERE request_search MATCH :query AND instr(body, :term) > 0 LIMIT :cap"
    ).bindparams(query=" AND ".join(_fts_string(g) for g in rarest), term=term, cap=SEARCH_CAP + 1)
    ids = list(session.scalars(found))
    return ids if len(ids) <= SEARCH_CAP else None


def _fts_string(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _search(session: Session, query: Select[Any], term: str) -> tuple[Select[Any], bool]:
    """The query narrowed to the term, and whether it now holds a short list of ids (to be sorted,
    not walked in index order)."""
    ids = _matching_ids(session, term)
    if ids == []:
        return query.where(false()), True
    if ids is not None:
        return query.where(RefundRequest.id.in_(ids)), True
    # Many matches (or a term too short for trigrams): walk the view in its own order and test each
    # row's text, looked up by its id; the page fills long before the walk ends.
    key = _SEARCH.c.request_id if session.get_bind().dialect.name == "postgresql" else _SEARCH.c.rowid
    body = select(_SEARCH.c.body).where(key == RefundRequest.id).scalar_subquery()
    return query.where(func.instr(body, term) > 0 if key is _SEARCH.c.rowid else func.strpos(body, term) > 0), False


def _filtered(session: Session, f: QueueFilter, now: datetime, columns: Sequence[Any]) -> tuple[Select[Any], bool]:
    # Every filter is on the request's own columns (search through its id), so the joins for the
    # page's order and customer are made by the caller, for the page's rows only.
    query = select(*columns).select_from(RefundRequest)
    if f.view is View.NEEDS_ACTION:
        query = query.where(RefundRequest.awaiting_staff_since.is_not(None))
    elif f.view is View.WAITING:
        query = query.where(RefundRequest.state == RequestState.AWAITING_CUSTOMER)
    elif f.view is View.CLOSED:
        query = query.where(RefundRequest.state.in_(sorted(CLOSED_STATES)))
    elif f.view in (View.OPEN, View.MINE, View.UNASSIGNED):
        query = query.where(_OPEN_SQL)
    if f.assignee_id is not None:
        query = query.where(RefundRequest.assignee_id == f.assignee_id)
    if f.unassigned or f.view is View.UNASSIGNED:
        query = query.where(RefundRequest.assignee_id.is_(None))
    if f.state:
        query = query.where(RefundRequest.state == f.state)
    if f.reason:
        query = query.where(RefundRequest.reason == f.reason)
    if f.locale:
        query = query.where(RefundRequest.locale == f.locale)
    if f.channel:
        query = query.where(RefundRequest.channel == f.channel)
    if f.overdue:
        query = query.where(RefundRequest.awaiting_staff_since <= now - OVERDUE_AFTER)
    term = normalize_search(f.search)
    if term:
        return _search(session, query, term)
    return query, False


def queue_page(
    session: Session, f: QueueFilter, *, now: datetime, cursor: str | None = None, size: int = PAGE_SIZE
) -> QueuePage:
    assignee = aliased(StaffUser)
    sort = RefundRequest.sla_clock_at if f.view.by_due else RefundRequest.created_at
    query = (
        select(
            RefundRequest.id,
            RefundRequest.reference,
            RefundRequest.state,
            RefundRequest.reason,
            RefundRequest.locale,
            RefundRequest.amount_requested_minor,
            RefundRequest.currency,
            RefundRequest.created_at,
            RefundRequest.awaiting_staff_since,
            Order.order_number,
            Order.channel,
            Customer.name,
            Customer.email,
            RefundRequest.assignee_id,
            func.coalesce(func.nullif(assignee.name, ""), assignee.email, ""),
            func.coalesce(assignee.email, ""),
            RefundRequest.sla_clock_at,
            RefundRequest.sla_paused_at,
            AutomationAction.rule_id,
            AutomationAction.due_at,
            RefundRequest.offer_id,
        )
        .join(Order, RefundRequest.order_id == Order.id)
        .join(Customer, Order.customer_id == Customer.id)
        .outerjoin(assignee, RefundRequest.assignee_id == assignee.id)
        .outerjoin(
            AutomationAction,
            and_(
                AutomationAction.refund_request_id == RefundRequest.id, AutomationAction.status == ActionStatus.QUEUED
            ),
        )
    )
    found, listed = _filtered(session, f, now, [RefundRequest.id])
    after = decode_cursor(cursor) if cursor else None
    if after:
        found = found.where(tuple_(sort, RefundRequest.id) > tuple_(*after))
    ordering: Any = sort
    if listed and session.get_bind().dialect.name == "sqlite":
        # A few hundred ids found by the index: sort them. Walking the view's index in order and
        # testing each row against the list is what SQLite would pick otherwise, over every row.
        ordering = literal_column(f"+refund_request.{sort.key}")
    page_ids = found.order_by(ordering, RefundRequest.id).limit(size + 1)
    query = query.where(RefundRequest.id.in_(page_ids.scalar_subquery())).order_by(sort, RefundRequest.id)
    rows = [QueueRow(*tuple(row)) for row in session.execute(query)]
    next_cursor = None
    if len(rows) > size:
        last = rows[size - 1]
        key = last.sla_clock_at if f.view.by_due else last.created_at
        next_cursor = encode_cursor(key or last.created_at, last.id)
    return QueuePage(rows[:size], next_cursor, state_counts(session))


def neighbours(
    session: Session, f: QueueFilter, request: RefundRequest, *, now: datetime
) -> tuple[str | None, str | None]:
    """The references before and after ``request`` in the view's order (for "previous" and "next")."""
    by_due = f.view.by_due and request.sla_clock_at is not None
    sort = RefundRequest.sla_clock_at if by_due else RefundRequest.created_at
    key = tuple_(request.sla_clock_at if by_due else request.created_at, request.id)
    base, _listed = _filtered(session, f, now, [RefundRequest.reference])
    before = session.scalar(
        base.where(tuple_(sort, RefundRequest.id) < key).order_by(sort.desc(), RefundRequest.id.desc()).limit(1)
    )
    after = session.scalar(base.where(tuple_(sort, RefundRequest.id) > key).order_by(sort, RefundRequest.id).limit(1))
    return before, after


def count_matching(session: Session, f: QueueFilter, *, now: datetime, cap: int = SEARCH_CAP) -> int:
    """How many requests a filter finds, counted up to ``cap`` (a saved view's badge says "1000+")."""
    found = _filtered(session, f, now, [RefundRequest.id])[0].limit(cap + 1).subquery()
    return session.scalar(select(func.count()).select_from(found)) or 0


def count_state(session: Session, state: RequestState, delta: int) -> None:
    """Keep the per-state counters in step, in the caller's transaction."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(RequestStateCount).values(state=state, count=delta)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[RequestStateCount.state], set_={"count": RequestStateCount.count + statement.excluded.count}
        )
    )


@lifecycle.state_changed.connect
def _count(session: Session, *, before: RequestState | None, after: RequestState, **_: Any) -> None:
    if before is not None:
        count_state(session, before, -1)
    count_state(session, after, +1)
