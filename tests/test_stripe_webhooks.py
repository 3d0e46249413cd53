"""Stripe's webhooks: signatures, redelivery, reordering, and refunds made in Stripe's dashboard."""

import json
import time

import pytest
import stripe
from sqlalchemy import func, select

from portal.core.vocabulary import PaymentStatus, RefundStatus, RequestState, StaffRole
from portal.orders.models import Order
from portal.payments import STRIPE_API_VERSION
from portal.refunds.models import ProcessorEvent, Refund, RefundRequest
from tests.journey_helpers import file_request, import_samples, latest_request, lookup, outbox, page_text, pdf_bytes
from tests.staff_helpers import approved_in_full, make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW
SECRET = "whsec_test_portal"
CHARGE = "ch_3QaB10001"  # ORD-10001, $29.00


@pytest.fixture
def hook_app(make_app, db_session):
    app = make_app(STRIPE_WEBHOOK_SECRET=SECRET)
    import_samples(db_session)
    return app


_counter = iter(range(1, 10_000))


def event(
    kind: str,
    obj: dict,
    *,
    created: int | None = None,
    event_id: str | None = None,
    api_version: str = STRIPE_API_VERSION,
    livemode: bool = False,
) -> dict:
    """An event as Stripe sends it to an endpoint set to ``api_version`` (the pinned one by default)."""
    return {
        "id": event_id or f"evt_{next(_counter):06d}",
        "object": "event",
        "type": kind,
        "api_version": api_version,
        "livemode": livemode,
        "created": created or int(time.time()),
        "data": {"object": obj},
    }


def send(client, body: dict, *, secret: str = SECRET, timestamp: int | None = None, raw: str | None = None):
    payload = raw if raw is not None else json.dumps(body)
    header = stripe.WebhookSignature.generate_signature_header(json.dumps(body), secret, timestamp or int(time.time()))
    return client.post(
        "/webhooks/stripe", data=payload, content_type="application/json", headers={"Stripe-Signature": header}
    )


def refund_obj(refund_id: str, status: str, amount: int = 2900, charge: str = CHARGE, **extra) -> dict:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "charge": charge,
        "status": status,
        "metadata": {},
        "created": int(time.time()),
        **extra,
    }


def stored_events(session) -> int:
    return session.scalar(select(func.count(ProcessorEvent.id)))


def test_only_correctly_signed_fresh_events_are_accepted(hook_app, db_session):
    client = hook_app.test_client()
    body = event("charge.dispute.created", {"id": "dp_1", "charge": CHARGE})
    assert send(client, body, secret="whsec_someone_else").status_code == 400
    assert send(client, body, raw=json.dumps(body).replace(CHARGE, "ch_other")).status_code == 400  # tampered
    assert send(client, body, timestamp=int(time.time()) - 301).status_code == 400  # replayed too late
    assert client.post("/webhooks/stripe", data=json.dumps(body), content_type="application/json").status_code == 400
    assert stored_events(db_session) == 0
    assert (
        db_session.scalar(select(Order.payment_status).where(Order.payment_reference == CHARGE)) is PaymentStatus.PAID
    )
    # Within the tolerance, the same event is accepted.
    assert send(client, body, timestamp=int(time.time()) - 299).status_code == 200


def test_without_a_secret_there_is_no_endpoint(make_app):
    assert make_app().test_client().post("/webhooks/stripe", data="{}").status_code == 404


def test_charge_succeeded_upserts_the_order_once(hook_app, db_session):
    client = hook_app.test_client()
    charge = {
        "id": "ch_new_1",
        "object": "charge",
        "amount": 4900,
        "currency": "eur",
        "created": int(time.time()),
        "billing_details": {"email": "Eva@Example.nl", "name": "Eva de Vries"},
        "description": "Team Workspace",
        "metadata": {"order_number": "ORD-STRIPE-1", "locale": "nl"},
    }
    body = event("charge.succeeded", charge)
    first = send(client, body)
    assert first.status_code == 200 and first.json["outcome"] == "order ORD-STRIPE-1 created"
    assert send(client, body).json["outcome"].startswith("duplicate")
    assert stored_events(db_session) == 1
    order = db_session.scalar(select(Order).where(Order.order_number == "ORD-STRIPE-1"))
    assert (order.amount_minor, order.currency, order.customer.locale) == (4900, "EUR", "nl")
    # The customer finds it like any imported order.
    customer = hook_app.test_client()
    assert lookup(customer, "ORD-STRIPE-1", "eva@example.nl").status_code == 302


