"""Moving money: the Stripe gateway against a stateful local stub, retries, and concurrency."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.core.money import Money
from portal.core.vocabulary import PaymentStatus, RefundStatus, RequestState
from portal.orders.models import Order
from portal.payments import STRIPE_API_VERSION, GatewayMisconfigured, GatewayUnavailable, StripeGateway
from portal.refunds.models import Refund, RefundRequest, StatusEvent
from tests.journey_helpers import import_samples, latest_request, outbox, page_text
from tests.staff_helpers import approved_in_full, process_at_once, staff_post
from tests.test_stripe_webhooks import SECRET, send

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


@pytest.fixture
def stripe_app(make_app, stripe_stub):
    return make_app(**stripe_stub.portal_settings())


@pytest.fixture
def approved(stripe_app, stripe_stub, db_session):
    """ORD-10001 ($29.00, charge ch_3QaB10001) filed and approved in full, and an agent signed in."""
    import_samples(db_session)
    stripe_stub.add_charge("ch_3QaB10001", 2900, "USD")
    return approved_in_full(stripe_app, db_session)


def staff_client_again(client):
    """The same agent a day later: the console's idle limit has signed them out, so sign in again."""
    from tests.staff_helpers import sign_in

    sign_in(client, "agent@example.com")
    return client


def act(client, ref, action, **fields):
    return staff_post(client, f"/staff/requests/{ref}/{action}", f"/staff/requests/{ref}", **fields)


def test_stripe_refunds_the_charge_in_minor_units_with_the_attempts_key(approved, stripe_stub, db_session):
    agent, reference = approved
    assert act(agent, reference, "process").status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    [refund] = request.refunds
    assert (refund.gateway, refund.status, refund.processor_reference) == (
        "stripe",
        RefundStatus.SUCCEEDED,
        "re_stub0001",
    )
    assert refund.idempotency_key == f"refund-{reference}-attempt-1"
    assert stripe_stub.refunded("ch_3QaB10001") == 2900
    assert stripe_stub.refunds[0]["metadata"] == {"refund_request": reference, "attempt": "1"}
    assert set(stripe_stub.versions) == {STRIPE_API_VERSION}  # every call at the pinned version
    # A full refund marks the order refunded without waiting for charge.refunded.
    assert request.order.payment_status is PaymentStatus.REFUNDED
    # The customer's email leaves the processor's internal reference to the receipt.
    assert "processor_reference" not in outbox(db_session, "refunded")[0].variables


def test_a_payment_intent_is_refunded_by_payment_intent(stripe_app, stripe_stub, db_session):
    import_samples(db_session)
    order = db_session.scalar(select(Order).where(Order.order_number == "ORD-10001"))
    order.payment_reference = "pi_3QaB10001"  # what Checkout and Billing produce
    db_session.commit()
    charge = stripe_stub.add_payment_intent("pi_3QaB10001", 2900, "USD")
    agent, reference = approved_in_full(stripe_app, db_session)
    act(agent, reference, "process")
    assert latest_request(db_session).state is RequestState.REFUNDED
    assert stripe_stub.refunds[0]["payment_intent"] == "pi_3QaB10001" and stripe_stub.refunded(charge) == 2900


def test_a_lost_answer_is_found_at_stripe_and_adopted_never_refunded_twice(approved, stripe_stub, db_session):
    agent, reference = approved
    stripe_stub.failures = ["drop"]  # Stripe makes the refund, the answer never arrives
    response = act(agent, reference, "process")
    assert response.status_code == 303
    assert "did not answer" in agent.get(response.headers["Location"]).get_data(as_text=True)
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED
    assert [r.status for r in request.refunds] == [RefundStatus.PENDING]
    assert stripe_stub.refunded("ch_3QaB10001") == 2900  # the money has already moved

    creates = stripe_stub.calls
    assert act(agent, reference, "process").status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [(r.status, r.processor_reference, r.processor_message) for r in request.refunds] == [
        (RefundStatus.SUCCEEDED, "re_stub0001", "")
    ]  # the old network error is not left behind
    assert stripe_stub.calls == creates + 1  # one listing, no second create
    assert stripe_stub.refunded("ch_3QaB10001") == 2900 and len(stripe_stub.refunds) == 1


