"""The public policy page: every clause, in every language, with working anchors and versions."""

import re

import pytest
import time_machine

from portal.policy import load_policy

POLICY = load_policy()
CURRENT = POLICY.versions[-1]


@pytest.mark.parametrize(
    "locale,heading,number_text",
    [
        ("en", "Refund policy", "within 14 days of purchase"),
        ("zh", "退款政策", "14 天内"),
        ("nl", "Terugbetalingsbeleid", "binnen 14 dagen na aankoop"),
    ],
)
def test_every_clause_is_published_in_each_language_with_its_anchor(client, locale, heading, number_text):
    client.get(f"/language/{locale}")
    html = client.get("/policy").get_data(as_text=True)
    assert f'<h1 id="policy-title">{heading}</h1>' in html
    for clause in CURRENT.clauses:
        assert f'id="{clause.id}"' in html, clause.id
        assert f'href="#{clause.id}"' in html
        assert clause.title.get(locale) in html
    assert number_text in html
    assert "{" not in re.sub(r"<[^>]+>", "", html.split("<main")[1])  # every parameter was filled in


def test_the_page_shows_the_version_and_its_date(client):
    html = client.get("/policy", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Version 2026-01, in force since January 1, 2026." in html
    zh = client.get("/policy", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "2026年1月1日" in zh


def test_earlier_versions_are_linked_and_readable(client):
    html = client.get("/policy").get_data(as_text=True)
    assert 'href="/policy/2025-01"' in html
    old = client.get("/policy/2025-01").get_data(as_text=True)
    assert "This is not the current version." in old
    assert 'id="technical"' not in old  # that clause came with 2026-01
    assert client.get("/policy/1999-01").status_code == 404


def test_the_version_in_force_follows_the_calendar(client):
    with time_machine.travel("2025-06-01T12:00:00Z", tick=False):
        html = client.get("/policy").get_data(as_text=True)
    assert "Version 2025-01, in force since" in html
    assert 'href="/policy/2025-01"' not in html  # nothing earlier than the current one


def test_home_page_states_the_decision_time_from_the_policy(client):
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "decide within 2 business days" in html
    assert 'href="/policy"' in html
