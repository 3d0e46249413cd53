"""Staff pages: each route parses its input, calls one domain function and renders."""

from __future__ import annotations

import io
import tempfile
from urllib.parse import parse_qsl, urlencode

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms import SelectChoice  # type: ignore[attr-defined]  # SelectChoice is new in WTForms 3.3; types-WTForms 3.2 lacks it

from portal.accounts.models import StaffUser
from portal.accounts.sessions import Event
from portal.accounts.staff import AccountError, create_staff, set_active, set_role
from portal.core.database import utcnow
from portal.core.markers import N_
from portal.core.money import Money, MoneyError
from portal.core.vocabulary import LOCALES, Channel, OutboxStatus, Reason, RequestState, StaffRole
from portal.documents.models import Document
from portal.documents.uploads import document_key
from portal.inbound import privacy as inbound_privacy
from portal.outbox import webhooks as outgoing
from portal.outbox.export import export_zip
from portal.outbox.models import OutboxMessage, WebhookSubscription
from portal.outbox.queue import queue_email, resend, resendable
from portal.refunds import acting, alerts, assignment, decisions, payouts, presence, privacy, replies
from portal.refunds.bulk import BulkAction
from portal.refunds.models import ProcessorEvent, RefundRequest, SavedView
from portal.refunds.queue import (
    SEARCH_CAP,
    QueueFilter,
    View,
    count_matching,
    due_at,
    neighbours,
    queue_page,
    view_counts,
)
from portal.staff import bp
from portal.staff.auth import log, roles_required
from portal.staff.forms import (
    ActionForm,
    ApproveForm,
    AskForm,
    AssignForm,
    CustomerDataForm,
    DeclineForm,
    NoteForm,
    ProcessForm,
    ResendForm,
    RoleForm,
    SavedViewForm,
    StaffForm,
    TestSendForm,
    WebhookForm,
)
from portal.staff.presenters import (
    OUTBOX_STATES,
    decline_choices,
    due_text,
    email_title,
    outbox_state,
    preselected_clause,
    refund_line,
    reply_choices,
    request_page,
    staff_name,
)
from portal.web import desk
from portal.web.extensions import db
from portal.web.forms import add_error
from portal.web.i18n import current_locale, moment, money
from portal.web.links import links
from portal.web.mail import email_kit, issued_receipt, receipt_response
from portal.web.payments import current_fees, current_gateway
from portal.web.policy import current_policy, offer_label
from portal.web.storage import download, storage

ACTING = (StaffRole.AGENT, StaffRole.ADMIN)
KIT_READERS = (StaffRole.MARKETING, StaffRole.ADMIN)
# Documents and email previews are shown in a frame of our own page, with nothing allowed to run.
SANDBOXED = {
    "frame_options": "SAMEORIGIN",
    "content_security_policy": {
        "default-src": "'none'",
        "img-src": "'self' data: https: http:",
        "style-src": "'unsafe-inline'",
        "sandbox": "",
    },
}


def staff() -> acting.Staff:
    return acting.Staff(user=current_user._get_current_object(), now=utcnow(), links=links(), policy=current_policy())


def owned(reference: str) -> RefundRequest:
    found = db.session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
    if found is None:
        abort(404)
    return found


def _enum(kind, value):
    try:
        return kind(value) if value else None
    except ValueError:
        return None


# -- the queue ------------------------------------------------------------------------------------


FILTERS = ("state", "reason", "locale", "channel", "overdue", "q")


def _queue_filter(args) -> QueueFilter:
    # The desk opens on "needs action"; a search or filter without a chosen view looks at everything.
    view = _enum(View, args.get("view")) or (View.ALL if any(args.get(k) for k in FILTERS) else View.NEEDS_ACTION)
    return QueueFilter(
        state=_enum(RequestState, args.get("state")),
        reason=_enum(Reason, args.get("reason")),
        locale=args.get("locale") if args.get("locale") in LOCALES else None,
        channel=_enum(Channel, args.get("channel")),
        overdue=args.get("overdue") == "1",
        search=args.get("q", "")[:320],
        view=view,
        assignee_id=current_user.id if view is View.MINE else None,
    )


def _saved_views():
    return list(
        db.session.scalars(select(SavedView).where(SavedView.staff_user_id == current_user.id).order_by(SavedView.name))
    )


