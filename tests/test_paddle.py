"""Paddle Billing as the gateway: refunds as adjustments through the official SDK against a stateful
local Paddle (tests/paddle_stub.py), and its signed notifications reconciled once, only forward."""

import json

import pytest
from sqlalchemy import func, select

from portal.core.vocabulary import Actor, PaymentStatus, RefundStatus, RequestState
from portal.orders.models import Order
from portal.payments.paddle_gateway import PaddleGateway
from portal.refunds.models import ProcessorEvent, Refund, StatusEvent
from tests.journey_helpers import latest_request, outbox
from tests.staff_helpers import approved_in_full, make_staff, process_at_once, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")

TXN = "txn_01hv8wptq8987qeep44cyrewp9"
ORDER = {
    "order_number": "PDL-2001",
    "customer_email": "dana@example.com",
    "customer_name": "Dana Smit",
    "locale": "nl",
    "plan": "monthly",
    "product": "Team Workspace",
    "period_start": "2026-11-22",
    "period_end": "2026-12-22",
    "affiliate": "partnerhub",
    "affiliate_commission": "2.90",
}


@pytest.fixture
def paddle_app(make_app, paddle_stub):
    return make_app(**paddle_stub.portal_settings())


def deliver(client, stub, event, secret="pdl_ntfset_secret", signature=None):
    body = json.dumps(event).encode()
    header = signature or stub.sign(body, secret)
    return client.post(
        "/webhooks/paddle", data=body, headers={"Paddle-Signature": header}, content_type="application/json"
    )


@pytest.fixture
def sold(paddle_app, paddle_stub, db_session):
    """A $29.00 monthly plan sold through Paddle (two line items: 20.00 and 9.00) and its order upserted
    from the transaction.completed notification."""
    transaction = paddle_stub.add_transaction(TXN, [2000, 900], "USD", custom_data=ORDER)
    answer = deliver(paddle_app.test_client(), paddle_stub, paddle_stub.event("transaction.completed", transaction))
    assert answer.status_code == 200 and answer.json["outcome"] == "order PDL-2001 created", answer.json
    return transaction


@pytest.fixture
def approved(paddle_app, sold, db_session):
    return approved_in_full(paddle_app, db_session, number="PDL-2001", email="dana@example.com")


def process(client, reference):
    page = f"/staff/requests/{reference}"
    return staff_post(client, f"{page}/process", page)


def test_transaction_completed_upserts_the_order_by_the_import_rules(paddle_app, sold, paddle_stub, db_session):
    order = db_session.scalar(select(Order).where(Order.order_number == "PDL-2001"))
    assert (order.payment_reference, order.amount_minor, order.currency, order.plan.value) == (
        TXN,
        2900,
        "USD",
        "monthly",
    )
    assert order.customer.email == "dana@example.com" and order.affiliate_commission_minor == 290
    broken = paddle_stub.add_transaction("txn_01broken", [500], "USD", custom_data={"order_number": "PDL-2002"})
    answer = deliver(paddle_app.test_client(), paddle_stub, paddle_stub.event("transaction.completed", broken))
    assert answer.json["outcome"].startswith("ignored: customer_email")  # the import's rules refuse it


def test_a_full_refund_is_one_full_adjustment_pending_until_paddle_approves(
    paddle_app, approved, paddle_stub, db_session
):
    agent, reference = approved
    assert process(agent, reference).status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED  # Paddle has not approved it yet
    [refund] = request.refunds
    [adjustment] = paddle_stub.adjustments
    assert (adjustment["type"], adjustment["action"], adjustment["status"]) == ("full", "refund", "pending_approval")
    assert refund.processor_reference == adjustment["id"] and refund.status is RefundStatus.PENDING
    assert adjustment["reason"] == f"Refund request {reference} [refund-{reference}-attempt-1]"
    client = paddle_app.test_client()
    assert (
        deliver(client, paddle_stub, paddle_stub.event("adjustment.created", adjustment))
        .json["outcome"]
        .endswith("waiting for Paddle's approval")
    )
    answer = deliver(client, paddle_stub, paddle_stub.review(adjustment["id"], "approved"))
    assert "approved; request" in answer.json["outcome"]
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    refund = request.refunds[0]
    assert refund.status is RefundStatus.SUCCEEDED and refund.gateway == "paddle"
    assert (refund.fee_kept_minor, refund.commission_clawback_minor) == (114, 290)  # as for Stripe
    assert request.order.payment_status is PaymentStatus.REFUNDED
    assert [m.message for m in outbox(db_session)] == ["acknowledgement", "approval", "refunded"]


def test_a_partial_refund_is_spread_over_line_items(paddle_app, sold, paddle_stub, db_session):
    agent, reference = approved_in_full(
        paddle_app, db_session, number="PDL-2001", email="dana@example.com", amount="24.00"
    )
    process(agent, reference)
    [adjustment] = paddle_stub.adjustments
    assert adjustment["type"] == "partial"
    assert [(i["item_id"], i["amount"]) for i in adjustment["items"]] == [
        (f"txnitm_{TXN[4:]}01", "2000"),
        (f"txnitm_{TXN[4:]}02", "400"),
    ]


