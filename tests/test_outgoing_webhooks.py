"""Outgoing webhooks: an admin adds an endpoint, every state change reaches it signed, with retries."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from sqlalchemy import select

from portal.core.vocabulary import OutboxStatus, StaffRole
from portal.outbox.models import OutboxMessage, WebhookSubscription
from portal.outbox.webhooks import SIGNATURE_HEADER, verify
from tests.journey_helpers import file_request, import_samples, lookup, pdf_bytes
from tests.staff_helpers import make_staff, sign_in, staff_post

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Receiver:
    """A subscriber's endpoint on 127.0.0.1 that answers with the statuses it is given, in turn."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/hooks"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(statuses=[500])
    yield r
    r.stop()


def deliver(app):
    from portal.web.extensions import db
    from portal.web.mail import deliver as deliver_outbox

    with app.app_context():
        return deliver_outbox(db.session)


def test_state_changes_reach_a_subscriber_signed_and_retried(app, db_session, receiver):
    with time_machine.travel(NOW, tick=True) as clock:
        import_samples(db_session)
        make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
        admin = app.test_client()
        sign_in(admin, "admin@example.com")
        page = staff_post(admin, "/staff/webhooks", "/staff/webhooks", url=receiver.url, description="Helpdesk")
        assert page.status_code == 200
        secret = re.search(r'<code class="secret">([^<]+)</code>', page.get_data(as_text=True)).group(1)
        # Shown once: the list does not repeat it.
        assert secret not in admin.get("/staff/webhooks").get_data(as_text=True)

        customer = app.test_client()
        lookup(customer, "ORD-10001", "alice.m@example.com")
        reference = (
            file_request(customer, "ORD-10001", files=[("invoice.pdf", pdf_bytes())])
            .headers["Location"]
            .rsplit("/", 1)[1]
        )
        staff_post(admin, f"/staff/requests/{reference}/review", f"/staff/requests/{reference}")

        deliver(app)  # the subscriber answers 500 first: kept for a retry
        queued = db_session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "webhook").order_by(OutboxMessage.id)
        ).all()
        assert [m.status for m in queued] == [OutboxStatus.PENDING, OutboxStatus.SENT]
        clock.shift(timedelta(minutes=1))
        deliver(app)

    bodies = [json.loads(body) for _, body in receiver.received]
    assert [b["data"]["to_state"] for b in bodies] == ["received", "in_review", "received"]
    assert bodies[0]["id"] == bodies[2]["id"], "a retry is the same event"
    assert bodies[1]["type"] == "refund_request.state_changed" and bodies[1]["data"]["reference"] == reference
    for headers, body in receiver.received:
        assert verify(secret, headers[SIGNATURE_HEADER], body, now=NOW.timestamp() + 30)
        assert not verify("whsec_wrong", headers[SIGNATURE_HEADER], body, now=NOW.timestamp() + 30)
        assert not verify(secret, headers[SIGNATURE_HEADER], body + b" ", now=NOW.timestamp() + 30)


def test_a_deactivated_endpoint_gets_nothing_more(app, db_session, receiver):
    import_samples(db_session)
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    staff_post(admin, "/staff/webhooks", "/staff/webhooks", url=receiver.url)
    subscription = db_session.scalar(select(WebhookSubscription))
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    file_request(customer, "ORD-10001", files=[("invoice.pdf", pdf_bytes())])
    staff_post(admin, f"/staff/webhooks/{subscription.id}/deactivate", "/staff/webhooks")
    deliver(app)
    assert receiver.received == []
    # Only admins manage endpoints.
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    assert agent.get("/staff/webhooks").status_code == 403
    bad = staff_post(admin, "/staff/webhooks", "/staff/webhooks", url="ftp://example.com/x")
    assert bad.status_code == 422 and "https://" in bad.get_data(as_text=True)


def test_a_receiver_verifies_a_delivery_with_the_standardwebhooks_library(app, db_session):
    from standardwebhooks import Webhook

    from portal.outbox import webhooks

    receiver = Receiver()
    try:
        subscription = webhooks.subscribe(
            db_session, receiver.url, "std", created_by=None, now=datetime.now(UTC), require_https=False
        )
        webhooks.queue_event(db_session, webhooks.STATE_CHANGED, {"reference": "RF-TEST2345"}, at=datetime.now(UTC))
        db_session.commit()
        message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        webhooks.deliver(message, timeout=5)
        headers, body = receiver.received[0]
        # What a receiver does with the stock library: the headers are the standard ones.
        event = Webhook(subscription.secret).verify(body, headers)
        assert event["data"]["reference"] == "RF-TEST2345" and headers["webhook-id"] == event["id"]
        # The old header still verifies during the deprecation period.
        assert verify(subscription.secret, headers[SIGNATURE_HEADER], body)
        tampered = body.replace(b"RF-TEST2345", b"RF-TEST2346")
        with pytest.raises(Exception, match="No matching signature"):
            Webhook(subscription.secret).verify(tampered, headers)
    finally:
        receiver.stop()


def test_an_endpoint_answering_410_is_deactivated_and_gets_nothing_more(app, db_session, frozen):
    gone = Receiver(statuses=[410, 410, 410])
    try:
        import_samples(db_session)
        make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
        admin = app.test_client()
        sign_in(admin, "admin@example.com")
        staff_post(admin, "/staff/webhooks", "/staff/webhooks", url=gone.url)
        customer = app.test_client()
        lookup(customer, "ORD-10001", "alice.m@example.com")
        reference = file_request(customer, "ORD-10001", files=[("invoice.pdf", pdf_bytes())]).headers["Location"]
        reference = reference.rsplit("/", 1)[1]
        staff_post(admin, f"/staff/requests/{reference}/review", f"/staff/requests/{reference}")
        deliver(app)
        db_session.expire_all()
        assert len(gone.received) == 1  # the first answer says gone: the second event is not sent
        assert db_session.scalar(select(WebhookSubscription)).active is False
        messages = db_session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook")).all()
        assert {m.status for m in messages} == {OutboxStatus.DEAD}
        assert "Deactivated" in admin.get("/staff/webhooks").get_data(as_text=True)
    finally:
        gone.stop()
