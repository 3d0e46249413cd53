"""What each request leaves behind: a request id, one log line, Prometheus figures; and ``/metrics``.

- ``X-Request-ID`` is taken from the proxy when it sent a sensible one, generated otherwise,
  returned in the response, bound to every log line written during the request, and stamped on
  every outbox message queued during it (a session event, so queueing code need not know).
- One line per request: id, method, route (the rule, never the path: paths hold tokens), status,
  duration, and the staff member's id when one is signed in.
- ``/metrics`` answers Prometheus only when ``PORTAL_METRICS_TOKEN`` is set and the scraper sends
  it as ``Authorization: Bearer …``; otherwise it is not there (404).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from datetime import UTC, datetime

import structlog
from flask import Blueprint, Flask, abort, current_app, g, has_request_context, request
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from portal.core import logs, metrics
from portal.core.vocabulary import OutboxStatus
from portal.outbox.models import OutboxMessage

HEADER = "X-Request-ID"
# What a proxy's id may look like (uuid, hex, nginx's $request_id, AWS's Root=1-…); anything
# else is replaced, so a client cannot write arbitrary text into our logs.
VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{7,127}")
UNMATCHED = "<unmatched>"

log = structlog.get_logger("portal.request")
# The standard library logger behind ``log``: asked first whether the line would be written at all.
_stdlib_log = logging.getLogger("portal.request")
bp = Blueprint("telemetry", __name__)


def init_app(app: Flask) -> None:
    logs.configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    # First of all before-request functions, so a redirect to https or a refusal is timed and
    # logged too; the after-request function is registered first, so it runs last.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finish)
    app.teardown_request(_forget)
    app.register_blueprint(bp)


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def _begin() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = given if VALID_ID.fullmatch(given) else uuid.uuid4().hex
    g.request_started = time.perf_counter()
    logs.clear_contextvars()
    logs.bind_contextvars(request_id=g.request_id)


def _staff_id() -> int | None:
    # Only a user Flask-Login has already loaded for this request (or the API's token holder):
    # asking current_user here would load one on every customer page.
    user = g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        return user.id
    return g.get("staff_id")


def _finish(response):
    started = g.get("request_started")
    if started is None:  # a request that failed before _begin (cannot happen, but never crash here)
        return response
    rid = g.request_id
    response.headers[HEADER] = rid
    duration = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    metrics.HTTP_LATENCY.labels(request.method, route).observe(duration)
    if response.status_code == 429:
        metrics.RATE_LIMIT_REFUSALS.labels(route).inc()
    error = response.status_code >= 500
    if not _stdlib_log.isEnabledFor(logging.WARNING if error else logging.INFO):
        return response  # structlog would drop the line; skip building it (PORTAL_LOG_LEVEL=WARNING)
    fields = {
        "method": request.method,
        "route": route,
        "status": response.status_code,
        "duration_ms": round(duration * 1000, 1),
    }
    staff_id = _staff_id()
    if staff_id is not None:
        fields["staff_id"] = staff_id
    (log.warning if error else log.info)("request", **fields)
    return response


def _forget(_error=None) -> None:
    logs.clear_contextvars()


@event.listens_for(Session, "before_flush")
def _stamp_outbox_messages(session, _flush_context, _instances) -> None:
    """An outbox message queued during a request carries the request's id to the worker's lines."""
    rid = request_id()
    if rid is None:
        return
    for instance in session.new:
        if isinstance(instance, OutboxMessage) and instance.request_id is None:
            instance.request_id = rid


# -- /metrics -------------------------------------------------------------------------------------


def outbox_rows(session: Session):
    """(channel, kind, status, count, oldest created_at) of the pending and dead messages."""
    query = (
        select(
            OutboxMessage.channel,
            OutboxMessage.message,
            OutboxMessage.status,
            func.count(),
            func.min(OutboxMessage.created_at),
        )
        .where(OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.DEAD)))
        .group_by(OutboxMessage.channel, OutboxMessage.message, OutboxMessage.status)
    )
    return [
        (channel, kind, getattr(status, "value", status), count, _aware(first))
        for channel, kind, status, count, first in session.execute(query)
    ]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def outbox_collector(session_factory) -> metrics.OutboxCollector:
    def rows():
        session = session_factory()
        try:
            return outbox_rows(session)
        finally:
            session.close()

    return metrics.OutboxCollector(rows, clock=lambda: datetime.now(UTC))


def _authorized(token: str) -> bool:
    scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus' text format; 404 unless PORTAL_METRICS_TOKEN is set, 401 without it."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)  # not configured: there is nothing to scrape
    if not _authorized(str(token)):
        response = current_app.response_class(
            "Send the metrics token as Authorization: Bearer …\n", 401, mimetype="text/plain"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from portal.web.extensions import db

    body = metrics.exposition(outbox_collector(lambda: Session(db.engine)))
    response = current_app.response_class(body, mimetype=None, content_type=metrics.CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


# Scrapers talk plain HTTP inside the network; the token, not the scheme, guards the figures.
prometheus_metrics.talisman_view_options = {"force_https": False}  # type: ignore[attr-defined]  # read by Talisman
