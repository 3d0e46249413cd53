"""Each staff member's own security page (second factors, password, sessions) and the admins' security log."""

from __future__ import annotations

import io
import json

from flask import Response, abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from portal.accounts import mfa, sessions
from portal.accounts.models import SecurityEvent
from portal.accounts.passwords import verify_password
from portal.accounts.sessions import Event
from portal.accounts.staff import AccountError, set_password
from portal.core.database import utcnow
from portal.core.spreadsheet import csv_writer
from portal.core.vocabulary import StaffRole
from portal.staff import bp
from portal.staff.auth import CHALLENGE_KEY, SID_KEY, _begin_session, _end_session, log, relying_party, roles_required
from portal.staff.forms import ActionForm, CodeForm, PasswordChangeForm
from portal.web.extensions import db
from portal.web.i18n import moment

EVERYONE = tuple(StaffRole)
NEW_CODES_KEY = "staff_new_recovery_codes"

EVENT_TITLES = {
    Event.SIGN_IN: _l("Signed in"),
    Event.SIGN_IN_FAILED: _l("Sign-in failed"),
    Event.MFA_FAILED: _l("Second factor refused"),
    Event.SIGN_OUT: _l("Signed out"),
    Event.SIGN_OUT_EVERYWHERE: _l("Signed out everywhere"),
    Event.MFA_ADDED: _l("Second factor added"),
    Event.MFA_REMOVED: _l("Second factor removed"),
    Event.RECOVERY_CODE_USED: _l("Recovery code used"),
    Event.PASSWORD_CHANGED: _l("Password changed"),
    Event.PASSWORD_RESET_REQUESTED: _l("Password reset asked for"),
    Event.ROLE_CHANGED: _l("Role changed"),
    Event.ACCOUNT_CREATED: _l("Account created"),
    Event.ACCOUNT_DEACTIVATED: _l("Account deactivated"),
    Event.ACCOUNT_ACTIVATED: _l("Account activated"),
    Event.TOKEN_CREATED: _l("API token created"),
    Event.TOKEN_REVOKED: _l("API token revoked"),
    Event.EXPORT: _l("Data exported"),
    Event.CUSTOMER_ERASED: _l("Customer's data erased"),
    Event.DOCUMENT_DOWNLOADED: _l("Document downloaded"),
    Event.AUTOMATION_APPROVED: _l("Approved by an automation rule"),
    Event.AUTOMATION_PROCESSED: _l("Refund sent by automation"),
    Event.AUTOMATION_RULES_CHANGED: _l("Automation rules changed"),
    Event.CLOSED_UNANSWERED: _l("Request closed without an answer"),
    Event.AUTOMATION_PAUSED: _l("Automation paused"),
    Event.AUTOMATION_RESUMED: _l("Automation resumed"),
}


def _mark_second_factor() -> None:
    """Adding a factor counts as giving it: this session may go on where the role asks for one.

    Every other session of the person ends: from now on signing in asks for the factor, and a
    session opened with the password alone should not outlive that.
    """
    live = g.get("staff_session")
    if live is not None and live.mfa_at is None:
        live.mfa_at = utcnow()
    sessions.end_all_sessions(db.session(), current_user, now=utcnow(), keep=session.get(SID_KEY))


def _page(status: int = 200, **forms):
    user = current_user._get_current_object()
    pending_totp = session.get("staff_totp_setup")
    return render_template(
        "staff/security.html",
        totp=mfa.confirmed_totp(db.session(), user) is not None,
        passkeys=mfa.credentials(db.session(), user),
        codes_left=mfa.recovery_codes_left(db.session(), user),
        new_codes=session.pop(NEW_CODES_KEY, None),
        pending_totp=pending_totp,
        live=sessions.live_sessions(db.session(), user, now=utcnow()),
        required=mfa.mfa_required(user, current_app.config["STAFF_MFA"]),
        action_form=ActionForm(),
        code_form=forms.get("code_form") or CodeForm(),
        password_form=forms.get("password_form") or PasswordChangeForm(),
        moment=moment,
    ), status


@bp.get("/security")
@roles_required(*EVERYONE)
def security():
    return _page()


@bp.post("/security/totp")
@roles_required(*EVERYONE)
def totp_begin():
    if not ActionForm().validate_on_submit():
        abort(400)
    secret, uri = mfa.begin_totp(db.session(), current_user)
    db.session.commit()
    session["staff_totp_setup"] = {"secret": secret, "uri": uri}
    return redirect(url_for("staff.security") + "#totp", code=303)


@bp.post("/security/totp/confirm")
@roles_required(*EVERYONE)
def totp_confirm():
    form = CodeForm()
    if form.validate_on_submit():
        if mfa.confirm_totp(db.session(), current_user, form.code.data, now=utcnow()):
            session.pop("staff_totp_setup", None)
            session[NEW_CODES_KEY] = mfa.new_recovery_codes(db.session(), current_user)
            _mark_second_factor()
            log(Event.MFA_ADDED, subject=current_user, detail="authenticator app")
            db.session.commit()
            flash(_("Your authenticator app is set up. Keep the recovery codes below somewhere safe."), "success")
            return redirect(url_for("staff.security"), code=303)
        form.code.errors.append(_("That code is not right, or it was used already."))
    return _page(422, code_form=form)


