"""The contract every payment gateway passes (portal/payments/base.py), run against each one.

A third processor (PayPro Global, FastSpring…) is one module in portal/payments/ plus a stateful
double of its documented API in tests/ and one harness here: these tests then say whether it keeps
the promises processing relies on. A harness knows how to make a charge at its double, how much of
it has gone back, and how to make the next call fail the ways real processors do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from portal.core.money import Money
from portal.payments import GatewayUnavailable, StripeGateway
from portal.payments.base import Gateway, GatewayMisconfigured
from portal.payments.paddle_gateway import PaddleGateway


@dataclass
class Harness:
    gateway: Callable[..., Gateway]  # (timeout=…) → a gateway talking to the double
    charge: Callable[[str, int, str], str]  # (name, amount in minor units, currency) → the gateway's charge reference
    refunded: Callable[[str], int]  # charge reference → minor units gone back (or on their way)
    fail_next: Callable[[str], None]  # "server_error" or "drop" (the refund is made, the answer is lost)
    slow: Callable[[float], None]


@pytest.fixture(params=["stripe", "paddle"])
def harness(request) -> Harness:
    if request.param == "stripe":
        stub = request.getfixturevalue("stripe_stub")

        def stripe_charge(name, amount, currency):
            stub.add_charge(f"ch_{name}", amount, currency)
            return f"ch_{name}"

        return Harness(
            lambda timeout=5: StripeGateway("sk_test_x", api_base=stub.url, max_network_retries=0, timeout=timeout),
            stripe_charge,
            stub.refunded,
            stub.failures.append,
            lambda s: setattr(stub, "delay", s),
        )
    stub = request.getfixturevalue("paddle_stub")

    def paddle_charge(name, amount, currency):
        stub.add_transaction(f"txn_{name}", [amount], currency)
        return f"txn_{name}"

    return Harness(
        lambda timeout=5: PaddleGateway("pdl_sdbx_apikey_x", api_base=stub.url, timeout=timeout),
        paddle_charge,
        stub.refunded,
        stub.failures.append,
        lambda s: setattr(stub, "delay", s),
    )


def test_a_refund_answers_with_the_processors_reference_and_moves_the_amount(harness):
    charge = harness.charge("a1", 2900, "USD")
    answer = harness.gateway().refund(
        payment=charge, amount=Money.parse("29.00", "USD"), idempotency_key="k-a1", metadata={"refund_request": "RF-A1"}
    )
    assert answer.reference and answer.status in ("succeeded", "pending")
    assert harness.refunded(charge) == 2900


def test_a_partial_refund_moves_only_its_amount(harness):
    charge = harness.charge("a2", 2900, "USD")
    harness.gateway().refund(payment=charge, amount=Money.parse("10.00", "USD"), idempotency_key="k-a2")
    assert harness.refunded(charge) == 1000


def test_the_same_key_never_refunds_twice(harness):
    charge = harness.charge("a3", 2900, "USD")
    gateway = harness.gateway()
    first = gateway.refund(payment=charge, amount=Money.parse("29.00", "USD"), idempotency_key="k-a3")
    again = gateway.refund(payment=charge, amount=Money.parse("29.00", "USD"), idempotency_key="k-a3")
    assert first.reference == again.reference and harness.refunded(charge) == 2900


def test_a_lost_answer_is_unavailable_and_the_retry_with_the_same_key_finds_the_refund(harness):
    charge = harness.charge("a4", 2900, "USD")
    gateway = harness.gateway()
    harness.fail_next("drop")
    with pytest.raises(GatewayUnavailable):
        gateway.refund(payment=charge, amount=Money.parse("29.00", "USD"), idempotency_key="k-a4")
    retried = gateway.refund(payment=charge, amount=Money.parse("29.00", "USD"), idempotency_key="k-a4")
    assert retried.reference and harness.refunded(charge) == 2900


def test_a_server_error_is_unavailable_and_moves_nothing(harness):
    charge = harness.charge("a5", 2900, "USD")
    harness.fail_next("server_error")
    with pytest.raises(GatewayUnavailable):
        harness.gateway().refund(payment=charge, amount=Money.parse("29.00", "USD"), idempotency_key="k-a5")
    assert harness.refunded(charge) == 0


def test_more_than_is_left_is_refused_as_our_mistake(harness):
    # The portal asked for what the payment no longer holds: staff are alerted, the customer is not told.
    charge = harness.charge("a6", 2900, "USD")
    gateway = harness.gateway()
    gateway.refund(payment=charge, amount=Money.parse("20.00", "USD"), idempotency_key="k-a6-1")
    with pytest.raises(GatewayMisconfigured):
        gateway.refund(payment=charge, amount=Money.parse("20.00", "USD"), idempotency_key="k-a6-2")
    assert harness.refunded(charge) == 2000


def test_an_unknown_charge_is_refused_as_our_mistake(harness):
    with pytest.raises(GatewayMisconfigured):
        harness.gateway().refund(
            payment="ch_nope" if "Stripe" in type(harness.gateway()).__name__ else "txn_nope",
            amount=Money.parse("1.00", "USD"),
            idempotency_key="k-a7",
        )


def test_a_silent_processor_is_unavailable_within_the_timeout(harness):
    charge = harness.charge("a8", 2900, "USD")
    harness.slow(1.5)
    with pytest.raises(GatewayUnavailable):
        harness.gateway(timeout=0.5).refund(payment=charge, amount=Money.parse("1.00", "USD"), idempotency_key="k-a8")
