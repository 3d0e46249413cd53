import contextlib
import math
import time

import structlog
from flask import abort, render_template, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from portal.refunds.states import InvalidTransition
from portal.web.extensions import db, limiter

PREFIX_RESPONDERS = "error_responders"
# How long a client should wait before trying again after the database failed to answer.
RETRY_AFTER_SECONDS = "30"

log = structlog.get_logger(__name__)


def answer_under(app, prefix: str, respond) -> None:
    """Errors under ``prefix`` that no blueprint handled are answered by ``respond(code, headers=…)``."""
    app.extensions.setdefault(PREFIX_RESPONDERS, {})[prefix] = respond


def init_app(app):
    @app.before_request
    def refuse_nul_characters():
        # No text anyone types contains NUL, and PostgreSQL refuses it in every text column (a 500
        # deep in a query); say "bad request" at the door instead, for pages and API alike.
        if "\x00" in request.path:
            abort(404)  # no page or resource has such an address
        # Posted forms are left to the forms themselves (portal/web/forms.py), which give the
        # text back without the NUL and say why under the field; a file's name is never stored
        # as typed (the upload code refuses a NUL in it with a message beside the form).
        if any("\x00" in value for value in request.args.values()):
            abort(400)

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(InvalidTransition)
    def invalid_transition(error):
        # Nothing was changed; say why in the reader's language.
        db.session.rollback()
        message = _(error.message, state=_(error.state.title))
        return render_template("errors/http.html", error=None, code=409, message=message), 409

    @app.errorhandler(HTTPException)
    def http_error(error):
        # JSON clients (and the health check) keep Werkzeug's own answers.
        if error.code is None or error.code < 400:
            return error
        for prefix, respond in app.extensions.get(PREFIX_RESPONDERS, {}).items():
            if request.path.startswith(prefix):
                # Addresses no route of that part matched, answered in its own format (the API's
                # problem documents, not a customer page).
                return respond(error.code, headers={k: v for k, v in error.get_headers() if k.lower() == "allow"})
        if error.code == 429:
            return render_template("errors/http.html", error=error, message=wait_sentence()), 429
        return render_template("errors/http.html", error=error), error.code

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(error):
        # The database is down, restarting or out of connections: say "try again soon" (503) in
        # the part's own format, not "we broke" (500). The traceback is logged once, here.
        log.error("database unavailable", error=type(error).__name__, exc_info=error)
        with contextlib.suppress(Exception):  # the connection is gone; the pool replaces it on the next checkout
            db.session.rollback()
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
        for prefix, respond in app.extensions.get(PREFIX_RESPONDERS, {}).items():
            if request.path.startswith(prefix):
                return respond(503, headers=headers)
        return render_template("errors/http.html", error=None, code=503), 503, headers

    @app.errorhandler(500)
    def internal_error(error):
        db.session.rollback()
        return render_template("errors/http.html", error=None), 500


def retry_after_seconds() -> int | None:
    """The wait Flask-Limiter puts in the Retry-After header of this 429: the breached limit's
    reset, counted the way the header counts it (whole seconds left)."""
    current = limiter.current_limit
    if current is None or not current.breached:
        return None
    return max(1, int(current.reset_at - time.time()))


def wait_sentence() -> str:
    """The 429 page's sentence with the real wait: exact seconds under a minute, then whole minutes
    and hours rounded up ("about 2 minutes" for 100 s), so the page never promises less than the wait."""
    seconds = retry_after_seconds()
    if seconds is None:
        return _("For your security we limit how often this can be tried. Please wait a few minutes and try again.")
    if seconds < 60:
        return ngettext(
            "For your security we limit how often this can be tried. Please try again in %(num)s second.",
            "For your security we limit how often this can be tried. Please try again in %(num)s seconds.",
            seconds,
        )
    if seconds < 90 * 60:
        minutes = math.ceil(seconds / 60)
        return ngettext(
            "For your security we limit how often this can be tried. Please try again in about %(num)s minute.",
            "For your security we limit how often this can be tried. Please try again in about %(num)s minutes.",
            minutes,
        )
    hours = math.ceil(seconds / 3600)
    return ngettext(
        "For your security we limit how often this can be tried. Please try again in about %(num)s hour.",
        "For your security we limit how often this can be tried. Please try again in about %(num)s hours.",
        hours,
    )
