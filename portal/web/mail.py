"""Flask glue for the email kit and the outbox: one kit and one transport per app."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from flask import current_app
from flask_mail import Mail
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from portal.accounts.sessions import Event, record
from portal.core import metrics
from portal.core.brand import load_brand
from portal.core.database import utcnow
from portal.core.paths import resource_dir
from portal.core.vocabulary import RefundStatus
from portal.documents.storage import StorageError
from portal.outbox import webhooks
from portal.outbox.kit import Attachment, EmailKit, KitError, Rendered
from portal.outbox.models import OutboxMessage
from portal.outbox.worker import (
    DATABASE_GONE,
    DeliveryReport,
    PermanentFailure,
    StopFlag,
    TemporaryFailure,
    deliver_due,
)
from portal.refunds import lifecycle
from portal.refunds.models import Receipt, Refund
from portal.refunds.receipts import ReceiptData, ReceiptRenderer, issue_receipt, receipt_pdf
from portal.web.extensions import db
from portal.web.links import links
from portal.web.policy import clause_title, current_policy
from portal.web.storage import download, storage
from portal.web.transport import FileTransport, SMTPTransport

KIT = "email_kit"
TRANSPORT = "email_transport"
RECEIPTS = "receipt_renderer"

mail = Mail()
log = structlog.get_logger("portal.outbox")


def init_app(app) -> None:
    brand = load_brand()
    if not app.config.get("MAIL_DEFAULT_SENDER"):
        app.config["MAIL_DEFAULT_SENDER"] = (brand["company_name"], brand["support_email"])
    state = mail.init_app(app)
    app.extensions[KIT] = EmailKit(
        resource_dir("emails"), resource_dir("translations"), base_url=app.config["BASE_URL"], brand=brand
    )
    sender = app.config["MAIL_DEFAULT_SENDER"]
    if app.config.get("MAIL_SERVER"):
        app.extensions[TRANSPORT] = SMTPTransport(state, sender=sender, timeout=float(app.config["MAIL_TIMEOUT"]))
    else:
        app.extensions[TRANSPORT] = FileTransport(app.config["OUTBOX_DIR"], sender=sender)


def email_kit() -> EmailKit:
    return current_app.extensions[KIT]


def transport():
    return current_app.extensions[TRANSPORT]


class TimedReceiptRenderer(ReceiptRenderer):
    """The receipt renderer, with each PDF's render time logged and counted."""

    def pdf(self, data: ReceiptData) -> bytes:
        started = time.perf_counter()
        pdf = super().pdf(data)
        seconds = time.perf_counter() - started
        locale = getattr(data, "locale", "") or ""
        metrics.RECEIPT_RENDER.labels(locale).observe(seconds)
        log.info(
            "receipt rendered",
            number=getattr(data, "number", None),
            locale=locale,
            duration_ms=round(seconds * 1000, 1),
            size=len(pdf),
        )
        return pdf


def receipt_renderer() -> ReceiptRenderer:
    renderer = current_app.extensions.get(RECEIPTS)
    if renderer is None:
        renderer = current_app.extensions[RECEIPTS] = TimedReceiptRenderer(
            resource_dir("templates") / "receipts",
            resource_dir("translations"),
            dict(load_brand()),
            logo=resource_dir("static") / "logo.png",
        )
    return renderer


def clause_title_for(clause_id: str, locale: str) -> str:
    for version in reversed(current_policy().versions):
        try:
            return clause_title(version.clause(clause_id), locale)
        except KeyError:
            continue
    return clause_id


def receipt_for(request) -> Receipt | None:
    """The request's receipt, issued now if the refund succeeded and none exists yet."""
    refund = db.session.scalar(
        select(Refund)
        .where(Refund.refund_request_id == request.id, Refund.status == RefundStatus.SUCCEEDED)
        .order_by(Refund.id.desc())
    )
    if refund is None:
        return None
    existing = db.session.scalar(select(Receipt.id).where(Receipt.refund_id == refund.id))
    receipt = issue_receipt(db.session(), refund, receipt_renderer(), clause_title_for, storage())
    if existing is None:
        log.info("receipt issued", receipt=receipt.number, reference=request.reference, refund_id=refund.id)
    return receipt


def issued_receipt(request) -> Receipt | None:
    """The receipt if it has been issued already; pages never make one (that is the worker's job)."""
    return db.session.scalar(
        select(Receipt)
        .join(Refund, Receipt.refund_id == Refund.id)
        .where(Refund.refund_request_id == request.id)
        .order_by(Receipt.id.desc())
    )


def receipt_response(receipt: Receipt):
    """The stored bytes, as a download: the same file every time it is asked for."""
    return download(
        receipt.storage_key,
        sha256=receipt.sha256,
        size=receipt.size,
        filename=receipt.filename,
        mimetype="application/pdf",
    )