@bp.get("/queue")
@roles_required(*ACTING)
def queue():
    args = request.args
    f = _queue_filter(args)
    now = utcnow()
    session = db.session()
    page = queue_page(session, f, now=now, cursor=args.get("after"))
    kept = {k: v for k, v in args.items() if k != "after"}
    next_url = url_for("staff.queue", after=page.next_cursor, **kept) if page.next_cursor else None
    saved = [
        (v, count_matching(session, _queue_filter(MultiDict(parse_qsl(v.query))), now=now)) for v in _saved_views()
    ]
    query_string = urlencode([(k, v) for k, v in args.items(multi=True) if k != "after" and v])
    return render_template(
        "staff/queue.html",
        page=page,
        f=f,
        now=now,
        sla=desk.sla(),
        due_text=due_text,
        money=money,
        moment=moment,
        next_url=next_url,
        views=list(View),
        view_counts=view_counts(session, current_user.id),
        saved=saved,
        saved_form=SavedViewForm(query=query_string),
        action_form=ActionForm(),
        search_cap=SEARCH_CAP,
        states=list(RequestState),
        reasons=list(Reason),
        channels=list(Channel),
        locales=LOCALES,
        bulk_actions=list(BulkAction),
        offer_label=lambda offer_id: offer_label(offer_id, current_locale()),
    )


@bp.post("/queue/views")
@roles_required(*ACTING)
def saved_view_create():
    form = SavedViewForm()
    if not form.validate_on_submit():
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("staff.queue"), code=303)
    name, query = form.name.data.strip(), (form.query.data or "").lstrip("?")
    existing = db.session.scalar(
        select(SavedView).where(SavedView.staff_user_id == current_user.id, SavedView.name == name)
    )
    if existing:
        existing.query = query
    else:
        db.session.add(SavedView(staff_user_id=current_user.id, name=name, query=query, created_at=utcnow()))
    db.session.commit()
    flash(_("The view “%(name)s” is saved.", name=name), "success")
    return redirect(url_for("staff.queue") + ("?" + query if query else ""), code=303)


