"""Staff sign-in: argon2 passwords, a second factor, sessions kept on the server, limits and expiry.

Every staff session is a row (``portal.accounts.sessions``) whose random id the cookie carries;
each staff request looks it up, so signing out, a password or role change, deactivation and
"sign out everywhere" end every copy of a cookie at once. A session ends after
``PORTAL_STAFF_IDLE_MINUTES`` without activity and 12 hours after sign-in whatever happens.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from portal.accounts import mfa, sessions
from portal.accounts.models import StaffUser
from portal.accounts.passwords import hash_password, needs_rehash, verify_password
from portal.accounts.sessions import Event
from portal.accounts.staff import AccountError, request_password_reset, reset_password, valid_reset
from portal.core.brand import load_brand
from portal.core.database import utcnow
from portal.core.vocabulary import StaffRole
from portal.staff import bp
from portal.staff.forms import CodeForm, LoginForm, ResetForm, ResetRequestForm
from portal.web.extensions import db, limiter, login_manager
from portal.web.forms import add_error
from portal.web.i18n import current_locale

SEEN_KEY = "staff_seen"
SID_KEY = "staff_sid"
PENDING_KEY = "staff_mfa_pending"  # {"uid": …, "at": …}: the password was right, the second factor is due
CHALLENGE_KEY = "staff_webauthn_challenge"
RESET_KEY = "staff_reset_token"
PENDING_SECONDS = 300
# Checked against when the email is unknown, so a wrong address costs the same time as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password")
# Pages a signed-in person without the second factor their role needs may still reach.
ENROLMENT_ENDPOINTS = {
    "staff.security",
    "staff.totp_begin",
    "staff.totp_confirm",
    "staff.passkey_options",
    "staff.passkey_register",
    "staff.logout",
    "staff.login",
    "staff.sign_out_everywhere",
    "staff.password_change",
}

login_manager.login_view = "staff.login"
login_manager.login_message = None


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    if not user_id.isdigit():
        return None
    live = sessions.find_session(db.session(), session.get(SID_KEY), now=utcnow())
    if live is None or live.staff_user_id != int(user_id):
        return None
    user = db.session.get(StaffUser, live.staff_user_id)
    if user is None or not user.active:
        return None
    g.staff_session = live
    return user


def client_ip() -> str:
    return request.remote_addr or "-"


def log(kind: str, **fields) -> None:
    """Record a security event in the current transaction (the caller commits)."""
    actor = current_user._get_current_object() if current_user.is_authenticated else None
    sessions.record(db.session(), kind, now=utcnow(), actor=fields.pop("actor", actor), ip=client_ip(), **fields)


def mfa_setting() -> str:
    return current_app.config["STAFF_MFA"]


@bp.before_request
def guard_staff_session():
    if not current_user.is_authenticated:
        return None
    idle = time.time() - session.get(SEEN_KEY, 0)
    if idle > current_app.config["STAFF_IDLE_MINUTES"] * 60:
        _end_session()
        flash(_("You were signed out after a period of inactivity."), "info")
        if request.endpoint in ("staff.login", "staff.logout"):
            return None
        return redirect(url_for("staff.login", next=request.full_path))
    session[SEEN_KEY] = time.time()
    live = g.get("staff_session")
    if (
        live is not None
        and live.mfa_at is None
        and request.endpoint not in ENROLMENT_ENDPOINTS
        and request.endpoint != "static"
        and mfa.mfa_required(current_user, mfa_setting())
    ):
        flash(_("Your role needs a second factor: add an authenticator app or a passkey to continue."), "info")
        return redirect(url_for("staff.security"))
    return None


def roles_required(*roles: StaffRole):
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.may(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _client_key() -> str:
    return "staff-login-ip:" + client_ip()


def _client_email_key() -> str:
    return "staff-login:" + client_ip() + ":" + (request.form.get("email", "").strip().lower()[:320] or "-")


def _pending_key() -> str:
    pending = session.get(PENDING_KEY) or {}
    return "staff-mfa:" + str(pending.get("uid", "-"))


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an absolute URL someone slipped into the link.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("staff.home")


def _slow_down(email: str) -> None:
    """Failures for an address from anywhere add a delay (up to 2 s), never a lockout of its owner."""
    failures = sessions.recent_failures(db.session(), email, now=utcnow(), within=timedelta(minutes=15))
    if failures > 3:
        time.sleep(min(0.1 * 2 ** (failures - 4), 2.0))


def _begin_session(user: StaffUser, *, with_mfa: bool) -> None:
    """A fresh cookie and a fresh server-side session: nothing from before carries privileges over."""
    keep = {k: session[k] for k in ("locale",) if k in session}
    session.clear()
    session.update(keep)
    session[SID_KEY] = sessions.start_session(
        db.session(), user, now=utcnow(), ip=client_ip(), user_agent=request.user_agent.string, mfa=with_mfa
    )
    user.last_login_at = utcnow()
    log(Event.SIGN_IN, actor=user, detail="with second factor" if with_mfa else "password only")
    db.session.commit()
    login_user(user)
    session[SEEN_KEY] = time.time()


def _end_session() -> None:
    sessions.end_session(db.session(), session.get(SID_KEY), now=utcnow())
    db.session.commit()
    logout_user()
    for key in (SID_KEY, SEEN_KEY):
        session.pop(key, None)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], key_func=_client_key)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], key_func=_client_email_key)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        _slow_down(email)
        user = db.session.scalar(db.select(StaffUser).where(StaffUser.email == email))
        valid = verify_password(user.password_hash if user else _DUMMY_HASH, form.password.data)
        if user is not None and valid and user.active:
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(form.password.data)
            if mfa.has_second_factor(db.session(), user):
                db.session.commit()
                keep = {k: session[k] for k in ("locale",) if k in session}
                session.clear()
                session.update(keep)
                session[PENDING_KEY] = {"uid": user.id, "at": time.time(), "next": request.args.get("next")}
                return redirect(url_for("staff.mfa_step"))
            _begin_session(user, with_mfa=False)
            return redirect(_safe_next(request.args.get("next")))
        log(Event.SIGN_IN_FAILED, email=email, detail="inactive account" if user is not None and valid else "")
        db.session.commit()
        add_error(form.password, _("That email and password do not match an active staff account."))
    return render_template("staff/login.html", form=form), (422 if form.errors else 200)


def _pending_user() -> StaffUser | None:
    pending = session.get(PENDING_KEY) or {}
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    user = db.session.get(StaffUser, pending.get("uid"))
    return user if user is not None and user.active else None


def relying_party() -> mfa.RelyingParty:
    """The portal's public address names the relying party, never the Host header a client sends."""
    base = urlsplit(current_app.config["BASE_URL"])
    return mfa.RelyingParty(
        id=base.hostname or "localhost",
        origin=f"{base.scheme}://{base.netloc}",
        name=str(load_brand().get("company_name") or "Refund portal"),
    )


