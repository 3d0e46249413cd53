"""The API's routes: each parses (the decorator does), calls one domain function, answers."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app, g, render_template
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select

from portal.accounts.models import PORTAL_SESSIONS, StaffUser
from portal.api import OPERATIONS, ApiProblem, bp, operation, presenters
from portal.api import schemas as s
from portal.api.spec import describe, document
from portal.core.database import utcnow
from portal.core.money import Money, MoneyError
from portal.core.vocabulary import LOCALES, StaffRole
from portal.insights.figures import compute
from portal.orders import portal_sessions
from portal.orders.importing import upsert_order_rows
from portal.refunds import acting, assignment, decisions, payouts, replies
from portal.refunds.models import RefundRequest
from portal.refunds.queue import QueueFilter, View, queue_page
from portal.web import desk
from portal.web.extensions import db
from portal.web.links import links
from portal.web.payments import current_fees, current_gateway
from portal.web.policy import current_policy

log = logging.getLogger(__name__)
REQUESTS = "Refund requests"
ADMIN = (StaffRole.ADMIN,)
READERS = (StaffRole.AGENT, StaffRole.ADMIN)


def _staff(user) -> acting.Staff:
    return acting.Staff(user=user, now=utcnow(), links=links(), policy=current_policy())


def _request(reference: str) -> RefundRequest:
    found = db.session.scalar(select(RefundRequest).where(RefundRequest.reference == reference.upper()))
    if found is None:
        raise ApiProblem(404, _("There is no refund request %(reference)s.", reference=reference))
    return found


def _detail(found: RefundRequest) -> s.RequestDetail:
    db.session.expire_all()  # read what the workflow wrote (Core updates bypass the loaded objects)
    return presenters.request_detail(
        db.session(), db.session.get_one(RefundRequest, found.id), current_policy(), utcnow(), desk.sla()
    )


# -- reading --------------------------------------------------------------------------------------


@operation(
    "GET", "/requests", summary="List refund requests", tag=REQUESTS, query=s.RequestListQuery, response=s.RequestPage
)
def list_requests(user, query: s.RequestListQuery):
    """Oldest first (open views by due time), with the staff queue's views and filters. Follow
    `next_cursor` for the next page."""
    view = query.view or View.ALL
    wanted = (query.assignee or "").strip().lower()
    assignee_id = user.id if wanted == "me" or view is View.MINE else None
    if wanted not in ("", "me", "none"):
        assignee_id = _staff_member(wanted, "assignee").id
    f = QueueFilter(
        state=query.state,
        reason=query.reason,
        locale=query.locale,
        channel=query.channel,
        overdue=query.overdue,
        search=query.q,
        view=view,
        assignee_id=assignee_id,
        unassigned=wanted == "none",
    )
    now = utcnow()
    page = queue_page(db.session(), f, now=now, cursor=query.cursor, size=query.limit)
    return presenters.request_page(page, now, desk.sla())


def _staff_member(email: str, field: str) -> StaffUser:
    found = db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if found is None:
        message = _("There is no staff account with this email address.")
        raise ApiProblem(422, message, errors=[s.FieldProblem(field=field, message=message)])
    return found


@operation(
    "GET",
    "/requests/<reference>",
    summary="Read a refund request",
    tag=REQUESTS,
    response=s.RequestDetail,
    errors=(404,),
)
def read_request(user, reference: str):
    """The request with its order, the decision at filing and today, timeline, questions, refunds and notes."""
    return presenters.request_detail(db.session(), _request(reference), current_policy(), utcnow(), desk.sla())


# -- staff actions (the same workflow as the console) ---------------------------------------------


@operation(
    "POST",
    "/requests/<reference>/assign",
    summary="Assign a refund request",
    tag=REQUESTS,
    body=s.AssignInput,
    response=s.RequestDetail,
    errors=(404,),
)
def assign(user, reference: str, body: s.AssignInput):
    """Give the request to an active agent or admin (by email address), or to nobody with null."""
    found = _request(reference)
    assignee = _staff_member(body.assignee, "assignee") if body.assignee else None
    assignment.assign(db.session(), found, assignee, by=user, now=utcnow())
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/information-requests",
    summary="Ask the customer for more information",
    tag=REQUESTS,
    body=s.AskInput,
    response=s.RequestDetail,
    errors=(404, 409),
)
def ask(user, reference: str, body: s.AskInput):
    """Standard questions, document checklist items and custom text; the customer is emailed."""
    found = _request(reference)
    decisions.ask_for_information(
        db.session(),
        found,
        _staff(user),
        questions=list(body.questions),
        documents=list(body.documents),
        custom=body.custom,
        message=body.message,
    )
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/review",
    summary="Start the review",
    tag=REQUESTS,
    body=s.Empty,
    response=s.RequestDetail,
    errors=(404, 409),
)
def review(user, reference: str, body: s.Empty):
    """Move a received request into review."""
    found = _request(reference)
    decisions.start_review(db.session(), found, _staff(user))
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/approve",
    summary="Approve a refund request",
    tag=REQUESTS,
    body=s.ApproveInput,
    response=s.RequestDetail,
    errors=(404, 409),
)
def approve(user, reference: str, body: s.ApproveInput):
    """Full or partial. Above what the policy grants only an admin may approve, with a reason."""
    found = _request(reference)
    try:
        amount = Money.parse(body.amount, found.currency)
    except (MoneyError, ValueError):
        raise ApiProblem(
            422,
            _("Enter an amount such as 12.50."),
            errors=[s.FieldProblem(field="amount", message=_("Enter an amount such as 12.50."))],
        ) from None
    decisions.approve(
        db.session(), found, _staff(user), amount=amount, note=body.note, override_reason=body.override_reason
    )
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/decline",
    summary="Decline a refund request",
    tag=REQUESTS,
    body=s.DeclineInput,
    response=s.RequestDetail,
    errors=(404, 409),
)
def decline(user, reference: str, body: s.DeclineInput):
    """Cite the policy clause and, where one fits, offer an alternative."""
    found = _request(reference)
    decisions.decline(
        db.session(),
        found,
        _staff(user),
        clause_id=body.clause_id,
        offer_id=body.offer_id,
        note=body.note,
        override_reason=body.override_reason,
    )
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/process",
    summary="Send the approved refund",
    tag=REQUESTS,
    body=s.ProcessInput,
    response=s.RequestDetail,
    errors=(404, 409, 503),
)
def process(user, reference: str, body: s.ProcessInput):
    """Through the configured payment gateway, exactly once; never above what is left of the payment."""
    found = _request(reference)
    try:
        payouts.process_refund(
            db.session(),
            found.id,
            _staff(user),
            current_gateway(),
            reference=body.processor_reference,
            fees=current_fees(),
        )
    except payouts.GatewayProblem as error:
        db.session.commit()  # keep the pending attempt and its idempotency key for the retry
        raise ApiProblem(
            503,
            _(
                "The payment processor did not answer (%(problem)s). Nothing was refunded "
                "twice: try again and the processor is asked first whether the refund exists.",
                problem=str(error),
            ),
        ) from None
    except payouts.ProcessorRefused as error:
        db.session.commit()  # the ended attempt and the staff alert
        raise ApiProblem(
            503,
            _(
                "The payment processor refused the portal's request (%(problem)s). Nothing was "
                "refunded and the customer was not told; the request stays approved until the "
                "setup is fixed.",
                problem=str(error),
            ),
        ) from None
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/retry",
    summary="Retry a failed refund",
    tag=REQUESTS,
    body=s.Empty,
    response=s.RequestDetail,
    errors=(404, 409),
)
def retry(user, reference: str, body: s.Empty):
    """Back to approved after the processor refused, so it can be processed again."""
    found = _request(reference)
    payouts.retry_refund(db.session(), found, _staff(user))
    return _detail(found)


@operation(
    "POST",
    "/requests/<reference>/notes",
    summary="Add an internal note",
    tag=REQUESTS,
    body=s.NoteInput,
    response=s.RequestDetail,
    status=201,
    errors=(404,),
)
def add_note(user, reference: str, body: s.NoteInput):
    """Visible to staff only; notes are never edited or deleted."""
    found = _request(reference)
    decisions.add_note(db.session(), found, _staff(user), body.text)
    return _detail(found)


# -- orders and insights --------------------------------------------------------------------------


@operation(
    "POST",
    "/orders",
    summary="Create or update orders",
    tag="Orders",
    roles=ADMIN,
    body=s.OrdersInput,
    response=s.OrdersResult,
)
def upsert_orders(user, body: s.OrdersInput):
    """The CSV import's columns and rules. One invalid order changes nothing and every fault is named."""
    result = upsert_order_rows(db.session(), [order.model_dump() for order in body.orders])
    if result.errors:
        raise ApiProblem(
            422,
            ngettext(
                "No order was saved: %(num)s fault found.",
                "No order was saved: %(num)s faults found.",
                len(result.errors),
            ),
            errors=[
                s.FieldProblem(field=f"orders.{e.line}.{e.error.column}", message=e.error.render(_))
                for e in result.errors
            ],
        )
    return s.OrdersResult(
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        customers_created=result.customers_created,
    )