@bp.post("/security/totp/remove")
@roles_required(*EVERYONE)
def totp_remove():
    if not ActionForm().validate_on_submit():
        abort(400)
    mfa.remove_totp(db.session(), current_user)
    log(Event.MFA_REMOVED, subject=current_user, detail="authenticator app")
    db.session.commit()
    flash(_("The authenticator app was removed."), "success")
    return redirect(url_for("staff.security"), code=303)


@bp.post("/security/recovery-codes")
@roles_required(*EVERYONE)
def recovery_codes():
    if not ActionForm().validate_on_submit() or not mfa.has_second_factor(db.session(), current_user):
        abort(400)
    session[NEW_CODES_KEY] = mfa.new_recovery_codes(db.session(), current_user)
    log(Event.MFA_ADDED, subject=current_user, detail="new recovery codes")
    db.session.commit()
    return redirect(url_for("staff.security"), code=303)


@bp.post("/security/passkeys/options")
@roles_required(*EVERYONE)
def passkey_options():
    options, challenge = mfa.registration_options(db.session(), current_user, relying_party())
    session[CHALLENGE_KEY] = challenge.hex()
    return Response(options, mimetype="application/json")


@bp.post("/security/passkeys")
@roles_required(*EVERYONE)
def passkey_register():
    challenge = bytes.fromhex(session.pop(CHALLENGE_KEY, ""))
    body = request.get_data(as_text=True)
    try:
        payload = json.loads(body)
        name = str(payload.pop("name", "") or "")
    except (ValueError, AttributeError):
        abort(400)
    try:
        if not challenge:
            raise mfa.PasskeyError("no challenge")
        mfa.register_credential(
            db.session(),
            current_user,
            json.dumps(payload),
            challenge,
            relying_party(),
            name=name or _("Passkey"),
            now=utcnow(),
        )
    except mfa.PasskeyError:
        return jsonify(error=_("The passkey could not be added. Try again.")), 422
    first = not session.get(NEW_CODES_KEY) and mfa.recovery_codes_left(db.session(), current_user) == 0
    if first:
        session[NEW_CODES_KEY] = mfa.new_recovery_codes(db.session(), current_user)
    _mark_second_factor()
    log(Event.MFA_ADDED, subject=current_user, detail="passkey " + name[:80])
    db.session.commit()
    flash(_("The passkey was added."), "success")
    return jsonify(redirect=url_for("staff.security"))


@bp.post("/security/passkeys/<int:credential_id>/remove")
@roles_required(*EVERYONE)
def passkey_remove(credential_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    if mfa.remove_credential(db.session(), current_user, credential_id):
        log(Event.MFA_REMOVED, subject=current_user, detail="passkey")
        db.session.commit()
        flash(_("The passkey was removed."), "success")
    return redirect(url_for("staff.security"), code=303)


@bp.post("/security/password")
@roles_required(*EVERYONE)
def password_change():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current.data):
            form.current.errors.append(_("That is not your current password."))
        else:
            try:
                set_password(db.session(), current_user, form.password.data, now=utcnow())
            except AccountError as error:
                form.password.errors.append(_(error.message))
            else:
                # Every session ends, this one too; the person goes on in a new one, so a copy of
                # the old cookie is worth nothing.
                user = current_user._get_current_object()
                live = g.get("staff_session")
                log(Event.PASSWORD_CHANGED, subject=user)
                _begin_session(user, with_mfa=live is not None and live.mfa_at is not None)
                flash(_("Your password has been changed; your other sessions were signed out."), "success")
                return redirect(url_for("staff.security"), code=303)
    return _page(422, password_form=form)


@bp.post("/security/sign-out-everywhere")
@roles_required(*EVERYONE)
def sign_out_everywhere():
    if not ActionForm().validate_on_submit():
        abort(400)
    sessions.end_all_sessions(db.session(), current_user, now=utcnow())
    log(Event.SIGN_OUT_EVERYWHERE, subject=current_user)
    _end_session()
    flash(_("Every session of your account has been signed out, this one included."), "info")
    return redirect(url_for("staff.login"), code=303)


# -- the security log (admins) --------------------------------------------------------------------


def _events(limit: int | None = 500):
    query = select(SecurityEvent).order_by(SecurityEvent.id.desc())
    kind = request.args.get("kind", "")
    if kind in EVENT_TITLES:
        query = query.where(SecurityEvent.kind == kind)
    email = request.args.get("email", "").strip().lower()
    if email:
        query = query.where(SecurityEvent.email == email)
    return list(db.session.scalars(query.limit(limit)))


@bp.get("/security-log")
@roles_required(StaffRole.ADMIN)
def security_log():
    return render_template(
        "staff/security_log.html", events=_events(), titles=EVENT_TITLES, moment=moment, actor_name=_actor_name
    )


def _actor_name(event: SecurityEvent) -> str:
    name = sessions.actor_name(event)
    return _("automation") if name == sessions.AUTOMATION_ACTOR else name


@bp.get("/security-log.csv")
@roles_required(StaffRole.ADMIN)
def security_log_csv():
    events = _events(limit=None)
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(["time", "event", "email", "actor", "ip", "detail"])
    for event in events:
        writer.writerow(
            [
                event.created_at.isoformat(),
                event.kind,
                event.email,
                sessions.actor_name(event),
                event.ip,
                event.detail,
            ]
        )
    log(Event.EXPORT, detail="security log")
    db.session.commit()
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="security-log.csv"'
    return response