@bp.post("/queue/views/<int:view_id>/delete")
@roles_required(*ACTING)
def saved_view_delete(view_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    found = db.session.get(SavedView, view_id)
    if found is None or found.staff_user_id != current_user.id:
        abort(404)
    db.session.delete(found)
    db.session.commit()
    flash(_("The view “%(name)s” is deleted.", name=found.name), "success")
    return redirect(url_for("staff.queue"), code=303)


# -- one request ----------------------------------------------------------------------------------


def _desk(found: RefundRequest) -> dict:
    """The action bar's parts: owner and choices, neighbours in the view, who else has it open."""
    session, now = db.session(), utcnow()
    f = _queue_filter(request.args if request.method == "GET" else MultiDict())
    previous_ref, next_ref = neighbours(session, f, found, now=now)
    assign_form = AssignForm()
    assign_form.assignee.choices = [SelectChoice("", _("Nobody"))] + [
        SelectChoice(str(u.id), staff_name(u)) for u in assignment.assignable(session)
    ]
    assign_form.assignee.data = str(found.assignee_id or "")
    due = due_at(found.state, found.sla_clock_at, found.sla_paused_at, desk.sla(), now, found.awaiting_staff_since)
    return {
        "assign_form": assign_form,
        "assignee": staff_name(found.assignee),
        "due": due_text(due, now),
        "overdue": due is not None and due < now,
        "previous_ref": previous_ref,
        "next_ref": next_ref,
        "view_args": {"view": f.view.value} if request.args.get("view") else {},
        "others": [
            (staff_name(u), moment(seen)) for u, seen in presence.others_present(session, found, current_user, now=now)
        ],
        "version": presence.version(found),
    }


def _render_request(found: RefundRequest, status: int = 200, **forms):
    view = request_page(found, current_user, current_locale())
    decline_form = forms.get("decline_form") or DeclineForm()
    decline_form.clause.choices = [SelectChoice(v, label) for v, label in view.clause_choices]
    decline_form.offer.choices = [SelectChoice(v, label) for v, label in view.offer_choices]
    if not decline_form.clause.data:
        decline_form.clause.data = preselected_clause(found, view.clause_choices)
    approve_form = forms.get("approve_form") or ApproveForm()
    if not approve_form.amount.data:
        prefill = (
            min(found.amount_requested, view.policy_amount) if view.policy_amount.minor else found.amount_requested
        )
        approve_form.amount.data = str(prefill.amount)
    ask_form, note_form = forms.get("ask_form") or AskForm(), forms.get("note_form") or NoteForm()
    for name, form in (("ask", ask_form), ("approve", approve_form), ("decline", decline_form), ("note", note_form)):
        form.saved_reply.choices = [
            SelectChoice(v, label) for v, label in reply_choices(None if name == "note" else found.locale)
        ]
        # Four of these selects share the page: each needs an id (and a label pointing to it) of its own.
        form.saved_reply.id = form.saved_reply.label.field_id = f"{name}-saved-reply"
    return render_template(
        "staff/request.html",
        view=view,
        r=found,
        approve_form=approve_form,
        decline_form=decline_form,
        ask_form=ask_form,
        process_form=forms.get("process_form") or ProcessForm(),
        note_form=note_form,
        action_form=ActionForm(),
        gateway=current_app.config["PAYMENT_GATEWAY"],
        refund_line=refund_line,
        desk=_desk(found),
    ), status


def _stale(found: RefundRequest):
    """A decision sent from a page older than the request's last change: refused, nothing done."""
    if not presence.changed_since(found, request.form.get("version", "")):
        return None
    db.session.rollback()
    flash(
        _(
            "Someone changed this request after you opened it, so nothing was done. Read it again as it "
            "is now, then decide."
        ),
        "error",
    )
    return _render_request(found, 409)


def _refused(found: RefundRequest, form, error: acting.WorkflowError, form_name: str):
    params = {k: money(v) if isinstance(v, Money) else v for k, v in error.params.items()}
    field = getattr(form, error.field, None)
    if field is not None:
        add_error(field, _(error.message, **params))
    else:
        flash(_(error.message, **params), "error")
    db.session.rollback()
    return _render_request(found, 422, **{form_name: form})


def _with_reply(found: RefundRequest, form, typed: str, used_in: str, locale: str) -> str:
    """``typed`` followed by the chosen saved reply in ``locale`` (the customer's, for what they read),
    its use recorded for the timeline; :class:`acting.WorkflowError` when the reply is gone."""
    chosen = form.saved_reply.data or ""
    reply = replies.find(db.session(), chosen)
    if chosen and reply is None:
        raise acting.WorkflowError("saved_reply", N_("Choose one of the saved replies."))
    return replies.insert(
        db.session(),
        typed,
        reply,
        found,
        used_in=used_in,
        locale=locale,
        staff_user_id=current_user.id,
        now=utcnow(),
    )


def _done(found: RefundRequest, message: str):
    """The action succeeded: commit it (with the emails it queued) and say so."""
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("staff.request_detail", reference=found.reference), code=303)


@bp.get("/requests/<reference>")
@roles_required(*ACTING)
def request_detail(reference: str):
    found = owned(reference)
    presence.touch(db.session(), found, current_user, now=utcnow())
    db.session.commit()
    return _render_request(found)


@bp.get("/requests/<reference>/presence")
@roles_required(*ACTING)
def request_presence(reference: str):
    """What the page's script asks every half minute: who else has it open, and whether it changed."""
    found, now = owned(reference), utcnow()
    presence.touch(db.session(), found, current_user, now=now)
    db.session.commit()
    others = [staff_name(u) for u, _seen in presence.others_present(db.session(), found, current_user, now=now)]
    changed = presence.changed_since(found, request.args.get("version", ""))
    notices = []
    if others:
        notices.append(_("Also open by %(names)s.", names=", ".join(others)))
    if changed:
        notices.append(_("This request changed since you opened it: reload the page before you decide."))
    return {"others": others, "changed": changed, "notices": notices}


@bp.post("/requests/<reference>/assign")
@roles_required(*ACTING)
def request_assign(reference: str):
    found, form = owned(reference), AssignForm()
    if not form.validate_on_submit():
        abort(400)
    wanted = str(current_user.id) if request.form.get("me") else (form.assignee.data or "")
    chosen = next((u for u in assignment.assignable(db.session()) if str(u.id) == wanted), None)
    if wanted and chosen is None:
        abort(400)
    assignment.assign(db.session(), found, chosen, by=current_user, now=utcnow())
    message = _("Assigned to %(name)s.", name=staff_name(chosen)) if chosen else _("The request is unassigned.")
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("staff.request_detail", reference=found.reference), code=303)