@bp.route("/login/second-factor", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], key_func=_client_key)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], key_func=_pending_key)
def mfa_step():
    user = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        flash(_("Please sign in again."), "info")
        return redirect(url_for("staff.login"))
    form = CodeForm()
    if form.validate_on_submit():
        now = utcnow()
        if mfa.check_totp(db.session(), user, form.code.data, now=now):
            return _second_factor_given(user)
        if mfa.use_recovery_code(db.session(), user, form.code.data, now=now):
            log(Event.RECOVERY_CODE_USED, actor=user, detail=f"{mfa.recovery_codes_left(db.session(), user)} left")
            return _second_factor_given(user)
        log(Event.MFA_FAILED, actor=user)
        db.session.commit()
        form.code.errors.append(_("That code is not right, or it was used already."))
    return render_template(
        "staff/mfa.html",
        form=form,
        totp=mfa.confirmed_totp(db.session(), user) is not None,
        passkeys=bool(mfa.credentials(db.session(), user)),
    ), (422 if form.errors else 200)


def _second_factor_given(user: StaffUser, *, as_json: bool = False):
    target = _safe_next((session.get(PENDING_KEY) or {}).get("next"))
    _begin_session(user, with_mfa=True)
    if as_json:
        return jsonify(redirect=target)
    return redirect(target)


@bp.post("/login/passkey/options")
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_client_key)
def passkey_signin_options():
    user = _pending_user() or abort(403)
    options, challenge = mfa.authentication_options(db.session(), user, relying_party())
    session[CHALLENGE_KEY] = challenge.hex()
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/login/passkey")
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_client_key)
def passkey_signin():
    user = _pending_user() or abort(403)
    challenge = bytes.fromhex(session.pop(CHALLENGE_KEY, ""))
    if challenge and mfa.check_credential(
        db.session(), user, request.get_data(as_text=True), challenge, relying_party(), now=utcnow()
    ):
        return _second_factor_given(user, as_json=True)
    log(Event.MFA_FAILED, actor=user, detail="passkey")
    db.session.commit()
    return jsonify(error=_("The passkey was not accepted. Try again, or use a code.")), 422


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        log(Event.SIGN_OUT)
    _end_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("staff.login"))


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("staff.login"))
    if current_user.role is StaffRole.MARKETING:
        return redirect(url_for("staff.emails"))
    return redirect(url_for("staff.queue"))


# -- password reset by email ----------------------------------------------------------------------


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["MAGIC_LINK_RATE_LIMIT"], methods=["POST"], key_func=_client_key)
def forgot_password():
    form = ResetRequestForm()
    if form.validate_on_submit():
        user = request_password_reset(
            db.session(),
            form.email.data,
            base_url=current_app.config["BASE_URL"],
            locale=current_locale(),
            now=utcnow(),
        )
        if user is not None:
            log(Event.PASSWORD_RESET_REQUESTED, actor=user)
        db.session.commit()
        flash(
            _(
                "If that address belongs to an active staff account, we have sent it a link to choose a new "
                "password. The link works once, for 30 minutes."
            ),
            "success",
        )
        return redirect(url_for("staff.login"), code=303)
    return render_template("staff/forgot.html", form=form), (422 if form.errors else 200)


@bp.get("/reset/<token>")
def reset_link(token: str):
    # The secret leaves the address bar at once; the new password is posted with it from the session.
    session[RESET_KEY] = token
    return redirect(url_for("staff.reset"), code=303)


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], key_func=_client_key)
def reset():
    token = session.get(RESET_KEY) or ""
    valid = bool(token) and valid_reset(db.session(), token, now=utcnow()) is not None
    form = ResetForm()
    if valid and form.validate_on_submit():
        try:
            user = reset_password(db.session(), token, form.password.data, now=utcnow())
        except AccountError as error:
            form.password.errors.append(_(error.message))
        else:
            session.pop(RESET_KEY, None)
            if user is not None:
                log(Event.PASSWORD_CHANGED, actor=user, detail="reset by email")
                db.session.commit()
                flash(
                    _(
                        "Your password has been changed and every session of your account was signed out. "
                        "Sign in with the new password."
                    ),
                    "success",
                )
                return redirect(url_for("staff.login"), code=303)
            valid = False
    return render_template("staff/reset.html", form=form, valid=valid), (422 if form.errors else 200)
