"""The webhooks page per endpoint: a test event, the delivery log, and rotating the secret with an overlap."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select
from standardwebhooks import Webhook

from portal.core.vocabulary import StaffRole
from portal.outbox import webhooks
from portal.outbox.models import OutboxMessage, WebhookDelivery, WebhookSubscription
from portal.outbox.webhooks import SIGNATURE_HEADER, verify
from tests.journey_helpers import import_samples
from tests.staff_helpers import make_staff, sign_in, staff_post
from tests.test_outgoing_webhooks import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def admin(app, db_session):
    import_samples(db_session)
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    client = app.test_client()
    sign_in(client, "admin@example.com")
    return client


def added(admin, url) -> tuple[WebhookSubscription, str]:
    page = staff_post(admin, "/staff/webhooks", "/staff/webhooks", url=url, description="Helpdesk")
    secret = re.search(r'<code class="secret">([^<]+)</code>', page.get_data(as_text=True)).group(1)
    from portal.web.extensions import db

    with admin.application.app_context():
        subscription = db.session.scalar(select(WebhookSubscription).order_by(WebhookSubscription.id.desc()))
        db.session.expunge(subscription)
    return subscription, secret


def test_a_test_event_is_signed_and_logged_with_its_status_and_time(app, db_session, admin, receiver):
    subscription, secret = added(admin, receiver.url)
    page = f"/staff/webhooks/{subscription.id}"
    assert "No deliveries yet." in admin.get(page).get_data(as_text=True)
    receiver.statuses = [200, 503]
    sent = staff_post(admin, f"{page}/test", page)
    assert sent.status_code == 303
    shown = admin.get(sent.headers["Location"]).get_data(as_text=True)
    assert re.search(r"The endpoint accepted the test event: HTTP 200 in \d+ ms\.", shown)
    headers, body = receiver.received[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "portal.test" and headers["Portal-Event-Type"] == "portal.test"
    staff_post(admin, f"{page}/test", page)
    log = admin.get(page).get_data(as_text=True)
    assert "503" in log and "200" in log and log.count("portal.test</code>") == 2
    deliveries = db_session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert [d.status_code for d in deliveries] == [200, 503] and all(d.duration_ms >= 0 for d in deliveries)
    # Only admins see an endpoint's page.
    make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    assert agent.get(page).status_code == 403


def test_an_endpoint_that_does_not_answer_is_logged_too(app, db_session, admin):
    subscription, _secret = added(admin, "http://127.0.0.1:9/hooks")  # nothing listens on the discard port
    page = f"/staff/webhooks/{subscription.id}"
    shown = admin.get(staff_post(admin, f"{page}/test", page).headers["Location"]).get_data(as_text=True)
    assert "The endpoint did not answer the test event: ConnectionError" in shown
    assert "No answer" in shown


def test_outbox_deliveries_are_logged_per_endpoint(app, db_session, receiver):
    subscription = webhooks.subscribe(
        db_session, receiver.url, "", created_by=None, now=datetime.now(UTC), require_https=False
    )
    webhooks.queue_event(db_session, webhooks.STATE_CHANGED, {"reference": "RF-TEST2345"}, at=datetime.now(UTC))
    db_session.commit()
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
    webhooks.deliver(message, timeout=5)
    db_session.commit()
    [delivery] = webhooks.deliveries(db_session, subscription)
    assert (delivery.outbox_message_id, delivery.event_id, delivery.status_code) == (
        message.id,
        message.message_id,
        200,
    )


def test_a_rotated_secret_overlaps_the_old_one_for_the_configured_hours(make_app, db_session, receiver):
    app = make_app(WEBHOOK_SECRET_OVERLAP_HOURS=2, STAFF_IDLE_MINUTES=600)
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=True) as clock:
        import_samples(db_session)
        make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
        admin = app.test_client()
        sign_in(admin, "admin@example.com")
        subscription, old = added(admin, receiver.url)
        page = f"/staff/webhooks/{subscription.id}"
        rotated = staff_post(admin, f"{page}/rotate", page).get_data(as_text=True)
        new = re.search(r'<code class="secret">([^<]+)</code>', rotated).group(1)
        assert new != old and "every event carries a second signature made with the previous secret" in rotated
        assert new not in admin.get(page).get_data(as_text=True)  # shown once
        staff_post(admin, f"{page}/test", page)
        headers, body = receiver.received[-1]
        for secret in (old, new):
            assert Webhook(secret).verify(body, headers)["type"] == "portal.test"
            assert verify(secret, headers[SIGNATURE_HEADER], body)
        assert len(headers["webhook-signature"].split(" ")) == 2
        clock.move_to(start + timedelta(hours=2, minutes=1))
        staff_post(admin, f"{page}/test", page)
        headers, body = receiver.received[-1]
        assert json.loads(body)["type"] == "portal.test"
        assert Webhook(new).verify(body, headers)
        assert not verify(old, headers[SIGNATURE_HEADER], body)
        with pytest.raises(Exception, match="No matching signature"):
            Webhook(old).verify(body, headers)
        assert "second signature" not in admin.get(page).get_data(as_text=True)
