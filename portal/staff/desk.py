"""The desk's shared tools: bulk work from the queue, and the saved replies admins and marketing keep."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import (  # type: ignore[attr-defined]  # SelectChoice is new in WTForms 3.3; types-WTForms 3.2 lacks it
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from portal.core.database import utcnow
from portal.core.money import Money
from portal.core.vocabulary import LOCALES, RequestState, StaffRole
from portal.refunds import bulk, replies
from portal.refunds.questions import QUESTIONS
from portal.staff import bp
from portal.staff.auth import roles_required
from portal.staff.forms import ActionForm, Checkboxes, saved_reply_field
from portal.staff.presenters import reply_choices
from portal.staff.views import staff
from portal.web.extensions import db
from portal.web.forms import FlaskForm, add_error
from portal.web.i18n import NATIVE_NAMES, current_locale, money
from portal.web.policy import clause_title, current_policy, rendered

ACTING = (StaffRole.AGENT, StaffRole.ADMIN)
REPLY_KEEPERS = (StaffRole.ADMIN, StaffRole.MARKETING)


# -- bulk work ------------------------------------------------------------------------------------


class BulkForm(FlaskForm):
    """Step two: what to do to every selected request (the references ride along as hidden fields)."""

    action = SelectField(
        _l("Action"), choices=[SelectChoice(a.value, _l(a.title)) for a in bulk.BulkAction], validators=[DataRequired()]
    )
    text = TextAreaField(
        _l("Your text (optional when a saved reply is chosen)"), validators=[Optional(), Length(max=5000)]
    )
    saved_reply = saved_reply_field()
    questions = Checkboxes(
        _l("Standard questions"),
        choices=[SelectChoice(k, _l(v)) for k, v in QUESTIONS.items()],
        validators=[Optional()],
    )
    clause = SelectField(_l("Policy clause the decision rests on"), choices=[], validators=[Optional()])
    offer = SelectField(_l("Alternative to offer"), choices=[], validators=[Optional()])
    override_reason = TextAreaField(
        _l("Reason for declining what the policy grants (required of agents when it does)"),
        validators=[Optional(), Length(max=2000)],
    )


def _bulk_form() -> BulkForm:
    form = BulkForm()
    policy = current_policy()
    locale = current_locale()
    form.saved_reply.choices = [SelectChoice(v, label) for v, label in reply_choices()]
    # The clauses of the policy in force; a request bought under an older version that lacks the
    # chosen clause is reported, not declined.
    version = policy.version_for(utcnow())
    form.clause.choices = [SelectChoice("", _("Choose a clause"))] + [
        SelectChoice(c.id, f"{clause_title(c, locale)} ({c.id})") for c in version.clauses if c.kind != "process"
    ]
    form.offer.choices = [SelectChoice("", _("No alternative"))] + [
        SelectChoice(o.id, rendered(o, "title", locale)) for o in policy.offers
    ]
    return form


def _selected() -> list[str]:
    chosen = request.form.getlist("reference")
    if request.form.get("select_all") == "1":
        chosen = request.form.getlist("on_page")
    return bulk.unique(chosen)[: bulk.MAX_REQUESTS]


@bp.post("/bulk")
@roles_required(*ACTING)
def bulk_work():
    """From the queue's selection (step one, ``step=choose``) to the form, and from the form to the report."""
    references = _selected()
    form = _bulk_form()
    if request.form.get("step") == "choose":
        if not ActionForm().validate_on_submit():
            abort(400)
        if not references:
            flash(_("Select at least one request."), "error")
            return redirect(request.form.get("back") or url_for("staff.queue"), code=303)
        form.action.data = request.form.get("bulk_action") or bulk.BulkAction.NOTE.value
        return render_template("staff/bulk.html", form=form, references=references)
    if not form.validate_on_submit() or not references:
        return render_template("staff/bulk.html", form=form, references=references), 422
    action = bulk.BulkAction(form.action.data)
    reply = replies.find(db.session(), form.saved_reply.data)
    if form.saved_reply.data and reply is None:
        add_error(form.saved_reply, _("Choose one of the saved replies."))
        return render_template("staff/bulk.html", form=form, references=references), 422
    if action is bulk.BulkAction.DECLINE and not form.clause.data:
        add_error(form.clause, _("Choose the policy clause the decision rests on."))
        return render_template("staff/bulk.html", form=form, references=references), 422
    given = bulk.BulkInput(
        text=form.text.data or "",
        questions=tuple(form.questions.data or ()),
        clause_id=form.clause.data or "",
        offer_id=form.offer.data or "",
        override_reason=form.override_reason.data or "",
        reply=reply,
        staff_locale=current_locale(),
    )
    report = bulk.run(db.session(), references, staff(), action, given)
    db.session.commit()  # what succeeded stays, whatever else failed
    rows = [
        {
            "reference": r.reference,
            "ok": r.ok,
            "message": _(
                r.message,
                **{
                    k: _(v.staff_title) if isinstance(v, RequestState) else money(v) if isinstance(v, Money) else v
                    for k, v in r.params.items()
                },
            ),
        }
        for r in report.results
    ]
    return render_template("staff/bulk_report.html", report=report, rows=rows, action_title=_(action.title))


