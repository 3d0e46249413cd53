"""The email kit: every message in every language, formatted for the reader, strict about variables."""

import json
import re
import shutil
from email.utils import parseaddr
from pathlib import Path

import pytest
from jinja2 import meta

from portal.core.brand import load_brand
from portal.core.paths import resource_dir
from portal.core.vocabulary import LOCALES
from portal.outbox.kit import GLOBALS, EmailKit, KitError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kit():
    return EmailKit(
        resource_dir("emails"), resource_dir("translations"), base_url="https://refunds.example.com", brand=load_brand()
    )


MESSAGES = [
    "acknowledgement",
    "information_request",
    "reply_received",
    "approval",
    "decline",
    "refunded",
    "refund_failed",
    "magic_link",
    "staff_password_reset",
    "closed_unanswered",
    "erasure_confirmed",
]


def test_the_kit_declares_every_message_the_portal_sends(kit):
    assert sorted(kit.messages) == sorted(MESSAGES)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_renders_in_every_language_with_the_layout_conventions(kit, message, locale):
    rendered = kit.render_sample(message, locale)
    english = kit.render_sample(message, "en")
    assert rendered.subject and rendered.preheader and "\n" not in rendered.subject
    if locale != "en":
        assert rendered.subject != english.subject and rendered.preheader != english.preheader
    html = rendered.html
    assert f'<html lang="{ {"en": "en", "zh": "zh-Hans", "nl": "nl"}[locale] }"' in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert 'role="presentation"' in html and 'width="600"' in html
    assert 'class="preheader" style="display: none;' in html and rendered.preheader.split()[0] in html
    assert "@media (prefers-color-scheme: dark)" in html and "@media only screen and (max-width: 620px)" in html
    assert re.search(r'<p style="[^"]*font-size: 16px', html), "the stylesheet was not inlined"
    assert "<link" not in html
    links = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert links and all(link.startswith(("https://", "http://")) for link in links), links
    assert all(re.search(r"<img [^>]*alt=\"[^\"]+\"", tag) for tag in re.findall(r"<img [^>]+>", html))
    text = rendered.text
    assert not re.search(r"<[a-z/][^>]*>", text), "HTML in the plain-text part"
    assert {
        "en": "The Northwind Cloud support team",
        "zh": "Northwind Cloud 客服团队",
        "nl": "Het supportteam van Northwind Cloud",
    }[locale] in text
    assert "Alice Moreau" in text and "Alice Moreau" in html


def test_money_and_dates_are_written_for_the_readers_locale(kit):
    variables = {**kit.spec("acknowledgement").samples(), "amount": "290.00 EUR", "decision_due": "2026-11-24"}
    assert "€\xa0290,00" in kit.render("acknowledgement", "nl", **variables).text
    assert "24 november 2026" in kit.render("acknowledgement", "nl", **variables).text
    assert "2026年11月24日" in kit.render("acknowledgement", "zh", **variables).preheader
    assert "€290.00" in kit.render("acknowledgement", "en", **variables).text
    yen = kit.render("approval", "en", **{**kit.spec("approval").samples(), "amount": "4300 JPY"})
    assert yen.subject.endswith("] Your refund of ¥4,300 has been approved")


def test_links_are_absolute_from_the_base_url(kit):
    rendered = kit.render("reply_received", "en", customer_name="A", reference="RF-1", tracking_url="/track/abc")
    assert "https://refunds.example.com/track/abc" in rendered.text
    assert 'href="https://refunds.example.com/track/abc"' in rendered.html
    with pytest.raises(KitError, match="tracking_url"):
        kit.render("reply_received", "en", customer_name="A", reference="RF-1", tracking_url="track/abc")


def test_a_missing_or_undeclared_variable_is_an_error_never_a_blank(kit):
    variables = kit.spec("approval").samples()
    del variables["amount"]
    with pytest.raises(KitError, match="missing variable\\(s\\) amount"):
        kit.render("approval", "en", **variables)
    with pytest.raises(KitError, match="undeclared variable\\(s\\) coupon"):
        kit.render("approval", "en", **kit.spec("approval").samples(), coupon="X")
    with pytest.raises(KitError, match="no message called 'welcome'"):
        kit.render("welcome", "en")


def test_a_template_using_an_undeclared_variable_fails(tmp_path):
    root = tmp_path / "emails"
    shutil.copytree(resource_dir("emails"), root)
    template = root / "messages" / "approval.html"
    template.write_text(template.read_text().replace("{% block body %}", "{% block body %}{{ coupon_code }}"))
    kit = EmailKit(root, resource_dir("translations"), base_url="https://x.example", brand=load_brand())
    with pytest.raises(KitError, match="undeclared variable: 'coupon_code' is undefined"):
        kit.render_sample("approval", "en")


