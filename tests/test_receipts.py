"""PDF receipts: issued once by the worker, attached to the refunded email, exact in every language."""

import hashlib
import io
import logging
import subprocess
from pathlib import Path

import pytest
import time_machine
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import func, select

from portal.core.formatting import money as format_money
from portal.core.money import Money
from portal.orders.models import Order
from portal.outbox.models import OutboxMessage
from portal.refunds.models import Receipt
from portal.web.extensions import db
from portal.web.mail import deliver
from tests.journey_helpers import file_request, import_samples, latest_request, lookup, stored_pdf
from tests.staff_helpers import make_staff, sign_in, staff_post

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CASES = {
    # locale: order, email, amount approved, the clause title the receipt must cite
    "en": ("ORD-10003", "bob.tanaka@example.org", "200.00", "Annual plans"),
    "zh": ("ORD-20001", "zhang.wei@example.cn", "199.00", "月度套餐"),
    "nl": ("ORD-30001", "sanne.devries@example.nl", "27.00", "Maandabonnementen"),
}


@pytest.fixture(autouse=True)
def no_slow_font_path(caplog):
    """WeasyPrint falls back to fontTools (seconds per Chinese receipt) without libharfbuzz-subset."""
    from weasyprint.text.ffi import harfbuzz_subset

    assert harfbuzz_subset is not None, "libharfbuzz-subset0 is missing: `make test` installs it"
    caplog.set_level(logging.WARNING, logger="weasyprint")
    yield
    assert not [r for r in caplog.records if "fontTools" in r.getMessage()], "the slow subsetting path was taken"


def refund(app, session, locale, *, name=None, product=None, amount=None):
    number, email, approved, _ = CASES[locale]
    import_samples(session)
    if name or product:
        order = session.scalar(select(Order).where(Order.order_number == number))
        if name:
            order.customer.name = name
        if product:
            order.product = product
        session.commit()
    make_staff(session)
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    customer = app.test_client()
    lookup(customer, number, email)
    reference = file_request(customer, number, locale=locale).headers["Location"].rsplit("/", 1)[1]
    page = f"/staff/requests/{reference}"
    assert staff_post(agent, f"{page}/approve", page, amount=amount or approved).status_code == 303
    assert staff_post(agent, f"{page}/process", page, reference="re_receipt_1").status_code == 303
    return customer, agent, reference


def pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def fonts_of(reader: PdfReader) -> set[str]:
    names = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            names.add(str(font["/BaseFont"]).split("+", 1)[-1])
    return names


def covered(char: str, families: set[str]) -> bool:
    found = subprocess.run(["fc-list", f":charset={ord(char):x}", "family"], capture_output=True, text=True).stdout
    return any(family in found for family in families)


