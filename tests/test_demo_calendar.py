"""The demo keeps its promises whatever day it runs: everything in it is relative to today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from portal.core.vocabulary import RequestState
from portal.demo import _ORDERS
from portal.refunds.models import RefundRequest
from tests.journey_helpers import lookup, page_text
from tests.staff_helpers import sign_in

# What the demo shows today (2026-12-01) and must show on any other day.
REFUNDABLE = {"DEMO-1001", "DEMO-1003", "DEMO-1004", "DEMO-1005", "DEMO-2001", "DEMO-2002", "DEMO-2003"}
A_YEAR_AHEAD = datetime.now(UTC) + timedelta(days=366)


@pytest.mark.parametrize(
    "when",
    [None, A_YEAR_AHEAD, A_YEAR_AHEAD + timedelta(days=59)],
    ids=["today", "a year ahead", "a year and two months ahead"],
)
def test_the_demo_and_the_sample_orders_work_on_any_day(app, db_session, data_dir, when):
    with time_machine.travel(when or datetime.now(UTC), tick=True):
        runner = app.test_cli_runner()
        seeded = runner.invoke(args=["demo"])
        assert seeded.exit_code == 0, seeded.output
        assert "orders: 14, refund requests filed: 6" in seeded.output
        password = seeded.output.split("admin@demo.example / ")[1].split()[0]

        # The README's promise: DEMO-1001 with emily.clark@example.com shows a refundable order.
        customer = app.test_client()
        assert lookup(customer, "DEMO-1001", "emily.clark@example.com").status_code == 302
        order = page_text(customer.get("/orders/DEMO-1001"))
        # It has a request open (filed inside the window): the page shows the decision it was filed under.
        assert "DEMO-1001" in order and "can be refunded in full: $29.00" in order
        # Every demo order shows the same decision on any day: the same ones are refundable.
        refundable = set()
        for number, email, *_ in _ORDERS:
            other = app.test_client()
            other.get("/language/en")  # read in English, whatever the customer's own language
            lookup(other, number, email)
            text = page_text(other.get(f"/orders/{number}"))
            # A refundable headline, or an open request filed under a refundable decision.
            if any(
                words in text
                for words in ("Full refund of", "it falls by about", "can be refunded in full", "unused day")
            ):
                refundable.add(number)
        assert refundable == REFUNDABLE

        # The staff console opens on the queue the demo describes, the refund made and one declined.
        states = {r.order.order_number: r.state for r in db_session.scalars(select(RefundRequest))}
        assert states["DEMO-3001"] is RequestState.REFUNDED and states["DEMO-1003"] is RequestState.DECLINED
        assert states["DEMO-2001"] is RequestState.AWAITING_CUSTOMER
        staff = app.test_client()
        sign_in(staff, "agent@demo.example", password)
        queue = page_text(staff.get("/staff/queue"))
        assert "DEMO-1001" in queue and "DEMO-3004" in queue

        imported = runner.invoke(args=["orders", "import", str(data_dir / "orders.csv")])
        assert imported.exit_code == 0 and imported.output.startswith("Imported:"), imported.output
