"""The email kit page in a real Chromium, as marketing uses it: one preview at a time, on a desktop
and on a phone, with screenshots in ``test-artifacts/`` to be looked at."""

from __future__ import annotations

import pytest

from portal.core.vocabulary import StaffRole
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_browser_journey import ARTIFACTS

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width,locale", [(1280, "en"), (390, "zh"), (1280, "nl")])
def test_the_kit_page_previews_one_message_and_fits_the_screen(app, db_session, browser, live_server, width, locale):
    make_staff(db_session, "m@example.com", StaffRole.MARKETING)
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=live_server)
    page = context.new_page()
    try:
        page.goto(f"/language/{locale}?next=/staff/login")
        page.fill("#email", "m@example.com")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.goto("/staff/emails?message=information_request")
        assert page.locator("iframe.preview").count() == 1
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 3000, f"the kit page is {height} px tall"
        scroll = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert scroll <= 0, f"the kit page overflows {width} px by {scroll} px"
        page.click(".kit-messages a[href*='message=decline']")  # another message: still one preview
        assert page.locator("iframe.preview").count() == 1 and "message=decline" in page.url
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"staff-email-kit-{locale}-{width}.png"), full_page=True)
        with page.expect_download() as download:
            page.click("a[href$='kit.zip']")
        assert download.value.suggested_filename == "email-kit.zip"
    finally:
        context.close()
