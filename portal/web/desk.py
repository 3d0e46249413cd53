"""Flask glue for the staff desk: the service-level hours, and round-robin assignment of new
requests when ``PORTAL_ROUND_ROBIN`` is on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from portal.core.vocabulary import RequestState
from portal.refunds import assignment, lifecycle


def init_app(app) -> None:
    lifecycle.state_changed.connect(_round_robin)  # once: blinker keeps one connection per receiver


def sla() -> timedelta:
    return timedelta(hours=float(current_app.config["SLA_HOURS"]))


def _round_robin(session: Session, *, before: RequestState | None, after: RequestState, **extra: Any) -> None:
    # A request opened already closed (an offer taken on the spot) needs nobody.
    if before is not None or not after.is_open or not has_app_context():
        return
    if current_app.config.get("ROUND_ROBIN"):
        assignment.assign_round_robin(session, extra["request"], now=extra["event"].created_at)
