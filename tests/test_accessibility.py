"""Every customer and staff page, in every language, checked by axe-core in the real Chromium.

axe-core comes inside the axe-playwright-python wheel (nothing is fetched at run time). A page
passes with zero violations of the WCAG 2.2 A and AA rules. One browser serves the session and one
context per audience and language walks its pages in a loop, so the whole audit stays a matter of
seconds per language. A keyboard-only journey (Tab, Enter, Space, no mouse) closes the file.
"""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select

from portal.accounts.models import TotpFactor
from portal.core.vocabulary import LOCALES, StaffRole
from tests.conftest import csrf_token
from tests.journey_helpers import outbox, process_link_requests
from tests.staff_console_helpers import act, filed
from tests.staff_helpers import PASSWORD, make_staff, sign_in, staff_post
from tests.test_browser_journey import ARTIFACTS, PHONE
from tests.test_catalogs import chinese_punctuation_problems

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("frozen")]

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# Beside the WCAG rules, three of axe's best practices that a screen reader user notices at once:
# two landmarks with one name, a column without a header, a heading level skipped.
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": WCAG},
    "rules": {"landmark-unique": {"enabled": True}, "empty-table-header": {"enabled": True}},
    "resultTypes": ["violations"],
}
DESKTOP = {"width": 1280, "height": 900}
AXE = Axe()
# The runs of text a reader reads as one: each element's text with its inline children (links,
# emphasis), line by line; buttons, badges and blocks are runs of their own, the gap between them
# being layout, not a space in a sentence.
TEXT_RUNS = """() => {
    const runs = [];
    const inline = node => node.nodeType === 3 ||
        (node.nodeType === 1 && !(node instanceof SVGElement) && getComputedStyle(node).display === 'inline');
    for (const el of document.body.querySelectorAll('*')) {
        if (['SCRIPT', 'STYLE', 'TEMPLATE'].includes(el.tagName) || inline(el) || !el.checkVisibility()) continue;
        let run = '';
        const flush = () => { runs.push(...run.split('\\n')); run = ''; };
        for (const child of el.childNodes) {
            if (inline(child)) run += child.textContent; else flush();
        }
        flush();
    }
    return runs.map(r => r.replace(/[ \\t]+/g, ' ').trim()).filter(Boolean);
}"""


def violations(page) -> list[str]:
    found = AXE.run(page, options=AXE_OPTIONS).response["violations"]
    # axe 4.x no longer reports repeated ids (WCAG 2.2 dropped 4.1.1), yet a label whose "for" names a
    # repeated id focuses the first field of that id, not its own: checked here.
    repeated = page.evaluate("""() => {
        const seen = new Map();
        for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
        return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    }""")
    problems = [f"repeated ids: {repeated}"] * bool(repeated)
    if page.evaluate("document.documentElement.lang") == "zh-Hans":
        # What the catalog test checks in each message, checked here in the page as assembled.
        lines = page.evaluate(TEXT_RUNS)
        problems += [
            f"Chinese typography: {line!r} ({', '.join(found)})"
            for line in lines
            if (found := chinese_punctuation_problems(line))
        ]
    return problems + [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(t) for node in v['nodes'][:4] for t in node['target'])}"
        + (f" — {v['nodes'][0].get('failureSummary', '')}" if v["nodes"] else "")
        for v in found
    ]


def audit(page, paths: list[str], label: str) -> dict[str, list[str]]:
    problems = {}
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status < 500, f"{path}: {response and response.status}"
        found = violations(page)
        if found:
            problems[f"{label} {path}"] = found
    return problems


@pytest.fixture
def staff_data(app, orders):
    """An agent with an authenticator app (the second-factor page) and a password-reset link."""
    make_staff(orders, "agent@example.com", StaffRole.AGENT, name="Tom Agent")
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    staff_post(agent, "/staff/security/totp", "/staff/security")
    totp = pyotp.TOTP(orders.scalar(select(TotpFactor.secret)))
    assert staff_post(agent, "/staff/security/totp/confirm", "/staff/security", code=totp.now()).status_code == 303
    asker = app.test_client()
    asker.post("/staff/forgot", data={"csrf_token": csrf_token(asker, "/staff/forgot"), "email": "agent@example.com"})
    return {"reset": outbox(orders, "staff_password_reset")[0].variables["link"].split("://", 1)[1].split("/", 1)[1]}