@pytest.mark.parametrize("locale", ["en", "zh", "nl"])
def test_the_refunded_email_carries_a_correct_one_page_receipt(make_app, smtp, db_session, locale):
    app = make_app(**smtp.settings)
    with time_machine.travel("2026-11-22T12:00:00Z", tick=True):
        customer, agent, reference = refund(app, db_session, locale)
        with app.app_context():
            assert deliver(db.session).sent == 3
    number, email, approved, clause = CASES[locale]
    [message] = [m for m in smtp.inbox.find(email) if list(m.iter_attachments())]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    data = attachment.get_content()
    receipt = db_session.scalar(select(Receipt))
    assert data == stored_pdf(app, receipt) and hashlib.sha256(data).hexdigest() == receipt.sha256
    assert attachment.get_filename() == f"{receipt.number}.pdf"

    reader, text = pdf_text(data)
    order = latest_request(db_session).order
    assert len(reader.pages) == 1 and len(data) < 300_000
    assert order.customer.name in text and number in text and reference in text and clause in text
    assert format_money(Money.parse(approved, order.currency), locale) in text
    assert format_money(order.amount, locale) in text
    assert reader.metadata.title.endswith(receipt.number) and reader.metadata.author == "Northwind Cloud"
    assert reader.trailer["/Root"]["/Lang"] == {"en": "en", "zh": "zh-Hans", "nl": "nl"}[locale]
    fonts = fonts_of(reader)
    assert "Noto-Sans" in fonts or "NotoSans-Regular" in fonts or any("Noto" in f for f in fonts)
    if locale == "zh":
        assert any("CJK-SC" in f or "CJKsc" in f for f in fonts), fonts
        assert "退款凭证" in text
    # The customer downloads the same bytes from the tracking page, every time.
    first = customer.get(f"/requests/{reference}/receipt")
    second = customer.get(f"/requests/{reference}/receipt")
    assert first.status_code == 200 and first.data == second.data == data
    assert first.headers["Content-Type"] == "application/pdf" and first.headers["X-Content-Type-Options"] == "nosniff"
    assert "Download the receipt" in customer.get(f"/requests/{reference}").get_data(as_text=True) or locale != "en"
    assert app.test_client().get(f"/requests/{reference}/receipt").status_code == 404  # not the owner
    sign_in(agent, "agent@example.com")  # the frozen clock above made the earlier sign-in look idle
    assert agent.get(f"/staff/requests/{reference}/receipt").data == data


def test_a_resent_email_attaches_the_same_receipt_and_issues_no_second_one(make_app, smtp, db_session):
    app = make_app(**smtp.settings)
    with time_machine.travel("2026-11-22T12:00:00Z", tick=True):
        refund(app, db_session, "en")
        with app.app_context():
            deliver(db.session)
            message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.message == "refunded"))
            from portal.core.database import utcnow
            from portal.outbox.queue import resend

            resend(db.session, message, now=utcnow())
            db.session.commit()
            deliver(db.session)
    attachments = [
        next(iter(m.iter_attachments())).get_content() for m in smtp.inbox.messages if list(m.iter_attachments())
    ]
    assert len(attachments) == 2 and attachments[0] == attachments[1]
    assert db_session.scalar(select(func.count()).select_from(Receipt)) == 1


@pytest.mark.parametrize(
    "locale,name,product",
    [
        ("zh", "𠮷野 家明", "团队工作区"),  # U+20BB7, outside the Basic Multilingual Plane
        ("en", "Νίκος Παπαδόπουλος", "Analytics Pro"),  # Greek: a script we do not translate into
        (
            "nl",
            "Ëlla van Dĳk-Ångström",
            "Team Workspace Enterprise Edition with Unlimited Seats, Priority Support, "
            "Single Sign-On, Audit Logs and the Extended Data Retention Add-on",
        ),
    ],
)
def test_every_name_renders_within_the_page(make_app, db_session, locale, name, product):
    app = make_app()
    with time_machine.travel("2026-11-22T12:00:00Z", tick=True):
        refund(app, db_session, locale, name=name, product=product, amount="1.00")
        with app.app_context():
            deliver(db.session)
    receipt = db_session.scalar(select(Receipt))
    reader, text = pdf_text(stored_pdf(app, receipt))
    assert len(reader.pages) == 1
    assert name in text, "the name is not extractable as text"
    families = {"Noto Sans", "Noto Sans CJK SC"}
    assert all(covered(char, families) for char in name if not char.isspace()), "a character has no glyph"
    assert product.split()[0] in text
    ARTIFACTS.mkdir(exist_ok=True)
    pdf_path = ARTIFACTS / f"receipt-{locale}.pdf"
    pdf_path.write_bytes(stored_pdf(app, receipt))
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf_path), str(pdf_path.with_suffix(""))], check=True
    )
    image = Image.open(pdf_path.with_suffix(".png")).convert("L")
    # The right margin (the last 12 mm of 210) stays blank: nothing overflows the text block.
    margin = image.crop((int(image.width * (1 - 12 / 210)), 0, image.width, image.height))
    assert margin.getextrema()[0] > 240, "something is drawn in the right margin"