def test_a_rejection_becomes_refund_failed_with_paddles_reason_and_a_retry_is_a_new_adjustment(
    paddle_app, approved, paddle_stub, db_session
):
    agent, reference = approved
    process(agent, reference)
    rejected = paddle_stub.review(paddle_stub.adjustments[0]["id"], "rejected")
    deliver(paddle_app.test_client(), paddle_stub, rejected)
    request = latest_request(db_session)
    assert request.state is RequestState.REFUND_FAILED
    failed = next(e for e in request.events if e.to_state is RequestState.REFUND_FAILED)
    # Paddle's words as Paddle sent them (status, adjustment, the reason it carries) are kept on the
    # refund and shown to staff in the timeline; the customer reads a sentence in their language.
    adjustment_id = paddle_stub.adjustments[0]["id"]
    words = f"Paddle rejected adjustment {adjustment_id}: Refund request {reference} [refund-{reference}-attempt-1]"
    assert failed.actor is Actor.SYSTEM and (failed.processor_status, failed.note) == ("rejected", words)
    assert request.refunds[-1].processor_message == words
    page = f"/staff/requests/{reference}"
    timeline = agent.get(page).get_data(as_text=True)
    assert "The payment processor reviewed the refund and did not approve it. (rejected)" in timeline
    assert words in timeline and "gave no reason" not in timeline
    [email] = outbox(db_session, "refund_failed")
    assert email.variables["reason"] == "The payment processor reviewed the refund and did not approve it."
    assert staff_post(agent, f"{page}/retry", page).status_code == 303
    process(agent, reference)
    assert len(paddle_stub.adjustments) == 2
    assert paddle_stub.adjustments[1]["reason"].endswith(f"[refund-{reference}-attempt-2]")


def test_a_lost_answer_is_found_again_on_retry_and_never_refunds_twice(paddle_app, approved, paddle_stub, db_session):
    agent, reference = approved
    paddle_stub.failures = ["drop"]  # Paddle makes the adjustment; the answer never arrives
    process(agent, reference)
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED and request.refunds[0].status is RefundStatus.PENDING
    assert len(paddle_stub.adjustments) == 1
    process(agent, reference)  # the same attempt: the adjustment is found by its key, not made again
    assert paddle_stub.calls == 1 and len(paddle_stub.adjustments) == 1
    refund = latest_request(db_session).refunds[0]
    assert refund.processor_reference == paddle_stub.adjustments[0]["id"]


def test_a_lost_answer_is_reconciled_from_the_webhook_by_the_key_in_the_reason(
    paddle_app, approved, paddle_stub, db_session
):
    agent, reference = approved
    paddle_stub.failures = ["drop"]
    process(agent, reference)
    approved_event = paddle_stub.review(paddle_stub.adjustments[0]["id"], "approved")
    deliver(paddle_app.test_client(), paddle_stub, approved_event)
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and len(request.refunds) == 1


def test_a_server_error_keeps_the_request_approved_for_a_retry(paddle_app, approved, paddle_stub, db_session):
    agent, reference = approved
    paddle_stub.failures = ["server_error"]
    process(agent, reference)
    assert latest_request(db_session).state is RequestState.APPROVED and paddle_stub.adjustments == []
    process(agent, reference)
    assert len(paddle_stub.adjustments) == 1


def test_redelivered_and_reordered_notifications_change_nothing_twice(paddle_app, approved, paddle_stub, db_session):
    agent, reference = approved
    process(agent, reference)
    adjustment = dict(paddle_stub.adjustments[0])
    created = paddle_stub.event("adjustment.created", adjustment)
    approved_event = paddle_stub.review(adjustment["id"], "approved")
    client = paddle_app.test_client()
    deliver(client, paddle_stub, approved_event)
    assert deliver(client, paddle_stub, approved_event).json["outcome"] == "duplicate: already received"
    late = deliver(client, paddle_stub, created)  # the older "pending" arrives last
    assert late.json["outcome"].endswith("already succeeded")
    rejected_late = paddle_stub.event("adjustment.updated", {**adjustment, "status": "rejected"})
    assert "left for staff" in deliver(client, paddle_stub, rejected_late).json["outcome"]
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(StatusEvent)
            .where(StatusEvent.refund_request_id == request.id, StatusEvent.to_state == RequestState.REFUNDED)
        )
        == 1
    )
    assert len(outbox(db_session, "refunded")) == 1


def test_a_dashboard_refund_before_its_order_waits_and_is_recorded_when_the_order_arrives(
    paddle_app, paddle_stub, db_session
):
    transaction = paddle_stub.add_transaction(TXN, [2900], "USD", custom_data=ORDER)
    client = paddle_app.test_client()
    paddle_stub.auto_approve = True
    paddle_stub.post(
        "/adjustments",
        {"action": "refund", "type": "full", "transaction_id": TXN, "reason": "goodwill"},
        "Bearer pdl_dashboard",
    )
    adjustment = paddle_stub.adjustments[0]
    assert (
        deliver(client, paddle_stub, paddle_stub.event("adjustment.created", adjustment))
        .json["outcome"]
        .startswith("waiting")
    )
    answer = deliver(client, paddle_stub, paddle_stub.event("transaction.completed", transaction))
    assert answer.json["outcome"] == "order PDL-2001 created; 1 waiting event(s) handled"
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and request.refunds[0].processor_reference == adjustment["id"]


