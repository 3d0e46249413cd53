"""Receive one message: match it to a request, sort out what a person wrote from what a machine
sent, and put the customer's words and documents on the request.

The caller (``portal mail receive``, ``portal mail serve``) commits once when the outcome is
accepted and rolls back otherwise. No Flask here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.core.vocabulary import CLOSED_STATES, Actor, RequestState
from portal.documents.models import Document
from portal.documents.storage import Storage
from portal.documents.uploads import (
    INBOUND_OWNER,
    MAX_FILES,
    TOO_MANY,
    StoredFile,
    UploadRejected,
    discard,
    move_into,
    stage_upload,
    staging_prefix,
)
from portal.inbound.models import InboundMessage
from portal.inbound.parsing import Malformed, Parsed, auto_reply, bounced_addresses, parse
from portal.outbox.models import OutboxMessage
from portal.refunds import filing
from portal.refunds.links import Links
from portal.refunds.models import InformationRequest, RefundRequest

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # a reply, now on the request's timeline
    AUTO_REPLY = "auto_reply"  # an out-of-office or other automatic answer: ignored
    BOUNCE = "bounce"  # a delivery-status report: the address marked undeliverable
    LOOP = "loop"  # our own mail coming back, or too many messages from one address: ignored
    UNKNOWN_RECIPIENT = "unknown_recipient"  # no token, a forged one, or no such request
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"

    @property
    def taken(self) -> bool:
        """Whether the message is accepted (delivered, even if ignored): the MTA must not bounce it."""
        return self in (Outcome.ACCEPTED, Outcome.AUTO_REPLY, Outcome.BOUNCE, Outcome.LOOP)


@dataclass(frozen=True)
class Settings:
    # Where documents live; attachments are staged under staging/inbound/ until the reply is kept.
    storage: Storage
    max_bytes: int = 25 * 1024 * 1024
    loop_limit: int = 10
    loop_window: timedelta = timedelta(minutes=10)
    # Our own sending addresses: mail from them is our own coming back.
    own_addresses: frozenset[str] = frozenset()

    @property
    def staging(self) -> str:
        return staging_prefix(INBOUND_OWNER)


@dataclass
class Received:
    outcome: Outcome
    detail: str = ""
    request: RefundRequest | None = None
    record: InboundMessage | None = None
    documents: list[StoredFile] = field(default_factory=list)


def token_of(address: str, links: Links) -> str | None:
    """The token of a reply address (``reply+TOKEN@inbound domain``), or None for any other address."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local.lower().startswith("reply+"):
        return None
    if links.inbound_domain and domain.lower() != links.inbound_domain.lower():
        return None
    return local[len("reply+") :]


def request_for_address(session: Session, address: str, links: Links) -> RefundRequest | None:
    """The request a reply address belongs to; None for a malformed, forged or unknown token.

    ``portal mail serve`` asks this at RCPT TO, so a forged address is refused before any data."""
    token = token_of(address, links)
    reference = links.reference_for_reply_token(token) if token else None
    if reference is None:
        return None
    return session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))


def _by_references(session: Session, parsed: Parsed) -> RefundRequest | None:
    """The fallback: a Message-ID we sent (each is recorded in the outbox) named in In-Reply-To or References."""
    if not parsed.references:
        return None
    found = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.message_id.in_(parsed.references[:50]),
            OutboxMessage.channel == "email",
            OutboxMessage.refund_request_id.is_not(None),
        )
    ).all()
    by_id = {m.message_id: m for m in found}
    for reference in parsed.references:
        if reference in by_id:
            return by_id[reference].refund_request
    return None


def receive(
    session: Session,
    raw: bytes,
    *,
    links: Links,
    settings: Settings,
    now: datetime,
    envelope_recipients: list[str] | tuple[str, ...] = (),
) -> Received:
    if len(raw) > settings.max_bytes:
        return Received(Outcome.TOO_LARGE, f"message of {len(raw)} bytes; at most {settings.max_bytes}")
    try:
        parsed = parse(raw)
    except Malformed as error:
        return Received(Outcome.MALFORMED, str(error))

    addresses = list(envelope_recipients) or parsed.recipients
    tokens = [address for address in addresses if token_of(address, links) is not None]
    matched_by = "token"
    request: RefundRequest | None = None
    if tokens:
        request = next((r for r in (request_for_address(session, a, links) for a in tokens) if r is not None), None)
        if request is None:
            return Received(Outcome.UNKNOWN_RECIPIENT, f"unknown or forged reply address {tokens[0]}")
    else:
        request = _by_references(session, parsed)
        matched_by = "references"
        if request is None:
            return Received(Outcome.UNKNOWN_RECIPIENT, "no reply address and no Message-ID of ours")
    customer = request.order.customer

    def record(kind: str, **values: object) -> InboundMessage:
        message = InboundMessage(
            refund_request=request,
            kind=kind,
            matched_by=matched_by,
            message_id=parsed.message_id,
            sender=parsed.sender[:320],
            subject=parsed.subject,
            received_at=now,
            **values,
        )
        session.add(message)
        session.flush()
        return message

    # A bounce first: delivery reports often carry Auto-Submitted too.
    bounce = bounced_addresses(parsed)
    if bounce is not None:
        temporary, permanent = bounce
        if permanent and (matched_by == "token" or customer.email.lower() in permanent):
            customer.email_undeliverable_at = now
            customer.email_undeliverable_reason = _diagnostic(parsed.message)[:1000]
        log.info("bounce for %s: permanent %s, temporary %s", request.reference, sorted(permanent), sorted(temporary))
        return Received(
            Outcome.BOUNCE,
            "permanent" if permanent else "temporary",
            request,
            record("bounce", text=_diagnostic(parsed.message)[:2000]),
        )

    if _ours(session, parsed, links, settings):
        return Received(Outcome.LOOP, "our own message came back", request, record("loop"))
    recent = (
        session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.sender == parsed.sender, InboundMessage.received_at > now - settings.loop_window)
        )
        or 0
    )
    if recent >= settings.loop_limit:
        log.warning("loop guard: %s messages from %s within %s", recent, parsed.sender, settings.loop_window)
        return Received(
            Outcome.LOOP, f"{recent} messages from {parsed.sender} in {settings.loop_window}", request, record("loop")
        )

    if auto_reply(parsed):
        return Received(Outcome.AUTO_REPLY, "automatic answer ignored", request, record("auto_reply"))

    if matched_by == "references" and parsed.sender != customer.email.lower():
        return Received(Outcome.UNKNOWN_RECIPIENT, "no reply address, and not from the request's customer")
    return _reply(session, request, parsed, record, links=links, settings=settings, now=now)


