from decimal import Decimal

from sqlalchemy import func, select

from portal.orders.importing import import_orders, import_orders_text
from portal.orders.models import Customer, Order


def _count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def _import(session, path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return import_orders(session, f)


def test_sample_imports_18_orders_and_a_second_import_changes_nothing(db_session, data_dir):
    first = _import(db_session, data_dir / "orders.csv")
    assert first.ok and first.created == 18 and first.customers_created == 15
    before = {o.order_number: o.updated_at for o in db_session.scalars(select(Order))}

    second = _import(db_session, data_dir / "orders.csv")
    assert (second.created, second.updated, second.unchanged) == (0, 0, 18)
    assert {o.order_number: o.updated_at for o in db_session.scalars(select(Order))} == before


def test_amounts_are_kept_in_the_currencys_minor_units(db_session, data_dir):
    _import(db_session, data_dir / "orders.csv")
    yen = db_session.scalar(select(Order).where(Order.order_number == "ORD-40001"))
    assert yen.amount_minor == 4300 and yen.amount.amount == Decimal("4300")
    dollars = db_session.scalar(select(Order).where(Order.order_number == "ORD-10003"))
    assert dollars.amount_minor == 58800 and str(dollars.amount) == "588.00 USD"
    assert dollars.affiliate == "partnerhub" and dollars.affiliate_commission.amount == Decimal("58.80")


def test_customers_are_matched_case_insensitively(db_session, data_dir):
    _import(db_session, data_dir / "orders.csv")
    changed = (data_dir / "orders.csv").read_text().replace("O.Brien@Example.COM", "o.brien@example.com")
    changed = changed.replace("ORD-40003,", "ORD-40099,")
    result = import_orders_text(db_session, changed)
    assert result.customers_created == 0 and result.created == 1
    orla = db_session.scalar(select(Customer).where(Customer.email_normalized == "o.brien@example.com"))
    assert len(orla.orders) == 2


def test_a_changed_row_updates_its_order(db_session, data_dir):
    _import(db_session, data_dir / "orders.csv")
    changed = (data_dir / "orders.csv").read_text().replace("ch_3QaB10001", "ch_corrected")
    result = import_orders_text(db_session, changed)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 17)
    order = db_session.scalar(select(Order).where(Order.order_number == "ORD-10001"))
    assert order.payment_reference == "ch_corrected"


def test_a_file_with_bad_rows_changes_nothing_and_names_every_fault(db_session, data_dir):
    _import(db_session, data_dir / "orders.csv")
    result = _import(db_session, data_dir / "orders-bad.csv")
    assert not result.ok
    assert [(e.line, e.error.column) for e in result.errors] == [
        (3, "customer_email"),
        (4, "amount"),
        (5, "currency"),
        (6, "purchased_at"),
        (7, "order_number"),
        (8, "locale"),
        (9, "amount"),
    ]
    rendered = [e.render() for e in result.errors]
    assert "line 7, order_number: order number “ORD-90001” is repeated (first on line 2)" in rendered
    assert "line 9, amount: JPY amounts have at most 0 decimals" in rendered
    assert _count(db_session, Order) == 18  # the valid first row was not imported either
    assert db_session.scalar(select(Order).where(Order.order_number == "ORD-90001")) is None


def test_missing_columns_are_named_on_the_header_line(db_session):
    result = import_orders_text(db_session, "order_number,customer_email\nX-1,a@example.com\n")
    assert not result.ok
    assert all(e.line == 1 for e in result.errors)
    assert {e.error.column for e in result.errors} >= {"amount", "currency", "plan"}