def test_invoice_paid_brings_a_subscription_with_its_period(hook_app, db_session):
    start = int(time.time())
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "number": "INV-0042",
        "amount_paid": 58800,
        "currency": "usd",
        "customer_email": "frank@example.com",
        "customer_name": "Frank",
        "charge": "ch_inv_1",
        "created": start,
        "status_transitions": {"paid_at": start},
        "lines": {
            "data": [
                {
                    "description": "Analytics Pro",
                    "period": {"start": start, "end": start + 365 * 86400},
                    "price": {"recurring": {"interval": "year"}},
                }
            ]
        },
    }
    assert send(hook_app.test_client(), event("invoice.paid", invoice)).json["outcome"] == "order INV-0042 created"
    order = db_session.scalar(select(Order).where(Order.order_number == "INV-0042"))
    assert order.plan.value == "annual" and order.payment_reference == "ch_inv_1"
    assert order.period_end.isoformat() == "2027-11-22"


def test_a_refund_made_in_the_dashboard_shows_on_the_tracking_page(hook_app, db_session):
    client = hook_app.test_client()
    answer = send(client, event("refund.created", refund_obj("re_dash_1", "succeeded", amount=1500)))
    assert answer.status_code == 200
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and request.order.order_number == "ORD-10001"
    assert request.amount_approved_minor == 1500
    refund = db_session.scalar(select(Refund))
    assert (refund.status, refund.processor_reference, refund.gateway) == (
        RefundStatus.SUCCEEDED,
        "re_dash_1",
        "stripe",
    )
    assert [m.message for m in outbox(db_session, "refunded")] == ["refunded"]

    customer = hook_app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    page = customer.get(f"/requests/{request.reference}")
    text = page_text(page)
    assert page.status_code == 200 and "Refunded" in text and "$15.00" in text
    # Only what is left can still be asked for.
    assert "$14.00" in page_text(customer.get("/orders/ORD-10001"))


def test_a_dashboard_refund_of_an_open_request_closes_it(hook_app, db_session):
    customer = hook_app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    file_request(customer, "ORD-10001", files=[("invoice.pdf", pdf_bytes())])
    send(customer, event("refund.created", refund_obj("re_dash_2", "succeeded")))
    assert db_session.scalar(select(func.count(RefundRequest.id))) == 1
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [e.to_state.value for e in request.events] == ["received", "refunded"]


def test_reordered_and_replayed_refund_events_change_nothing_twice(hook_app, db_session):
    client = hook_app.test_client()
    created = event("refund.created", refund_obj("re_dash_3", "pending"), created=int(time.time()) - 60)
    succeeded = event("refund.updated", refund_obj("re_dash_3", "succeeded"))
    # The later event arrives first, then the earlier one, then both again.
    send(client, succeeded)
    send(client, created)
    send(client, succeeded)
    send(client, created)
    assert stored_events(db_session) == 2
    refund = db_session.scalar(select(Refund))
    assert refund.status is RefundStatus.SUCCEEDED
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [e.to_state.value for e in request.events] == ["received", "refunded"]
    assert len(outbox(db_session, "refunded")) == 1


def test_an_event_about_an_unknown_charge_waits_for_its_order(hook_app, db_session):
    client = hook_app.test_client()
    early = send(client, event("refund.created", refund_obj("re_early", "succeeded", amount=1000, charge="ch_late")))
    assert early.json["outcome"].startswith("waiting")
    charge = {
        "id": "ch_late",
        "object": "charge",
        "amount": 3000,
        "currency": "usd",
        "created": int(time.time()),
        "billing_details": {"email": "gina@example.com", "name": "Gina"},
        "description": "Starter",
        "metadata": {"order_number": "ORD-LATE"},
    }
    later = send(client, event("charge.succeeded", charge))
    assert "1 waiting event(s) handled" in later.json["outcome"]
    request = latest_request(db_session)
    assert request.order.order_number == "ORD-LATE" and request.state is RequestState.REFUNDED