def attachments_for(outbox: OutboxMessage) -> tuple:
    """Files that go with a message: the PDF receipt of a refunded request, issued here if need be."""
    if outbox.message != "refunded" or outbox.refund_request is None:
        return ()
    receipt = receipt_for(outbox.refund_request)
    if receipt is None:
        return ()
    return (Attachment(receipt.filename, "application/pdf", receipt_pdf(storage(), receipt)),)


def render_outbox_message(outbox: OutboxMessage) -> Rendered:
    try:
        return email_kit().render(
            outbox.message, outbox.locale, attachments=attachments_for(outbox), **outbox.variables
        )
    except KitError as error:
        # A template or its declaration is wrong: retrying the same render cannot help. The message
        # waits, dead and visible to staff, until someone fixes the kit and sends it again.
        raise PermanentFailure(str(error)) from None
    except StorageError as error:
        # The receipt could not be stored or read back (storage down, or its bytes do not match): the
        # message waits and is tried again with the usual backoff.
        raise TemporaryFailure(f"receipt storage: {error}") from None


def send_outbox_message(outbox: OutboxMessage) -> None:
    if outbox.channel == "webhook":
        webhooks.deliver(outbox, timeout=float(current_app.config["WEBHOOK_TIMEOUT"]))
        return
    request = outbox.refund_request
    reply_to = links().reply_address(request.reference) if request is not None else None
    transport().send(outbox, render_outbox_message(outbox), reply_to=reply_to)
    if (
        outbox.message == "acknowledgement"
        and outbox.refund_request is not None
        and outbox.refund_request.acknowledged_at is None
    ):
        # The insights' time to acknowledge runs until the email has really left.
        outbox.refund_request.acknowledged_at = datetime.now(UTC)
        lifecycle.milestone_reached.send(
            db.session(), request=outbox.refund_request, measure="acknowledge", at=outbox.refund_request.acknowledged_at
        )


def record_forgotten(outbox: OutboxMessage) -> None:
    """The staff security log's step of an erasure that the worker takes: the confirmation, once sent,
    keeps neither the address nor the name (``portal.outbox.worker``)."""
    record(
        db.session(),
        Event.CUSTOMER_ERASED,
        now=utcnow(),
        ip="outbox worker",
        detail=f"erasure confirmation (outbox message {outbox.id}) sent; its recipient and variables anonymised",
    )


def deliver(
    session: Any,
    *,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    unrecorded: dict | None = None,
) -> DeliveryReport:
    return deliver_due(
        session,
        send_outbox_message,
        clock=lambda: datetime.now(UTC),
        max_attempts=int(current_app.config["OUTBOX_MAX_ATTEMPTS"]),
        limit=limit,
        should_stop=should_stop,
        lease=timedelta(seconds=float(current_app.config["OUTBOX_LEASE_SECONDS"])),
        unrecorded=unrecorded,
        forgotten=record_forgotten,
    )


def database_gone(error: BaseException) -> bool:
    """The database is down, restarting or unreachable: not this message's fault."""
    if isinstance(error, (*DATABASE_GONE, PoolTimeout)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class DatabaseUnavailable(RuntimeError):
    pass


def run_worker(
    *, watch: bool, interval: float, stop: StopFlag, chores: Callable[[], None] | None = None
) -> DeliveryReport:
    """The outbox worker's loop, inside an app context: chores, then every due message, per round.

    With ``watch`` it runs until ``stop`` (a StopFlag) is set (SIGTERM: the current message is finished
    first). A database that stops answering is logged and waited for, with growing pauses up to a
    minute, and the loop picks up again when it answers. Without ``watch`` one round is made and
    a database failure raises :class:`DatabaseUnavailable`.
    """
    total = DeliveryReport()
    failures = 0
    unrecorded: dict = {}  # sent while the database went away: recorded as soon as it answers
    while not stop.is_set():
        try:
            if chores is not None:
                chores()
            report = deliver(db.session(), should_stop=stop.is_set, unrecorded=unrecorded)
        except Exception as error:
            if not database_gone(error):
                raise
            failures += 1
            metrics.OUTBOX_DATABASE_ERRORS.inc()
            pause = min(interval * 2 ** min(failures, 6), 60.0)
            log.error(
                "outbox database unavailable",
                error=f"{type(error).__name__}: {str(error).splitlines()[0]}",
                failures=failures,
                retry_in_s=round(pause, 1),
            )
            _discard_session()
            if not watch:
                raise DatabaseUnavailable(str(error).splitlines()[0]) from None
            stop.wait(pause)
            continue
        finally:
            _discard_session()
        if failures:
            log.info("outbox database reachable again", after_failures=failures)
            failures = 0
        metrics.OUTBOX_ROUND.set(time.time())
        total.sent, total.retried, total.dead = (
            total.sent + report.sent,
            total.retried + report.retried,
            total.dead + report.dead,
        )
        if report.attempts:
            log.info("outbox round", sent=report.sent, retried=report.retried, dead=report.dead)
        if not watch:
            break
        stop.wait(interval)
    return total


def _discard_session() -> None:
    try:
        db.session.remove()
    except Exception:  # closing a connection the server already dropped
        log.debug("outbox session discarded after an error", exc_info=True)