def test_signatures_are_checked_by_the_sdk(paddle_app, paddle_stub, sold, make_app):
    client = paddle_app.test_client()
    event = paddle_stub.event("transaction.completed", sold)
    assert deliver(client, paddle_stub, event, secret="wrong").status_code == 400
    old = paddle_stub.sign(json.dumps(event).encode(), "pdl_ntfset_secret", timestamp=1)
    assert deliver(client, paddle_stub, event, signature=old).status_code == 400
    assert deliver(client, paddle_stub, event, signature="garbage").status_code == 400
    unconfigured = make_app(**paddle_stub.portal_settings(PADDLE_WEBHOOK_SECRET=None)).test_client()
    assert deliver(unconfigured, paddle_stub, event).status_code == 404


def test_twenty_concurrent_process_calls_make_exactly_one_adjustment(paddle_app, approved, paddle_stub, db_session):
    _agent, reference = approved
    paddle_stub.delay = 0.1
    gateway = PaddleGateway("pdl_sdbx_apikey_portal", api_base=paddle_stub.url, timeout=10)
    outcomes = process_at_once(paddle_app, db_session, reference, gateway)
    # Paddle keeps the refund pending, so the request stays approved: every caller reaches the
    # gateway in turn, and every one after the first finds the adjustment by the attempt's key.
    assert len(outcomes) == 20 and set(outcomes) <= {"processed", "409"}
    assert paddle_stub.calls == 1 and len(paddle_stub.adjustments) == 1
    assert db_session.scalar(select(func.count()).select_from(Refund)) == 1


def test_events_are_stored_once_under_paddles_event_id(paddle_app, sold, db_session):
    stored = db_session.scalars(select(ProcessorEvent)).all()
    assert [(e.provider, e.type, e.charge) for e in stored] == [("paddle", "transaction.completed", TXN)]


def test_a_rejected_dashboard_refund_shows_staff_the_reason_typed_in_paddle(paddle_app, sold, paddle_stub, db_session):
    paddle_stub.post(
        "/adjustments",
        {"action": "refund", "type": "full", "transaction_id": TXN, "reason": "Duplicate purchase, per phone call"},
        "Bearer pdl_dashboard",
    )
    [adjustment] = paddle_stub.adjustments
    client = paddle_app.test_client()
    deliver(client, paddle_stub, paddle_stub.event("adjustment.created", adjustment))
    deliver(client, paddle_stub, paddle_stub.review(adjustment["id"], "rejected"))
    request = latest_request(db_session)
    # Opened on the order's behalf when the dashboard refund arrived, never approved here: it stays
    # with staff, its refund marked rejected with Paddle's words.
    assert request.state is RequestState.RECEIVED and request.refunds[0].status is RefundStatus.FAILED
    make_staff(db_session, "agent@example.com")
    agent = paddle_app.test_client()
    sign_in(agent, "agent@example.com")
    page = agent.get(f"/staff/requests/{request.reference}").get_data(as_text=True)
    assert f"Paddle rejected adjustment {adjustment['id']}: Duplicate purchase, per phone call" in page


def test_a_routine_paddle_order_is_refunded_by_a_rule_exactly_once_and_settled_by_its_webhook(
    paddle_app, sold, paddle_stub, db_session, frozen
):
    from datetime import timedelta

    from tests.journey_helpers import file_request, lookup

    customer = paddle_app.test_client()
    lookup(customer, "PDL-2001", "dana@example.com")
    file_request(customer, "PDL-2001")
    cli = paddle_app.test_cli_runner()
    assert "1 queued" in cli.invoke(args=["automation", "run"]).output
    frozen.shift(timedelta(minutes=61))
    assert "approved 1, refunded 0" in cli.invoke(args=["automation", "run"]).output  # Paddle has to approve
    cli.invoke(args=["automation", "run"])
    [adjustment] = paddle_stub.adjustments  # one adjustment, however many rounds
    assert paddle_stub.calls == 1 and adjustment["status"] == "pending_approval" and adjustment["type"] == "full"
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED and request.refunds[0].status is RefundStatus.PENDING
    client = paddle_app.test_client()
    approved_event = paddle_stub.review(adjustment["id"], "approved")
    assert "refunded" in deliver(client, paddle_stub, approved_event).json["outcome"]
    assert deliver(client, paddle_stub, approved_event).json["outcome"].startswith("duplicate")
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and request.refunds[0].status is RefundStatus.SUCCEEDED
    approval = next(e for e in request.events if e.to_state is RequestState.APPROVED)
    assert approval.note == f"approved by rule routine-monthly (policy version {request.policy_version})"
    assert [m.message for m in outbox(db_session)] == ["acknowledgement", "approval", "refunded"]
    assert paddle_stub.refunded(TXN) == 2900 and paddle_stub.calls == 1