def test_a_lost_answer_a_day_old_is_adopted_and_its_key_never_reused(approved, stripe_stub, db_session, frozen):
    agent, reference = approved
    stripe_stub.failures = ["drop"]
    act(agent, reference, "process")
    frozen.shift(timedelta(hours=25))  # Stripe has forgotten the key: reusing it would refund again
    agent = staff_client_again(agent)
    act(agent, reference, "process")
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and len(stripe_stub.refunds) == 1
    assert stripe_stub.refunded("ch_3QaB10001") == 2900


def test_a_server_error_is_reconciled_then_sent_with_a_new_key(approved, stripe_stub, db_session):
    agent, reference = approved
    stripe_stub.failures = ["server_error"]
    act(agent, reference, "process")
    assert latest_request(db_session).state is RequestState.APPROVED
    # Stripe stores the 500 under the key: the same key would answer 500 for a day.
    gateway = StripeGateway("sk_test_portal", api_base=stripe_stub.url, max_network_retries=0)
    with pytest.raises(GatewayUnavailable):
        gateway.refund(
            payment="ch_3QaB10001",
            amount=Money.parse("29.00", "USD"),
            idempotency_key=f"refund-{reference}-attempt-1",
            metadata={"refund_request": reference, "attempt": "1"},
        )
    act(agent, reference, "process")
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [(r.attempt, r.status) for r in request.refunds] == [(1, RefundStatus.FAILED), (2, RefundStatus.SUCCEEDED)]
    assert request.refunds[1].idempotency_key == f"refund-{reference}-attempt-2"
    assert stripe_stub.refunded("ch_3QaB10001") == 2900 and len(stripe_stub.refunds) == 1


def test_a_closed_card_fails_later_the_customer_hears_why_and_a_retry_is_a_new_attempt(
    make_app, stripe_stub, db_session
):
    app = make_app(**stripe_stub.portal_settings(STRIPE_WEBHOOK_SECRET=SECRET))
    import_samples(db_session)
    stripe_stub.add_charge("ch_3QaB10001", 2900, "USD")
    agent, reference = approved_in_full(app, db_session)
    stripe_stub.failures = ["closed_card"]  # accepted as pending, as Stripe does
    act(agent, reference, "process")
    assert latest_request(db_session).state is RequestState.APPROVED
    assert not outbox(db_session, "refunded") and not outbox(db_session, "refund_failed")
    send(app.test_client(), stripe_stub.settle("re_stub0001", "failed", "expired_or_canceled_card"))
    request = latest_request(db_session)
    assert request.state is RequestState.REFUND_FAILED
    assert request.refunds[0].failure_reason == "expired_or_canceled_card"
    [failed] = outbox(db_session, "refund_failed")
    assert failed.variables["amount"] == "29.00 USD" and "expired or been closed" in failed.variables["reason"]
    assert "expired or been closed" in page_text(agent.get(f"/staff/requests/{reference}"))

    assert act(agent, reference, "retry").status_code == 303
    assert act(agent, reference, "process").status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [(r.attempt, r.status) for r in request.refunds] == [(1, RefundStatus.FAILED), (2, RefundStatus.SUCCEEDED)]
    assert [r.idempotency_key for r in request.refunds] == [
        f"refund-{reference}-attempt-1",
        f"refund-{reference}-attempt-2",
    ]
    assert stripe_stub.refunded("ch_3QaB10001") == 2900
    events = [(e.from_state, e.to_state) for e in request.events]
    assert events[-5:] == [
        (RequestState.RECEIVED, RequestState.APPROVED),
        (RequestState.APPROVED, RequestState.APPROVED),  # pending at Stripe
        (RequestState.APPROVED, RequestState.REFUND_FAILED),
        (RequestState.REFUND_FAILED, RequestState.APPROVED),
        (RequestState.APPROVED, RequestState.REFUNDED),
    ]


@pytest.mark.parametrize("setup", ["amount_too_large", "charge_already_refunded", "charge_disputed"])
def test_stripe_refusing_the_charge_alerts_staff_and_never_emails_the_customer(
    approved, stripe_stub, db_session, setup
):
    agent, reference = approved
    charge = stripe_stub.charges["ch_3QaB10001"]
    if setup == "amount_too_large":
        charge["refunded"] = 1000  # refunded in the dashboard meanwhile
    elif setup == "charge_already_refunded":
        charge["refunded"] = 2900
    else:
        stripe_stub.dispute("ch_3QaB10001")
    page = agent.get(act(agent, reference, "process").headers["Location"])
    assert "refused the portal" in page.get_data(as_text=True)
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED
    assert not outbox(db_session, "refund_failed")
    assert setup in page_text(agent.get(f"/staff/requests/{reference}"))  # the alert names Stripe's code