@pytest.fixture
def portal_data(app, orders):
    """Requests in the states a page shows differently: received, waiting on the customer, refunded."""
    make_staff(orders, "admin@example.com", StaffRole.ADMIN, name="Ada Admin")
    agent = app.test_client()
    sign_in(agent, "admin@example.com")
    received = filed(app, "ORD-10001", "alice.m@example.com")
    asking = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    assert act(agent, asking, "ask", message="Could you show us the error?", documents="screenshot").status_code == 303
    refunded = filed(app, "ORD-30001", "sanne.devries@example.nl", locale="nl")
    act(agent, refunded, "approve", amount="10.00")
    act(agent, refunded, "process", reference="re_a11y")
    feedback = outbox(orders, "refunded")[0].variables["feedback_url"]
    asker = app.test_client()
    asker.post("/access-link", data={"csrf_token": csrf_token(asker, "/"), "email": "alice.m@example.com"})
    process_link_requests(orders)
    magic = outbox(orders, "magic_link")[0].variables["link"]
    tracking = outbox(orders, "acknowledgement")[0].variables["tracking_url"]
    return {
        "received": received,
        "asking": asking,
        "refunded": refunded,
        "feedback": feedback.split("://", 1)[1].split("/", 1)[1],
        "tracking": tracking.split("://", 1)[1].split("/", 1)[1],
        "magic": magic.split("://", 1)[1].split("/", 1)[1],
    }


def customer_paths(data) -> list[str]:
    return [
        "/",
        "/policy",
        "/orders/ORD-10001",
        "/orders/ORD-10002",
        "/orders/ORD-10002/refund",
        f"/requests/{data['received']}",
        "/orders",
        "/no-such-page",
        "/portal-session/a-token-that-expired",
    ]


@pytest.mark.parametrize("locale", LOCALES)
def test_every_customer_page_passes_axe(browser, live_server, portal_data, locale):
    context = browser.new_context(viewport=PHONE, base_url=live_server)
    page = context.new_page()
    problems: dict[str, list[str]] = {}
    try:
        page.goto(f"/language/{locale}?next=/")
        problems |= audit(page, ["/"], locale)
        # A form answered with errors: the summary, the fields marked invalid.
        page.fill("#lookup-title ~ form input[name=order_number]", "ORD-10001")
        with page.expect_navigation():
            page.locator("#lookup-title ~ form button[type=submit]").click()
        problems |= {f"{locale} lookup error {k}": v for k, v in {"/lookup": violations(page)}.items() if v}
        page.fill("#lookup-title ~ form input[name=email]", "alice.m@example.com")
        page.locator("#lookup-title ~ form button[type=submit]").click()
        page.wait_for_url("**/orders/ORD-10001")
        # Her older order too: its window has closed, so its form asks for a review.
        page.goto("/")
        page.fill("#lookup-title ~ form input[name=order_number]", "ORD-10002")
        page.fill("#lookup-title ~ form input[name=email]", "alice.m@example.com")
        page.locator("#lookup-title ~ form button[type=submit]").click()
        page.wait_for_url("**/orders/ORD-10002")
        problems |= audit(page, customer_paths(portal_data), locale)
        # A refund form sent back with errors (ORD-10001 has an open request already; ORD-10002 none).
        page.goto("/orders/ORD-10002/refund")
        assert page.locator(".error-summary").count() == 0
        page.check("input[name=amount_choice][value=partial]")
        with page.expect_navigation():
            page.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
        assert page.locator(".error-summary a[href='#partial_amount']").count() == 1
        if found := violations(page):
            problems[f"{locale} refund form with errors"] = found
        page.screenshot(path=str(ARTIFACTS / f"a11y-{locale}-refund-errors.png"), full_page=True)
        # The other customers' pages, each opened the way its customer does: by the emailed links.
        page.goto("/" + portal_data["tracking"])
        problems |= audit(page, [f"/requests/{portal_data['received']}"], f"{locale} tracked")
        other = browser.new_context(viewport=PHONE, base_url=live_server)
        try:
            visitor = other.new_page()
            data_magic = portal_data["magic"]
            visitor.goto(f"/language/{locale}?next=/")
            problems |= audit(visitor, ["/" + portal_data["feedback"]], f"{locale} feedback")
            with visitor.expect_navigation():
                visitor.locator("form button[type=submit]").last.click()
            if found := violations(visitor):
                problems[f"{locale} feedback with errors"] = found
            visitor.check("input[name=rating][value='4']")
            visitor.check("input[name=come_back][value=yes]")
            with visitor.expect_navigation():
                visitor.locator("form button[type=submit]").last.click()
            if found := violations(visitor):
                problems[f"{locale} feedback thanks"] = found
            # The emailed link to all orders: a page asking to confirm, then the list.
            visitor.goto("/" + data_magic)
            visitor.wait_for_url("**/access")
            if found := violations(visitor):
                problems[f"{locale} magic link"] = found
        finally:
            other.close()
    finally:
        context.close()
    assert not problems, "\n".join(f"{where}:\n  " + "\n  ".join(found) for where, found in problems.items())


