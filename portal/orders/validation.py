"""Validation of order rows as the billing system exports them. Pure: no Flask, no database.

The CSV import and (later) the API use the same rules, so an order is accepted or refused
the same way whichever door it comes through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from portal.core.markers import N_
from portal.core.money import Money, MoneyError, exponent, is_currency
from portal.core.vocabulary import LOCALES, Channel, Plan

COLUMNS = (
    "order_number",
    "customer_email",
    "customer_name",
    "locale",
    "product",
    "plan",
    "amount",
    "currency",
    "purchased_at",
    "period_start",
    "period_end",
    "payment_reference",
    "channel",
    "affiliate",
    "affiliate_commission",
    "invoice_number",
    "tax_amount",
    "tax_rate",
)
# Optional in the header too: exports made before these columns existed still import.
OPTIONAL_COLUMNS = ("invoice_number", "tax_amount", "tax_rate")
MAX_INVOICE_NUMBER = 64
REQUIRED = (
    "order_number",
    "customer_email",
    "customer_name",
    "locale",
    "product",
    "plan",
    "amount",
    "currency",
    "purchased_at",
    "payment_reference",
    "channel",
)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One fault: where it is and a message marked for translation, with its parameters."""

    column: str
    message: str
    params: dict[str, object]

    def render(self, translate: Callable[[str], str] = lambda s: s) -> str:
        return translate(self.message) % self.params


@dataclass(frozen=True, slots=True)
class OrderData:
    order_number: str
    customer_email: str
    customer_name: str
    locale: str
    product: str
    plan: Plan
    amount: Money
    purchased_at: datetime
    period_start: date | None
    period_end: date | None
    payment_reference: str
    channel: Channel
    affiliate: str | None
    affiliate_commission: Money | None
    invoice_number: str | None = None
    tax: Money | None = None
    tax_rate: Decimal | None = None  # a percentage: 21 for 21 %

    @property
    def email_normalized(self) -> str:
        return self.customer_email.strip().lower()


@lru_cache(maxsize=65536)
def _is_email(address: str) -> bool:
    # Exports repeat a customer's address on every order; validating it once is enough.
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _parse_timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        # The export is documented as UTC; a bare timestamp is read as such rather than refused.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def validate_order(row: dict[str, str]) -> tuple[OrderData | None, list[FieldError]]:
    """Check one row; return the parsed order or every fault found in it."""
    errors: list[FieldError] = []
    get = {k: (row.get(k) or "").strip() for k in COLUMNS}

    for column in REQUIRED:
        if not get[column]:
            errors.append(FieldError(column, N_("this field is required"), {}))
    for column, value in get.items():
        if "\x00" in value:  # a corrupt export; the database could not store it either
            errors.append(FieldError(column, N_("contains a NUL character"), {}))
            get[column] = ""
    missing = {e.column for e in errors}

    email = get["customer_email"]
    if "customer_email" not in missing and not _is_email(email):
        errors.append(FieldError("customer_email", N_("“%(value)s” is not a valid email address"), {"value": email}))

    if "locale" not in missing and get["locale"] not in LOCALES:
        errors.append(
            FieldError(
                "locale",
                N_("unsupported language “%(value)s” (use %(choices)s)"),
                {"value": get["locale"], "choices": ", ".join(LOCALES)},
            )
        )

    plan = None
    if "plan" not in missing:
        try:
            plan = Plan(get["plan"])
        except ValueError:
            errors.append(
                FieldError(
                    "plan",
                    N_("unknown plan “%(value)s” (use %(choices)s)"),
                    {"value": get["plan"], "choices": ", ".join(p.value for p in Plan)},
                )
            )

    channel = None
    if "channel" not in missing:
        try:
            channel = Channel(get["channel"])
        except ValueError:
            errors.append(
                FieldError(
                    "channel",
                    N_("unknown sales channel “%(value)s” (use %(choices)s)"),
                    {"value": get["channel"], "choices": ", ".join(c.value for c in Channel)},
                )
            )

    currency = get["currency"]
    currency_ok = "currency" not in missing and is_currency(currency)
    if "currency" not in missing and not currency_ok:
        errors.append(
            FieldError("currency", N_("unknown currency “%(value)s” (use an ISO 4217 code)"), {"value": currency})
        )

    amount = _parse_amount(get, "amount", currency, currency_ok, errors) if "amount" not in missing else None

    affiliate = get["affiliate"] or None
    commission = None
    if get["affiliate_commission"]:
        commission = _parse_amount(get, "affiliate_commission", currency, currency_ok, errors)
        if affiliate is None:
            errors.append(FieldError("affiliate", N_("a commission needs the affiliate it is paid to"), {}))
    elif affiliate is not None:
        errors.append(FieldError("affiliate_commission", N_("the affiliate's commission is missing"), {}))

    invoice_number, tax, tax_rate = _invoice(get, amount, currency, currency_ok, errors)

    purchased_at = None
    if "purchased_at" not in missing:
        try:
            purchased_at = _parse_timestamp(get["purchased_at"])
        except ValueError:
            errors.append(
                FieldError(
                    "purchased_at", N_("“%(value)s” is not an ISO 8601 date and time"), {"value": get["purchased_at"]}
                )
            )

    period: dict[str, date | None] = {}
    for column in ("period_start", "period_end"):
        period[column] = None
        if get[column]:
            try:
                period[column] = date.fromisoformat(get[column])
            except ValueError:
                errors.append(FieldError(column, N_("“%(value)s” is not an ISO 8601 date"), {"value": get[column]}))
    start, end = period["period_start"], period["period_end"]
    if plan in (Plan.MONTHLY, Plan.ANNUAL):
        for column in ("period_start", "period_end"):
            if not get[column]:
                errors.append(FieldError(column, N_("a subscription needs the service period it pays for"), {}))
        if start and end and end <= start:
            errors.append(FieldError("period_end", N_("the service period ends before it starts"), {}))
    elif plan is Plan.ONE_TIME and (get["period_start"] or get["period_end"]):
        errors.append(FieldError("period_start", N_("a one-time purchase has no service period"), {}))

    if errors:
        return None, errors
    # Each of these is set unless a fault was recorded for its column.
    assert plan is not None and amount is not None and purchased_at is not None and channel is not None
    return OrderData(
        order_number=get["order_number"],
        customer_email=email,
        customer_name=get["customer_name"],
        locale=get["locale"],
        product=get["product"],
        plan=plan,
        amount=amount,
        purchased_at=purchased_at,
        period_start=start,
        period_end=end,
        payment_reference=get["payment_reference"],
        channel=channel,
        affiliate=affiliate,
        affiliate_commission=commission,
        invoice_number=invoice_number,
        tax=tax,
        tax_rate=tax_rate,
    ), []


