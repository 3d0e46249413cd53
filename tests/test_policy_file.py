"""The policy file: the shipped one is valid, a broken one is refused with each problem named."""

import re

import pytest

from portal import create_app
from portal.policy import DEFAULT_POLICY, PolicyError, evaluate, load_policy, parse_policy
from tests.policy_helpers import AS_OF, sample_orders

DEFAULT_TEXT = DEFAULT_POLICY.read_text(encoding="utf-8")


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "test.toml")
    return info.value.problems


def test_the_shipped_policy_holds_every_sample_clause_in_three_languages():
    version = load_policy().versions[-1]
    assert [c.id for c in version.clauses] == [
        "who",
        "monthly",
        "annual",
        "one-time",
        "documents",
        "billing-error",
        "technical",
        "exclusions",
        "process",
    ]
    for clause in version.clauses:
        for locale in ("en", "zh", "nl"):
            assert clause.title.get(locale) and clause.text.get(locale)


def test_an_unknown_clause_kind_is_named():
    found = problems(DEFAULT_TEXT.replace('kind = "information"', 'kind = "footnote"'))
    assert found == [
        "version 2025-01 › clause exclusions: unknown clause kind 'footnote' (use eligibility, "
        "window, documents, review, information, process)"
    ]


def test_a_missing_translation_is_named():
    text = DEFAULT_TEXT.replace(
        '  text.nl = "Volledige terugbetaling binnen {full_refund_days} dagen na aankoop; daarna niet meer."\n', ""
    )
    assert problems(text) == ["version 2025-01 › clause one-time › text: missing nl translation"]


def test_a_bad_parameter_is_named():
    found = problems(DEFAULT_TEXT.replace("full_refund_days = 14", "full_refund_days = -3"))
    assert found == ["version 2025-01 › clause monthly › full_refund_days: Input should be greater than 0"]


def test_a_prorated_window_must_end_after_the_full_one():
    found = problems(DEFAULT_TEXT.replace("prorated_until_days = 90", "prorated_until_days = 20"))
    assert any("clause annual" in p and "greater than full_refund_days" in p for p in found)


def test_a_translation_that_omits_a_number_is_refused():
    text = DEFAULT_TEXT.replace("自购买之日起 {full_refund_days} 天内（", "自购买之日起两周内（")
    found = problems(text)
    assert len(found) == 1 and "clause monthly" in found[0] and "do not state the same parameters" in found[0]


def test_a_text_naming_an_unknown_parameter_is_refused():
    found = problems(
        DEFAULT_TEXT.replace(
            "within {full_refund_days} days of purchase; none after.",
            "within {refund_days} days of purchase; none after.",
        )
    )
    assert any("clause one-time" in p and "unknown parameter(s) refund_days" in p for p in found)


def test_versions_must_build_on_earlier_ones_and_go_forward_in_time():
    assert (
        "based_on names '2024-01'" in problems(DEFAULT_TEXT.replace('based_on = "2025-01"', 'based_on = "2024-01"'))[0]
    )
    backwards = DEFAULT_TEXT.replace("effective_from = 2026-01-01T00:00:00Z", "effective_from = 2024-06-01T00:00:00Z")
    assert any("oldest first" in p for p in problems(backwards))


def test_not_toml_at_all():
    assert problems("schema = ")[0].startswith("not valid TOML")


def test_cli_check_names_problems_and_fails(runner, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(
        DEFAULT_TEXT.replace('kind = "information"', 'kind = "footnote"').replace(
            "full_refund_days = 14", "full_refund_days = 0"
        ),
        encoding="utf-8",
    )
    result = runner.invoke(args=["policy", "check", str(broken)])
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output
    assert "clause exclusions: unknown clause kind 'footnote'" in result.output
    assert "clause monthly › full_refund_days" in result.output
    good = runner.invoke(args=["policy", "check", str(DEFAULT_POLICY)])
    assert good.exit_code == 0 and "valid; 2 version(s)" in good.output
    # Without a path it checks the policy the portal serves.
    served = runner.invoke(args=["policy", "check"])
    assert served.exit_code == 0 and served.output.startswith(f"{DEFAULT_POLICY}: valid")


def test_the_app_refuses_to_start_on_a_broken_policy(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(DEFAULT_TEXT.replace("full_refund_days = 14", "full_refund_days = 0"), encoding="utf-8")
    with pytest.raises(PolicyError, match="full_refund_days"):
        create_app({"ENV": "testing", "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite://", "POLICY_FILE": str(broken)})


def test_one_file_drives_both_the_page_and_the_decisions(tmp_path):
    """Change the monthly window in the file: the page states 21 days and the engine applies 21."""
    changed = tmp_path / "policy.toml"
    changed.write_text(DEFAULT_TEXT.replace("full_refund_days = 14", "full_refund_days = 21"), encoding="utf-8")
    app = create_app(
        {"ENV": "testing", "SECRET_KEY": "x" * 40, "DATABASE_URL": "sqlite://", "POLICY_FILE": str(changed)}
    )
    page = app.test_client().get("/policy", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    monthly = re.search(r'<section class="card clause" id="monthly".*?</section>', page, re.S).group(0)
    assert "binnen 21 dagen na aankoop" in monthly
    policy = load_policy(changed)
    order = sample_orders()["ORD-10002"]  # bought 41 days before AS_OF
    assert (
        evaluate(order, policy, order.purchased_at + __import__("datetime").timedelta(days=20), None).amount
        == order.amount
    )
    assert evaluate(order, policy, AS_OF, None).outcome.value == "refused"
