"""The outbox worker: claim due messages one at a time and deliver them, with retries and dead letters.

Delivery claims one message at a time with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so several
workers can run at once and never take the same message; SQLite ignores the clause and is
meant for a single worker. Nothing here imports Flask.

A claimed message is leased before it is sent: its attempt and a ``next_attempt_at`` of now plus
the lease are committed first, so no other worker takes it while it is on its way, even when this
worker's connection to the database is cut meanwhile (PostgreSQL restarting). An email the SMTP
server accepted whose "sent" could not then be recorded is remembered by the worker and recorded
before it claims anything else; the lease keeps the others off it until then. A worker killed
mid-send leaves its message to be tried again when the lease ends: delivered twice only if it
died in the moment between the server's "250 OK" and the commit (SMTP offers nothing better).

Whatever goes wrong while one message is delivered stays with that message: an unexpected
exception (a receipt that will not render, a bug) rolls back what the attempt changed, and the
attempt is then counted, logged with its traceback and backed off in a transaction of its own,
so the message can never be claimed first again and again; after the last attempt it is dead,
and the messages behind it go out meanwhile. Only the database failing stops a round (the
caller's loop waits and reconnects).

An erasure's confirmation (``queue.FORGOTTEN_ONCE_SENT``) goes to the address being erased; in
the transaction that records it sent, its recipient and variables are anonymised too
(``queue.forget``), the security log says so and ``forgotten`` (the caller's) is told.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from portal.core import metrics
from portal.core.logs import bound_contextvars
from portal.core.vocabulary import OutboxStatus
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import ERASED_DOMAIN, FORGOTTEN_ONCE_SENT, forget

FIRST_RETRY = timedelta(seconds=30)
# How long a claimed message is left to the worker sending it (the SMTP timeout, a receipt to render).
LEASE = timedelta(minutes=5)
LONGEST_WAIT = timedelta(hours=1)
# Errors that mean the database itself is gone (down, restarting, connection cut), not the message.
DATABASE_GONE = (OperationalError, InterfaceError)

log = structlog.get_logger(__name__)
security_log = logging.getLogger("portal.security")


class TemporaryFailure(Exception):
    """Try again later: the server is down, slow, or answered 4xx."""


class PermanentFailure(Exception):
    """Retrying cannot help: the server answered 5xx, or the message cannot be rendered."""


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def attempts(self) -> int:
        return self.sent + self.retried + self.dead


class StopFlag:
    """Set from a signal handler, read by the loop: a plain attribute, no lock.

    ``threading.Event.set`` takes a lock the interrupted main thread may be holding inside
    ``wait``; a signal handler must not. ``wait`` sleeps in short slices and looks again.
    """

    SLICE = 0.1

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._set and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self.SLICE, left))
        return self._set


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … capped at an hour."""
    return min(FIRST_RETRY * (1 << max(attempts - 1, 0)), LONGEST_WAIT)


def claim_next(session: Session, now: datetime) -> OutboxMessage | None:
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).first()


def _failed(
    message: OutboxMessage, error: str, *, permanent: bool, max_attempts: int, now: datetime, report: DeliveryReport
) -> None:
    message.last_error = error[:2000]
    if permanent or message.attempts >= max_attempts:
        message.status = OutboxStatus.DEAD
        report.dead += 1
        metrics.OUTBOX_DELIVERIES.labels(message.channel, message.message, "dead").inc()
        log.error(
            "outbox dead letter",
            attempts=message.attempts,
            error=message.last_error,
            reason="refused for good" if permanent else "last attempt failed",
        )
    else:
        wait = backoff(message.attempts)
        message.next_attempt_at = now + wait
        report.retried += 1
        metrics.OUTBOX_DELIVERIES.labels(message.channel, message.message, "retry").inc()
        log.warning(
            "outbox backoff", attempts=message.attempts, retry_in_s=int(wait.total_seconds()), error=message.last_error
        )


def _count_crashed_attempt(
    session: Session,
    message_id: int,
    error: BaseException,
    *,
    clock: Callable[[], datetime],
    max_attempts: int,
    report: DeliveryReport,
) -> None:
    """After an unexpected exception: roll the attempt's changes back (the attempt itself was
    counted with the lease), then back the message off on its own."""
    session.rollback()
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update(skip_locked=True)
    ).first()
    if message is None or message.status is not OutboxStatus.PENDING:
        session.rollback()  # another worker holds it, or it was dealt with meanwhile
        return
    summary = "".join(traceback.format_exception_only(type(error), error)).strip()
    _failed(
        message, f"unexpected error: {summary}", permanent=False, max_attempts=max_attempts, now=clock(), report=report
    )
    session.commit()


