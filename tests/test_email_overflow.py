"""Every email of the kit fits a 375 px phone, in every language, with and without its <style> block.

The kit inlines its stylesheet and keeps only the ``@media`` rules in a ``<style>`` block. Outlook
for Windows, Windows Mail and Gmail's mobile web (and the Gmail apps with other accounts) drop that
block, so each message is loaded twice into one 375 px page of Debian's Chromium: as sent, and with
its ``<style>`` block removed. Horizontal overflow (``scrollWidth`` beyond the viewport) fails the
test, naming the message, the language and the variant, and the elements that stick out.
"""

from __future__ import annotations

import re

import pytest

from portal.core.vocabulary import LOCALES
from portal.web.mail import email_kit

pytestmark = pytest.mark.browser

WIDTH = 375
STYLE_BLOCK = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.IGNORECASE | re.DOTALL)
# A fixed 600 px table: what the layout was before it was fluid. The check must see it overflow.
FIXED_600 = (
    '<!DOCTYPE html><html><body style="margin:0"><table width="600" role="presentation">'
    "<tr><td>600 px</td></tr></table></body></html>"
)
# The elements whose right edge passes the viewport, the innermost last, to say what sticks out.
WIDE_ELEMENTS = """(width) => [...document.body.querySelectorAll('*')]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .slice(-3)
    .map((e) => `<${e.tagName.toLowerCase()}${e.className ? ` class="${e.className}"` : ''}>`
                + ` ends at ${Math.round(e.getBoundingClientRect().right)} px: ${(e.textContent || '').trim().slice(0, 50)}`)"""


def without_style_block(html: str) -> str:
    stripped = STYLE_BLOCK.sub("", html)
    assert "<style" not in stripped.lower()
    return stripped


@pytest.fixture(scope="module")
def phone(browser):
    # One page for every render: a plain 375 px viewport, no network (the logo is not fetched;
    # its width="160" attribute holds its place).
    context = browser.new_context(viewport={"width": WIDTH, "height": 800})
    context.route("**/*", lambda route: route.abort())
    page = context.new_page()
    yield page
    context.close()


def overflow(page, html: str) -> tuple[int, list[str]]:
    page.set_content(html, wait_until="domcontentloaded")
    width = page.evaluate("document.documentElement.scrollWidth")
    return width, (page.evaluate(WIDE_ELEMENTS, WIDTH) if width > WIDTH else [])


def test_the_check_sees_a_fixed_600_px_email_overflow(phone):
    width, wide = overflow(phone, FIXED_600)
    assert width >= 600 and wide, "the 375 px page does not show overflow: the check would pass anything"


def test_every_message_fits_375_px_with_and_without_its_style_block(app, phone):
    with app.app_context():
        kit = email_kit()
        failures = []
        renders = 0
        for message in kit.messages:
            for locale in LOCALES:
                html = kit.render_sample(message, locale).html
                assert STYLE_BLOCK.search(html), f"{message} ({locale}): no <style> block to remove"
                for variant, page_html in (("as sent", html), ("without <style>", without_style_block(html))):
                    width, wide = overflow(phone, page_html)
                    renders += 1
                    if width > WIDTH:
                        failures.append(
                            f"{message} ({locale}, {variant}): {width} px wide at {WIDTH} px; " + "; ".join(wide)
                        )
    assert renders == len(kit.messages) * len(LOCALES) * 2
    assert not failures, "horizontal overflow:\n" + "\n".join(failures)
