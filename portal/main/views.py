from urllib.parse import urlsplit

from flask import abort, redirect, render_template, request, session, url_for
from sqlalchemy import text

from portal.core.vocabulary import LOCALES
from portal.main import bp
from portal.web.extensions import db
from portal.web.forms import LookupForm, MagicLinkForm
from portal.web.i18n import SESSION_KEY


@bp.get("/")
def home():

    return render_template("main/home.html", lookup_form=LookupForm(), link_form=MagicLinkForm())


def _safe_next(target: str | None) -> str:
    # Only a path on this site: an open redirect would lend our name to phishing links.
    if not target:
        return url_for("main.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.home")
    return target


@bp.get("/language/<code>")
def set_language(code: str):
    if code not in LOCALES:
        abort(404)
    session[SESSION_KEY] = code
    return redirect(_safe_next(request.args.get("next")))


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not reachable" to a load balancer
        db.session.rollback()
        return {"status": "unavailable", "database": type(exc).__name__}, 503
    return {"status": "ok", "database": "ok"}