def test_a_dispute_marks_the_order_charged_back_and_an_older_charge_event_does_not_undo_it(hook_app, db_session):
    client = hook_app.test_client()
    send(
        client,
        event(
            "charge.dispute.created",
            {"id": "dp_1", "object": "dispute", "charge": CHARGE, "amount": 2900, "reason": "fraudulent"},
        ),
    )
    charge = {
        "id": CHARGE,
        "object": "charge",
        "amount": 2900,
        "currency": "usd",
        "created": int(time.time()) - 86400 * 10,
        "billing_details": {"email": "alice.m@example.com"},
        "metadata": {"order_number": "ORD-10001", "plan": "one-time"},
        "description": "Team Workspace",
    }
    send(client, event("charge.succeeded", charge, created=int(time.time()) - 86400 * 10))
    assert (
        db_session.scalar(select(Order.payment_status).where(Order.order_number == "ORD-10001"))
        is PaymentStatus.CHARGED_BACK
    )
    customer = hook_app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    page = page_text(customer.get("/orders/ORD-10001"))
    assert "This order cannot be refunded again" in page and "Full refund of" not in page


@pytest.fixture
def pending(make_app, stripe_stub, db_session):
    """ORD-10001 approved and processed through Stripe, which answered that the refund is pending."""
    app = make_app(**stripe_stub.portal_settings(STRIPE_WEBHOOK_SECRET=SECRET))
    import_samples(db_session)
    stripe_stub.add_charge(CHARGE, 2900, "USD")
    stripe_stub.failures.append("pending")
    agent, reference = approved_in_full(app, db_session)
    page = f"/staff/requests/{reference}"
    staff_post(agent, f"{page}/process", page)
    return app, stripe_stub.refunds[0]


def test_a_pending_refund_becomes_refunded_only_when_stripe_says_succeeded(pending, db_session):
    app, stub_refund = pending
    request = latest_request(db_session)
    refund = db_session.scalar(select(Refund))
    assert request.state is RequestState.APPROVED and refund.status is RefundStatus.PENDING
    assert not outbox(db_session, "refunded")

    hook = app.test_client()
    send(hook, event("refund.created", {**stub_refund, "status": "pending"}))
    assert latest_request(db_session).state is RequestState.APPROVED
    send(hook, event("refund.updated", {**stub_refund, "status": "succeeded"}))
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert db_session.scalar(select(Refund)).status is RefundStatus.SUCCEEDED
    assert len(outbox(db_session, "refunded")) == 1
    assert db_session.scalar(select(func.count(Refund.id))) == 1  # recognised as ours, not a dashboard refund


def test_a_refund_that_fails_at_the_processor_fails_the_request(pending, db_session):
    app, stub_refund = pending
    send(
        app.test_client(),
        event("refund.failed", {**stub_refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}),
    )
    request = latest_request(db_session)
    assert request.state is RequestState.REFUND_FAILED and request.processing_attempt == 2
    assert [m.message for m in outbox(db_session, "refund_failed")] == ["refund_failed"]


def test_refunds_from_webhooks_keep_the_insights_in_step(hook_app, db_session):
    from portal.insights import rollups
    from tests.test_insights import rollup_snapshot

    client = hook_app.test_client()
    send(client, event("refund.created", refund_obj("re_dash_9", "pending", amount=900)))
    send(client, event("refund.updated", refund_obj("re_dash_9", "succeeded", amount=900)))
    send(client, event("refund.created", refund_obj("re_dash_10", "succeeded", amount=2000, charge="ch_3QaB10003")))
    kept = rollup_snapshot(db_session)
    assert kept["insight_refund_day"], "the refunds are counted"
    rollups.rebuild(db_session)
    db_session.commit()
    assert rollup_snapshot(db_session) == kept