def _forget_if_erased(message: OutboxMessage, forgotten: Callable[[OutboxMessage], None] | None) -> None:
    """A message sent to an address being erased keeps neither the address nor the variables."""
    if message.message not in FORGOTTEN_ONCE_SENT:
        return
    forget(message)
    security_log.info("erasure: confirmation %s sent; its recipient and variables anonymised", message.id)
    if forgotten is not None:
        forgotten(message)


def deliver_due(
    session: Session,
    send: Callable[[OutboxMessage], None],
    *,
    clock: Callable[[], datetime],
    max_attempts: int,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    lease: timedelta = LEASE,
    unrecorded: dict[int, datetime] | None = None,
    forgotten: Callable[[OutboxMessage], None] | None = None,
) -> DeliveryReport:
    """Send every due message once; each outcome is committed before the next message is claimed.

    ``should_stop`` is asked before each claim: a stop request lets the current message finish.
    Database errors (the connection is gone) are raised to the caller, whose loop reconnects.
    ``unrecorded`` (kept by the caller across rounds): messages sent whose "sent" the database did
    not take; they are recorded first.
    ``forgotten``: called, in the transaction that records it sent, for each erasure confirmation
    whose recipient and variables were just anonymised (the caller's security log).
    """
    report = DeliveryReport()
    unrecorded = {} if unrecorded is None else unrecorded
    if unrecorded:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(list(unrecorded)), OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENT, last_error="")
        )
        for message_id, sent_at in unrecorded.items():
            session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(sent_at=sent_at))
        for sent in session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.id.in_(list(unrecorded)),
                OutboxMessage.status == OutboxStatus.SENT,
                OutboxMessage.message.in_(FORGOTTEN_ONCE_SENT),
                OutboxMessage.recipient.not_like(f"%@{ERASED_DOMAIN}"),
            )
        ):
            _forget_if_erased(sent, forgotten)
        session.commit()
        log.warning("outbox sent messages recorded after the database came back", count=len(unrecorded))
        unrecorded.clear()
    while (limit is None or report.attempts < limit) and not should_stop():
        message = claim_next(session, clock())
        if message is None:
            break
        context = {"outbox_id": message.id, "channel": message.channel, "kind": message.message}
        if message.request_id:
            context["request_id"] = message.request_id  # the request that queued it
        with bound_contextvars(**context):
            message.attempts += 1
            message.next_attempt_at = clock() + lease
            message_id, channel = message.id, message.channel
            session.commit()  # the lease: others leave it alone from here, whatever becomes of this connection
            log.info("outbox attempt", attempt=message.attempts, recipient=message.recipient)
            started = time.perf_counter()
            try:
                send(message)
            except TemporaryFailure as error:
                _failed(message, str(error), permanent=False, max_attempts=max_attempts, now=clock(), report=report)
            except PermanentFailure as error:
                _failed(message, str(error), permanent=True, max_attempts=max_attempts, now=clock(), report=report)
            except DATABASE_GONE:
                raise
            except DBAPIError as error:
                if error.connection_invalidated:
                    raise
                log.exception("outbox attempt crashed")
                _count_crashed_attempt(
                    session, message_id, error, clock=clock, max_attempts=max_attempts, report=report
                )
                continue
            except Exception as error:
                log.exception("outbox attempt crashed")
                _count_crashed_attempt(
                    session, message_id, error, clock=clock, max_attempts=max_attempts, report=report
                )
                continue
            else:
                message.status = OutboxStatus.SENT
                message.sent_at = clock()
                message.last_error = ""
                _forget_if_erased(message, forgotten)
                report.sent += 1
                metrics.OUTBOX_DELIVERIES.labels(message.channel, message.message, "sent").inc()
                log.info(
                    "outbox delivered",
                    attempt=message.attempts,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
                try:
                    session.commit()
                except DATABASE_GONE:
                    unrecorded[message_id] = clock()
                    raise
                except DBAPIError as error:
                    if error.connection_invalidated:
                        unrecorded[message_id] = clock()
                    raise
                continue
            finally:
                metrics.OUTBOX_DELIVERY_TIME.labels(channel).observe(time.perf_counter() - started)
            session.commit()
    session.rollback()  # release the claim query's transaction when nothing was due
    return report
