"""Reading one RFC 5322 message: who, for whom, in reply to what, what it says, what it carries,
and whether a person wrote it (not an auto-reply, not a bounce). No Flask here."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from portal.inbound.trimming import html_to_text, latest_reply

# Subjects of out-of-office answers from programs that set no header, in our three languages.
OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?reply|out of (?:the )?office|autoreply|"
    r"自动回复|自動回覆|休假|"
    r"automatisch antwoord|afwezig|niet aanwezig)\b",
    re.I,
)
MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class Malformed(ValueError):
    """Not an RFC 5322 message we can read."""


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Parsed:
    message: EmailMessage
    sender: str
    recipients: list[str]
    subject: str
    message_id: str
    references: list[str]  # In-Reply-To first, then References, newest first
    text: str
    attachments: list[Attachment] = field(default_factory=list)

    def header(self, name: str) -> str:
        return str(self.message.get(name, "") or "")


def parse(raw: bytes) -> Parsed:
    if not raw.strip():
        raise Malformed("empty message")
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message.defects and not message.keys():
            raise Malformed("no headers")
        sender = parseaddr(str(message.get("From", "") or ""))[1].strip().lower()
        subject = " ".join(str(message.get("Subject", "") or "").split())
        recipients = [
            a.lower()
            for _, a in getaddresses(
                [str(v) for name in ("Delivered-To", "X-Original-To", "To", "Cc") for v in message.get_all(name, [])]
            )
            if a
        ]
        in_reply_to = MESSAGE_ID.findall(str(message.get("In-Reply-To", "") or ""))
        references = list(reversed(MESSAGE_ID.findall(str(message.get("References", "") or ""))))
        message_id = next(iter(MESSAGE_ID.findall(str(message.get("Message-ID", "") or ""))), "")
    except (LookupError, ValueError, TypeError, IndexError) as error:  # undecodable headers
        if isinstance(error, Malformed):
            raise
        raise Malformed(str(error)) from None
    if not message.keys() or not sender:
        raise Malformed("no From address")
    return Parsed(
        message=message,
        sender=sender,
        recipients=recipients,
        subject=subject[:500],
        message_id=message_id[:255],
        references=in_reply_to + [r for r in references if r not in in_reply_to],
        text=_text(message),
        attachments=list(_attachments(message)),
    )


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, ValueError):
        payload = body.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if body.get_content_subtype() == "html":
        content = html_to_text(content)
    return latest_reply(content)[:20000]


def _attachments(message: EmailMessage):  # type: ignore[no-untyped-def]
    for part in message.iter_attachments() if message.is_multipart() else ():
        yield from _walk_attachment(part)


def _walk_attachment(part: Message):  # type: ignore[no-untyped-def]
    if part.is_multipart():  # a forwarded message or a nested alternative: look inside
        for sub in part.iter_attachments() if isinstance(part, EmailMessage) else ():
            yield from _walk_attachment(sub)
        return
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        return
    yield Attachment(part.get_filename() or "attachment", part.get_content_type(), data)


# -- who wrote it ---------------------------------------------------------------------------------


def auto_reply(parsed: Parsed) -> bool:
    """RFC 3834's Auto-Submitted, the Precedence and X-Autoreply conventions, and out-of-office subjects."""
    auto = parsed.header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    if parsed.header("Precedence").strip().lower() in ("bulk", "auto_reply", "junk", "list"):
        return True
    if any(parsed.header(name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response")):
        return True
    if parsed.header("X-Auto-Response-Suppress").strip().lower() in (
        "all",
        "oof",
        "autoreply",
    ) and OUT_OF_OFFICE_SUBJECT.search(parsed.subject):
        return True
    return bool(OUT_OF_OFFICE_SUBJECT.search(parsed.subject))


def bounced_addresses(parsed: Parsed) -> tuple[set[str], set[str]] | None:
    """(temporary, permanent) failures when this is a bounce (flufl.bounce's detectors), else None."""
    message = parsed.message
    looks_like = (
        message.get_content_type() == "multipart/report"
        or parsed.sender.startswith(("mailer-daemon@", "postmaster@"))
        or (not parsed.header("Return-Path").strip("<> ") and parsed.header("Return-Path") != "")
    )
    temporary, permanent = all_failures(message)
    if not temporary and not permanent:
        return (set(), set()) if looks_like else None
    return _addresses(temporary), _addresses(permanent)


def _addresses(found: frozenset[bytes] | frozenset[str]) -> set[str]:
    return {a.decode("utf-8", "replace").lower() if isinstance(a, bytes) else str(a).lower() for a in found}
