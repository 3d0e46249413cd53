"""An offer taken instead of a refund, end to end: the customer's confirmation in their language, the
offer waiting in the desk's "needs action" view, an agent setting it up once, the customer told."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.core.vocabulary import RequestState, StaffRole
from portal.outbox.models import OutboxMessage
from portal.refunds.queue import QueueFilter, View, queue_page, view_counts
from portal.web.mail import email_kit
from tests.conftest import csrf_token
from tests.journey_helpers import file_request, latest_request, lookup, outbox
from tests.staff_helpers import make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW (Sunday 22 November 2026)


@pytest.fixture
def agent(app, orders):
    make_staff(orders, "ada@example.com", StaffRole.AGENT, "Ada Agent")
    client = app.test_client()
    assert sign_in(client, "ada@example.com").status_code == 302
    return client


def take_offer(client, number: str, email: str, offer_id: str = "extended-trial"):
    lookup(client, number, email)
    return client.post(
        f"/orders/{number}/offer",
        data={"csrf_token": csrf_token(client, f"/orders/{number}"), "offer_id": offer_id},
    )


def text_of(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def test_a_dutch_customer_gets_one_confirmation_in_dutch_and_a_second_click_sends_none(app, client, orders):
    response = take_offer(client, "ORD-30001", "sanne.devries@example.nl")
    assert response.status_code == 303
    again = client.post(
        "/orders/ORD-30001/offer", data={"csrf_token": csrf_token(client, "/"), "offer_id": "extended-trial"}
    )
    assert again.status_code == 303
    [message] = outbox(orders, "offer_accepted")
    assert message.recipient == "sanne.devries@example.nl" and message.locale == "nl"
    assert message.variables["offer_title"] == "30 dagen extra, gratis"
    with app.app_context():
        rendered = email_kit().render(message.message, message.locale, **message.variables)
    assert rendered.subject.endswith("Uw keuze voor bestelling ORD-30001: 30 dagen extra, gratis")
    # Taken on Sunday: two business days later is Tuesday, in the customer's words.
    assert "ons team regelt het uiterlijk 24 november 2026 voor u" in rendered.text
    assert "Houd uw abonnement en krijg 30 extra dagen zonder kosten" in rendered.text
    assert "/track/" in rendered.text  # the link to follow the request


def test_the_offer_waits_in_needs_action_until_an_agent_sets_it_up_once(app, client, orders, agent):
    take_offer(client, "ORD-10001", "alice.m@example.com")
    request = latest_request(orders)
    assert request.state is RequestState.RESOLVED_WITH_OFFER and request.awaiting_staff_since is not None
    reference = request.reference

    # The customer reads what they chose and by when it is set up.
    page = text_of(client.get(f"/requests/{reference}"))
    assert "You chose “30 more days, free” instead of a refund." in page
    assert "Our team will set it up by Tuesday, November 24, 2026." in page

    # The desk's default view lists it, with its due clock and the offer named; its count includes it.
    html = unescape(agent.get("/staff/queue").get_data(as_text=True))
    assert reference in html and "Extended trial: 30 more days, free" in html and "Waiting to be set up" in html
    assert "due in 24 h" in html  # from the moment the offer was taken (the desk's default service level)
    assert re.search(r"Needs action <strong>1</strong>", html), html
    counts = view_counts(orders, None)
    assert counts[View.NEEDS_ACTION] == 1 and counts[View.CLOSED] == 1

    detail = f"/staff/requests/{reference}"
    page = unescape(agent.get(detail).get_data(as_text=True))
    assert "Extended trial: 30 more days, free" in page and "Mark the offer as set up" in page

    done = staff_post(agent, f"{detail}/offer-set-up", detail)
    assert done.status_code == 303
    request = latest_request(orders)
    assert request.offer_set_up_at is not None and request.awaiting_staff_since is None
    page = unescape(agent.get(detail).get_data(as_text=True))
    assert "Offer set up by Ada Agent" in page and "Mark the offer as set up" not in page

    # It has left "needs action"; the customer reads that it is done, and is told by email.
    now = request.offer_set_up_at
    assert [r.reference for r in queue_page(orders, QueueFilter(view=View.NEEDS_ACTION), now=now).rows] == []
    assert view_counts(orders, None)[View.NEEDS_ACTION] == 0
    page = text_of(client.get(f"/requests/{reference}"))
    assert "“30 more days, free” has been set up for you on Sunday, November 22, 2026." in page
    assert len(outbox(orders, "offer_accepted")) == 1 and len(outbox(orders, "offer_set_up")) == 1

    # Marking it again is a conflict that changes nothing and tells nobody twice.
    emails = orders.scalar(select(func.count()).select_from(OutboxMessage))
    again = staff_post(agent, f"{detail}/offer-set-up", detail)
    assert again.status_code == 409 and "has been set up already" in again.get_data(as_text=True)
    orders.expire_all()
    assert latest_request(orders).offer_set_up_at == now
    assert orders.scalar(select(func.count()).select_from(OutboxMessage)) == emails


def test_a_request_without_an_offer_cannot_be_marked_set_up(app, client, orders, agent):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    detail = f"/staff/requests/{reference}"
    assert "Mark the offer as set up" not in agent.get(detail).get_data(as_text=True)
    refused = staff_post(agent, f"{detail}/offer-set-up", detail)
    assert refused.status_code == 409 and "no offer waiting to be set up" in unescape(refused.get_data(as_text=True))
    request = latest_request(orders)
    assert request.state is RequestState.RECEIVED and request.offer_set_up_at is None


def test_the_api_shows_when_the_offer_was_set_up(app, client, orders, agent):
    take_offer(client, "ORD-10001", "alice.m@example.com")
    reference = latest_request(orders).reference
    result = app.test_cli_runner().invoke(args=["staff", "token", "ada@example.com", "--name", "t"])
    token = result.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    body = client.get(f"/api/v1/requests/{reference}", headers=headers).get_json()
    assert body["offer_id"] == "extended-trial" and body["offer_set_up_at"] is None and body["due_at"]
    detail = f"/staff/requests/{reference}"
    staff_post(agent, f"{detail}/offer-set-up", detail)
    body = client.get(f"/api/v1/requests/{reference}", headers=headers).get_json()
    assert body["offer_set_up_at"] is not None and body["due_at"] is None
