from urllib.parse import urlsplit

from flask import abort, current_app, jsonify, redirect, render_template, request, session, url_for

from portal.core.vocabulary import LOCALES
from portal.main import bp
from portal.web import readiness
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


def _probe(view):
    # Load balancers and orchestrators probe over plain HTTP: never redirect them to https.
    view.talisman_view_options = {"force_https": False}
    return view


def _probe_answer(body: dict, status: int):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
@_probe
def healthz():
    """Liveness: the process answers. No database, so a database outage never restarts the web tier."""
    return _probe_answer({"status": "ok"}, 200)


@bp.get("/readyz")
@_probe
def readyz():
    """Readiness: the database answers at the migrations' head; Redis and storage when configured."""
    checks = readiness.checks(current_app, db)
    ready = all(check["ok"] for check in checks.values())
    return _probe_answer({"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503)