def test_subscription_without_period_and_affiliate_without_commission_are_refused(db_session, data_dir):
    header = (data_dir / "orders.csv").read_text().splitlines()[0]
    rows = [
        "X-1,a@example.com,A,en,P,annual,10.00,USD,2026-11-01T00:00:00Z,,,ch_1,web,,",
        "X-2,b@example.com,B,en,P,one-time,10.00,USD,2026-11-01T00:00:00Z,,,ch_2,web,partner,",
        "X-3,c@example.com,C,en,P,monthly,10.00,USD,2026-11-01T00:00:00Z,2026-11-01,2026-10-01,ch_3,shop,,",
    ]
    result = import_orders_text(db_session, "\n".join([header, *rows]) + "\n")
    faults = {(e.line, e.error.column) for e in result.errors}
    assert {
        (2, "period_start"),
        (2, "period_end"),
        (3, "affiliate_commission"),
        (4, "period_end"),
        (4, "channel"),
    } <= faults
    assert _count(db_session, Order) == 0


def test_cli_import_reports_and_exits_nonzero_on_bad_file(runner, data_dir):
    ok = runner.invoke(args=["orders", "import", str(data_dir / "orders.csv")])
    assert ok.exit_code == 0, ok.output
    assert "18 created" in ok.output
    again = runner.invoke(args=["orders", "import", str(data_dir / "orders.csv")])
    assert "0 created, 0 updated, 18 unchanged" in again.output
    bad = runner.invoke(args=["orders", "import", str(data_dir / "orders-bad.csv")])
    assert bad.exit_code == 1
    assert "nothing was imported" in bad.output and "line 5, currency" in bad.output


def test_an_empty_file_is_named_as_such(runner, tmp_path):
    empty = tmp_path / "orders.csv"
    empty.write_text("", encoding="utf-8")
    result = runner.invoke(args=["orders", "import", str(empty)])
    assert result.exit_code == 1
    assert "line 1, file: the file is empty: its first line must name the columns" in result.output


def test_an_empty_outbox_says_so(runner):
    assert runner.invoke(args=["outbox", "list"]).output == "The outbox is empty.\n"
    assert runner.invoke(args=["outbox", "list", "--status", "dead"]).output == "No dead messages in the outbox.\n"


def test_a_nul_character_is_refused_with_its_line_and_column(db_session, data_dir):
    text = (data_dir / "orders.csv").read_text(encoding="utf-8").replace("Alice Moreau", "Alice\x00Moreau", 1)
    result = import_orders_text(db_session, text)
    assert [(e.line, e.error.column) for e in result.errors] == [(2, "customer_name")]
    assert db_session.scalar(select(func.count(Order.id))) == 0


TAX_HEADER = (
    "order_number,customer_email,customer_name,locale,product,plan,amount,currency,purchased_at,period_start,"
    "period_end,payment_reference,channel,affiliate,affiliate_commission,invoice_number,tax_amount,tax_rate"
)


def _tax_row(number: str, invoice: str, tax: str, rate: str, amount: str = "121.00", currency: str = "EUR") -> str:
    return (
        f"{number},t@example.com,T,nl,P,one-time,{amount},{currency},2026-11-01T00:00:00Z,,,ch_{number},web,,,"
        f"{invoice},{tax},{rate}"
    )


def test_the_invoice_number_and_tax_are_imported_when_the_export_has_them(db_session, data_dir):
    rows = [
        _tax_row("T-1", "INV-2026-0001", "21.00", "21"),
        _tax_row("T-2", "", "", ""),  # the columns are optional per row
        _tax_row("T-3", "F/2026/77", "645", "10", amount="7095", currency="JPY"),
        _tax_row("T-4", "INV-4", "5.57", "5.5%"),
    ]
    result = import_orders_text(db_session, "\n".join([TAX_HEADER, *rows]) + "\n")
    assert result.ok and result.created == 4, [e.render() for e in result.errors]
    orders = {o.order_number: o for o in db_session.scalars(select(Order))}
    assert orders["T-1"].invoice_number == "INV-2026-0001" and str(orders["T-1"].tax) == "21.00 EUR"
    assert orders["T-1"].tax_rate == Decimal("21")
    assert (orders["T-2"].invoice_number, orders["T-2"].tax, orders["T-2"].tax_rate) == (None, None, None)
    assert orders["T-3"].tax_minor == 645 and orders["T-3"].tax_rate == Decimal("10")
    assert orders["T-4"].tax_rate == Decimal("5.5")
    # The same file again changes nothing; a corrected tax updates the order.
    again = import_orders_text(db_session, "\n".join([TAX_HEADER, *rows]) + "\n")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)
    rows[0] = _tax_row("T-1", "INV-2026-0001", "21.00", "21.5")
    corrected = import_orders_text(db_session, "\n".join([TAX_HEADER, *rows]) + "\n")
    assert corrected.updated == 1 and orders["T-1"].tax_rate == Decimal("21.5")