@pytest.mark.parametrize("locale", LOCALES)
def test_every_staff_page_passes_axe(browser, live_server, portal_data, staff_data, frozen, locale):
    frozen.shift(timedelta(days=2))  # the received request has waited on staff long enough to be overdue
    context = browser.new_context(viewport=DESKTOP, base_url=live_server)
    page = context.new_page()
    problems: dict[str, list[str]] = {}
    try:
        page.goto(f"/language/{locale}?next=/staff/login")
        problems |= audit(page, ["/staff/forgot", "/staff/login"], locale)
        # The agent's way in: the second factor after the password, and the emailed reset link.
        other = browser.new_context(viewport=DESKTOP, base_url=live_server)
        try:
            agent = other.new_page()
            agent.goto(f"/language/{locale}?next=/staff/login")
            agent.fill("#email", "agent@example.com")
            agent.fill("#password", PASSWORD)
            agent.click("form button[type=submit]")
            agent.wait_for_url("**/staff/login/second-factor")
            if found := violations(agent):
                problems[f"{locale} second factor"] = found
            agent.goto("/" + staff_data["reset"])
            agent.wait_for_url("**/staff/reset")
            if found := violations(agent):
                problems[f"{locale} password reset"] = found
        finally:
            other.close()
        page.fill("#email", "admin@example.com")
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url("**/staff/**")
        paths = [
            "/staff/queue",
            "/staff/queue?state=waiting_on_customer",
            f"/staff/requests/{portal_data['received']}",
            f"/staff/requests/{portal_data['asking']}",
            f"/staff/requests/{portal_data['refunded']}",
            "/staff/customers",
            "/staff/emails",
            "/staff/insights",
            "/staff/outbox",
            "/staff/webhooks",
            "/staff/users",
            "/staff/security",
            "/staff/security-log",
            "/staff/automation",
        ]
        problems |= audit(page, paths, locale)
    finally:
        context.close()
    assert not problems, "\n".join(f"{where}:\n  " + "\n  ".join(found) for where, found in problems.items())


def _luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_focus_ring_stands_out_3_to_1_on_every_background_in_light_and_dark(browser, live_server):
    context = browser.new_context(base_url=live_server)
    try:
        page = context.new_page()
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.goto("/")
            colours = page.evaluate("""() => {
                const style = getComputedStyle(document.documentElement);
                return ['--focus', '--bg', '--surface'].map(name => style.getPropertyValue(name).trim());
            }""")
            focus, *backgrounds = colours
            for background in backgrounds:
                assert contrast(focus, background) >= 3, f"{scheme}: focus {focus} on {background}"
            # The page starts below the header, not glued to it.
            assert page.evaluate("getComputedStyle(document.querySelector('main')).paddingTop") == "24px"
    finally:
        context.close()


def tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching ``selector`` has focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{selector} has focus but shows no ring"
            return
    raise AssertionError(f"{limit} presses of Tab never reached {selector}")


def test_a_customer_finds_an_order_and_files_a_request_with_the_keyboard_alone(browser, live_server, orders):
    context = browser.new_context(viewport=DESKTOP, base_url=live_server)
    try:
        page = context.new_page()
        page.goto("/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        tab_to(page, "input[name=order_number]")
        page.keyboard.type("ORD-10001")
        page.keyboard.press("Tab")
        page.keyboard.type("alice.m@example.com")
        page.keyboard.press("Enter")
        page.wait_for_url("**/orders/ORD-10001")

        tab_to(page, ".decision a.button")
        page.keyboard.press("Enter")
        page.wait_for_url("**/orders/ORD-10001/refund")

        # A reason chosen with Space; "part of it" with the arrow keys, but no amount typed: sent so, focus
        # lands on the error summary, whose link leads into the amount field.
        tab_to(page, "input[name=reason]")
        page.keyboard.press("Space")
        assert page.evaluate("document.activeElement.checked")
        tab_to(page, "input[name=amount_choice]")
        page.keyboard.press("ArrowDown")
        assert page.is_checked("input[name=amount_choice][value=partial]")
        tab_to(page, "button[type=submit]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_function("() => document.activeElement.matches('.error-summary')")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#partial_amount"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "partial_amount"
        assert page.get_attribute("#partial_amount", "aria-invalid") == "true"
        page.keyboard.type("10")
        tab_to(page, "button[type=submit]")
        page.keyboard.press("Enter")
        page.wait_for_url("**/requests/RF-*")
        assert page.locator(".status .state").is_visible()
    finally:
        context.close()
