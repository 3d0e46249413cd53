"""Moving money: the Stripe gateway against a stateful local stub, retries, and concurrency."""
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from portal.accounts.models import StaffUser
from portal.config import engine_options
from portal.core.vocabulary import RefundStatus, RequestState
from portal.payments import StripeGateway
from portal.policy import load_policy
from portal.refunds import acting, payouts
from portal.refunds.links import Links
from portal.refunds.models import Refund, RefundRequest, StatusEvent
from portal.refunds.states import InvalidTransition
from portal.web.extensions import db
from tests.journey_helpers import import_samples, latest_request, outbox
from tests.staff_helpers import approved_in_full, staff_post

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


def act(client, ref, action, **fields):
    return staff_post(client, f"/staff/requests/{ref}/{action}", f"/staff/requests/{ref}", **fields)


def test_stripe_refunds_the_charge_in_minor_units_with_the_attempts_key(approved, stripe_stub, db_session):
    agent, reference = approved
    assert act(agent, reference, "process").status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    [refund] = request.refunds
    assert (refund.gateway, refund.status, refund.processor_reference) == ("stripe", RefundStatus.SUCCEEDED,
                                                                            "re_stub0001")
    assert refund.idempotency_key == f"refund-{reference}-attempt-1"
    assert stripe_stub.refunded("ch_3QaB10001") == 2900
    assert stripe_stub.refunds[0]["metadata"] == {"refund_request": reference}
    assert outbox(db_session, "refunded")[0].variables["processor_reference"] == "re_stub0001"


def test_a_lost_answer_is_retried_with_the_same_key_and_never_refunds_twice(approved, stripe_stub, db_session):
    agent, reference = approved
    stripe_stub.failures = ["drop"]  # Stripe makes the refund, the answer never arrives
    response = act(agent, reference, "process")
    assert response.status_code == 303
    assert "did not answer" in agent.get(response.headers["Location"]).get_data(as_text=True)
    request = latest_request(db_session)
    assert request.state is RequestState.APPROVED
    assert [r.status for r in request.refunds] == [RefundStatus.PENDING]
    assert stripe_stub.refunded("ch_3QaB10001") == 2900  # the money has already moved

    assert act(agent, reference, "process").status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [(r.status, r.processor_reference) for r in request.refunds] == [(RefundStatus.SUCCEEDED, "re_stub0001")]
    assert stripe_stub.refunded("ch_3QaB10001") == 2900 and len(stripe_stub.refunds) == 1


def test_a_server_error_is_retried_with_the_same_key(approved, stripe_stub, db_session):
    agent, reference = approved
    stripe_stub.failures = ["server_error"]
    act(agent, reference, "process")
    assert latest_request(db_session).state is RequestState.APPROVED
    act(agent, reference, "process")
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED and len(request.refunds) == 1
    assert stripe_stub.refunded("ch_3QaB10001") == 2900


def test_a_decline_fails_the_refund_and_a_retry_is_a_new_attempt_with_a_new_key(approved, stripe_stub,
                                                                                 db_session):
    agent, reference = approved
    stripe_stub.failures = ["decline"]
    act(agent, reference, "process")
    request = latest_request(db_session)
    assert request.state is RequestState.REFUND_FAILED
    assert "card used for this charge has been closed" in request.refunds[0].processor_message
    [failed] = outbox(db_session, "refund_failed")
    assert failed.variables["amount"] == "29.00 USD"

    assert act(agent, reference, "retry").status_code == 303
    assert act(agent, reference, "process").status_code == 303
    request = latest_request(db_session)
    assert request.state is RequestState.REFUNDED
    assert [(r.attempt, r.status) for r in request.refunds] == [(1, RefundStatus.FAILED), (2, RefundStatus.SUCCEEDED)]
    assert [r.idempotency_key for r in request.refunds] == [f"refund-{reference}-attempt-1",
                                                            f"refund-{reference}-attempt-2"]
    assert stripe_stub.refunded("ch_3QaB10001") == 2900
    events = [(e.from_state, e.to_state) for e in request.events]
    assert events[-4:] == [(RequestState.RECEIVED, RequestState.APPROVED),
                           (RequestState.APPROVED, RequestState.REFUND_FAILED),
                           (RequestState.REFUND_FAILED, RequestState.APPROVED),
                           (RequestState.APPROVED, RequestState.REFUNDED)]


