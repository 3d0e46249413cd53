"""The outbox worker: claim due messages one at a time and deliver them, with retries and dead letters.

Delivery claims one message at a time with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so several
workers can run at once and never take the same message; SQLite ignores the clause and is
meant for a single worker. Nothing here imports Flask.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core.vocabulary import OutboxStatus
from portal.outbox.models import OutboxMessage

FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)


class TemporaryFailure(Exception):
    """Try again later: the server is down, slow, or answered 4xx."""


class PermanentFailure(Exception):
    """Retrying cannot help: the server answered 5xx, or the message cannot be rendered."""


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … capped at an hour."""
    return min(FIRST_RETRY * (1 << max(attempts - 1, 0)), LONGEST_WAIT)


def claim_next(session: Session, now: datetime) -> OutboxMessage | None:
    query = (select(OutboxMessage)
             .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
             .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
             .limit(1)
             .with_for_update(skip_locked=True))
    return session.scalars(query).first()


def deliver_due(session: Session, send: Callable[[OutboxMessage], None], *, clock: Callable[[], datetime],
                max_attempts: int, limit: int | None = None) -> DeliveryReport:
    """Send every due message once; each outcome is committed before the next message is claimed."""
    report = DeliveryReport()
    while limit is None or report.sent + report.retried + report.dead < limit:
        message = claim_next(session, clock())
        if message is None:
            break
        message.attempts += 1
        try:
            send(message)
        except TemporaryFailure as error:
            message.last_error = str(error)[:2000]
            if message.attempts >= max_attempts:
                message.status = OutboxStatus.DEAD
                report.dead += 1
            else:
                message.next_attempt_at = clock() + backoff(message.attempts)
                report.retried += 1
        except PermanentFailure as error:
            message.last_error = str(error)[:2000]
            message.status = OutboxStatus.DEAD
            report.dead += 1
        else:
            message.status = OutboxStatus.SENT
            message.sent_at = clock()
            message.last_error = ""
            report.sent += 1
        session.commit()
    session.rollback()  # release the claim query's transaction when nothing was due
    return report
