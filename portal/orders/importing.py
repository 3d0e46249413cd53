"""The orders import: all rows valid, then one transaction; or nothing at all.

Takes a plain SQLAlchemy session; the CLI and the API wrap it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from blinker import Namespace
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from portal.core.markers import N_
from portal.orders.models import Customer, Order
from portal.orders.validation import REQUIRED, FieldError, OrderData, validate_order

# Big enough to be fast, small enough for SQLite's limit on bound parameters.
CHUNK = 500
T = TypeVar("T")

# Sent with the session after orders were created or changed, with ``days``: the purchase days
# touched (the insights recount their orders).
orders_changed = Namespace().signal("orders-changed")
# No order row comes near this; a longer line is the wrong file, and is not read into memory whole.
MAX_LINE = 64 * 1024
LINE_TOO_LONG = N_("a line is longer than %(value)s characters; this is not an orders export")


class LineTooLong(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


def bounded_lines(stream: TextIO, limit: int = MAX_LINE) -> Iterator[str]:
    """The stream's lines, read at most ``limit`` characters at a time: a 2 GB line stops at once."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise LineTooLong(number)
        yield line


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    error: FieldError

    def render(self, translate: Callable[[str], str] = lambda s: s) -> str:
        return f"line {self.line}, {self.error.column}: {self.error.render(translate)}"


@dataclass
class ImportResult:
    errors: list[LineError] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    customers_created: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def read_orders(stream: TextIO) -> tuple[list[tuple[int, OrderData]], list[LineError]]:
    """Parse and validate every row; errors carry the file's own line numbers (header is line 1)."""
    # strict: a quote left open, or text after a closing quote, is named as such instead of being
    # read as data that then fails every check of the row.
    reader = csv.DictReader(bounded_lines(stream), strict=True)
    try:
        header = reader.fieldnames or []
    except LineTooLong as long_line:
        return [], [LineError(long_line.line, FieldError("file", LINE_TOO_LONG, {"value": MAX_LINE}))]
    except (UnicodeDecodeError, csv.Error):
        return [], [LineError(1, FieldError("file", N_("the file is not UTF-8 encoded CSV"), {}))]
    if not header:
        return [], [LineError(1, FieldError("file", N_("the file is empty: its first line must name the columns"), {}))]
    missing = [
        c for c in (*REQUIRED, "period_start", "period_end", "affiliate", "affiliate_commission") if c not in header
    ]
    if missing:
        return [], [
            LineError(1, FieldError(c, N_("the header has no column “%(value)s”"), {"value": c})) for c in missing
        ]

    orders: list[tuple[int, OrderData]] = []
    errors: list[LineError] = []
    first_seen: dict[str, int] = {}
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                errors.append(LineError(line, FieldError("file", N_("the row has more fields than the header"), {})))
                continue
            if None in row.values():  # DictReader's filler for the columns a short row lacks
                errors.append(LineError(line, FieldError("file", N_("the row has fewer fields than the header"), {})))
                continue
            _check_row(row, line, first_seen, orders, errors)
    except LineTooLong as long_line:
        errors.append(LineError(long_line.line, FieldError("file", LINE_TOO_LONG, {"value": MAX_LINE})))
    except (UnicodeDecodeError, csv.Error) as exc:
        errors.append(
            LineError(line + 1, FieldError("file", N_("the file cannot be read here: %(value)s"), {"value": str(exc)}))
        )
    return orders, errors


def _check_row(
    row: dict[str, str],
    line: int,
    first_seen: dict[str, int],
    orders: list[tuple[int, OrderData]],
    errors: list[LineError],
) -> None:
    """Validate one row into ``orders`` or ``errors``; a number seen before is an error too."""
    number = (row.get("order_number") or "").strip()
    if number and number in first_seen:
        errors.append(
            LineError(
                line,
                FieldError(
                    "order_number",
                    N_("order number “%(value)s” is repeated (first on line %(line)s)"),
                    {"value": number, "line": first_seen[number]},
                ),
            )
        )
        return
    if number:
        first_seen[number] = line
    order, row_errors = validate_order(row)
    errors.extend(LineError(line, e) for e in row_errors)
    if order is not None:
        orders.append((line, order))


def _chunks(items: list[T], size: int = CHUNK) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _order_values(order: OrderData, customer_id: int) -> dict[str, Any]:
    return {
        "order_number": order.order_number,
        "customer_id": customer_id,
        "product": order.product,
        "plan": order.plan,
        "amount_minor": order.amount.minor,
        "currency": order.amount.currency,
        "purchased_at": order.purchased_at,
        "period_start": order.period_start,
        "period_end": order.period_end,
        "payment_reference": order.payment_reference,
        "channel": order.channel,
        "affiliate": order.affiliate,
        "affiliate_commission_minor": order.affiliate_commission.minor if order.affiliate_commission else None,
        "invoice_number": order.invoice_number,
        "tax_minor": order.tax.minor if order.tax else None,
        "tax_rate_basis_points": int(order.tax_rate.scaleb(2)) if order.tax_rate is not None else None,
    }


