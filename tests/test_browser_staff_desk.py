"""The staff desk in a real Chromium at 1280×800: an agent works from the "needs action" view with
the keyboard, takes a request and gives another away, and never scrolls to reach the actions.

Screenshots of the queue and of a request page (the first screen and the whole page) are saved in
``test-artifacts/`` to be looked at.
"""

from __future__ import annotations

import re

import pytest

from portal.core.vocabulary import StaffRole
from tests.staff_console_helpers import filed
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_browser_journey import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("frozen")]  # the clock stands at conftest.NOW

DESK = {"width": 1280, "height": 800}


@pytest.fixture
def desk(browser, live_server):
    context = browser.new_context(viewport=DESK, base_url=live_server)
    page = context.new_page()
    errors: list[str] = []
    # The shortcuts run from a file of our own under the CSP: an inline script or eval would show here.
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"the browser reported errors: {errors}"


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.screenshot(path=str(ARTIFACTS / f"{name}-full.png"), full_page=True)


def in_first_screen(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= DESK["height"]


def blur(page) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")


def test_an_agent_works_the_needs_action_view_with_the_keyboard_and_the_action_bar_in_view(desk, app, orders):
    make_staff(orders, "ada@example.com", StaffRole.AGENT, "Ada Agent")
    make_staff(orders, "bob@example.com", StaffRole.AGENT, "Bob Builder")
    first = filed(app, "ORD-10001", "alice.m@example.com")
    second = filed(app, "ORD-10005", "dave@example.com")
    page = desk

    page.goto("/staff/login?next=/staff/queue")
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/staff/queue"))
    assert page.locator('.views a[aria-current="page"]').inner_text().startswith("Needs action")
    assert page.locator("a.queue-link").all_inner_texts() == [first, second]
    shoot(page, "staff-desk-queue")

    # j moves down the queue, k back up; Enter opens the request under the highlight.
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.locator("tr.current a.queue-link").inner_text() == first
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/staff/requests/{first}"))

    # The actions are in the first screen, and stay there however far the agent scrolls.
    assert in_first_screen(page, "#action-bar")
    for label in ("Assign to me", "Reply / ask", "Approve", "Decline"):
        assert in_first_screen(page, f"#action-bar >> text={label}"), label
    shoot(page, "staff-desk-request")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert page.evaluate("window.scrollY") > 0
    assert in_first_screen(page, "#action-bar")
    page.evaluate("window.scrollTo(0, 0)")

    # a: assign to me.
    with page.expect_navigation():
        page.keyboard.press("a")
    assert page.locator("#assignee-name").inner_text() == "Ada Agent"
    assert "Assigned to Ada Agent by Ada Agent" in page.locator(".timeline").inner_text()

    # ?: the help, and again to hide it.
    page.keyboard.press("?")
    assert page.locator("#shortcuts-help").is_visible()
    assert "Keyboard shortcuts" in page.locator("#shortcuts-help").inner_text()
    page.keyboard.press("?")
    assert not page.locator("#shortcuts-help").is_visible()

    # p, d, r: straight into the approval, the decline and the question, with the cursor in place.
    for key, field in (("p", "amount"), ("d", "clause"), ("r", "custom")):
        blur(page)
        page.keyboard.press(key)
        assert page.evaluate("document.activeElement.id") == field, key
        assert page.locator(f"#{field}").is_visible()
    blur(page)
    # Typing in a field is typing, not a shortcut.
    page.locator("#custom").fill("")
    page.locator("#custom").type("jak")
    assert page.url.endswith(f"/staff/requests/{first}") or f"/staff/requests/{first}#" in page.url
    blur(page)

    # j: the next request in the queue; k: back.
    page.keyboard.press("j")
    page.wait_for_url(re.compile(rf"/staff/requests/{second}"))
    page.keyboard.press("k")
    page.wait_for_url(re.compile(rf"/staff/requests/{first}"))

    # Give it to Bob from the bar: the bar, the timeline and Bob's "mine" say so.
    page.select_option("#assignee", label="Bob Builder")
    page.click("#action-bar button:text-is('Assign')")
    page.wait_for_load_state()
    assert page.locator("#assignee-name").inner_text() == "Bob Builder"
    assert "Assigned to Bob Builder by Ada Agent" in page.locator(".timeline").inner_text()
    page.goto("/staff/queue?view=unassigned")
    assert page.locator("a.queue-link").all_inner_texts() == [second]
    page.goto("/staff/queue")
    assert "Bob Builder" in page.locator("table").inner_text()