@operation(
    "GET",
    "/insights",
    summary="Insights figures",
    tag="Insights",
    roles=READERS,
    query=s.InsightsQuery,
    response=s.InsightsOut,
)
def insights(user, query: s.InsightsQuery):
    """The figures of the staff insights page for a range of days (90 days by default)."""
    today = utcnow().date()
    end = query.end or today
    start = query.start or (end - timedelta(days=89) if end > date.min + timedelta(days=89) else date.min)
    if start > end or (end - start).days > 3660:
        raise ApiProblem(
            422,
            _("Choose a start on or before the end, at most ten years apart."),
            errors=[
                s.FieldProblem(
                    field="start", message=_("Choose a start on or before the end, at most ten years apart.")
                )
            ],
        )
    begin = datetime.combine(start, time.min, tzinfo=UTC)
    finish = (
        datetime.combine(end, time.min, tzinfo=UTC) + timedelta(days=1)
        if end < date.max
        else datetime.max.replace(tzinfo=UTC)
    )
    return presenters.insights(compute(db.session(), begin, finish, now=utcnow()), start, end)


@operation(
    "GET",
    "/saved-replies",
    summary="List the saved replies",
    tag="Saved replies",
    roles=READERS,
    response=s.SavedReplyList,
)
def saved_replies(user):
    """The text modules staff insert in questions, decisions and notes, by title, with their bodies per language."""
    return s.SavedReplyList(
        replies=[
            s.SavedReplyOut(id=r.id, title=r.title, bodies={code: r.body(code) for code in LOCALES}, missing=r.missing)
            for r in replies.listed(db.session())
        ],
        variables=list(replies.VARIABLES),
    )