@pytest.mark.parametrize("key", ["sk_live_wrong_account", "rk_test_restricted"])
def test_a_rejected_api_key_is_ours_the_customer_hears_nothing(make_app, stripe_stub, db_session, caplog, key):
    app = make_app(**stripe_stub.portal_settings(STRIPE_API_KEY=key))
    import_samples(db_session)
    stripe_stub.add_charge("ch_3QaB10001", 2900, "USD")
    agent, reference = approved_in_full(app, db_session)
    with caplog.at_level(logging.WARNING, logger="portal.alerts"):
        act(agent, reference, "process")
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED
    assert not outbox(db_session, "refund_failed")
    assert any(reference in r.getMessage() for r in caplog.records)
    text = page_text(agent.get(f"/staff/requests/{reference}"))
    assert "Alerts for staff" in text and ("API Key" in text or "permissions" in text)
    assert stripe_stub.refunded("ch_3QaB10001") == 0


def test_the_stub_is_stripe_like_about_keys(stripe_stub):
    """The stub must hold Stripe's own rules, or the tests above would prove nothing."""
    stripe_stub.add_charge("ch_1", 1000, "EUR")
    gateway = StripeGateway("sk_test_x", api_base=stripe_stub.url, max_network_retries=0)
    first = gateway.refund(payment="ch_1", amount=Money.parse("4.00", "EUR"), idempotency_key="k1")
    again = gateway.refund(payment="ch_1", amount=Money.parse("4.00", "EUR"), idempotency_key="k1")
    assert first.reference == again.reference and stripe_stub.refunded("ch_1") == 400
    with pytest.raises(GatewayMisconfigured, match="same parameters"):
        gateway.refund(payment="ch_1", amount=Money.parse("5.00", "EUR"), idempotency_key="k1")
    with pytest.raises(GatewayMisconfigured, match="greater than unrefunded"):
        gateway.refund(payment="ch_1", amount=Money.parse("7.00", "EUR"), idempotency_key="k2")
    stripe_stub.failures = ["server_error"]
    with pytest.raises(GatewayUnavailable):
        gateway.refund(payment="ch_1", amount=Money.parse("1.00", "EUR"), idempotency_key="k3")
    with pytest.raises(GatewayUnavailable):  # replayed: the 500 is stored under the key
        gateway.refund(payment="ch_1", amount=Money.parse("1.00", "EUR"), idempotency_key="k3")
    assert gateway.find_refund(payment="ch_1", metadata={}).reference == first.reference
    assert gateway.find_refund(payment="ch_1", metadata={"refund_request": "RF-NONE"}) is None
    slow = StripeGateway("sk_test_x", api_base=stripe_stub.url, max_network_retries=0, timeout=0.5)
    stripe_stub.delay = 1.5
    with pytest.raises(GatewayUnavailable):
        slow.refund(payment="ch_1", amount=Money.parse("1.00", "EUR"), idempotency_key="k4")


def test_twenty_concurrent_process_calls_make_one_gateway_call(approved, stripe_stub, stripe_app, db_session):
    _agent, reference = approved
    request_id = db_session.scalar(select(RefundRequest.id).where(RefundRequest.reference == reference))
    stripe_stub.delay = 0.2  # a slow processor widens the window for a double refund
    gateway = StripeGateway("sk_test_portal", api_base=stripe_stub.url, max_network_retries=0)
    outcomes = process_at_once(stripe_app, db_session, reference, gateway)
    assert sorted(outcomes) == ["409"] * 19 + ["processed"]
    assert stripe_stub.calls == 1 and stripe_stub.refunded("ch_3QaB10001") == 2900
    db_session.expire_all()
    refunded_events = db_session.scalar(
        select(func.count())
        .select_from(StatusEvent)
        .where(StatusEvent.refund_request_id == request_id, StatusEvent.to_state == RequestState.REFUNDED)
    )
    assert refunded_events == 1
    assert db_session.scalar(select(func.count()).select_from(Refund)) == 1