# -- saved replies --------------------------------------------------------------------------------


class SavedReplyForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(_l("Give the reply a title.")), Length(max=200)])
    body_en = TextAreaField("English", validators=[Optional(), Length(max=5000)])
    body_zh = TextAreaField("中文", validators=[Optional(), Length(max=5000)])
    body_nl = TextAreaField("Nederlands", validators=[Optional(), Length(max=5000)])


def _may_edit() -> bool:
    return bool(current_user.may(*REPLY_KEEPERS))


@bp.route("/saved-replies", methods=["GET", "POST"])
@roles_required(StaffRole.AGENT, *REPLY_KEEPERS)
def saved_replies():
    """Everyone at the desk reads them; admins and marketing add them here."""
    form = SavedReplyForm()
    if request.method == "POST":
        if not _may_edit():
            abort(403)
        if form.validate_on_submit() and _save(form, None):
            flash(_("Saved reply “%(title)s” added.", title=form.title.data), "success")
            return redirect(url_for("staff.saved_replies"), code=303)
    return _listing(form, 422 if form.errors else 200)


def _listing(form: SavedReplyForm, status: int):
    return render_template(
        "staff/saved_replies.html",
        replies=replies.listed(db.session()),
        form=form,
        may_edit=_may_edit(),
        variables=replies.VARIABLES,
        native_names=NATIVE_NAMES,
        locales=LOCALES,
        action_form=ActionForm(),
    ), status


def _save(form: SavedReplyForm, reply: replies.SavedReply | None) -> bool:
    try:
        replies.save(
            db.session(),
            reply,
            title=form.title.data or "",
            bodies={code: getattr(form, f"body_{code}").data or "" for code in LOCALES},
            staff_user_id=current_user.id,
            now=utcnow(),
        )
    except replies.ReplyError as error:
        db.session.rollback()
        add_error(getattr(form, error.field), _(error.message, **error.params))
        return False
    db.session.commit()
    return True


@bp.route("/saved-replies/<int:reply_id>", methods=["GET", "POST"])
@roles_required(*REPLY_KEEPERS)
def saved_reply_edit(reply_id: int):
    reply = replies.find(db.session(), reply_id) or abort(404)
    form = SavedReplyForm(obj=reply)
    if form.validate_on_submit() and _save(form, reply):
        flash(_("Saved reply “%(title)s” changed.", title=reply.title), "success")
        return redirect(url_for("staff.saved_replies"), code=303)
    return render_template(
        "staff/saved_reply_edit.html",
        reply=reply,
        form=form,
        variables=replies.VARIABLES,
        native_names=NATIVE_NAMES,
    ), (422 if form.errors else 200)


@bp.post("/saved-replies/<int:reply_id>/delete")
@roles_required(*REPLY_KEEPERS)
def saved_reply_delete(reply_id: int):
    reply = replies.find(db.session(), reply_id) or abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    replies.delete(db.session(), reply)
    db.session.commit()
    flash(_("Saved reply “%(title)s” deleted.", title=reply.title), "success")
    return redirect(url_for("staff.saved_replies"), code=303)