def test_the_processor_refuses_more_than_is_left_of_the_charge(approved, stripe_stub, db_session):
    agent, reference = approved
    stripe_stub.charges["ch_3QaB10001"]["refunded"] = 1000  # refunded in the dashboard meanwhile
    act(agent, reference, "process")
    request = latest_request(db_session)
    assert request.state is RequestState.REFUND_FAILED
    assert "greater than unrefunded amount" in request.refunds[0].processor_message
    assert stripe_stub.refunded("ch_3QaB10001") == 1000


def test_the_stub_is_stripe_like_about_keys(stripe_stub):
    """The stub must hold Stripe's own rules, or the tests above would prove nothing."""
    from portal.core.money import Money
    from portal.payments import GatewayUnavailable, RefundDeclined

    stripe_stub.add_charge("ch_1", 1000, "EUR")
    gateway = StripeGateway("sk_test_x", api_base=stripe_stub.url, max_network_retries=0)
    first = gateway.refund(charge="ch_1", amount=Money.parse("4.00", "EUR"), idempotency_key="k1")
    again = gateway.refund(charge="ch_1", amount=Money.parse("4.00", "EUR"), idempotency_key="k1")
    assert first.reference == again.reference and stripe_stub.refunded("ch_1") == 400
    with pytest.raises(RefundDeclined, match="same parameters"):
        gateway.refund(charge="ch_1", amount=Money.parse("5.00", "EUR"), idempotency_key="k1")
    with pytest.raises(RefundDeclined, match="greater than unrefunded"):
        gateway.refund(charge="ch_1", amount=Money.parse("7.00", "EUR"), idempotency_key="k2")
    stripe_stub.failures = ["server_error"]
    with pytest.raises(GatewayUnavailable):
        gateway.refund(charge="ch_1", amount=Money.parse("1.00", "EUR"), idempotency_key="k3")
    slow = StripeGateway("sk_test_x", api_base=stripe_stub.url, max_network_retries=0, timeout=0.5)
    stripe_stub.delay = 1.5
    with pytest.raises(GatewayUnavailable):
        slow.refund(charge="ch_1", amount=Money.parse("1.00", "EUR"), idempotency_key="k4")


def test_twenty_concurrent_process_calls_make_one_gateway_call(approved, stripe_stub, stripe_app, db_session):
    _agent, reference = approved
    with stripe_app.app_context():
        url = db.engine.url
    # One connection per caller, as twenty web workers would have: the app's pool holds fifteen.
    engine = create_engine(url, pool_size=20, max_overflow=5, **engine_options(url.render_as_string(False)))
    request_id = db_session.scalar(select(RefundRequest.id).where(RefundRequest.reference == reference))
    user_id = db_session.scalar(select(StaffUser.id))
    stripe_stub.delay = 0.2  # a slow processor widens the window for a double refund
    gateway = StripeGateway("sk_test_portal", api_base=stripe_stub.url, max_network_retries=0)
    links = Links("http://portal.test", "secret")
    policy = load_policy(None)
    start = threading.Barrier(20)
    outcomes = []

    def worker():
        with Session(engine) as session:
            staff = acting.Staff(session.get(StaffUser, user_id), datetime.now(UTC), links, policy)
            start.wait()
            try:
                payouts.process_refund(session, request_id, staff, gateway)
                session.commit()
                outcomes.append("refunded")
            except InvalidTransition:
                outcomes.append("409")

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["409"] * 19 + ["refunded"]
    assert stripe_stub.calls == 1 and stripe_stub.refunded("ch_3QaB10001") == 2900
    db_session.expire_all()
    refunded_events = db_session.scalar(select(func.count()).select_from(StatusEvent).where(
        StatusEvent.refund_request_id == request_id, StatusEvent.to_state == RequestState.REFUNDED))
    assert refunded_events == 1
    assert db_session.scalar(select(func.count()).select_from(Refund)) == 1
    engine.dispose()
