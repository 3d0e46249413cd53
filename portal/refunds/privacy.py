"""The data lifecycle: retention, erasure on request and export (GDPR articles 5, 15, 17 and 20).

- **Retention**: a closed request's documents are deleted ``document_days`` after it closed (the
  timeline says so); receipts are kept ``financial_years`` after their refund, then deleted.
  Refund records, orders and the timeline stay: they are the accounts.
- **Erasure**: the customer's documents are deleted and their personal data (name, email, what
  they wrote) anonymised; orders, refunds and receipts are kept as the law allows, under the
  anonymised customer. Their name and address are replaced wherever staff wrote them on their
  requests (timeline notes, internal notes, questions) and in the emails queued or sent to them
  (the outbox: recipient and variables; waiting ones are cancelled). The confirmation is queued
  to the address before it is erased; the outbox worker anonymises it once it is sent.
- **Export**: everything held about the customer as JSON, with their files, in one zip: orders,
  requests with their timelines, questions, documents and feedback, refunds, the emails queued or
  sent to them, their sign-in links and the one-time portal sessions opened for their orders (the
  callers add what packages above this one hold: replies by email, ``portal.inbound.privacy``).

Services flush; the caller commits. Files are deleted before their rows, so a failure part way
leaves rows pointing at files already gone, which the next run deletes again (deleting a missing
file is not an error), never a file nobody can find. No Flask here.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any, cast

from sqlalchemy import Subquery, Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from portal.core.markers import N_
from portal.core.vocabulary import CLOSED_STATES, Actor, OutboxStatus
from portal.documents.models import Document
from portal.documents.storage import Storage, read_verified, verified_chunks
from portal.documents.uploads import document_key
from portal.orders.models import Customer, MagicLink, MagicLinkRequest, Order, PortalSession
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import ERASED_DOMAIN, queue_email
from portal.refunds.models import (
    Feedback,
    InformationRequest,
    InternalNote,
    Receipt,
    Refund,
    RefundRequest,
    StatusEvent,
)

security_log = logging.getLogger("portal.security")

RETENTION_NOTE = N_("Documents deleted under the retention policy.")
ERASURE_NOTE = N_("Personal data erased at the customer's request.")
ERASED_NAME = "Erased customer"
CANCELLED_BY_ERASURE = "cancelled: the customer's personal data was erased"


@dataclass
class RetentionReport:
    documents: list[tuple[str, str]] = field(default_factory=list)  # (request reference, original name)
    receipts: list[str] = field(default_factory=list)  # receipt numbers
    requests: set[str] = field(default_factory=set)


def closed_at() -> Subquery:
    """When each request last reached a closed state (a subquery: refund_request_id, closed)."""
    return (
        select(StatusEvent.refund_request_id, func.max(StatusEvent.created_at).label("closed"))
        .where(StatusEvent.to_state.in_(CLOSED_STATES))
        .group_by(StatusEvent.refund_request_id)
        .subquery()
    )


def apply_retention(
    session: Session,
    storage: Storage,
    *,
    now: datetime,
    document_days: int,
    financial_years: int,
    dry_run: bool = False,
) -> RetentionReport:
    report = RetentionReport()
    closed = closed_at()
    due = (
        select(RefundRequest)
        .join(closed, closed.c.refund_request_id == RefundRequest.id)
        .where(
            RefundRequest.state.in_(CLOSED_STATES),
            closed.c.closed <= now - timedelta(days=document_days),
            RefundRequest.documents.any(),
        )
        .order_by(RefundRequest.id)
    )
    if not dry_run:
        # Two workers applying retention at once take different requests (PostgreSQL; SQLite has one writer).
        due = due.with_for_update(skip_locked=True, of=RefundRequest)
    for request in session.scalars(due).all():
        report.requests.add(request.reference)
        report.documents += [(request.reference, d.original_name) for d in request.documents]
        if dry_run:
            continue
        _delete_documents(session, storage, request)
        session.add(
            StatusEvent(
                refund_request=request,
                actor=Actor.SYSTEM,
                from_state=request.state,
                to_state=request.state,
                note=RETENTION_NOTE,
                created_at=now,
            )
        )
    expired = (
        select(Receipt)
        .join(Refund, Receipt.refund_id == Refund.id)
        .where(Refund.completed_at <= now - timedelta(days=365 * financial_years + financial_years // 4))
    )
    for receipt in session.scalars(expired).all():
        report.receipts.append(receipt.number)
        if not dry_run:
            storage.delete(receipt.storage_key)
            # Receipts are append-only for the ORM; their end of retention is the one deletion allowed.
            session.execute(delete(Receipt).where(Receipt.id == receipt.id))
    session.flush()
    return report


def _delete_documents(session: Session, storage: Storage, request: RefundRequest) -> int:
    documents = list(request.documents)
    for document in documents:
        storage.delete(document_key(document.stored_name))
        session.delete(document)
    session.flush()
    session.expire(request, ["documents"])
    return len(documents)


def find_customer(session: Session, email: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.email_normalized == Customer.normalize_email(email)))


@dataclass
class ErasureReport:
    customer_id: int
    documents: int = 0
    requests: int = 0
    orders: int = 0
    steps: list[str] = field(default_factory=list)


def erase_customer(
    session: Session,
    storage: Storage,
    customer: Customer,
    *,
    now: datetime,
    actor: str,
    domain: str = "refunds.invalid",
) -> ErasureReport:
    """Erase a customer's personal data and documents; keep the financial records, anonymised."""
    report = ErasureReport(customer.id)
    erased_email = f"erased-{customer.id}@{ERASED_DOMAIN}"
    scrub = scrubber(customer.name, customer.email, name=ERASED_NAME, email=erased_email)

    def step(text: str) -> None:
        report.steps.append(text)
        security_log.info("erasure of customer %s by %s: %s", customer.id, actor, text)

    confirmation = queue_email(
        session,
        "erasure_confirmed",
        customer.email,
        customer.locale or "en",
        {"customer_name": customer.name},
        domain=domain,
    )
    session.flush()
    step("confirmation queued to the customer's address")
    requests = list(session.scalars(select(RefundRequest).join(Order).where(Order.customer_id == customer.id)))
    for request in requests:
        report.documents += _delete_documents(session, storage, request)
        request.details = ""
        session.add(
            StatusEvent(
                refund_request=request,
                actor=Actor.SYSTEM,
                from_state=request.state,
                to_state=request.state,
                note=ERASURE_NOTE,
                created_at=now,
            )
        )
    step(f"{report.documents} document(s) deleted from storage")
    ids = [r.id for r in requests]
    if ids:
        # What the customer wrote: their answers, the notes of their own steps, their feedback.
        # The timeline is append-only for the ORM; erasure is the one edit the law requires.
        session.execute(
            update(InformationRequest).where(InformationRequest.refund_request_id.in_(ids)).values(answer="")
        )
        session.execute(
            update(StatusEvent)
            .where(StatusEvent.refund_request_id.in_(ids), StatusEvent.actor == Actor.CUSTOMER)
            .values(note="")
        )
        session.execute(update(Feedback).where(Feedback.refund_request_id.in_(ids)).values(comment=""))
    step(f"{len(requests)} request(s): details, answers, own notes and feedback comments cleared")
    step(f"name and address scrubbed from {_scrub_request_texts(session, ids, scrub)} note(s) and question(s)")
    anonymised, cancelled = _anonymise_outbox(
        session, customer, ids, scrub, erased_email=erased_email, keep=confirmation.id
    )
    step(f"{anonymised} outbox message(s) anonymised ({cancelled} waiting cancelled)")
    session.execute(delete(MagicLink).where(MagicLink.customer_id == customer.id))
    customer.name = ERASED_NAME
    customer.email = customer.email_normalized = erased_email
    step("name and email anonymised; sign-in links deleted")
    report.requests = len(requests)
    report.orders = len(customer.orders)
    step(f"{report.orders} order(s), their refunds and receipts kept for the accounts")
    session.flush()
    return report