@bp.post("/requests/<reference>/ask")
@roles_required(*ACTING)
def request_ask(reference: str):
    found, form = owned(reference), AskForm()
    if stale := _stale(found):
        return stale
    if not form.validate_on_submit():
        return _render_request(found, 422, ask_form=form)
    try:
        decisions.ask_for_information(
            db.session(),
            found,
            staff(),
            questions=form.questions.data or [],
            documents=form.documents.data or [],
            custom=form.custom.data or "",
            message=_with_reply(found, form, form.message.data or "", "ask", found.locale),
        )
    except acting.WorkflowError as error:
        return _refused(found, form, error, "ask_form")
    return _done(found, _("The customer has been asked; the request waits for their answer."))


@bp.post("/requests/<reference>/review")
@roles_required(*ACTING)
def request_review(reference: str):
    found = owned(reference)
    if not ActionForm().validate_on_submit():
        abort(400)
    if stale := _stale(found):
        return stale
    decisions.start_review(db.session(), found, staff())
    return _done(found, _("The review has started."))


@bp.post("/requests/<reference>/approve")
@roles_required(*ACTING)
def request_approve(reference: str):
    found, form = owned(reference), ApproveForm()
    if stale := _stale(found):
        return stale
    if not form.validate_on_submit():
        return _render_request(found, 422, approve_form=form)
    try:
        amount = Money.parse(form.amount.data or "", found.currency)
    except (MoneyError, ValueError):
        add_error(form.amount, _("Enter an amount such as 12.50."))
        return _render_request(found, 422, approve_form=form)
    try:
        decisions.approve(
            db.session(),
            found,
            staff(),
            amount=amount,
            note=_with_reply(found, form, form.note.data or "", "approve", found.locale),
            override_reason=form.override_reason.data or "",
        )
    except acting.WorkflowError as error:
        return _refused(found, form, error, "approve_form")
    return _done(found, _("Approved: %(amount)s. The customer has been told.", amount=money(amount)))


@bp.post("/requests/<reference>/decline")
@roles_required(*ACTING)
def request_decline(reference: str):
    found, form = owned(reference), DeclineForm()
    clauses, offers = decline_choices(found.order, current_locale())
    form.clause.choices = [SelectChoice(v, label) for v, label in clauses]
    form.offer.choices = [SelectChoice(v, label) for v, label in offers]
    if stale := _stale(found):
        return stale
    if not form.validate_on_submit():
        return _render_request(found, 422, decline_form=form)
    try:
        decisions.decline(
            db.session(),
            found,
            staff(),
            clause_id=form.clause.data,
            offer_id=form.offer.data or "",
            note=_with_reply(found, form, form.note.data or "", "decline", found.locale),
            override_reason=form.override_reason.data or "",
        )
    except acting.WorkflowError as error:
        return _refused(found, form, error, "decline_form")
    return _done(found, _("Declined. The customer has been told, with the clause and the alternative."))


@bp.post("/requests/<reference>/process")
@roles_required(*ACTING)
def request_process(reference: str):
    found, form = owned(reference), ProcessForm()
    if stale := _stale(found):
        return stale
    if not form.validate_on_submit():
        return _render_request(found, 422, process_form=form)
    try:
        refund = payouts.process_refund(
            db.session(), found.id, staff(), current_gateway(), reference=form.reference.data or "", fees=current_fees()
        )
    except acting.WorkflowError as error:
        return _refused(found, form, error, "process_form")
    except payouts.GatewayProblem as error:
        db.session.commit()  # keep the pending attempt and its idempotency key for the retry
        flash(
            _(
                "The payment processor did not answer (%(problem)s). Nothing was refunded twice: try again "
                "and the processor is asked first whether the refund exists.",
                problem=str(error),
            ),
            "error",
        )
        return redirect(url_for("staff.request_detail", reference=found.reference), code=303)
    except payouts.ProcessorRefused as error:
        db.session.commit()  # the ended attempt and the staff alert
        flash(
            _(
                "The payment processor refused the portal's request (%(problem)s). Nothing was refunded and the "
                "customer was not told; the request stays approved until the setup is fixed.",
                problem=str(error),
            ),
            "error",
        )
        return redirect(url_for("staff.request_detail", reference=found.reference), code=303)
    db.session.commit()
    if refund.status.value == "pending" and refund.processor_status == "requires_action":
        flash(
            _(
                "The processor accepted the refund but needs the customer to act (for example, to give bank "
                "details); the customer has been shown what to do. The request becomes refunded once the "
                "processor confirms."
            ),
            "success",
        )
        return redirect(url_for("staff.request_detail", reference=found.reference), code=303)
    if refund.status.value == "pending":
        flash(
            _(
                "The processor accepted the refund and is completing it. The request becomes refunded as soon as "
                "the processor confirms."
            ),
            "success",
        )
        return redirect(url_for("staff.request_detail", reference=found.reference), code=303)
    if refund.status.value == "failed":
        flash(_("The processor refused the refund: %(problem)s", problem=refund.processor_message), "error")
        return redirect(url_for("staff.request_detail", reference=found.reference), code=303)
    return _done(
        found,
        _("Refunded: %(amount)s (reference %(ref)s).", amount=money(refund.amount), ref=refund.processor_reference),
    )


