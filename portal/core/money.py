"""Money as Decimal in the currency's own minor units; never float.

Amounts are stored as whole numbers of the minor unit (cents, fen; yen have none) and
handled as :class:`Money`, whose Decimal always carries exactly the currency's decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

# Digits with at most one decimal point, optionally negative: what people and exports write.
_PLAIN_AMOUNT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


class MoneyError(ValueError):
    """An amount that cannot be represented in its currency; ``code`` names the fault."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@cache
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in known_currencies()


@cache
def exponent(currency: str) -> int:
    """Decimals of the currency's minor unit: 2 for USD, 0 for JPY."""
    if not is_currency(currency):
        raise MoneyError("currency", f"unknown currency {currency!r}")
    return get_currency_precision(currency)


@cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(Decimal(int(minor)).scaleb(-exponent(currency)).quantize(_quantum(currency)), currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a major-unit amount such as ``"29.00"``; refuse extra decimals rather than round."""
        try:
            written = text.strip()
            amount = Decimal(written)
        except (InvalidOperation, AttributeError):
            raise MoneyError("amount", f"{text!r} is not a number") from None
        if not _PLAIN_AMOUNT.fullmatch(written):  # "1e3", "+5", "1_000": numbers to Python, not amounts to people
            raise MoneyError("amount", f"{text!r} is not a plain amount")
        if not amount.is_finite():
            raise MoneyError("amount", f"{text!r} is not a number")
        quantum = _quantum(currency)
        if amount != amount.quantize(quantum, rounding=ROUND_DOWN):
            raise MoneyError("decimals", f"{currency} allows {exponent(currency)} decimals")
        return cls(amount.quantize(quantum), currency)

    @property
    def minor(self) -> int:
        return int(self.amount.scaleb(exponent(self.currency)))

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError("currency", f"cannot combine {self.currency} and {other.currency}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
