"""Flask glue for the email kit and the outbox: one kit and one transport per app."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app
from flask_mail import Mail

from portal.brand import load_brand
from portal.mail.kit import EmailKit, KitError, Rendered
from portal.mail.outbox import DeliveryReport, PermanentFailure, deliver_due
from portal.mail.transport import FileTransport, SMTPTransport
from portal.models import OutboxMessage
from portal.paths import resource_dir

KIT = "email_kit"
TRANSPORT = "email_transport"

mail = Mail()


def init_app(app) -> None:
    brand = load_brand()
    if not app.config.get("MAIL_DEFAULT_SENDER"):
        app.config["MAIL_DEFAULT_SENDER"] = (brand["company_name"], brand["support_email"])
    state = mail.init_app(app)
    app.extensions[KIT] = EmailKit(resource_dir("emails"), resource_dir("translations"),
                                   base_url=app.config["BASE_URL"], brand=brand)
    sender = app.config["MAIL_DEFAULT_SENDER"]
    if app.config.get("MAIL_SERVER"):
        app.extensions[TRANSPORT] = SMTPTransport(state, sender=sender, timeout=float(app.config["MAIL_TIMEOUT"]))
    else:
        app.extensions[TRANSPORT] = FileTransport(app.config["OUTBOX_DIR"], sender=sender)


def email_kit() -> EmailKit:
    return current_app.extensions[KIT]


def transport():
    return current_app.extensions[TRANSPORT]


def attachments_for(outbox: OutboxMessage) -> tuple:
    """Files that go with a message (the receipt of a refunded request)."""
    return ()


def render_outbox_message(outbox: OutboxMessage) -> Rendered:
    try:
        return email_kit().render(outbox.message, outbox.locale, attachments=attachments_for(outbox),
                                  **outbox.variables)
    except KitError as error:
        # A template or its declaration is wrong: retrying the same render cannot help. The message
        # waits, dead and visible to staff, until someone fixes the kit and sends it again.
        raise PermanentFailure(str(error)) from None


def send_outbox_message(outbox: OutboxMessage) -> None:
    transport().send(outbox, render_outbox_message(outbox))


def deliver(session, *, limit: int | None = None) -> DeliveryReport:
    return deliver_due(session, send_outbox_message, clock=lambda: datetime.now(timezone.utc),
                       max_attempts=int(current_app.config["OUTBOX_MAX_ATTEMPTS"]), limit=limit)
