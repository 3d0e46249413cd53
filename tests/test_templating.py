"""Pages in each reader's language, escaped as they must be, with addresses that follow the mount point."""

from __future__ import annotations

from flask import render_template
from jinja2 import ChoiceLoader, DictLoader

PAGES = {
    "probe.html": '<p>{{ _("Refund policy") }}</p><p>{{ _("Order %(number)s", number=number) }}</p>'
    '<p>{{ _(computed) }}</p><p>{{ gettext("Refund policy") }}</p>',
    "probe.txt": '{{ _("Order %(number)s", number=number) }}',
    "child.html": '{% extends "probe.html" %}',
}


def _with_probe_pages(app):
    app.jinja_env.loader = ChoiceLoader([DictLoader(PAGES), app.jinja_env.loader])
    return app


def render(app, locale: str, name: str = "probe.html", **context) -> str:
    context.setdefault("number", "ORD-1")
    context.setdefault("computed", "Refund policy")
    with app.test_request_context("/", headers={"Accept-Language": locale}):
        return render_template(name, **context)


def test_each_language_reads_its_own_literal_messages_in_one_process(app):
    _with_probe_pages(app)
    # Alternating languages in one process: a compiled page never keeps one reader's language for another.
    for _ in range(2):
        assert render(app, "zh") == "<p>退款政策</p><p>订单 ORD-1</p><p>退款政策</p><p>退款政策</p>"
        assert render(app, "nl") == (
            "<p>Terugbetalingsbeleid</p><p>Bestelling ORD-1</p><p>Terugbetalingsbeleid</p><p>Terugbetalingsbeleid</p>"
        )
        assert render(app, "en") == "<p>Refund policy</p><p>Order ORD-1</p><p>Refund policy</p><p>Refund policy</p>"
    assert render(app, "zh", "child.html") == render(app, "zh")  # {% extends %} stays in the language


def test_variables_in_a_compiled_message_are_still_escaped(app):
    _with_probe_pages(app)
    page = render(app, "nl", number='<script>alert("x")</script>')
    assert "Bestelling &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<script>" not in page


def test_text_templates_are_not_escaped(app):
    _with_probe_pages(app)
    assert render(app, "zh", "probe.txt", number="A&B") == "订单 A&B"


def test_addresses_follow_the_script_root(app):
    # The same page under two mount points: remembered addresses are per script root.
    client = app.test_client()
    assert 'href="/policy"' in client.get("/").get_data(as_text=True)
    mounted = client.get("/", environ_overrides={"SCRIPT_NAME": "/refunds"}).get_data(as_text=True)
    assert 'href="/refunds/policy"' in mounted
    assert 'href="/policy"' not in mounted
    assert 'href="/policy"' in client.get("/").get_data(as_text=True)
