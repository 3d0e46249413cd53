"""Routine work nobody should have to remember: closing requests the customer never answered.

A request waiting on the customer is closed once its information request has gone unanswered for
``after`` (``PORTAL_AWAITING_CLOSE_DAYS``, 14 days by default), and only after the reminder (sent at
3 days, ``decisions.send_reminders``) told the customer the day it would close. The close is a
transition of its own (``close_unanswered``) by the system, with its own email in the customer's
language. Nothing here commits or imports Flask.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.formatting import local_day
from portal.core.vocabulary import Actor, RequestState
from portal.refunds import notifications
from portal.refunds.automation import audit
from portal.refunds.decisions import CLOSE_AFTER
from portal.refunds.links import Links
from portal.refunds.models import InformationRequest, RefundRequest
from portal.refunds.states import Action, InvalidTransition, transition


def close_unanswered(session: Session, *, now: datetime, links: Links, after: timedelta = CLOSE_AFTER) -> int:
    """Close every request whose information request is unanswered ``after`` asking, reminder sent."""
    due = session.scalars(
        select(InformationRequest)
        .join(RefundRequest)
        .where(
            InformationRequest.answered_at.is_(None),
            InformationRequest.reminder_sent_at.is_not(None),
            InformationRequest.created_at <= now - after,
            RefundRequest.state == RequestState.AWAITING_CUSTOMER,
        )
        .order_by(InformationRequest.id)
    ).all()
    closed = 0
    for info in due:
        request = info.refund_request
        try:
            transition(
                session,
                request,
                Action.CLOSE_UNANSWERED,
                actor=Actor.SYSTEM,
                now=now,
                note=f"no answer since {info.created_at.date().isoformat()}",
            )
        except InvalidTransition:
            continue  # answered or closed meanwhile
        asked_on = local_day(info.created_at, request.time_zone)
        notifications.closed_unanswered(session, request, links=links, asked_on=asked_on)
        audit.closed_unanswered(session, request, asked_on=asked_on, now=now)
        closed += 1
    return closed