def _invoice(
    get: dict[str, str], amount: Money | None, currency: str, currency_ok: bool, errors: list[FieldError]
) -> tuple[str | None, Money | None, Decimal | None]:
    """The optional invoice columns: the invoice's number, the tax included in the amount and its rate."""
    invoice_number = get["invoice_number"] or None
    if invoice_number is not None and len(invoice_number) > MAX_INVOICE_NUMBER:
        errors.append(
            FieldError(
                "invoice_number",
                N_("the invoice number is longer than %(value)s characters"),
                {"value": MAX_INVOICE_NUMBER},
            )
        )
    tax = _parse_amount(get, "tax_amount", currency, currency_ok, errors) if get["tax_amount"] else None
    if tax is not None and amount is not None and amount < tax:
        errors.append(FieldError("tax_amount", N_("the tax is more than the amount charged"), {}))
    rate = None
    if get["tax_rate"]:
        text = get["tax_rate"].removesuffix("%").strip()
        try:
            rate = Decimal(text)
        except InvalidOperation:
            rate = None
        # Kept in hundredths of a percent; a percentage from 0 to 100 with at most two decimals.
        if rate is None or not rate.is_finite() or not 0 <= rate <= 100 or rate != rate.quantize(Decimal("0.01")):
            errors.append(
                FieldError(
                    "tax_rate",
                    N_(
                        "“%(value)s” is not a tax rate (a percentage from 0 to 100 with at most two decimals, such as 21)"
                    ),
                    {"value": get["tax_rate"]},
                )
            )
            rate = None
        elif not get["tax_amount"]:
            errors.append(FieldError("tax_amount", N_("a tax rate needs the tax amount it comes to"), {}))
    return invoice_number, tax, rate


def _parse_amount(
    get: dict[str, str], column: str, currency: str, currency_ok: bool, errors: list[FieldError]
) -> Money | None:
    text = get[column]
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        errors.append(FieldError(column, N_("“%(value)s” is not an amount"), {"value": text}))
        return None
    if number < 0:
        errors.append(FieldError(column, N_("the amount cannot be negative"), {}))
        return None
    if not currency_ok:
        # The unknown currency is reported once, on its own column.
        return None
    try:
        return Money.parse(text, currency)
    except MoneyError:
        errors.append(
            FieldError(
                column,
                N_("%(currency)s amounts have at most %(decimals)s decimals"),
                {"currency": currency, "decimals": exponent(currency)},
            )
        )
        return None
