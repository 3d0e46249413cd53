"""How a rendered message leaves: over SMTP with Flask-Mail, or as an .eml file.

Flask-Mail opens its SMTP connection without a timeout and has no retry of its own, so the
connection is opened here with a timeout, and SMTP answers are sorted into "try again later"
(4xx, connection problems) and "give up" (5xx).
"""

from __future__ import annotations

import base64
import smtplib
from email.charset import QP, Charset
from email.mime.text import MIMEText
from email.utils import formataddr, parseaddr
from pathlib import Path

from flask_mail import Connection, Message

from portal.outbox.kit import Rendered
from portal.outbox.models import OutboxMessage
from portal.outbox.worker import PermanentFailure, TemporaryFailure


class KitMessage(Message):
    """Flask-Mail's message with its text parts in quoted-printable.

    Flask-Mail sends UTF-8 bodies as raw 8-bit, and SMTP refuses lines over 998 bytes: an inlined
    HTML table or a Chinese paragraph (3 bytes a character, no spaces) easily has them.
    """

    def _mimetext(self, text, subtype: str = "plain") -> MIMEText:
        utf8 = Charset("utf-8")
        utf8.body_encoding = QP
        # typeshed allows only a charset's name, but MIMEText hands a Charset on to set_payload, which takes one.
        return MIMEText(text or "", _subtype=subtype, _charset=utf8)  # type: ignore[arg-type]

    def _message(self):
        # Flask-Mail encodes a non-ASCII subject with email.header.Header, whose folding can leave a
        # space between two encoded words, where every reader drops it ("[RF-…]我们…"); the SMTP policy's
        # own folder loses it too (Python 3.11). Encoded here, every space sits inside a word.
        subject = self.subject
        self.subject = encoded_subject(subject) if subject else subject
        try:
            msg = super()._message()
        finally:
            self.subject = subject
        # The From name is encoded only when it needs to be (Flask-Mail encodes even plain ASCII).
        del msg["From"]
        msg["From"] = formataddr(
            self.sender if isinstance(self.sender, tuple) else parseaddr(self.sender), charset="utf-8"
        )
        if self.attachments or msg.get_content_type() != "multipart/mixed":
            return msg
        # Nothing attached: a plain multipart/alternative, not one wrapped in an empty multipart/mixed.
        [alternative] = msg.get_payload()
        for name, value in msg.raw_items():  # as written (items() would decode the encoded subject)
            if name.lower() not in ("content-type", "mime-version", "content-transfer-encoding"):
                alternative[name] = value
        alternative.policy = msg.policy  # SMTP's CRLF line endings, as Flask-Mail sets on its own
        return alternative


# UTF-8 bytes per encoded word: "=?utf-8?b?" + 52 base64 characters + "?=" is 64 characters, so
# "Subject: " and the first word stay within 78 and no line is folded again on the way out.
WORD_BYTES = 39


def encoded_subject(subject: str) -> str:
    """A subject folded by hand, in lines the SMTP policy sends as they are. ASCII is folded at its
    spaces (unfolding gives each space back); anything else becomes RFC 2047 encoded words, one per
    line, split between characters, never at a space: the whitespace between encoded words is
    dropped by readers, whitespace inside them is kept."""
    if subject.isascii():
        lines = [""]
        for word in subject.split(" "):
            limit = 78 - len("Subject: ") if len(lines) == 1 else 77
            if lines[-1] and len(lines[-1]) + 1 + len(word) > limit:
                lines.append(word)
            else:
                lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
        return "\r\n ".join(lines)
    words, word = [], ""
    for char in subject:
        if len((word + char).encode()) > WORD_BYTES:
            words.append(word)
            word = char
        else:
            word += char
    words.append(word)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode('ascii')}?=" for w in words)


def build_message(outbox: OutboxMessage, rendered: Rendered, sender, reply_to: str | None = None) -> Message:
    """``reply_to``: the request's reply address (replies land on the request), when inbound mail is set up."""
    message = KitMessage(
        subject=rendered.subject,
        recipients=[outbox.recipient],
        body=rendered.text,
        html=rendered.html,
        sender=sender,
        reply_to=reply_to,
        extra_headers={
            "Content-Language": outbox.locale,
            # Transactional mail: out-of-office replies should not answer it
            # (RFC 3834, and Exchange's own header).
            "Auto-Submitted": "auto-generated",
            "X-Auto-Response-Suppress": "All",
            # Every later email of a request answers its first one: one thread.
            **({"In-Reply-To": outbox.thread_root, "References": outbox.thread_root} if outbox.thread_root else {}),
        },
    )
    message.msgId = outbox.message_id
    for attachment in rendered.attachments:
        message.attach(attachment.filename, attachment.content_type, attachment.data)
    return message


class _TimeoutConnection(Connection):
    def __init__(self, mail, timeout: float):
        super().__init__(mail)
        self.timeout = timeout

    def configure_host(self):
        mail = self.mail
        if mail.use_ssl:
            host = smtplib.SMTP_SSL(mail.server, mail.port, timeout=self.timeout)
        else:
            host = smtplib.SMTP(mail.server, mail.port, timeout=self.timeout)
        host.set_debuglevel(int(mail.debug))
        if mail.use_tls:
            host.starttls()
        if mail.username and mail.password:
            host.login(mail.username, mail.password)
        return host


class SMTPTransport:
    def __init__(self, mail_state, *, sender, timeout: float):
        self.mail = mail_state
        self.sender = sender
        self.timeout = timeout

    def describe(self) -> str:
        return f"SMTP {self.mail.server}:{self.mail.port}"

    def send(self, outbox: OutboxMessage, rendered: Rendered, reply_to: str | None = None) -> None:
        message = build_message(outbox, rendered, self.sender, reply_to)
        try:
            with _TimeoutConnection(self.mail, self.timeout) as connection:
                # Bounces go to the envelope sender: the reply address brings them back to the request.
                connection.send(message, envelope_from=reply_to)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            failure = PermanentFailure if codes and all(code >= 500 for code in codes) else TemporaryFailure
            raise failure(f"recipient refused: {error.recipients}") from None
        except smtplib.SMTPAuthenticationError as error:
            # The server's settings are wrong, not the message: keep it until they are fixed.
            raise TemporaryFailure(f"SMTP login failed: {error.smtp_code} {error.smtp_error!r}") from None
        except smtplib.SMTPResponseException as error:
            failure = PermanentFailure if error.smtp_code >= 500 else TemporaryFailure
            raise failure(f"SMTP {error.smtp_code} {error.smtp_error!r}") from None
        except (smtplib.SMTPException, OSError) as error:  # refused, reset, timed out, disconnected
            raise TemporaryFailure(f"{type(error).__name__}: {error}") from None


class FileTransport:
    """The embedded default: each message becomes ``OUTBOX_DIR/<id>-<message>.eml``.

    A retry rewrites the same file, so there is never a second copy of one email.
    """

    def __init__(self, folder: Path, *, sender):
        self.folder = Path(folder)
        self.sender = sender

    def describe(self) -> str:
        return f"files in {self.folder}"

    def path_for(self, outbox: OutboxMessage) -> Path:
        return self.folder / f"{outbox.id:06d}-{outbox.message}.eml"

    def send(self, outbox: OutboxMessage, rendered: Rendered, reply_to: str | None = None) -> None:
        message = build_message(outbox, rendered, self.sender, reply_to)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.path_for(outbox)
            partial = path.with_suffix(".eml.partial")
            partial.write_bytes(message.as_bytes())
            partial.replace(path)
        except OSError as error:
            raise TemporaryFailure(f"could not write the file: {error}") from None
