from decimal import Decimal

import pytest

from portal.core.formatting import money as format_money
from portal.core.money import Money, MoneyError


def test_minor_units_follow_the_currency():
    assert Money.parse("29.00", "USD").minor == 2900
    assert Money.parse("4300", "JPY").minor == 4300
    assert Money.from_minor(45429, "USD").amount == Decimal("454.29")
    assert Money.from_minor(4300, "JPY").amount == Decimal("4300")


@pytest.mark.parametrize("text,currency", [("4300.5", "JPY"), ("1.001", "USD"), ("abc", "USD"), ("NaN", "EUR")])
def test_amounts_that_the_currency_cannot_hold_are_refused(text, currency):
    with pytest.raises(MoneyError):
        Money.parse(text, currency)


def test_amounts_are_formatted_for_the_locale():
    assert format_money(Money.parse("467.50", "EUR"), "nl") == "€\u00a0467,50"  # Babel keeps a no-break space
    assert format_money(Money.parse("4300", "JPY"), "en") == "¥4,300"
    assert format_money(Money.parse("3067.72", "CNY"), "zh") == "¥3,067.72"


def test_different_currencies_do_not_mix():
    with pytest.raises(MoneyError):
        Money.parse("1.00", "USD") + Money.parse("1.00", "EUR")


@pytest.mark.parametrize("text", ["1e3", "+5", "1_000", "0x10", "1,000.00"])
def test_only_plain_amounts_are_parsed(text):
    with pytest.raises(MoneyError):
        Money.parse(text, "USD")


def test_plain_amounts_are_parsed():
    assert [Money.parse(t, "USD").minor for t in ("29", "29.5", ".50", " 29.00 ", "-1.25")] == [
        2900,
        2950,
        50,
        2900,
        -125,
    ]