def test_admins_see_what_the_processor_sent_and_what_waits(hook_app, db_session):
    send(hook_app.test_client(), event("refund.created", refund_obj("re_wait", "succeeded", charge="ch_unknown")))
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    admin = hook_app.test_client()
    sign_in(admin, "admin@example.com")
    text = page_text(admin.get("/staff/webhooks"))
    assert "refund.created" in text and "ch_unknown" in text and "Waiting" in text


def test_charge_refunded_in_the_pinned_shape_marks_a_full_refund(hook_app, db_session):
    # Since 2022-11-15 a Charge carries no refunds: each refund arrives in its own event.
    charge = {
        "id": CHARGE,
        "object": "charge",
        "amount": 2900,
        "amount_refunded": 2900,
        "refunded": True,
        "currency": "usd",
        "payment_intent": None,
    }
    client = hook_app.test_client()
    send(client, event("refund.created", refund_obj("re_a", "succeeded", amount=900)))
    send(client, event("refund.created", refund_obj("re_b", "succeeded", amount=2000)))
    assert send(client, event("charge.refunded", charge)).json["outcome"] == "order ORD-10001 fully refunded"
    assert sorted(db_session.scalars(select(Refund.amount_minor))) == [900, 2000]
    assert (
        db_session.scalar(select(Order.payment_status).where(Order.payment_reference == CHARGE))
        is PaymentStatus.REFUNDED
    )


def test_events_in_another_api_version_or_mode_are_refused_and_staff_alerted(hook_app, db_session):
    client = hook_app.test_client()
    old = event("refund.created", refund_obj("re_old", "succeeded"), api_version="2022-08-01")
    answer = send(client, old)
    assert answer.status_code == 400 and "2022-08-01" in answer.json["error"]
    live = send(client, event("refund.created", refund_obj("re_live", "succeeded"), livemode=True))
    assert live.status_code == 400 and "live mode" in live.json["error"]
    assert stored_events(db_session) == 0 and not db_session.scalar(select(func.count(Refund.id)))
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    admin = hook_app.test_client()
    sign_in(admin, "admin@example.com")
    text = page_text(admin.get("/staff/webhooks"))
    assert "Alerts for staff" in text and STRIPE_API_VERSION in text and "live mode" in text


def _invoice(**shape) -> dict:
    start = int(time.time())
    return {
        "id": "in_2",
        "object": "invoice",
        "number": "INV-0043",
        "amount_paid": 4900,
        "currency": "usd",
        "customer_email": "hana@example.com",
        "customer_name": "Hana",
        "created": start,
        "status_transitions": {"paid_at": start},
        **shape,
        "lines": {
            "data": [
                {
                    "description": "Analytics Pro",
                    "period": {"start": start, "end": start + 30 * 86400},
                    "pricing": {"type": "price_details", "price_details": {"price": "price_1", "product": "prod_1"}},
                }
            ]
        },
    }


def test_invoice_paid_in_the_current_format_resolves_its_payment_through_invoice_payments(hook_app, db_session):
    client = hook_app.test_client()
    payments = {
        "data": [
            {
                "object": "invoice_payment",
                "id": "inpay_1",
                "invoice": "in_2",
                "status": "paid",
                "is_default": True,
                "payment": {"type": "payment_intent", "payment_intent": "pi_inv_2"},
            }
        ]
    }
    send(client, event("invoice.paid", _invoice(payments=payments)))
    order = db_session.scalar(select(Order).where(Order.order_number == "INV-0043"))
    assert order.payment_reference == "pi_inv_2" and order.plan.value == "monthly" and order.period_end


def test_invoice_paid_without_its_payments_learns_them_from_invoice_payment_paid(hook_app, db_session):
    client = hook_app.test_client()
    send(client, event("invoice.paid", _invoice()))
    assert db_session.scalar(select(Order.payment_reference).where(Order.order_number == "INV-0043")) == "in_2"
    paid = {
        "object": "invoice_payment",
        "id": "inpay_2",
        "invoice": "in_2",
        "status": "paid",
        "is_default": True,
        "payment": {"type": "payment_intent", "payment_intent": "pi_inv_3"},
    }
    assert send(client, event("invoice_payment.paid", paid)).json["outcome"].startswith("order INV-0043 paid")
    db_session.expire_all()
    assert db_session.scalar(select(Order.payment_reference).where(Order.order_number == "INV-0043")) == "pi_inv_3"


