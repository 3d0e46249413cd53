"""Flask glue for inbound email: the settings, one message received and committed, and the
LMTP/SMTP listener of ``portal mail serve`` (aiosmtpd)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask, current_app

from portal.inbound.receiving import Outcome, Received, Settings, discard_staged, receive, request_for_address
from portal.web.extensions import db
from portal.web.links import links
from portal.web.storage import storage

log = logging.getLogger(__name__)

# sysexits.h: what an MTA's pipe transport understands.
EX_OK, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 0, 65, 67, 75
EXIT_CODES = {Outcome.UNKNOWN_RECIPIENT: EX_NOUSER, Outcome.MALFORMED: EX_DATAERR, Outcome.TOO_LARGE: EX_DATAERR}


def inbound_settings() -> Settings:
    config = current_app.config
    sender = config.get("MAIL_DEFAULT_SENDER")
    own = parseaddr(sender if isinstance(sender, str) else f"{sender[0]} <{sender[1]}>")[1].lower() if sender else ""
    return Settings(
        storage=storage(),
        max_bytes=int(config["INBOUND_MAX_BYTES"]),
        loop_limit=int(config["INBOUND_LOOP_LIMIT"]),
        loop_window=timedelta(minutes=float(config["INBOUND_LOOP_WINDOW_MINUTES"])),
        own_addresses=frozenset({own} - {""}),
    )


def receive_message(raw: bytes, recipients: list[str] | tuple[str, ...] = ()) -> Received:
    """Receive one message and commit what it changed (or roll back when it is refused)."""
    settings = inbound_settings()
    try:
        received = receive(
            db.session(), raw, links=links(), settings=settings, now=datetime.now(UTC), envelope_recipients=recipients
        )
    except BaseException:
        db.session.rollback()
        raise
    if received.outcome.taken:
        db.session.commit()
    else:
        db.session.rollback()
        discard_staged(received, settings)
    reference = received.request.reference if received.request is not None else "-"
    log.info("inbound message: %s (%s) for %s", received.outcome.value, received.detail, reference)
    return received


def exit_code(received: Received) -> int:
    return EXIT_CODES.get(received.outcome, EX_OK)


# -- portal mail serve ----------------------------------------------------------------------------

SMTP_REPLIES = {
    Outcome.UNKNOWN_RECIPIENT: "550 5.1.1 No such reply address: unknown or forged token",
    Outcome.MALFORMED: "554 5.6.0 Message could not be read",
    Outcome.TOO_LARGE: "552 5.3.4 Message too big",
}


class InboundHandler:
    """aiosmtpd's handler: recipients checked at RCPT TO, the message received at DATA.

    The database work runs in a worker thread inside the app's context, so the event loop keeps
    serving other connections."""

    def __init__(self, app: Flask):
        self.app = app
        with app.app_context():
            self.max_bytes = int(app.config["INBOUND_MAX_BYTES"])

    def _in_app(self, work, *args):
        def run():
            with self.app.app_context():
                try:
                    return work(*args)
                finally:
                    db.session.remove()

        return asyncio.get_running_loop().run_in_executor(None, run)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        for option in mail_options:
            name, _, value = option.partition("=")
            if name.upper() == "SIZE" and value.isdigit() and int(value) > self.max_bytes:
                return "552 5.3.4 Message too big"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        def known() -> bool:
            return request_for_address(db.session(), address, links()) is not None

        if not await self._in_app(known):
            return SMTP_REPLIES[Outcome.UNKNOWN_RECIPIENT]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self.max_bytes:
            return SMTP_REPLIES[Outcome.TOO_LARGE]
        try:
            received = await self._in_app(receive_message, raw, tuple(envelope.rcpt_tos))
        except Exception:
            log.exception("inbound message could not be stored")
            return "451 4.3.0 Temporary failure, try again later"
        return SMTP_REPLIES.get(received.outcome, "250 2.0.0 OK")


class _LMTPController(Controller):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


def listener(app: Flask, *, host: str, port: int, protocol: str = "lmtp") -> Controller:
    """A started-on-demand listener; ``protocol`` is "lmtp" (behind an MTA) or "smtp"."""
    handler = InboundHandler(app)
    # aiosmtpd's own hard limit sits above ours, so our 552 5.3.4 is what an oversized message gets.
    limit = handler.max_bytes * 2 + 65536
    controller_class = _LMTPController if protocol == "lmtp" else Controller
    return controller_class(
        handler, hostname=host, port=port, data_size_limit=limit, ident="refund-portal inbound", server_hostname=host
    )