@pytest.mark.parametrize("message", MESSAGES)
def test_each_template_uses_exactly_the_variables_it_declares(kit, message):
    environment = kit._environment("en")
    used = set()
    for suffix in ("html", "txt"):
        source = (kit.root / "messages" / f"{message}.{suffix}").read_text(encoding="utf-8")
        used |= meta.find_undeclared_variables(environment.parse(source))
    macros = set(re.findall(r"{% macro (\w+)", (kit.root / "macros.html").read_text(encoding="utf-8")))
    used -= set(GLOBALS) | macros | {"_", "gettext", "ngettext"}
    assert used == set(kit.spec(message).variables)


def test_customer_text_is_escaped_in_html_and_kept_in_plain_text(kit):
    variables = {
        **kit.spec("information_request").samples(),
        "customer_name": "<b>Eve</b> & Co",
        "note": "<script>alert(1)</script>",
        "questions": ["<img src=x onerror=alert(1)>"],
    }
    rendered = kit.render("information_request", "en", **variables)
    assert "<script>" not in rendered.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; Co" in rendered.html and "<img src=x" not in rendered.html
    assert "Hello <b>Eve</b> & Co," in rendered.text


def test_export_writes_every_message_in_every_language_with_merge_tags(runner, tmp_path):
    folder = tmp_path / "kit"
    result = runner.invoke(args=["emails", "export", str(folder), "--merge-tags", "mailchimp"])
    assert result.exit_code == 0, result.output
    index = json.loads((folder / "index.json").read_text())
    assert {(e["message"], e["locale"]) for e in index if e["kind"] == "rendered"} == {
        (m, loc) for m in MESSAGES for loc in LOCALES
    }
    variables = json.loads((folder / "variables.json").read_text())
    assert variables["approval"]["variables"]["amount"] == {"type": "money", "sample": "29.00 USD", "description": ""}
    assert (folder / "brand.toml").exists() and (folder / "source" / "layout.html").exists()
    assert (folder / "source" / "messages" / "refunded.txt").exists()
    tagged = (folder / "mailchimp" / "nl" / "approval.html").read_text()
    assert "*|AMOUNT|*" in tagged and "*|CUSTOMER_NAME|*" in tagged and 'href="*|TRACKING_URL|*"' in tagged
    assert "Alice Moreau" not in tagged and "29,00" not in tagged
    subject = next(
        e["subject"] for e in index if e["kind"] == "mailchimp" and e["message"] == "approval" and e["locale"] == "zh"
    )
    assert subject == "[*|REFERENCE|*] 您的 *|AMOUNT|* 退款已获批准"
    assert "Alice Moreau" in (folder / "rendered" / "zh" / "acknowledgement.txt").read_text()


def test_the_sender_is_the_brand(app):
    name, address = parseaddr(f"{app.config['MAIL_DEFAULT_SENDER'][0]} <{app.config['MAIL_DEFAULT_SENDER'][1]}>")
    assert (name, address) == ("Northwind Cloud", "support@northwind.example")


def test_the_colours_come_from_brand_toml(tmp_path):
    brand = {
        **load_brand(),
        "primary_color": "#7a1f5c",
        "dark_primary_color": "#f2b8dc",
        "button_text_color": "#fffff0",
    }
    kit = EmailKit(resource_dir("emails"), resource_dir("translations"), base_url="https://x.example", brand=brand)
    html = kit.render_sample("acknowledgement", "en").html
    assert re.search(r"<h1 style=\"[^\"]*color: #7a1f5c", html), "the heading is not in the brand's colour"
    assert re.search(r"class=\"button\"[^>]*color: #fffff0", html) and "background-color: #7a1f5c" in html
    dark = html.split("@media (prefers-color-scheme: dark)")[1]
    assert "#f2b8dc" in dark
    assert "#1f4e79" not in html and "#8cc4ff" not in html  # nothing left of the default colours
    with pytest.raises(KitError, match="primary_color"):
        EmailKit(
            resource_dir("emails"),
            resource_dir("translations"),
            base_url="https://x.example",
            brand={**load_brand(), "primary_color": "red; background: url(x)"},
        )


def test_the_logo_stays_readable_when_the_mail_program_is_dark(kit):
    """The logo carries its own light plate: its whole outer edge is opaque and light, so on a dark
    background (#16191d, the dark-mode body) the navy lettering still sits on white."""
    from PIL import Image

    logo = Image.open(ROOT / "portal" / "static" / "email-logo.png").convert("RGBA")
    width, height = logo.size
    ring = [logo.getpixel((x, y)) for x in range(12, width - 12) for y in (4, height - 5)]
    ring += [logo.getpixel((x, y)) for y in range(12, height - 12) for x in (4, width - 5)]
    assert all(a == 255 and min(r, g, b) >= 200 for r, g, b, a in ring), "the logo's edge is not a light plate"
    lettering = [p for p in logo.get_flattened_data() if p[3] == 255 and max(p[:3]) < 140]
    assert len(lettering) > 1000, "no dark lettering on the plate"
    html = kit.render_sample("acknowledgement", "en").html
    assert re.search(r'<img src="https://refunds.example.com/static/email-logo.png" width="176"', html)
    assert width == 2 * 176  # twice the width shown, for sharp screens
