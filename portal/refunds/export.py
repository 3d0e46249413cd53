"""The refunds made, with what each cost the business, as CSV for accounting. No Flask here."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from portal.core.money import Money
from portal.core.spreadsheet import csv_writer
from portal.core.vocabulary import RefundStatus
from portal.orders.models import Order
from portal.refunds.models import Refund

COLUMNS = [
    "refunded_at",
    "refund_request",
    "order_number",
    "customer_email",
    "currency",
    "amount",
    "gateway",
    "processor_reference",
    "processor_fee_kept",
    "affiliate",
    "affiliate_commission_clawback",
]


def _amount(minor: int, currency: str) -> str:
    return str(Money.from_minor(minor, currency).amount)


def write_refunds_csv(session: Session, since: date, out: TextIO) -> int:
    start = datetime.combine(since, time.min, tzinfo=UTC)
    refunds = session.scalars(
        select(Refund)
        .where(Refund.status == RefundStatus.SUCCEEDED, Refund.completed_at >= start)
        .options(joinedload(Refund.refund_request), joinedload(Refund.order).joinedload(Order.customer))
        .order_by(Refund.completed_at, Refund.id)
    )
    writer = csv_writer(out)  # formulas neutralised, byte-order mark first
    writer.writerow(COLUMNS)
    count = 0
    for refund in refunds:
        currency = refund.currency
        assert refund.completed_at is not None  # the query asks for refunds completed since ``start``
        writer.writerow(
            [
                refund.completed_at.isoformat(),
                refund.refund_request.reference,
                refund.order.order_number,
                refund.order.customer.email,
                currency,
                _amount(refund.amount_minor, currency),
                refund.gateway,
                refund.processor_reference,
                _amount(refund.fee_kept_minor, currency),
                refund.order.affiliate or "",
                _amount(refund.commission_clawback_minor, currency),
            ]
        )
        count += 1
    return count