@bp.post("/requests/<reference>/retry")
@roles_required(*ACTING)
def request_retry(reference: str):
    found = owned(reference)
    if not ActionForm().validate_on_submit():
        abort(400)
    payouts.retry_refund(db.session(), found, staff())
    return _done(found, _("The refund is approved again and can be processed."))


@bp.post("/requests/<reference>/offer-set-up")
@roles_required(*ACTING)
def request_offer_set_up(reference: str):
    found = owned(reference)
    if not ActionForm().validate_on_submit():
        abort(400)
    if stale := _stale(found):
        return stale
    decisions.mark_offer_set_up(db.session(), found, staff())  # OfferNotWaiting: a 409, nothing changed
    return _done(found, _("The offer is marked as set up. The customer has been told."))


@bp.post("/requests/<reference>/note")
@roles_required(*ACTING)
def request_note(reference: str):
    found, form = owned(reference), NoteForm()
    if not form.validate_on_submit():
        return _render_request(found, 422, note_form=form)
    try:
        text = _with_reply(found, form, form.text.data or "", "note", current_locale())
        decisions.add_note(db.session(), found, staff(), text)
    except acting.WorkflowError as error:
        return _refused(found, form, error, "note_form")
    return _done(found, _("Note added."))


@bp.get("/requests/<reference>/receipt")
@roles_required(*ACTING)
def request_receipt(reference: str):
    receipt = issued_receipt(owned(reference)) or abort(404)
    return receipt_response(receipt)


@bp.get("/documents/<int:document_id>")
@roles_required(*ACTING)
def document_download(document_id: int):
    document = db.session.get(Document, document_id) or abort(404)
    log(Event.DOCUMENT_DOWNLOADED, detail=f"{document.refund_request.reference} {document.original_name}"[:500])
    db.session.commit()
    return download(
        document_key(document.stored_name),
        sha256=document.sha256,
        size=document.size,
        filename=document.original_name,
        mimetype=document.content_type,
    )


@bp.get("/documents/<int:document_id>/view")
@roles_required(*ACTING)
def document_view(document_id: int):
    document = db.session.get(Document, document_id) or abort(404)
    log(Event.DOCUMENT_DOWNLOADED, detail=f"viewed {document.refund_request.reference} {document.original_name}"[:500])
    db.session.commit()
    return download(
        document_key(document.stored_name),
        sha256=document.sha256,
        size=document.size,
        filename=document.original_name,
        mimetype=document.content_type,
        as_attachment=False,
    )


document_view.talisman_view_options = SANDBOXED


# -- the outbox -----------------------------------------------------------------------------------


@bp.get("/outbox")
@roles_required(*ACTING)
def outbox():
    status = _enum(OutboxStatus, request.args.get("status"))
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(200)
    if status:
        query = query.where(OutboxMessage.status == status)
    return render_template(
        "staff/outbox.html",
        messages=list(db.session.scalars(query)),
        status=status,
        statuses=list(OutboxStatus),
        state_word=outbox_state,
        outbox_words=OUTBOX_STATES,
        resendable=resendable,
        moment=moment,
    )


@bp.route("/outbox/<int:message_id>/resend", methods=["GET", "POST"])
@roles_required(*ACTING)
def outbox_resend(message_id: int):
    """A confirmation step (no script needed): the page says what will go out again, and a box must
    be ticked. Only a message that gave up or failed can be sent again; anything else is a 409."""
    message = db.session.get(OutboxMessage, message_id) or abort(404)
    if not resendable(message):
        return render_template(
            "errors/http.html",
            error=None,
            code=409,
            message=_(
                "Message %(id)s is “%(state)s”: only a message that failed or gave up can be sent again.",
                id=message_id,
                state=_(outbox_state(message)),
            ),
        ), 409
    form = ResendForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template(
            "staff/outbox_resend.html", m=message, form=form, state=_(outbox_state(message)), moment=moment
        ), status
    resend(db.session(), message, now=utcnow())
    db.session.commit()
    flash(_("Message %(id)s is queued again.", id=message_id), "success")
    return redirect(url_for("staff.outbox"), code=303)


