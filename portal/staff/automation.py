"""The automation page: the rules in force (staff only, never customers), the admins' pause switch,
what automation did, and the simulation of the rules in force or of a changed file before it is saved."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField
from sqlalchemy import func, select
from wtforms import DateField, TextAreaField
from wtforms.validators import Length, Optional

from portal.accounts.models import StaffUser
from portal.core.database import utcnow
from portal.core.vocabulary import Actor, RequestState, StaffRole
from portal.policy import Outcome, PolicyError
from portal.policy.automation import parse_automation
from portal.refunds.automation import runner
from portal.refunds.automation.models import AutomationAction, AutomationSwitch
from portal.refunds.automation.simulation import simulate
from portal.refunds.models import RefundRequest, StatusEvent
from portal.staff import bp
from portal.staff.auth import roles_required
from portal.staff.forms import ActionForm
from portal.web.automation import current_rules, delay
from portal.web.extensions import db
from portal.web.forms import FlaskForm, add_error
from portal.web.i18n import moment, money

ACTING = (StaffRole.AGENT, StaffRole.ADMIN)
MAX_RULES_BYTES = 200_000


class SimulationForm(FlaskForm):
    since = DateField(_l("Requests filed since"), validators=[Optional()])
    rules = TextAreaField(
        _l("Rules to try (TOML; leave empty for the rules in force)"),
        validators=[Optional(), Length(max=MAX_RULES_BYTES)],
        render_kw={"rows": 12},
    )
    rules_file = FileField(_l("Or upload a rules file"))


def _decisions(since: datetime) -> dict[str, int]:
    """Approvals and declines since ``since``, by rules (the system) and by people."""
    rows = db.session.execute(
        select(StatusEvent.actor, func.count())
        .where(
            StatusEvent.created_at >= since, StatusEvent.to_state.in_((RequestState.APPROVED, RequestState.DECLINED))
        )
        .group_by(StatusEvent.actor)
    ).all()
    counts = {actor: n for actor, n in rows}
    return {"rules": counts.get(Actor.SYSTEM, 0), "people": counts.get(Actor.STAFF, 0)}


def _page(form: SimulationForm, result=None, pasted: bool = False, status: int = 200):
    switch = db.session.get(AutomationSwitch, 1)
    changed_by = db.session.get(StaffUser, switch.staff_user_id) if switch and switch.staff_user_id else None
    counts = {
        status.value: n
        for status, n in db.session.execute(
            select(AutomationAction.status, func.count()).group_by(AutomationAction.status)
        )
    }
    recent = db.session.execute(
        select(AutomationAction, RefundRequest.reference)
        .join(RefundRequest)
        .order_by(AutomationAction.id.desc())
        .limit(25)
    ).all()
    return render_template(
        "staff/automation.html",
        rules=current_rules(),
        switch=switch,
        changed_by=changed_by,
        counts=counts,
        recent=recent,
        form=form,
        result=result,
        pasted=pasted,
        delay_minutes=int(delay().total_seconds() // 60),
        decisions=_decisions(utcnow() - timedelta(days=90)),
        action_form=ActionForm(),
        moment=moment,
        money=money,
        explain=runner.explain,  # an action's outcome in words, not as recorded
        Outcome=Outcome,
    ), status


@bp.get("/automation")
@roles_required(*ACTING)
def automation():
    return _page(SimulationForm(formdata=None))


@bp.post("/automation/simulate")
@roles_required(*ACTING)
def automation_simulate():
    form = SimulationForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    rules, pasted = current_rules(), False
    text = (form.rules.data or "").strip()
    if form.rules_file.data:
        raw = form.rules_file.data.read(MAX_RULES_BYTES + 1)
        try:
            text = raw.decode("utf-8") if len(raw) <= MAX_RULES_BYTES else ""
        except UnicodeDecodeError:
            text = ""
        if not text:
            add_error(form.rules_file, _("The file must be a TOML rules file in UTF-8 of at most 200 kB."))
            return _page(form, status=422)
    if text:
        try:
            rules = parse_automation(text, "pasted")
        except PolicyError as error:
            for problem in error.problems:
                add_error(form.rules, problem)
            return _page(form, status=422)
        pasted = True
    since: date = form.since.data or (utcnow() - timedelta(days=365)).date()
    result = simulate(db.session(), rules, since=datetime.combine(since, datetime.min.time(), tzinfo=UTC))
    db.session.rollback()
    return _page(form, result=result, pasted=pasted)


@bp.post("/automation/switch")
@roles_required(StaffRole.ADMIN)
def automation_switch():
    # The form says the state it wants (not "flip it"): a click on a page shown before someone else
    # paused or resumed automation must not undo their change.
    wanted = request.form.get("paused")
    if not ActionForm().validate_on_submit() or wanted not in ("1", "0"):
        abort(400)
    paused = wanted == "1"
    if runner.is_paused(db.session()) == paused:  # already so: nothing changes, nothing is logged
        flash(_("Automation is already paused.") if paused else _("Automation is already running."), "info")
        return redirect(url_for("staff.automation"), code=303)
    runner.set_paused(db.session(), paused, staff_user_id=current_user.id, now=utcnow())
    db.session.commit()
    flash(_("All automation is paused.") if paused else _("Automation is running again."), "success")
    return redirect(url_for("staff.automation"), code=303)