# -- portal sessions (a SaaS's own app) -----------------------------------------------------------


@operation(
    "POST",
    "/portal-sessions",
    summary="Open an order's page for its customer",
    tag="Portal sessions",
    body=s.PortalSessionInput,
    response=s.PortalSessionOut,
    status=201,
    errors=(422,),
    permission=PORTAL_SESSIONS,
)
def create_portal_session(user, body: s.PortalSessionInput):
    """A one-time URL, valid for 10 minutes, that opens the order's page signed in as its customer (like a
    billing-portal session): redirect your signed-in user's browser to it. Needs a token with the
    `portal_sessions` permission."""
    now = utcnow()
    try:
        opened = portal_sessions.open_session(
            db.session(),
            body.order_number,
            api_token_id=g.api_token.id,
            locale=body.locale,
            return_url=body.return_url,
            base_url=current_app.config["BASE_URL"],
            now=now,
            lifetime=timedelta(minutes=float(current_app.config["PORTAL_SESSION_MINUTES"])),
        )
    except portal_sessions.PortalSessionError as error:
        raise ApiProblem(
            422, _(error.message), errors=[s.FieldProblem(field=error.field, message=_(error.message))]
        ) from None
    log.info(
        "portal session %s opened for order %s by API token %s (%s)",
        opened.record.id,
        body.order_number,
        g.api_token.id,
        user.email,
    )
    return s.PortalSessionOut(
        url=f"{current_app.config['BASE_URL'].rstrip('/')}/portal-session/{opened.token}",
        expires_at=opened.record.expires_at,
        order_number=opened.record.order.order_number,
    )


# -- the description ------------------------------------------------------------------------------


def openapi() -> dict:
    return document(
        OPERATIONS,
        title="Refund portal API",
        version="1.0.0",
        server=current_app.config["BASE_URL"].rstrip("/") + "/api/v1",
        description="Read and move refund requests, upsert orders and read insights. Every write "
        "accepts an Idempotency-Key header; errors are RFC 9457 problem documents.",
    )


@bp.get("/openapi.json")
def openapi_json():
    return openapi()


@bp.get("/reference")
def reference():
    return render_template("api/reference.html", spec=openapi(), describe=describe)