def _ours(session: Session, parsed: Parsed, links: Links, settings: Settings) -> bool:
    if parsed.sender in settings.own_addresses:
        return True
    if links.inbound_domain and parsed.sender.endswith("@" + links.inbound_domain.lower()):
        return True
    if links.inbound_domain and parsed.header("X-Loop").strip().lower() == links.inbound_domain.lower():
        return True
    return (
        bool(parsed.message_id)
        and session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_id == parsed.message_id)) is not None
    )


def _diagnostic(message: EmailMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            lines: list[str] = []
            blocks = part.get_payload()
            for block in blocks if isinstance(blocks, list) else []:
                if not isinstance(block, Message):
                    continue
                for name in ("Final-Recipient", "Action", "Status", "Diagnostic-Code"):
                    if block.get(name):
                        lines.append(f"{name}: {' '.join(str(block.get(name)).split())}")
            if lines:
                return "\n".join(lines)
    return " ".join(str(message.get("Subject", "")).split())


def _reply(
    session: Session,
    request: RefundRequest,
    parsed: Parsed,
    record: Callable[..., InboundMessage],
    *,
    links: Links,
    settings: Settings,
    now: datetime,
) -> Received:
    stored: list[StoredFile] = []
    refused: list[dict[str, str]] = []
    for attachment in parsed.attachments:
        if len(stored) >= MAX_FILES:
            refused.append({"name": attachment.filename, "problem": TOO_MANY, "count": str(MAX_FILES)})
            continue
        try:
            stored.append(
                stage_upload(
                    io.BytesIO(attachment.data), attachment.filename, settings.storage, prefix=settings.staging
                )
            )
        except UploadRejected as rejected:
            refused.append(
                {
                    "name": attachment.filename,
                    "problem": rejected.message,
                    **{k: str(v) for k, v in rejected.params.items()},
                }
            )
    answered = False
    if request.state is RequestState.AWAITING_CUSTOMER:
        documents = _fill_checklist(session, request, stored)
        try:
            filing.answer_information_request(
                session, request, parsed.text, documents, now=now, links=links, storage=settings.storage
            )
            answered = True
        except filing.FilingError as error:
            log.info("reply to %s did not answer its questions: %s", request.reference, error)
    if not answered:
        for file in stored:
            session.add(
                Document(
                    refund_request=request,
                    original_name=file.original_name,
                    stored_name=file.stored_name,
                    content_type=file.content_type,
                    size=file.size,
                    sha256=file.sha256,
                    uploaded_by=Actor.CUSTOMER,
                    created_at=now,
                )
            )
    message = record("reply", text=parsed.text, refused_attachments=refused, answered=answered)
    if not answered:
        for file in stored:
            move_into(file, settings.storage)
    if request.state in CLOSED_STATES:
        log.info("reply to closed request %s recorded", request.reference)
    return Received(Outcome.ACCEPTED, "answered" if answered else "recorded", request, message, stored)


def _fill_checklist(session: Session, request: RefundRequest, stored: list[StoredFile]) -> list[StoredFile]:
    """Attachments answer the documents asked for, in the order they were asked for."""
    info = session.scalar(
        select(InformationRequest)
        .where(InformationRequest.refund_request_id == request.id, InformationRequest.answered_at.is_(None))
        .order_by(InformationRequest.id.desc())
    )
    wanted = [item["key"] for item in (info.items if info else []) if item.get("kind") == "document"]
    filled: list[StoredFile] = []
    for index, file in enumerate(stored):
        slot = wanted[index] if index < len(wanted) else None
        filled.append(StoredFile(**{**file.to_dict(), "checklist_item": slot}))
    return filled


def discard_staged(received: Received, settings: Settings) -> None:
    """After a rollback: the staged files of a message that was not kept."""
    for file in received.documents:
        discard(file, settings.storage)
