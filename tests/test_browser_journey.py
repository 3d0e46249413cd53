"""The customer's journey in a real Chromium, driven by Playwright, on a phone-sized screen.

Each language goes through the whole path: find the order, read the decision, try to file
without the required proof of purchase (refused, what was typed kept), file with a PDF, see the
tracking page, answer an information request. Every page is checked for horizontal overflow at
390 px and a screenshot of it is saved in ``test-artifacts/`` to be looked at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.support import Translations

from portal.core.vocabulary import Actor, RequestState
from portal.refunds.models import InformationRequest
from portal.refunds.states import Action, transition
from tests.journey_helpers import latest_request, outbox, pdf_bytes, png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("frozen")]  # the clock stands at conftest.NOW

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, base_url=live_server
    )
    page = context.new_page()
    errors: list[str] = []
    # A CSP violation or a script error shows up here: the pages must need neither inline script nor eval.
    # A form answered with 422 is expected (the errors are on the page); anything else is not.
    page.on(
        "console",
        lambda message: message.type == "error" and "status of 422" not in message.text and errors.append(message.text),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"the browser reported errors: {errors}"


def translator(locale: str):
    if locale == "en":
        return lambda text, **params: text % params if params else text
    catalog = Translations.load(str(ROOT / "translations"), [locale])
    return lambda text, **params: catalog.gettext(text) % params if params else catalog.gettext(text)


def check_page(page, name: str) -> None:
    """Nothing may stick out of a 390-px screen; keep a full-page picture for a human to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    overflow = page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > width + 1)
            .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
        return {scroll: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5)};
    }""")
    assert overflow["scroll"] <= 0 and not overflow["wide"], f"{name} overflows a 390-px screen: {overflow}"


JOURNEYS = {
    # locale: (order number, email as a customer might type it, amount the order page shows,
    #          whether the policy requires proof of purchase: both reseller orders do)
    "en": ("ORD-10004", "  Carol@Example.net ", "$588.00", True),
    "zh": ("ORD-20003", "wang.fang@example.cn", "¥3,999.00", True),
    "nl": ("ORD-40002", "noor.elamrani@example.com", "€\xa0290,00", False),
}


@pytest.mark.parametrize("locale", JOURNEYS)
def test_the_whole_journey_in_a_real_browser(page, orders, locale):
    _ = translator(locale)
    number, email, paid, needs_proof = JOURNEYS[locale]

    page.goto("/")
    if locale != "en":
        page.locator(".language-switch a[hreflang]").nth(("en", "zh", "nl").index(locale)).click()
    assert page.locator("html").get_attribute("lang") == {"en": "en", "zh": "zh-Hans", "nl": "nl"}[locale]
    check_page(page, f"{locale}-1-home")

    # A wrong email first: the same neutral message as for an unknown order.
    page.fill("input[name=order_number]", number)
    page.fill("#lookup-title ~ form input[name=email]", "someone@example.com")
    page.get_by_role("button", name=_("Find my order")).click()
    assert page.locator(
        ".field-error",
        has_text=_("We could not find an order with that number and email address. Check both and try again."),
    ).is_visible()
    page.fill("#lookup-title ~ form input[name=email]", email)
    page.get_by_role("button", name=_("Find my order")).click()

    page.wait_for_url(f"**/orders/{number}")
    assert page.get_by_role("heading", name=_("Order %(number)s", number=number)).is_visible()
    assert paid in page.inner_text(".facts")
    decision = page.inner_text(".decision")
    assert _("What our refund policy allows") in decision
    clause_link = page.locator(".decision a[href*='/policy#']").first
    assert clause_link.is_visible()
    check_page(page, f"{locale}-2-order")

    page.locator(".decision a.button").click()
    page.wait_for_url(f"**/orders/{number}/refund")
    page.check("input[name=reason][value=technical_problem]")
    page.fill("textarea[name=details]", "Exports fail <b>every</b> time — 导出失败")
    if needs_proof:
        page.get_by_role("button", name=_("Send my request")).click()
        # Bought through a reseller: the proof of purchase is required, and what was typed stays.
        assert page.locator(
            ".field-error",
            has_text=_(
                "Please attach proof of purchase (an invoice or bank statement): our policy requires it for this order."
            ),
        ).is_visible()
        assert page.input_value("textarea[name=details]") == "Exports fail <b>every</b> time — 导出失败"
        assert page.is_checked("input[name=reason][value=technical_problem]")
    check_page(page, f"{locale}-3-refund-form")

    page.set_input_files(
        "input[name=documents]", files=[{"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes()}]
    )
    page.get_by_role("button", name=_("Send my request")).click()
    page.wait_for_url("**/requests/RF-*")
    request = latest_request(orders)
    assert request.state is RequestState.RECEIVED and request.locale == locale
    assert [d.original_name for d in request.documents] == ["invoice.pdf"]
    assert page.inner_text(".status .state") == _("Received")
    assert "Exports fail <b>every</b> time" not in page.content()  # escaped, never markup
    assert page.get_by_role("link", name="invoice.pdf").is_visible()
    check_page(page, f"{locale}-4-tracking")

    # The tracking link from the acknowledgement opens the same page in a browser that never looked up.
    [acknowledgement] = outbox(orders, "acknowledgement")
    assert acknowledgement.locale == locale
    other = page.context.browser.new_context(viewport=PHONE)
    try:
        stranger = other.new_page()
        stranger.goto(acknowledgement.variables["tracking_url"])
        assert request.reference in stranger.inner_text("h1")
    finally:
        other.close()

    # Support asks for a screenshot and an explanation; the customer answers on the tracking page.
    orders.add(
        InformationRequest(
            refund_request=request,
            message="Could you show us the error?",
            items=[{"kind": "question", "key": "what_went_wrong"}, {"kind": "document", "key": "screenshot"}],
        )
    )
    transition(orders, request, Action.ASK_INFO, actor=Actor.STAFF, note="Could you show us the error?")
    orders.commit()
    page.reload()
    assert page.get_by_role("heading", name=_("We need a few answers")).is_visible()
    check_page(page, f"{locale}-5-information-request")
    page.fill("textarea[name=answer]", "The export button shows an error.")
    page.set_input_files(
        "input[name=item_screenshot]",
        files=[{"name": "error.png", "mimeType": "image/png", "buffer": png_bytes((800, 600))}],
    )
    page.get_by_role("button", name=_("Send my answer")).click()
    page.wait_for_load_state()
    assert page.inner_text(".status .state") == _("In review")
    orders.expire_all()
    assert request.information_requests[0].answer == "The export button shows an error."
    assert sorted(d.original_name for d in request.documents) == ["error.png", "invoice.pdf"]
    check_page(page, f"{locale}-6-answered")


def test_a_disguised_upload_is_refused_in_the_browser_with_the_form_kept(page, orders):
    page.goto("/")
    page.fill("input[name=order_number]", "ORD-10001")
    page.fill("#lookup-title ~ form input[name=email]", "alice.m@example.com")
    page.get_by_role("button", name="Find my order").click()
    page.goto("/orders/ORD-10001/refund")
    page.fill("textarea[name=details]", "Keep this text")
    page.set_input_files(
        "input[name=documents]",
        files=[{"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00" + b"\x00" * 200}],
    )
    page.get_by_role("button", name="Send my request").click()
    assert page.locator(".field-error", has_text="“receipt.pdf” is not a PDF, PNG, JPEG or WebP file.").is_visible()
    assert page.input_value("textarea[name=details]") == "Keep this text"
    assert latest_request(orders) is None
    check_page(page, "en-upload-refused")
