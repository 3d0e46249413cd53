"""The engine against the decisions the sample policy tables for orders.csv, and its edges."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.core.money import Money, exponent
from portal.core.vocabulary import Channel, PaymentStatus, Plan, Reason
from portal.policy import Basis, Decision, Outcome, evaluate, load_policy
from portal.policy.engine import prorated_amount
from tests.policy_helpers import AS_OF, Terms, sample_orders

POLICY = load_policy()
ORDERS = sample_orders()


# The table at the end of ../shared/samples/refund-policy.md, filed 2026-11-22T12:00Z, "no longer needed".
EXPECTED = [
    ("ORD-10001", Outcome.FULL, "29.00", ("monthly",), False),
    ("ORD-10002", Outcome.REFUSED, None, ("monthly",), False),
    ("ORD-10003", Outcome.PRORATED, "454.29", ("annual",), False),
    ("ORD-10004", Outcome.FULL, "588.00", ("annual", "documents"), True),
    ("ORD-10005", Outcome.FULL, "15.00", ("one-time",), False),
    ("ORD-20002", Outcome.PRORATED, "3067.72", ("annual",), False),
    ("ORD-30002", Outcome.PRORATED, "467.50", ("annual",), False),
    ("ORD-30003", Outcome.REFUSED, None, ("annual",), False),
    ("ORD-40001", Outcome.REFUSED, None, ("monthly",), False),
    ("ORD-40002", Outcome.FULL, "290.00", ("annual",), False),
]


@pytest.mark.parametrize("number,outcome,amount,clauses,documents", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_sample_decisions_come_out_exactly(number, outcome, amount, clauses, documents):
    order = ORDERS[number]
    decision = evaluate(order, POLICY, AS_OF, Reason.NO_LONGER_NEEDED)
    assert decision.outcome is outcome
    assert decision.clauses == clauses
    assert decision.documents_required is documents
    expected = Money.parse(amount, order.amount.currency) if amount else Money.from_minor(0, order.amount.currency)
    assert decision.amount == expected
    assert decision.policy_version == "2026-01"


@pytest.mark.parametrize("number,used,unused", [("ORD-10003", 83, 282), ("ORD-20002", 85, 280), ("ORD-30002", 49, 316)])
def test_prorated_decisions_state_the_days_used(number, used, unused):
    facts = evaluate(ORDERS[number], POLICY, AS_OF, Reason.NO_LONGER_NEEDED).facts
    assert (facts.days_used, facts.unused_days, facts.period_days) == (used, unused, 365)


def test_the_monthly_window_ends_to_the_minute():
    order = ORDERS["ORD-40001"]  # bought 2026-11-08T01:00Z
    end = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    before = evaluate(order, POLICY, end - timedelta(minutes=1), Reason.NO_LONGER_NEEDED)
    at = evaluate(order, POLICY, end, Reason.NO_LONGER_NEEDED)
    assert before.outcome is Outcome.FULL and before.amount == Money.parse("4300", "JPY")
    assert at.outcome is Outcome.REFUSED and at.facts.window_end == end


def test_yen_are_prorated_to_whole_yen():
    order = Terms(
        Plan.ANNUAL,
        Channel.WEB,
        Money.parse("10000", "JPY"),
        datetime(2026, 9, 1, 9, 0, tzinfo=UTC),
        datetime(2026, 9, 1).date(),
        datetime(2027, 9, 1).date(),
    )
    decision = evaluate(order, POLICY, AS_OF, Reason.NO_LONGER_NEEDED)
    # 10000 × 282 ÷ 365 = 7726.02… → 7726 yen, rounded down.
    assert decision.outcome is Outcome.PRORATED and decision.amount == Money.from_minor(7726, "JPY")


@pytest.mark.parametrize("number", ["ORD-30003", "ORD-10001", "ORD-40001"])
def test_billing_errors_go_to_review_whatever_the_date(number):
    decision = evaluate(ORDERS[number], POLICY, AS_OF, Reason.BILLING_ERROR)
    assert decision.outcome is Outcome.REVIEW and decision.clauses[0] == "billing-error"
    assert decision.amount == ORDERS[number].amount


def test_technical_problems_outside_the_windows_go_to_review():
    outside = evaluate(ORDERS["ORD-30003"], POLICY, AS_OF, Reason.TECHNICAL_PROBLEM)
    assert outside.outcome is Outcome.REVIEW and outside.clauses == ("technical",)
    assert outside.basis is Basis.REVIEW_OUTSIDE_WINDOW
    inside = evaluate(ORDERS["ORD-10001"], POLICY, AS_OF, Reason.TECHNICAL_PROBLEM)
    assert inside.outcome is Outcome.FULL


@pytest.mark.parametrize(
    "status,basis", [(PaymentStatus.CHARGED_BACK, Basis.CHARGED_BACK), (PaymentStatus.REFUNDED, Basis.FULLY_REFUNDED)]
)
def test_charged_back_and_refunded_orders_are_refused(status, basis):
    decision = evaluate(ORDERS["ORD-10001"].but(payment_status=status), POLICY, AS_OF, Reason.BILLING_ERROR)
    assert decision.outcome is Outcome.REFUSED and decision.clauses == ("who",) and decision.basis is basis


def test_a_partly_refunded_order_gets_at_most_what_remains():
    order = ORDERS["ORD-10004"]  # 588.00 USD, within the full window
    decision = evaluate(order, POLICY, AS_OF, Reason.NO_LONGER_NEEDED, Money.parse("100.00", "USD"))
    assert decision.amount == Money.parse("488.00", "USD")
    prorated = evaluate(ORDERS["ORD-10003"], POLICY, AS_OF, Reason.NO_LONGER_NEEDED, Money.parse("500.00", "USD"))
    assert prorated.amount == Money.parse("88.00", "USD")  # 454.29 capped by 588.00 − 500.00
    done = evaluate(order, POLICY, AS_OF, Reason.NO_LONGER_NEEDED, Money.parse("588.00", "USD"))
    assert done.outcome is Outcome.REFUSED and done.basis is Basis.FULLY_REFUNDED


def test_an_order_is_judged_by_the_version_in_force_when_it_was_bought():
    # Bought under 2025-01, which had no prorated refunds for annual plans.
    order = ORDERS["ORD-10003"].but(
        purchased_at=datetime(2025, 9, 1, 16, 40, tzinfo=UTC),
        period_start=datetime(2025, 9, 1).date(),
        period_end=datetime(2026, 9, 1).date(),
    )
    decision = evaluate(order, POLICY, datetime(2025, 11, 22, 12, 0, tzinfo=UTC), Reason.NO_LONGER_NEEDED)
    assert decision.policy_version == "2025-01" and decision.outcome is Outcome.REFUSED
    technical = evaluate(order, POLICY, datetime(2025, 11, 22, tzinfo=UTC), Reason.TECHNICAL_PROBLEM)
    assert technical.outcome is Outcome.REFUSED  # the technical clause came only in 2026-01


def test_the_worked_example_of_the_policy():
    amount, used, period = prorated_amount(
        Money.parse("588.00", "USD"),
        datetime(2026, 9, 1).date(),
        datetime(2027, 9, 1).date(),
        datetime(2026, 11, 22).date(),
    )
    assert (amount, used, period) == (Money.parse("454.29", "USD"), 83, 365)


def test_a_snapshot_restores_the_same_decision():
    for number in ORDERS:
        decision = evaluate(ORDERS[number], POLICY, AS_OF, Reason.NO_LONGER_NEEDED)
        assert Decision.from_snapshot(decision.to_snapshot()) == decision


# Property tests -----------------------------------------------------------------------------------

CURRENCIES = ["USD", "EUR", "JPY", "CNY", "GBP", "KWD"]  # KWD has three decimals
ROUTINE_REASONS = [Reason.NO_LONGER_NEEDED, Reason.NOT_AS_EXPECTED, Reason.OTHER]


@st.composite
def orders(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    paid = Money.from_minor(draw(st.integers(min_value=0, max_value=10**9)), currency)
    plan = draw(st.sampled_from(list(Plan)))
    bought = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 400 * 24 * 60)))
    start = end = None
    if plan is not Plan.ONE_TIME:
        start = bought.date()
        end = start + timedelta(days=draw(st.integers(28, 31)) if plan is Plan.MONTHLY else 365)
    prior = Money.from_minor(draw(st.integers(0, paid.minor)), currency)
    return Terms(plan, draw(st.sampled_from(list(Channel))), paid, bought, start, end), prior


@settings(max_examples=300, deadline=None)
@given(orders(), st.integers(0, 500 * 24 * 60), st.sampled_from(list(Reason)))
def test_amount_is_whole_minor_units_between_zero_and_what_remains(case, minutes, reason):
    order, prior = case
    decision = evaluate(order, POLICY, order.purchased_at + timedelta(minutes=minutes), reason, prior)
    assert decision.amount.currency == order.amount.currency
    assert 0 <= decision.amount.minor <= order.amount.minor - prior.minor
    assert decision.amount.amount.as_tuple().exponent == -exponent(order.amount.currency)
    assert Money.from_minor(decision.amount.minor, order.amount.currency) == decision.amount


@settings(max_examples=300, deadline=None)
@given(orders(), st.integers(0, 400 * 24 * 60), st.integers(1, 100 * 24 * 60), st.sampled_from(ROUTINE_REASONS))
def test_amount_never_rises_as_time_passes(case, minutes, later_by, reason):
    # Reasons that route to review (billing errors, late technical problems) hand the amount to staff
    # by design; for every other reason waiting can never earn more.
    order, prior = case
    earlier = evaluate(order, POLICY, order.purchased_at + timedelta(minutes=minutes), reason, prior)
    later = evaluate(order, POLICY, order.purchased_at + timedelta(minutes=minutes + later_by), reason, prior)
    assert later.amount.minor <= earlier.amount.minor


def test_outside_the_window_each_reason_gets_its_own_verdict():
    """ORD-10002's window has closed: a change of mind is refused, a billing error or an unresolved
    problem is reviewed. The order page says so before the customer files."""
    from portal.policy import verdicts_by_reason

    order = ORDERS["ORD-10002"]
    verdicts = verdicts_by_reason(order, POLICY, AS_OF)
    by_reason = {reason: v.decision for v in verdicts for reason in v.reasons}
    assert verdicts[0].general and Reason.NO_LONGER_NEEDED in verdicts[0].reasons
    for reason in (Reason.NO_LONGER_NEEDED, Reason.NOT_AS_EXPECTED, Reason.OTHER):
        assert by_reason[reason].outcome is Outcome.REFUSED and by_reason[reason].basis is Basis.AFTER_WINDOW
    assert by_reason[Reason.BILLING_ERROR].basis is Basis.REVIEW_ALWAYS
    assert by_reason[Reason.TECHNICAL_PROBLEM].basis is Basis.REVIEW_OUTSIDE_WINDOW
    assert by_reason[Reason.BILLING_ERROR].amount == Money.parse("29.00", "USD")
    assert len(verdicts) == 3  # each verdict once, with every reason it holds for
    # The same decisions the engine gives one reason at a time (the filing and the published policy).
    for reason, decision in by_reason.items():
        assert decision == evaluate(order, POLICY, AS_OF, reason)


def test_inside_the_window_only_a_billing_error_is_judged_differently():
    from portal.policy import verdicts_by_reason

    verdicts = verdicts_by_reason(ORDERS["ORD-10001"], POLICY, AS_OF)
    assert [v.decision.outcome for v in verdicts] == [Outcome.FULL, Outcome.REVIEW]
    assert verdicts[1].reasons == (Reason.BILLING_ERROR,)
    assert set(verdicts[0].reasons) == set(Reason) - {Reason.BILLING_ERROR}


def test_under_the_2025_policy_a_technical_problem_after_the_window_is_refused():
    """The technical-problem review came with the 2026 version: an order bought before it keeps its rules."""
    from portal.policy import verdicts_by_reason

    old = ORDERS["ORD-10002"].but(
        purchased_at=datetime(2025, 6, 1, 9, 0, tzinfo=UTC), period_start=None, period_end=None
    )
    verdicts = verdicts_by_reason(old, POLICY, AS_OF)
    refused = next(v for v in verdicts if v.general)
    assert Reason.TECHNICAL_PROBLEM in refused.reasons and refused.decision.policy_version == "2025-01"


def test_a_prorated_refund_says_how_much_it_falls_each_day_and_when_it_ends():
    from portal.policy.engine import closes_at, daily_decrease

    order = ORDERS["ORD-10003"]  # $588.00 for 365 days
    today = evaluate(order, POLICY, AS_OF, Reason.NO_LONGER_NEEDED)
    tomorrow = evaluate(order, POLICY, AS_OF + timedelta(days=1), Reason.NO_LONGER_NEEDED)
    assert daily_decrease(today) == Money.parse("1.61", "USD")
    assert (today.amount - tomorrow.amount) in (Money.parse("1.61", "USD"), Money.parse("1.62", "USD"))
    assert closes_at(today) == order.purchased_at + timedelta(days=90)
    full = evaluate(ORDERS["ORD-10001"], POLICY, AS_OF, Reason.NO_LONGER_NEEDED)
    assert daily_decrease(full) is None and closes_at(full) == datetime(2026, 11, 26, 9, 14, tzinfo=UTC)


def test_offers_that_keep_a_plan_are_not_made_once_its_period_has_ended():
    from portal.policy.offers import offers_that_fit

    expired = ORDERS["ORD-10002"]  # a monthly plan that ended on 2026-11-12
    running = ORDERS["ORD-10001"]  # until 2026-12-12
    one_time = ORDERS["ORD-10005"]
    assert [o.kind for o in offers_that_fit(POLICY, expired, AS_OF)] == ["personal_support"]
    assert [o.kind for o in offers_that_fit(POLICY, running, AS_OF)] == [
        "extended_trial",
        "upgrade_discount",
        "personal_support",
    ]
    assert [o.kind for o in offers_that_fit(POLICY, one_time, AS_OF)] == ["personal_support"]
    # On the period's last day it is still running; the day after, it is not.
    last_day = datetime(2026, 12, 11, 23, 0, tzinfo=UTC)
    assert len(offers_that_fit(POLICY, running, last_day)) == 3
    assert len(offers_that_fit(POLICY, running, last_day + timedelta(hours=2))) == 1