# -- the email gallery (marketing) ----------------------------------------------------------------


@bp.get("/emails")
@roles_required(*KIT_READERS)
def emails():
    """The kit: the list of messages and one of them previewed, in one language at a time."""
    kit = email_kit()
    message = request.args.get("message") or kit.messages[0]
    locale = request.args.get("locale") or current_locale()
    if message not in kit.messages or locale not in LOCALES:
        abort(404)
    form = TestSendForm(message=message, locale=locale)
    form.message.choices = [SelectChoice(m, email_title(m)) for m in kit.messages]
    return render_template(
        "staff/emails.html",
        messages=[(m, email_title(m)) for m in kit.messages],
        message=message,
        title=email_title(message),
        spec=kit.spec(message),
        preview_locale=locale,
        rendered=kit.render_sample(message, locale),
        form=form,
    )


@bp.get("/emails/kit.zip")
@roles_required(*KIT_READERS)
def email_kit_zip():
    """Everything `portal emails export` writes, with the Mailchimp and the Handlebars versions."""
    return send_file(
        io.BytesIO(export_zip(email_kit())),
        mimetype="application/zip",
        as_attachment=True,
        download_name="email-kit.zip",
        max_age=0,
    )


@bp.get("/emails/<message>/<locale>/preview")
@roles_required(*KIT_READERS)
def email_preview(message: str, locale: str):
    kit = email_kit()
    if message not in kit.messages or locale not in LOCALES:
        abort(404)
    return kit.render_sample(message, locale).html


email_preview.talisman_view_options = SANDBOXED


@bp.post("/emails/test-send")
@roles_required(*KIT_READERS)
def email_test_send():
    kit = email_kit()
    form = TestSendForm()
    form.message.choices = [SelectChoice(m, email_title(m)) for m in kit.messages]
    if not form.validate_on_submit():
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("staff.emails"), code=303)
    queue_email(
        db.session(),
        form.message.data,
        form.email.data,
        form.locale.data,
        kit.spec(form.message.data).samples(),
        domain=links().domain,
    )
    db.session.commit()
    flash(
        _(
            "A test of “%(message)s” is on its way to %(email)s.",
            message=email_title(form.message.data),
            email=form.email.data,
        ),
        "success",
    )
    return redirect(url_for("staff.emails", message=form.message.data, locale=form.locale.data), code=303)


# -- staff accounts (admins) ----------------------------------------------------------------------