def test_an_export_without_the_invoice_columns_still_imports(db_session, data_dir):
    header = (data_dir / "orders.csv").read_text().splitlines()[0]
    assert "tax_amount" not in header
    result = _import(db_session, data_dir / "orders.csv")
    assert result.ok and all(o.tax is None and o.invoice_number is None for o in db_session.scalars(select(Order)))


def test_a_bad_tax_value_is_named_by_line_and_column_and_changes_nothing(db_session, data_dir):
    _import(db_session, data_dir / "orders.csv")
    rows = [
        _tax_row("T-1", "INV-1", "21.00", "21"),  # fine, and still not imported
        _tax_row("T-2", "INV-2", "twenty", "21"),
        _tax_row("T-3", "INV-3", "21.001", "21"),
        _tax_row("T-4", "INV-4", "-1.00", "21"),
        _tax_row("T-5", "INV-5", "200.00", "21"),  # more than the 121.00 charged
        _tax_row("T-6", "INV-6", "21.00", "abc"),
        _tax_row("T-7", "INV-7", "21.00", "121"),
        _tax_row("T-8", "INV-8", "21.00", "21.125"),
        _tax_row("T-9", "INV-9", "", "21"),  # a rate without the amount it comes to
        _tax_row("T-10", "X" * 65, "", ""),
    ]
    result = import_orders_text(db_session, "\n".join([TAX_HEADER, *rows]) + "\n")
    assert not result.ok
    assert [(e.line, e.error.column) for e in result.errors] == [
        (3, "tax_amount"),
        (4, "tax_amount"),
        (5, "tax_amount"),
        (6, "tax_amount"),
        (7, "tax_rate"),
        (8, "tax_rate"),
        (9, "tax_rate"),
        (10, "tax_amount"),
        (11, "invoice_number"),
    ]
    rendered = [e.render() for e in result.errors]
    assert "line 3, tax_amount: “twenty” is not an amount" in rendered
    assert "line 4, tax_amount: EUR amounts have at most 2 decimals" in rendered
    assert "line 6, tax_amount: the tax is more than the amount charged" in rendered
    assert any(r.startswith("line 7, tax_rate: “abc” is not a tax rate") for r in rendered)
    assert _count(db_session, Order) == 18
    assert db_session.scalar(select(Order).where(Order.order_number == "T-1")) is None


def test_a_short_row_and_an_open_quote_are_named_and_change_nothing(db_session, data_dir):
    lines = (data_dir / "orders.csv").read_text(encoding="utf-8").splitlines()
    short = lines[1].rsplit(",", 1)[0]  # the last field left off
    result = import_orders_text(db_session, "\n".join([lines[0], short, *lines[2:4]]) + "\n")
    assert [(e.line, e.error.message) for e in result.errors] == [(2, "the row has fewer fields than the header")]
    open_quote = lines[2].replace(",", ',"', 1)  # a quote opened in the second field and never closed
    result = import_orders_text(db_session, "\n".join([lines[0], lines[1], open_quote, lines[3]]) + "\n")
    assert len(result.errors) == 1 and result.errors[0].error.column == "file"
    assert "cannot be read here" in result.errors[0].error.message
    assert _count(db_session, Order) == 0
