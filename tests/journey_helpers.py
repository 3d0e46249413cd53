"""Helpers for tests that go through the customer pages the way a browser does."""

import io
import re
from datetime import UTC, datetime

from PIL import Image
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from portal.orders.importing import import_orders
from portal.outbox.models import OutboxMessage
from portal.refunds.models import RefundRequest
from tests.conftest import DATA, csrf_token


def import_samples(session):
    with open(DATA / "orders.csv", encoding="utf-8", newline="") as f:
        assert import_orders(session, f).ok
    session.commit()


def pdf_bytes(text: str = "Invoice 42") -> bytes:
    buffer = io.BytesIO()
    # A fixed creation date: the same document, byte for byte, however long the test runs.
    fixed = datetime(2026, 11, 1, tzinfo=UTC).timetuple()
    Image.new("RGB", (60, 30), "white").save(buffer, "PDF", title=text, creationDate=fixed, modDate=fixed)
    return buffer.getvalue()


def png_bytes(size=(20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, "PNG")
    return buffer.getvalue()


def lookup(client, number: str, email: str, **headers):
    token = csrf_token(client, "/")
    return client.post("/lookup", data={"csrf_token": token, "order_number": number, "email": email}, headers=headers)


def refund_form(client, number: str) -> dict:
    html = client.get(f"/orders/{number}/refund").get_data(as_text=True)
    return {
        "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1),
        "submission_key": re.search(r'name="submission_key" type="hidden" value="([^"]*)"', html).group(1),
        "reason": "no_longer_needed",
        "details": "",
        "amount_choice": "full",
        "partial_amount": "",
        "locale": "en",
    }


def post_multipart(client, url: str, fields: dict, files: dict[str, list[tuple[str, bytes]]]):
    """A multipart POST encoded in memory: the test client's own encoder spools large bodies to
    temporary files it never closes."""
    data = MultiDict(fields)
    for field_name, items in files.items():
        for name, content in items:
            data.add(
                field_name, FileStorage(io.BytesIO(content), filename=name, content_type="application/octet-stream")
            )
    boundary, body = encode_multipart(data)
    return client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def file_request(client, number: str, files=(), **fields):
    data = {**refund_form(client, number), **fields}
    return post_multipart(client, f"/orders/{number}/refund", data, {"documents": list(files)})


def latest_request(session) -> RefundRequest:
    session.expire_all()  # see what the requests in between committed
    return session.scalar(select(RefundRequest).order_by(RefundRequest.id.desc()))


def outbox(session, message: str | None = None) -> list[OutboxMessage]:
    session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if message:
        query = query.where(OutboxMessage.message == message)
    return list(session.scalars(query))


def page_text(response) -> str:
    html = response.get_data(as_text=True)
    html = re.sub(r'name="csrf_token"[^>]*>', "", html)
    return html


def process_link_requests(session) -> int:
    """What the worker does each round: turn "email me a link" requests into links and emails."""
    from portal.core.database import utcnow
    from portal.orders.magic import process_requests

    sent = process_requests(session, base_url="http://portal.test", now=utcnow())
    session.commit()
    return sent


def stored_pdf(app, receipt) -> bytes:
    """A receipt's bytes as the portal reads them: from its storage, hash checked."""
    from portal.refunds.receipts import receipt_pdf

    return receipt_pdf(app.extensions["storage"], receipt)