@bp.route("/users", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def users():
    form = StaffForm()
    if form.validate_on_submit():
        try:
            created = create_staff(
                db.session(), form.email.data, StaffRole(form.role.data), form.password.data, form.name.data or ""
            )
        except AccountError as error:
            add_error(getattr(form, error.field), _(error.message))
        else:
            log(Event.ACCOUNT_CREATED, subject=created, detail=created.role.value)
            db.session.commit()
            flash(_("Account created for %(email)s.", email=created.email), "success")
            return redirect(url_for("staff.users"), code=303)
    people = list(db.session.scalars(select(StaffUser).order_by(StaffUser.email)))
    return render_template(
        "staff/users.html",
        form=form,
        people=people,
        action_form=ActionForm(),
        role_form=RoleForm(),
        roles=[r.value for r in StaffRole],
        moment=moment,
    ), (422 if form.errors else 200)


@bp.post("/users/<int:user_id>/active")
@roles_required(StaffRole.ADMIN)
def user_toggle(user_id: int):
    user = db.session.get(StaffUser, user_id) or abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    if user.id == current_user.id:
        flash(_("You cannot deactivate your own account."), "error")
    else:
        log(Event.ACCOUNT_ACTIVATED if not user.active else Event.ACCOUNT_DEACTIVATED, subject=user)
        set_active(db.session(), user, not user.active, now=utcnow())
        released = 0 if user.active else assignment.release_all(db.session(), user, by=current_user, now=utcnow())
        db.session.commit()
        if released:
            flash(
                ngettext(
                    "%(num)d open request of %(email)s is unassigned again.",
                    "%(num)d open requests of %(email)s are unassigned again.",
                    released,
                    email=user.email,
                ),
                "success",
            )
    return redirect(url_for("staff.users"), code=303)


@bp.post("/users/<int:user_id>/role")
@roles_required(StaffRole.ADMIN)
def user_role(user_id: int):
    user = db.session.get(StaffUser, user_id) or abort(404)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    if user.id == current_user.id:
        flash(_("You cannot change your own role."), "error")
    elif user.role.value != form.role.data:
        log(Event.ROLE_CHANGED, subject=user, detail=f"{user.role.value} -> {form.role.data}")
        set_role(db.session(), user, StaffRole(form.role.data), now=utcnow())
        db.session.commit()
        flash(
            _("%(email)s is now %(role)s; their sessions were signed out.", email=user.email, role=form.role.data),
            "success",
        )
    return redirect(url_for("staff.users"), code=303)


# -- customers' data (admins): export and erasure on request ------------------------------------


@bp.route("/customers", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def customers():
    form = CustomerDataForm()
    if not form.validate_on_submit():
        return render_template("staff/customers.html", form=form), (422 if form.errors else 200)
    customer = privacy.find_customer(db.session(), form.email.data)
    if customer is None:
        form.email.errors.append(_("No customer has this email address."))
        return render_template("staff/customers.html", form=form), 422
    actor = f"staff {current_user.id} ({current_user.email})"
    if request.form.get("action") == "export":
        archive = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the response)
        privacy.export_customer(
            db.session(), storage(), customer, archive, more=inbound_privacy.export_sections(db.session(), customer)
        )
        privacy.security_log.info("export of customer %s by %s", customer.id, actor)
        log(Event.EXPORT, detail=f"customer {customer.id}")
        db.session.commit()
        archive.seek(0)
        return send_file(
            archive, mimetype="application/zip", as_attachment=True, download_name=f"customer-{customer.id}.zip"
        )
    if request.form.get("action") == "erase":
        if (form.confirm.data or "").strip().lower() != customer.email_normalized:
            form.confirm.errors.append(_("Type the customer's email address again to confirm the erasure."))
            return render_template("staff/customers.html", form=form), 422
        report = privacy.erase_customer(
            db.session(), storage(), customer, now=utcnow(), actor=actor, domain=request.host.split(":", 1)[0]
        )
        report.steps.append(
            f"{inbound_privacy.erase_replies(db.session(), customer)} email(s) from the customer cleared"
        )
        log(Event.CUSTOMER_ERASED, detail=f"customer {report.customer_id}: " + "; ".join(report.steps))
        db.session.commit()
        flash(_("The customer's personal data and documents were erased; their financial records are kept."), "success")
        current_app.logger.info("erasure of customer %s: %s", report.customer_id, "; ".join(report.steps))
        return redirect(url_for("staff.customers"), code=303)
    abort(400)


# -- outgoing webhooks ----------------------------------------------------------------------------


@bp.route("/webhooks", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def webhooks():
    form = WebhookForm()
    created = None
    if form.validate_on_submit():
        try:
            created = outgoing.subscribe(
                db.session(),
                form.url.data,
                form.description.data or "",
                created_by=current_user.id,
                now=utcnow(),
                require_https=current_app.config["ENV"] == "production",
            )
            db.session.commit()
        except outgoing.SubscriptionError as error:
            add_error(form.url, _(error.message))
    endpoints = list(db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id.desc())))
    events = list(db.session.scalars(select(ProcessorEvent).order_by(ProcessorEvent.id.desc()).limit(100)))
    # The secret is shown once, on the answer to the form that made it.
    return render_template(
        "staff/webhooks.html",
        alerts=alerts.open_alerts(db.session),
        form=form,
        endpoints=endpoints,
        created=created,
        events=events,
        action_form=ActionForm(),
        moment=moment,
    ), (422 if form.errors else 200)


@bp.post("/webhooks/<int:subscription_id>/deactivate")
@roles_required(StaffRole.ADMIN)
def webhook_deactivate(subscription_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    subscription = db.session.get(WebhookSubscription, subscription_id) or abort(404)
    outgoing.deactivate(db.session(), subscription)
    db.session.commit()
    flash(_("The endpoint receives no more events."), "success")
    return redirect(url_for("staff.webhooks"), code=303)