def scrubber(customer_name: str, customer_email: str, *, name: str, email: str) -> Callable[[str], str]:
    """A function that replaces the customer's address (first) and name in a text, ignoring case,
    with ``email`` and ``name``. A name shorter than two characters is left alone: replacing a
    single letter everywhere would wreck the text and hide no one."""
    patterns = [(re.compile(re.escape(customer_email.strip()), re.IGNORECASE), email)]
    if len(customer_name.strip()) >= 2:
        patterns.append((re.compile(re.escape(customer_name.strip()), re.IGNORECASE), name))

    def scrub(text: str) -> str:
        for pattern, replacement in patterns:
            text = pattern.sub(replacement.replace("\\", "\\\\"), text)  # the placeholder, taken as written
        return text

    return scrub


def scrub_values(value: Any, scrub: Callable[[str], str]) -> Any:
    """``value`` (JSON: strings, lists, objects) with ``scrub`` applied to every string in it."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_values(item, scrub) for item in value]
    if isinstance(value, dict):
        return {key: scrub_values(item, scrub) for key, item in value.items()}
    return value


def _scrub_request_texts(session: Session, ids: list[int], scrub: Callable[[str], str]) -> int:
    """Replace the customer's name and address in what staff wrote on their requests: timeline notes
    (a saved reply's ``{customer_name}`` filled in), internal notes, questions. Returns how many rows.

    Timeline events and internal notes are append-only for the ORM (``before_update`` raises), and
    rightly so; erasure is the one edit the law requires, so these are Core UPDATEs on the tables,
    which the ORM's guard does not see, and the guard stays as it is.
    """
    if not ids:
        return 0
    columns = [
        (cast(Table, StatusEvent.__table__), ("note",)),
        (cast(Table, InternalNote.__table__), ("text",)),
        (cast(Table, InformationRequest.__table__), ("message", "answer", "items")),
    ]
    changed = 0
    for table, names in columns:
        rows = session.execute(
            select(table.c.id, *(table.c[name] for name in names)).where(table.c.refund_request_id.in_(ids))
        ).all()
        for row in rows:
            values = {name: scrub_values(row._mapping[name], scrub) for name in names}
            values = {name: value for name, value in values.items() if value != row._mapping[name]}
            if values:
                session.execute(update(table).where(table.c.id == row.id).values(**values))
                changed += 1
    # What the session holds of these rows is stale now: read it again when next asked for.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (StatusEvent, InternalNote, InformationRequest)) and obj.refund_request_id in ids:
            session.expire(obj)
    return changed


def _anonymise_outbox(
    session: Session,
    customer: Customer,
    ids: list[int],
    scrub: Callable[[str], str],
    *,
    erased_email: str,
    keep: int,
) -> tuple[int, int]:
    """The emails to the customer (by address, or about their requests) and the webhook events about
    their requests: the recipient of an email becomes the erased address and the name and address
    are replaced in the variables; an email still waiting is cancelled (dead, with the reason), as
    there is no one to send it to. ``keep``: the erasure's own confirmation, which must still go out
    (the worker anonymises it once sent). Returns (anonymised, cancelled)."""
    addresses = {customer.email.lower(), customer.email_normalized}
    by_address = (OutboxMessage.channel == "email") & func.lower(OutboxMessage.recipient).in_(addresses)
    messages = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id != keep, or_(by_address, OutboxMessage.refund_request_id.in_(ids)))
        .order_by(OutboxMessage.id)
    ).all()
    cancelled = 0
    for message in messages:
        message.variables = scrub_values(message.variables, scrub)
        if message.channel != "email":
            continue  # a webhook's recipient is the subscriber's endpoint; its event is scrubbed above
        message.recipient = erased_email
        if message.status is OutboxStatus.PENDING:
            message.status = OutboxStatus.DEAD
            message.last_error = CANCELLED_BY_ERASURE
            cancelled += 1
    session.flush()
    return len(messages), cancelled


def _row(obj: Any, *names: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = (
            value.isoformat() if isinstance(value, datetime) else (value.value if hasattr(value, "value") else value)
        )
    return out


def customer_record(session: Session, customer: Customer) -> dict[str, Any]:
    """Everything held about the customer, as plain JSON-ready data."""
    orders = []
    for order in customer.orders:
        requests = list(
            session.scalars(select(RefundRequest).where(RefundRequest.order_id == order.id).order_by(RefundRequest.id))
        )
        refunds = list(session.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)))
        orders.append(
            {
                **_row(order, "order_number", "product", "currency", "purchased_at", "payment_reference"),
                "amount": str(order.amount),
                "plan": order.plan.value,
                "channel": order.channel.value,
                "refund_requests": [
                    {
                        **_row(r, "reference", "state", "reason", "details", "locale", "created_at", "updated_at"),
                        "amount_requested": str(r.amount_requested),
                        "timeline": [
                            _row(e, "created_at", "actor", "from_state", "to_state", "note") for e in r.events
                        ],
                        "questions_and_answers": [
                            _row(i, "created_at", "message", "answer", "answered_at") | {"items": i.items}
                            for i in r.information_requests
                        ],
                        "documents": [
                            _row(d, "id", "original_name", "content_type", "size", "sha256", "created_at")
                            for d in r.documents
                        ],
                        "feedback": [
                            _row(f, "rating", "comment", "come_back", "locale", "created_at")
                            for f in session.scalars(select(Feedback).where(Feedback.refund_request_id == r.id))
                        ],
                    }
                    for r in requests
                ],
                "refunds": [
                    {**_row(f, "status", "processor_reference", "created_at", "completed_at"), "amount": str(f.amount)}
                    for f in refunds
                ],
            }
        )
    return {
        "customer": _row(
            customer, "name", "email", "locale", "created_at", "email_undeliverable_at", "email_undeliverable_reason"
        ),
        "orders": orders,
        **_contact_record(session, customer),
    }


def _contact_record(session: Session, customer: Customer) -> dict[str, Any]:
    """What the portal holds about its contact with the customer besides their requests."""
    requests = select(RefundRequest.id).join(Order).where(Order.customer_id == customer.id)
    addresses = {customer.email, customer.email_normalized}
    emails = session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == "email",
            OutboxMessage.recipient.in_(addresses) | OutboxMessage.refund_request_id.in_(requests),
        )
        .order_by(OutboxMessage.id)
    )
    links = session.scalars(select(MagicLink).where(MagicLink.customer_id == customer.id).order_by(MagicLink.id))
    link_requests = session.scalars(
        select(MagicLinkRequest)
        .where(MagicLinkRequest.email_normalized == customer.email_normalized)
        .order_by(MagicLinkRequest.id)
    )
    portal_sessions = session.scalars(
        select(PortalSession).join(Order).where(Order.customer_id == customer.id).order_by(PortalSession.id)
    )
    return {
        # The variables are what the email said (names, amounts, links); the text is rendered from them.
        "emails": [
            _row(m, "message", "recipient", "locale", "status", "created_at", "sent_at", "message_id")
            | {"variables": m.variables}
            for m in emails
        ],
        "sign_in_links": [_row(link, "created_at", "expires_at", "used_at") for link in links],
        "sign_in_link_requests": [_row(r, "locale", "created_at", "processed_at") for r in link_requests],
        "portal_sessions": [
            _row(p, "locale", "return_url", "created_at", "expires_at", "used_at", "used_by_client")
            | {"order_number": p.order.order_number}
            for p in portal_sessions
        ],
    }


def export_customer(
    session: Session, storage: Storage, customer: Customer, out: IO[bytes], *, more: dict[str, Any] | None = None
) -> None:
    """A zip: customer.json, then documents/ and receipts/ with the files as stored (hashes checked).

    ``more``: further sections of customer.json from packages above this one (replies by email).
    """
    record = customer_record(session, customer) | (more or {})
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("customer.json", json.dumps(record, indent=2, ensure_ascii=False, default=str))
        documents = session.scalars(
            select(Document)
            .join(RefundRequest)
            .join(Order)
            .where(Order.customer_id == customer.id)
            .order_by(Document.id)
        )
        for document in documents:
            with archive.open(f"documents/{document.id}-{document.original_name}", "w", force_zip64=True) as entry:
                for chunk in verified_chunks(
                    storage, document_key(document.stored_name), document.sha256, document.size
                ):
                    entry.write(chunk)
        receipts = session.scalars(
            select(Receipt)
            .join(Refund, Receipt.refund_id == Refund.id)
            .join(Order)
            .where(Order.customer_id == customer.id)
            .order_by(Receipt.id)
        )
        for receipt in receipts:
            archive.writestr(
                f"receipts/{receipt.filename}", read_verified(storage, receipt.storage_key, receipt.sha256)
            )
