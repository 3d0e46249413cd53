"""Staff sign-in with Flask-Login: argon2 hashes, rate limits, roles, and expiry after inactivity."""
from __future__ import annotations

import time
from functools import wraps

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from portal.accounts.models import StaffUser
from portal.accounts.passwords import hash_password, needs_rehash, verify_password
from portal.core.database import utcnow
from portal.core.vocabulary import StaffRole
from portal.staff import bp
from portal.staff.forms import LoginForm
from portal.web.extensions import db, limiter, login_manager
from portal.web.forms import add_error

SEEN_KEY = "staff_seen"
# Checked against when the email is unknown, so a wrong address costs the same time as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password")

login_manager.login_view = "staff.login"
login_manager.login_message = None


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    user = db.session.get(StaffUser, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


@bp.before_request
def expire_idle_sessions():
    if not current_user.is_authenticated:
        return None
    idle = time.time() - session.get(SEEN_KEY, 0)
    if idle > current_app.config["STAFF_IDLE_MINUTES"] * 60:
        logout_user()
        session.pop(SEEN_KEY, None)
        flash(_("You were signed out after a period of inactivity."), "info")
        if request.endpoint in ("staff.login", "staff.logout"):
            return None
        return redirect(url_for("staff.login", next=request.full_path))
    session[SEEN_KEY] = time.time()
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


def _login_email_key() -> str:
    return "staff-login:" + (request.form.get("email", "").strip().lower() or "-")


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an absolute URL someone slipped into the link.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("staff.home")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], key_func=_login_email_key)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(db.select(StaffUser).where(StaffUser.email == form.email.data.strip().lower()))
        valid = verify_password(user.password_hash if user else _DUMMY_HASH, form.password.data)
        if user is not None and valid and user.active:
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(form.password.data)
            user.last_login_at = utcnow()
            db.session.commit()
            keep = {k: session[k] for k in ("locale",) if k in session}
            session.clear()  # a fresh session on sign-in: nothing from before carries privileges over
            session.update(keep)
            login_user(user)
            session[SEEN_KEY] = time.time()
            return redirect(_safe_next(request.args.get("next")))
        add_error(form.password, _("That email and password do not match an active staff account."))
    return render_template("staff/login.html", form=form), (422 if form.errors else 200)


@bp.post("/logout")
def logout():
    logout_user()
    session.pop(SEEN_KEY, None)
    flash(_("You are signed out."), "info")
    return redirect(url_for("staff.login"))


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("staff.login"))
    if current_user.role is StaffRole.MARKETING:
        return redirect(url_for("staff.emails"))
    return redirect(url_for("staff.queue"))