_COMPARED = (
    "customer_id",
    "product",
    "plan",
    "amount_minor",
    "currency",
    "purchased_at",
    "period_start",
    "period_end",
    "payment_reference",
    "channel",
    "affiliate",
    "affiliate_commission_minor",
    "invoice_number",
    "tax_minor",
    "tax_rate_basis_points",
)


def upsert_orders(session: Session, orders: list[OrderData]) -> ImportResult:
    """Create new customers and orders, update changed orders, leave identical ones alone.

    Customers are created on first sight; a later import does not overwrite the name or the
    language a customer already has, since the customer may have chosen it in the portal.
    Runs inside the caller's transaction; the caller commits.
    """
    result = ImportResult()
    by_email: dict[str, OrderData] = {}
    for order in orders:
        by_email.setdefault(order.email_normalized, order)

    customer_ids: dict[str, int] = {}
    emails = list(by_email)
    for some_emails in _chunks(emails):
        for cid, email in session.execute(
            select(Customer.id, Customer.email_normalized).where(Customer.email_normalized.in_(some_emails))
        ):
            customer_ids[email] = cid
    new_customers = [
        {"email": o.customer_email, "email_normalized": email, "name": o.customer_name, "locale": o.locale}
        for email, o in by_email.items()
        if email not in customer_ids
    ]
    for some_customers in _chunks(new_customers):
        rows = session.execute(insert(Customer).returning(Customer.id, Customer.email_normalized), some_customers)
        customer_ids.update({email: cid for cid, email in rows})
    result.customers_created = len(new_customers)

    existing: dict[str, dict[str, Any]] = {}
    numbers = [o.order_number for o in orders]
    columns = [getattr(Order, c) for c in _COMPARED]
    for some_numbers in _chunks(numbers):
        for row in session.execute(
            select(Order.id, Order.order_number, *columns).where(Order.order_number.in_(some_numbers))
        ):
            existing[row.order_number] = row._asdict()

    to_insert, to_update = [], []
    for order in orders:
        values = _order_values(order, customer_ids[order.email_normalized])
        current = existing.get(order.order_number)
        if current is None:
            to_insert.append(values)
        elif any(current[c] != values[c] for c in _COMPARED):
            to_update.append({"id": current["id"], **values})
        else:
            result.unchanged += 1
    connection = session.connection()
    orders_table = Order.__table__
    assert isinstance(orders_table, Table)  # a declarative class's table, typed as any FromClause
    for chunk in _chunks(to_insert):
        # Core executemany: the ORM's bulk path costs three times as much per row here.
        connection.execute(orders_table.insert(), chunk)
    for chunk in _chunks(to_update):
        # Bulk UPDATE by primary key: one executemany per chunk.
        session.execute(update(Order), chunk)
    result.created, result.updated = len(to_insert), len(to_update)
    changed_days = {v["purchased_at"].date() for v in to_insert + to_update}
    changed_days |= {
        existing[v["order_number"]]["purchased_at"].date()
        for v in to_update
        if existing.get(v["order_number"], {}).get("purchased_at")
    }
    orders_changed.send(session, days=changed_days)
    return result


def import_orders(session: Session, stream: TextIO) -> ImportResult:
    """Validate the whole file, then upsert it in one transaction; any fault changes nothing."""
    parsed, errors = read_orders(stream)
    return _all_or_nothing(session, parsed, errors)


def _all_or_nothing(session: Session, parsed: list[tuple[int, OrderData]], errors: list[LineError]) -> ImportResult:
    """Nothing is written when any row has a fault; otherwise every row, for the caller to commit."""
    if errors:
        return ImportResult(errors=errors)
    return upsert_orders(session, [order for _, order in parsed])


def import_orders_text(session: Session, text: str) -> ImportResult:
    return import_orders(session, io.StringIO(text, newline=""))


def upsert_order_rows(session: Session, rows: list[dict[str, Any]]) -> ImportResult:
    """The API's door: rows as the CSV's columns, numbered from 0; all valid, or nothing changes."""
    orders: list[tuple[int, OrderData]] = []
    errors: list[LineError] = []
    first_seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        _check_row({k: "" if v is None else str(v) for k, v in row.items()}, index, first_seen, orders, errors)
    return _all_or_nothing(session, orders, errors)
