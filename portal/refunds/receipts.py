"""PDF receipts (credit notes) for refunds: rendered by WeasyPrint, issued once, kept byte for byte.

``ReceiptRenderer`` turns a ``ReceiptData`` into PDF bytes in the customer's language;
``issue_receipt`` stores the PDF of a succeeded refund the first time it is asked for and
returns the stored one every later time. No Flask here: the outbox worker and the pages call in.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.core import formatting
from portal.core.brand import localized
from portal.core.formatting import local_day
from portal.core.markers import N_
from portal.core.money import Money
from portal.core.vocabulary import HTML_LANG, RefundStatus
from portal.documents.storage import Storage, new_key, read_verified
from portal.outbox.kit import load_catalog
from portal.refunds.models import Receipt, Refund

PDF_VARIANT = "pdf/a-3b"


@dataclass(frozen=True)
class ReceiptLine:
    when: date
    amount: Money
    reference: str


@dataclass(frozen=True)
class ReceiptData:
    number: str
    issued: date
    locale: str
    customer_name: str
    customer_email: str
    order_number: str
    product: str
    plan: str  # a msgid: the plan's title
    period: tuple[date, date] | None
    paid: Money
    payment_reference: str
    purchased: date
    amount: Money
    method: str  # a msgid
    processor_reference: str
    refunded_on: date
    request_reference: str
    clause: str  # the clause's title in the customer's language
    clause_id: str
    earlier: list[ReceiptLine] = field(default_factory=list)
    # From the order's invoice when the billing export had them (empty otherwise).
    invoice_number: str = ""
    tax: Money | None = None  # the tax included in ``paid``
    tax_rate: Decimal | None = None  # a percentage: 21 for 21 %

    @property
    def refunded_tax(self) -> Money | None:
        """The tax share of this refund: the invoice's tax in proportion, to the minor unit (half to even)."""
        if self.tax is None or self.paid.minor == 0:
            return None
        share = Decimal(self.amount.minor) * self.tax.minor / self.paid.minor
        return Money.from_minor(int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)), self.amount.currency)

    @property
    def remaining(self) -> Money:
        total = self.amount
        for line in self.earlier:
            total = total + line.amount
        return self.paid - total


