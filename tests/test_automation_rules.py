"""The pure rule engine, asked directly: each condition of a rule, in isolation."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from portal.core.money import Money
from portal.core.vocabulary import Channel, Plan, Reason
from portal.policy import PolicyError
from portal.policy.automation import load_automation, parse_automation
from portal.refunds.automation.rules import Candidate, approval_note, match, parse_note, why_not

RULES = parse_automation("""
schema = 1
[[versions]]
id = "v1"
effective_from = 2026-01-01T00:00:00Z
  [[versions.rules]]
  id = "monthly"
  reasons = ["no_longer_needed"]
  plans = ["monthly"]
  channels = ["web"]
  outcomes = ["full"]
  max_amount = { USD = "50.00", JPY = "5000" }
  max_refunds_last_365_days = 1
[[versions]]
id = "v2"
effective_from = 2026-06-01T00:00:00Z
""")
V1 = RULES.versions[0]
RULE = V1.rules[0]
ROUTINE = Candidate(
    reason=Reason.NO_LONGER_NEEDED,
    plan=Plan.MONTHLY,
    channel=Channel.WEB,
    outcome="full",
    amount=Money.parse("29.00", "USD"),
    refundable=Money.parse("29.00", "USD"),
)


def test_a_routine_candidate_matches_and_names_its_rule():
    found = match(V1, ROUTINE)
    assert found.matched and found.rule.id == "monthly" and found.version == "v1"


@pytest.mark.parametrize(
    ("change", "condition"),
    [
        ({"reason": Reason.TECHNICAL_PROBLEM}, "reason"),
        ({"plan": Plan.ANNUAL}, "plan"),
        ({"channel": Channel.RESELLER}, "channel"),
        ({"outcome": "prorated"}, "outcome"),
        ({"outcome": "review"}, "outcome"),
        ({"outcome": "refused"}, "outcome"),
        ({"review_requested": True}, "outcome"),
        ({"amount": Money.parse("30.00", "USD")}, "outcome"),  # more than the policy allows
        ({"amount": Money.parse("50.01", "USD"), "refundable": Money.parse("60.00", "USD")}, "amount"),
        ({"amount": Money.parse("10.00", "EUR"), "refundable": Money.parse("10.00", "EUR")}, "amount"),  # no ceiling
        ({"signals": frozenset({"shared_document"})}, "fraud_signal"),
        ({"signals": frozenset({"payment_status"})}, "fraud_signal"),
        ({"refunds_last_365_days": 2}, "refunds_last_365_days"),
        ({"documents_required": True}, "documents"),
    ],
)
def test_each_condition_refuses_on_its_own(change, condition):
    assert why_not(RULE, replace(ROUTINE, **change)) == condition
    assert match(V1, replace(ROUTINE, **change)).misses == (("monthly", condition),)


def test_boundaries_are_inclusive():
    assert (
        why_not(RULE, replace(ROUTINE, amount=Money.parse("50.00", "USD"), refundable=Money.parse("50.00", "USD")))
        is None
    )
    assert why_not(RULE, replace(ROUTINE, refunds_last_365_days=1)) is None
    assert why_not(RULE, replace(ROUTINE, documents_required=True, documents=1)) is None
    # A repeat refund is its own condition, not a blocking fraud signal.
    assert why_not(RULE, replace(ROUTINE, signals=frozenset({"repeat_refunds"}))) is None
    assert (
        why_not(RULE, replace(ROUTINE, amount=Money.parse("5000", "JPY"), refundable=Money.parse("5000", "JPY")))
        is None
    )


def test_versions_apply_from_their_date_and_an_empty_one_automates_nothing():
    assert RULES.version_for(datetime(2025, 12, 31, tzinfo=UTC)) is None
    assert match(None, ROUTINE).matched is False
    assert RULES.version_for(datetime(2026, 3, 1, tzinfo=UTC)).id == "v1"
    v2 = RULES.version_for(datetime(2026, 7, 1, tzinfo=UTC))
    assert v2.id == "v2" and match(v2, ROUTINE).matched is False


def test_the_note_round_trips():
    note = approval_note("monthly", "2025-01")
    assert note == "approved by rule monthly (policy version 2025-01)"
    assert parse_note(note) == ("monthly", "2025-01") and parse_note("anything else") is None


def test_a_rules_file_is_validated_with_each_problem_named():
    with pytest.raises(PolicyError) as caught:
        parse_automation(
            'schema = 1\n[[versions]]\nid = "b"\neffective_from = 2026-02-01T00:00:00Z\n'
            '[[versions]]\nid = "a"\neffective_from = 2026-01-01T00:00:00Z\n'
        )
    assert "oldest first" in caught.value.problems[0]
    with pytest.raises(PolicyError) as caught:
        parse_automation(
            'schema = 1\n[[versions]]\nid = "a"\neffective_from = 2026-01-01T00:00:00\n'
            '[[versions.rules]]\nid = "x"\nmax_amount = { USD = "-1" }\nsurprise = 1\n'
            '[[versions.rules]]\nid = "x"\nmax_amount = { USD = "1" }\n'
        )
    problems = " | ".join(caught.value.problems)
    assert "needs a time zone" in problems and "unknown setting" in problems
    assert "must be more than zero" in problems
    assert load_automation().versions  # the shipped file is valid
