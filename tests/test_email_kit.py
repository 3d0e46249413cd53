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
    "offer_accepted",
    "offer_set_up",
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


# -- the export for other tools -------------------------------------------------------------------


def test_mailchimp_keeps_both_branches_of_every_condition_and_lists_item_by_item(kit):
    asked = kit.render_merge_tags("information_request", "en", "mailchimp")
    html, text = asked.html, asked.text
    # The reminder's condition travels with both branches, in the subject and the body.
    assert asked.subject == (
        "[*|REFERENCE|*] *|IF:REMINDER|*Reminder: we still need a few details*|ELSE:|*"
        "We need a few details for your refund request*|END:IF|*"
    )
    assert html.count("*|IF:REMINDER|*") == 2 and "*|END:IF|*" in html  # in <title> and in the body
    assert re.search(r"\*\|IF:NOTE\|\*<p class=\"quote\"[^>]*>\*\|NOTE\|\*</p>\s*\*\|END:IF\|\*", html)
    # Each question is an item of its own: its own merge field, its own <li>, shown only when filled.
    items = re.findall(r"\*\|IF:QUESTIONS_(\d)\|\*\s*<li>\*\|QUESTIONS_(\d)\|\*</li>\s*\*\|END:IF\|\*", html)
    assert items == [(str(n), str(n)) for n in range(1, 6)]
    assert "*|QUESTIONS|*" not in html and "Alice Moreau" not in html
    assert "3. *|QUESTIONS_3|*" in text
    # The editable regions of Mailchimp's editor.
    assert {"header", "body", "footer"} == set(re.findall(r'mc:edit="([a-z]+)"', html))
    assert "mc:edit" not in kit.render_sample("information_request", "en").html
    # A condition on an empty-able text and on a true/false both keep their branches.
    declined = kit.render_merge_tags("decline", "nl", "mailchimp").html
    assert "*|IF:ALTERNATIVE_TITLE|*" in declined and "*|ALTERNATIVE_TEXT|*" in declined
    approved = kit.render_merge_tags("approval", "zh", "mailchimp").html
    assert "*|IF:PARTIAL|*" in approved and "*|ELSE:|*" in approved


def test_handlebars_uses_if_and_each(kit):
    asked = kit.render_merge_tags("information_request", "nl", "handlebars")
    assert "{{#if reminder}}" in asked.subject and "{{else}}" in asked.subject and "{{/if}}" in asked.subject
    assert re.search(r"\{\{#each questions\}\}\s*<li>\{\{this\}\}</li>\s*\{\{/each\}\}", asked.html)
    assert "{{#if note}}" in asked.html and "{{note}}" in asked.html
    assert "- {{this}}" in asked.text and "mc:edit" not in asked.html
    for message in MESSAGES:
        for style in ("mailchimp", "handlebars"):
            rendered = kit.render_merge_tags(message, "zh", style)
            html = rendered.html + rendered.text + rendered.subject
            # Every condition closes as often as it opens.
            if style == "mailchimp":
                assert html.count("*|IF:") == html.count("*|END:IF|*"), message
            else:
                assert html.count("{{#if ") == html.count("{{/if}}") and html.count("{{#each") == html.count(
                    "{{/each}}"
                )


def _kit_page(client, **query):
    return client.get("/staff/emails", query_string=query)


def test_the_kit_page_lists_the_messages_and_previews_one(make_app, db_session):
    from portal.core.vocabulary import StaffRole
    from tests.staff_helpers import make_staff, sign_in

    app = make_app()
    make_staff(db_session, "m@example.com", StaffRole.MARKETING)
    marketing = app.test_client()
    sign_in(marketing, "m@example.com")
    page = _kit_page(marketing).get_data(as_text=True)
    assert page.count("<iframe") == 1
    assert "Request received" in page and "Questions for the customer, and the reminder" in page
    assert "`" not in page, "literal backticks"
    headings = re.findall(r"<h[1-3][^>]*>(.*?)</h[1-3]>", page)
    assert not [h for h in headings if "_" in h or h in MESSAGES], headings
    assert 'aria-current="page">Request received<' in page
    decline = _kit_page(marketing, message="decline", locale="zh").get_data(as_text=True)
    assert decline.count("<iframe") == 1 and "/staff/emails/decline/zh/preview" in decline
    assert "关于您的退款申请" in decline  # the subject, in the previewed language
    assert _kit_page(marketing, message="nope").status_code == 404


def test_marketing_and_admins_download_the_kit_as_a_zip_and_agents_do_not(make_app, db_session):
    import io
    import zipfile

    from portal.core.vocabulary import StaffRole
    from tests.staff_helpers import make_staff, sign_in

    app = make_app()
    make_staff(db_session, "m@example.com", StaffRole.MARKETING)
    make_staff(db_session, "boss@example.com", StaffRole.ADMIN)
    make_staff(db_session, "a@example.com", StaffRole.AGENT)
    clients = {}
    for email in ("m@example.com", "boss@example.com", "a@example.com"):
        clients[email] = app.test_client()
        sign_in(clients[email], email)
    page = _kit_page(clients["m@example.com"]).get_data(as_text=True)
    assert 'href="/staff/emails/kit.zip"' in page
    assert clients["a@example.com"].get("/staff/emails/kit.zip").status_code == 403
    assert app.test_client().get("/staff/emails/kit.zip").status_code == 302  # to the sign-in
    for email in ("m@example.com", "boss@example.com"):
        response = clients[email].get("/staff/emails/kit.zip")
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
        assert "filename=email-kit.zip" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = set(archive.namelist())
    for locale in LOCALES:
        for message in MESSAGES:
            for kind in ("rendered", "mailchimp", "handlebars"):
                assert f"email-kit/{kind}/{locale}/{message}.html" in names
                assert f"email-kit/{kind}/{locale}/{message}.txt" in names
    assert {"email-kit/index.json", "email-kit/variables.json", "email-kit/brand.toml", "email-kit/README.txt"} <= names
    assert "email-kit/source/messages/refunded.html" in names
    mailchimp = archive.read("email-kit/mailchimp/en/information_request.html").decode()
    assert "*|IF:QUESTIONS_1|*" in mailchimp and 'mc:edit="body"' in mailchimp
    handlebars = archive.read("email-kit/handlebars/zh/information_request.html").decode()
    assert "{{#each questions}}" in handlebars
    assert "Alice Moreau" in archive.read("email-kit/rendered/nl/acknowledgement.txt").decode()