class ReceiptRenderer:
    def __init__(
        self, templates: Path, translations_dir: Path, brand: Mapping[str, Any], logo: Path | None = None
    ) -> None:
        self.templates = Path(templates)
        # A file (PNG or SVG) printed at the head of every receipt; none leaves the company name alone.
        self.logo = Path(logo).resolve().as_uri() if logo else ""
        self.translations_dir = Path(translations_dir)
        self.brand = brand
        self.stylesheet = (self.templates / "receipt.css").read_text(encoding="utf-8")
        self._environments: dict[str, Environment] = {}

    def _environment(self, locale: str) -> Environment:
        if locale in self._environments:
            return self._environments[locale]
        environment = self._environments[locale] = Environment(
            loader=FileSystemLoader(self.templates),
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        translations = load_catalog(self.translations_dir, locale)
        # The jinja2.ext.i18n extension adds this method, which Jinja's types cannot show.
        environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        environment.filters["money"] = lambda money: formatting.money(money, locale)
        environment.filters["day"] = lambda day: formatting.day(day, locale, "long")
        environment.filters["translated"] = lambda text: translations.gettext(text)
        environment.filters["number"] = lambda n: formatting.number(n, locale)
        environment.filters["rate"] = lambda rate: formatting.percent(rate / 100, locale, "#,##0.##%")
        environment.filters["colon"] = lambda label: formatting.colon(label, locale)
        return environment

    def html(self, data: ReceiptData) -> str:
        brand = localized(self.brand, data.locale)
        return (
            self._environment(data.locale)
            .get_template("receipt.html")
            .render(
                r=data,
                brand=brand,
                logo=self.logo,
                html_lang=HTML_LANG.get(data.locale, data.locale),
                stylesheet=self.stylesheet,
            )
        )

    def pdf(self, data: ReceiptData) -> bytes:
        from weasyprint import HTML  # imported when the first receipt is made, not at app start

        pdf: bytes = HTML(string=self.html(data), base_url=str(self.templates)).write_pdf(
            pdf_variant=PDF_VARIANT, custom_metadata=True
        )
        return pdf


def _completed_on(refund: Refund, zone: str = "UTC") -> date:
    assert refund.completed_at is not None  # a receipt lists succeeded refunds only, each completed
    return local_day(refund.completed_at, zone)


def receipt_data(refund: Refund, number: str, issued: date, clause_title: Callable[[str, str], str]) -> ReceiptData:
    request = refund.refund_request
    order = refund.order
    zone = request.time_zone  # the days a customer reads are the days where they live
    earlier = [
        ReceiptLine(_completed_on(r, zone), r.amount, r.processor_reference)
        for r in order_refunds(refund)
        if r.id != refund.id and r.id < refund.id
    ]
    decision = request.decision_at_filing
    clause_id = decision.primary_clause if decision else ""
    return ReceiptData(
        number=number,
        issued=issued,
        locale=request.locale,
        customer_name=order.customer.name,
        customer_email=order.customer.email,
        order_number=order.order_number,
        product=order.product,
        plan=order.plan.title,
        period=(order.period_start, order.period_end) if order.period_start and order.period_end else None,
        paid=order.amount,
        payment_reference=order.payment_reference,
        purchased=local_day(order.purchased_at, zone),
        amount=refund.amount,
        method=N_("Your original payment method"),
        processor_reference=refund.processor_reference,
        refunded_on=_completed_on(refund, zone),
        request_reference=request.reference,
        clause=clause_title(clause_id, request.locale) if clause_id else "",
        clause_id=clause_id,
        earlier=earlier,
        invoice_number=order.invoice_number or "",
        tax=order.tax,
        tax_rate=order.tax_rate,
    )


def order_refunds(refund: Refund) -> list[Refund]:
    session = Session.object_session(refund)
    assert session is not None  # the refund was read through a session
    return list(
        session.scalars(
            select(Refund)
            .where(Refund.order_id == refund.order_id, Refund.status == RefundStatus.SUCCEEDED)
            .order_by(Refund.id)
        )
    )


RECEIPTS = "receipts"


def issue_receipt(
    session: Session,
    refund: Refund,
    renderer: ReceiptRenderer,
    clause_title: Callable[[str, str], str],
    storage: Storage,
    now: datetime | None = None,
) -> Receipt:
    """The refund's receipt: made and stored the first time, the same bytes every time after."""
    existing = session.scalar(select(Receipt).where(Receipt.refund_id == refund.id))
    if existing is not None:
        return existing
    if refund.status is not RefundStatus.SUCCEEDED:
        raise ValueError("a receipt is issued only for a refund that succeeded")
    now = now or datetime.now(UTC)
    number = f"RC-{_completed_on(refund).year}-{refund.id:06d}"
    issued = local_day(now, refund.refund_request.time_zone)
    pdf = renderer.pdf(receipt_data(refund, number, issued, clause_title))
    # A key of its own each time: two workers issuing at once never overwrite each other's file,
    # and the row that commits (the refund's one receipt) names the bytes it was made with.
    key = new_key(RECEIPTS, ".pdf")
    storage.put(key, io.BytesIO(pdf))
    receipt = Receipt(
        refund_id=refund.id,
        number=number,
        locale=refund.refund_request.locale,
        storage_key=key,
        size=len(pdf),
        sha256=hashlib.sha256(pdf).hexdigest(),
        created_at=now,
    )
    session.add(receipt)
    session.flush()
    return receipt


def receipt_pdf(storage: Storage, receipt: Receipt) -> bytes:
    """The receipt's bytes from storage, checked against the SHA-256 recorded when it was issued."""
    return read_verified(storage, receipt.storage_key, receipt.sha256)