def test_invoice_paid_in_the_old_format_still_reads_for_an_endpoint_pinned_to_it(make_app, db_session):
    app = make_app(STRIPE_WEBHOOK_SECRET=SECRET, STRIPE_API_VERSION="2024-06-20")
    start = int(time.time())
    invoice = {
        "id": "in_3",
        "object": "invoice",
        "number": "INV-0044",
        "amount_paid": 58800,
        "currency": "usd",
        "customer_email": "ivo@example.com",
        "customer_name": "Ivo",
        "charge": "ch_inv_3",
        "payment_intent": "pi_inv_4",
        "created": start,
        "status_transitions": {"paid_at": start},
        "lines": {
            "data": [
                {
                    "description": "Analytics Pro",
                    "period": {"start": start, "end": start + 365 * 86400},
                    "price": {"recurring": {"interval": "year"}},
                }
            ]
        },
    }
    send(app.test_client(), event("invoice.paid", invoice, api_version="2024-06-20"))
    order = db_session.scalar(select(Order).where(Order.order_number == "INV-0044"))
    assert order.payment_reference == "pi_inv_4" and order.plan.value == "annual"


def test_requires_action_keeps_the_refund_in_progress_and_a_later_cancel_fails_it(make_app, stripe_stub, db_session):
    app = make_app(**stripe_stub.portal_settings(STRIPE_WEBHOOK_SECRET=SECRET))
    import_samples(db_session)
    stripe_stub.add_charge(CHARGE, 2900, "USD")
    stripe_stub.failures.append("requires_action")
    agent, reference = approved_in_full(app, db_session)
    page = f"/staff/requests/{reference}"
    staff_post(agent, f"{page}/process", page)
    assert latest_request(db_session).state is RequestState.APPROVED
    assert not outbox(db_session, "refunded")  # never told they were refunded
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    text = page_text(customer.get(f"/requests/{reference}"))
    assert "Refund in progress" in text and "follow the instructions" in text

    send(app.test_client(), stripe_stub.settle("re_stub0001", "canceled"))
    request = latest_request(db_session)
    assert request.state is RequestState.REFUND_FAILED
    assert "canceled before it was completed" in outbox(db_session, "refund_failed")[0].variables["reason"]
    assert [(e.to_state.value, e.processor_status) for e in request.events][-2:] == [
        ("approved", "requires_action"),
        ("refund_failed", "canceled"),
    ]
    text = page_text(customer.get(f"/requests/{reference}"))
    assert "canceled before it was completed" in text and "re_stub" not in text
    assert stripe_stub.refunded(CHARGE) == 0


def test_a_refund_beyond_what_was_paid_alerts_staff_instead_of_a_second_request(make_app, stripe_stub, db_session):
    app = make_app(**stripe_stub.portal_settings(STRIPE_WEBHOOK_SECRET=SECRET))
    import_samples(db_session)
    stripe_stub.add_charge(CHARGE, 2900, "USD")
    agent, reference = approved_in_full(app, db_session)
    page = f"/staff/requests/{reference}"
    staff_post(agent, f"{page}/process", page)
    assert latest_request(db_session).state is RequestState.REFUNDED
    # Another refund of the whole amount is reported (made twice: a dashboard click, a lost answer).
    second = {**stripe_stub.refund("re_stub0001"), "id": "re_twice", "metadata": {}}
    outcome = send(app.test_client(), event("refund.created", second)).json["outcome"]
    assert "beyond what was paid" in outcome
    assert db_session.scalar(select(func.count(RefundRequest.id))) == 1  # no quiet second request
    assert len(outbox(db_session, "refunded")) == 1  # and no second "refunded" email
    text = page_text(agent.get(page))
    assert "Alerts for staff" in text and "re_twice" in text and "duplicate refund" in text
