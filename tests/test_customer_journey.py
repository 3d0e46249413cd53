"""The customer's journey through the pages: find the order, read the decision, file, track."""

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from portal.core.vocabulary import Actor, RequestState
from portal.documents.models import Document
from portal.orders.models import LookupFailure
from portal.refunds.models import InformationRequest, RefundRequest
from portal.refunds.states import Action, transition
from tests.conftest import csrf_token
from tests.journey_helpers import (
    file_request,
    latest_request,
    lookup,
    outbox,
    page_text,
    pdf_bytes,
    png_bytes,
    post_multipart,
    process_link_requests,
)

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


def test_an_order_is_found_by_number_and_email_in_any_case_and_spacing(client, orders):
    response = lookup(client, " ord-10003 ", "  Bob.Tanaka@EXAMPLE.org ")
    assert response.status_code == 302 and response.headers["Location"] == "/orders/ORD-10003"
    html = client.get("/orders/ORD-10003").get_data(as_text=True)
    assert "Analytics Pro" in html and "$588.00" in html
    assert "we refund the 282 unused days of 365, $454.29" in html
    assert 'href="/policy#annual"' in html


def test_unknown_orders_and_wrong_emails_look_exactly_the_same(client, orders):
    unknown = lookup(client, "ORD-99999", "alice.m@example.com")
    wrong_email = lookup(client, "ORD-10001", "someone@example.com")
    assert unknown.status_code == wrong_email.status_code == 200

    def strip(r):
        return (
            page_text(r)
            .replace("ORD-99999", "X")
            .replace("ORD-10001", "X")
            .replace("alice.m@example.com", "E")
            .replace("someone@example.com", "E")
        )

    assert strip(unknown) == strip(wrong_email)
    assert "We could not find an order with that number and email address." in unknown.get_data(as_text=True)
    failures = orders.scalars(select(LookupFailure.order_number)).all()
    assert sorted(failures) == ["ORD-10001", "ORD-99999"]


def test_an_order_not_opened_in_this_session_is_not_found(client, orders):
    assert client.get("/orders/ORD-10001").status_code == 404
    assert client.get("/orders/ORD-10001/refund").status_code == 404


def test_lookups_are_rate_limited_per_order_number_with_a_localized_page(client, orders):
    client.get("/language/nl")
    for attempt in range(10):
        assert lookup(client, "ORD-10001", f"guess{attempt}@example.com").status_code == 200
    blocked = lookup(client, "ORD-10001", "alice.m@example.com")
    assert blocked.status_code == 429
    assert "Te veel pogingen" in blocked.get_data(as_text=True)


def test_the_window_is_judged_to_the_minute_on_the_order_page(client, orders):
    with time_machine.travel("2026-11-22T00:59:00Z", tick=False):
        lookup(client, "ORD-40001", "yuki.sato@example.jp")
        before = client.get("/orders/ORD-40001").get_data(as_text=True)
    with time_machine.travel("2026-11-22T01:00:00Z", tick=False):
        after = client.get("/orders/ORD-40001").get_data(as_text=True)
    assert "¥4,300" in before and "decision-full" in before
    assert "decision-refused" in after and "Ask for a review anyway" in after


def test_filing_with_a_document_acknowledges_at_once(client, orders, app):
    lookup(client, "ORD-10004", "carol@example.net")  # a reseller order: proof of purchase needed
    response = file_request(
        client,
        "ORD-10004",
        files=[("invoice.pdf", pdf_bytes())],
        reason="not_as_expected",
        details="Dashboards were not what the demo showed.",
    )
    assert response.status_code == 303
    request = latest_request(orders)
    assert response.headers["Location"] == f"/requests/{request.reference}"
    assert request.state is RequestState.RECEIVED and request.amount_requested_minor == 58800
    assert request.decision_at_filing.clauses == ("annual", "documents")
    assert [(e.from_state, e.to_state, e.actor) for e in request.events] == [
        (None, RequestState.RECEIVED, Actor.CUSTOMER)
    ]
    [ack] = outbox(orders, "acknowledgement")
    assert ack.recipient == "carol@example.net" and ack.locale == "en" and ack.refund_request_id == request.id
    assert ack.variables["tracking_url"].startswith("http://portal.test/track/")
    [document] = request.documents
    stored = app.extensions["storage"]
    assert b"".join(stored.chunks(document.stored_name)) == pdf_bytes() and document.original_name == "invoice.pdf"
    assert not list(stored.walk("staging/")) and document.content_type == "application/pdf"  # nothing left staged
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Your refund request {request.reference} has been received" in page
    assert "We have your request and will decide by Tuesday, November 24, 2026." in page


def test_a_resubmitted_form_never_makes_two_requests(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    form = {**__import__("tests.journey_helpers", fromlist=["refund_form"]).refund_form(client, "ORD-10001")}
    first = client.post("/orders/ORD-10001/refund", data=form)
    second = client.post("/orders/ORD-10001/refund", data=form)
    assert first.status_code == 303 and second.status_code in (302, 303)
    assert first.headers["Location"] == second.headers["Location"]
    assert orders.scalar(select(func.count()).select_from(RefundRequest)) == 1
    assert len(outbox(orders, "acknowledgement")) == 1
    # A fresh form for the same order leads to the open request instead of a second one.
    assert client.get("/orders/ORD-10001/refund").headers["Location"] == first.headers["Location"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("invoice.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200, "is not a PDF, PNG, JPEG or WebP file"),
        ("receipt.pdf", b"<!doctype html><script>alert(1)</script>", "is not a PDF, PNG, JPEG or WebP file"),
        ("statement.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "could not be read as a PNG file"),
        ("huge.pdf", b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024), "is larger than 10 MB"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_the_form_is_kept(client, orders, name, content, message):
    lookup(client, "ORD-10001", "alice.m@example.com")
    response = file_request(
        client,
        "ORD-10001",
        files=[(name, content)],
        reason="technical_problem",
        details="The sync & export <b>never</b> worked.",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"“{name}” {message}" in html
    assert "The sync &amp; export &lt;b&gt;never&lt;/b&gt; worked." in html  # kept, and escaped
    assert re.search(r"<input checked[^>]*value=\"technical_problem\"", html)
    assert orders.scalar(select(func.count()).select_from(RefundRequest)) == 0


def test_a_decompression_bomb_is_refused(client, orders):
    import zlib

    # A valid PNG header claiming 100000 × 100000 pixels: tiny on disk, 30 GB once unpacked.
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (100000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )
    lookup(client, "ORD-10001", "alice.m@example.com")
    response = file_request(client, "ORD-10001", files=[("bomb.png", bomb)])
    assert response.status_code == 422 and "has too many pixels" in response.get_data(as_text=True)


def test_a_valid_document_is_kept_when_another_field_needs_fixing(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    first = file_request(
        client, "ORD-10001", files=[("screenshot.png", png_bytes())], amount_choice="partial", partial_amount="99.00"
    )
    assert first.status_code == 422 and "You can ask for at most $29.00." in first.get_data(as_text=True)
    assert "screenshot.png" in first.get_data(as_text=True)
    # The error stands under the amount asked for, not under another field.
    assert '<p class="field-error" id="partial_amount-error">You can ask for at most $29.00.</p>' in first.get_data(
        as_text=True
    )
    second = file_request(client, "ORD-10001", amount_choice="partial", partial_amount="12.50")
    assert second.status_code == 303
    request = latest_request(orders)
    assert request.amount_requested_minor == 1250 and [d.original_name for d in request.documents] == ["screenshot.png"]


def test_proof_of_purchase_is_required_where_the_policy_says_so(client, orders):
    lookup(client, "ORD-10004", "carol@example.net")
    response = file_request(client, "ORD-10004")
    assert response.status_code == 422
    assert "Please attach proof of purchase" in response.get_data(as_text=True)


def test_outside_the_policy_a_customer_can_still_ask_for_a_review(client, orders):
    lookup(client, "ORD-10002", "alice.m@example.com")  # a monthly plan bought 41 days ago
    refused = file_request(client, "ORD-10002", details="I never used it.")
    assert refused.status_code == 422 and "Tick “Ask for a review”" in refused.get_data(as_text=True)
    assert "Review request" in refused.get_data(as_text=True)
    filed = file_request(client, "ORD-10002", review_requested="y", details="I never used it.")
    assert filed.status_code == 303
    request = latest_request(orders)
    assert request.review_requested and request.amount_requested_minor == 2900
    assert request.decision_at_filing.outcome.value == "refused"


def test_the_tracking_link_opens_the_request_in_a_new_browser(app, client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    file_request(client, "ORD-10001")
    link = outbox(orders, "acknowledgement")[0].variables["tracking_url"]
    other = app.test_client()
    response = other.get(link.replace("http://portal.test", ""))
    assert response.status_code == 303
    page = other.get(response.headers["Location"]).get_data(as_text=True)
    assert 'Status: <span class="state">Received</span>' in page
    assert other.get("/track/not-a-real-token").status_code == 404


def test_withdrawing_twice_answers_409_and_changes_nothing(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    token = csrf_token(client, f"/requests/{reference}/withdraw")
    assert client.post(f"/requests/{reference}/withdraw", data={"csrf_token": token}).status_code == 303
    again = client.post(f"/requests/{reference}/withdraw", data={"csrf_token": token})
    assert again.status_code == 409
    assert "This request is “Withdrawn”: it can no longer be withdrawn." in again.get_data(as_text=True)
    request = latest_request(orders)
    assert request.state is RequestState.WITHDRAWN and len(request.events) == 2


def test_the_customer_answers_an_information_request_with_a_document(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    request = latest_request(orders)
    orders.add(
        InformationRequest(
            refund_request=request,
            message="Could you show us the error?",
            items=[{"kind": "question", "key": "what_went_wrong"}, {"kind": "document", "key": "screenshot"}],
        )
    )
    transition(orders, request, Action.ASK_INFO, actor=Actor.STAFF, note="Could you show us the error?")
    orders.commit()

    page = client.get(f"/requests/{reference}").get_data(as_text=True)
    assert "What went wrong?" in page and 'name="item_screenshot"' in page
    token = csrf_token(client, f"/requests/{reference}")
    missing = client.post(f"/requests/{reference}/answer", data={"csrf_token": token, "answer": "It crashes."})
    assert missing.status_code == 422 and "Please attach every document asked for." in missing.get_data(as_text=True)
    answered = post_multipart(
        client,
        f"/requests/{reference}/answer",
        {"csrf_token": token, "answer": "It crashes on export."},
        {"item_screenshot": [("error.png", png_bytes())]},
    )
    assert answered.status_code == 303
    orders.expire_all()
    request = orders.get(RefundRequest, request.id)
    assert request.state is RequestState.IN_REVIEW
    assert [d.checklist_item for d in request.documents] == ["screenshot"]
    assert request.information_requests[0].answer == "It crashes on export."
    assert len(outbox(orders, "reply_received")) == 1


def test_the_magic_link_opens_all_orders_once(app, client, orders):
    def ask(address):
        return client.post("/access-link", data={"csrf_token": csrf_token(client, "/"), "email": address})

    known, unknown = ask("  ALICE.M@example.com "), ask("nobody@example.com")  # spaces around are not part of it
    assert known.status_code == unknown.status_code == 302
    assert outbox(orders, "magic_link") == []  # the worker decides, outside the request
    assert process_link_requests(orders) == 1
    [message] = outbox(orders, "magic_link")
    link = message.variables["link"].replace("http://portal.test", "")
    token = link.rsplit("/", 1)[1]

    browser = app.test_client()
    moved = browser.get(link)
    assert (
        moved.status_code == 303 and moved.headers["Location"] == "/access" and token not in moved.headers["Location"]
    )
    confirm = browser.get("/access").get_data(as_text=True)
    assert token not in confirm and "Show my orders" in confirm
    opened = browser.post("/access", data={"csrf_token": csrf_token(browser, "/access")})
    assert opened.headers["Location"] == "/orders"
    listing = browser.get("/orders").get_data(as_text=True)
    assert "ORD-10001" in listing and "ORD-10002" in listing and "ORD-10003" not in listing

    reuse = app.test_client()
    reuse.get(link)
    assert "has expired or has already been used" in reuse.post(
        "/access", data={"csrf_token": csrf_token(reuse, "/access")}
    ).get_data(as_text=True)


def test_a_magic_link_expires_after_30_minutes(app, client, orders):
    client.post("/access-link", data={"csrf_token": csrf_token(client, "/"), "email": "alice.m@example.com"})
    process_link_requests(orders)
    link = outbox(orders, "magic_link")[0].variables["link"].replace("http://portal.test", "")
    late = app.test_client()
    with time_machine.travel("2026-11-22T12:31:00Z", tick=False):
        late.get(link)
        page = late.post("/access", data={"csrf_token": csrf_token(late, "/access")}).get_data(as_text=True)
    assert "has expired or has already been used" in page


def test_choosing_an_offer_resolves_the_request_without_a_refund(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    page = client.get("/orders/ORD-10001").get_data(as_text=True)
    assert "30 more days, free" in page and "Switch to a higher plan with 30% off" in page
    response = client.post(
        "/orders/ORD-10001/offer",
        data={"csrf_token": csrf_token(client, "/orders/ORD-10001"), "offer_id": "extended-trial"},
    )
    assert response.status_code == 303
    request = latest_request(orders)
    assert request.state is RequestState.RESOLVED_WITH_OFFER and request.offer_id == "extended-trial"
    assert [e.to_state for e in request.events] == [RequestState.RECEIVED, RequestState.RESOLVED_WITH_OFFER]
    # A second click, or the form posted again, is the same choice: no second request.
    again = client.post(
        "/orders/ORD-10001/offer", data={"csrf_token": csrf_token(client, "/"), "offer_id": "extended-trial"}
    )
    assert again.status_code == 303 and again.headers["Location"] == response.headers["Location"]
    assert orders.scalar(select(func.count()).select_from(RefundRequest)) == 1
    page = client.get("/orders/ORD-10001").get_data(as_text=True)
    assert "I'd like this instead of a refund" not in page  # the alternative is taken; no more are offered
    # "Instead of a refund": the page says what was chosen, and no refund is asked for here.
    assert "You chose an alternative instead of a refund: 30 more days, free." in page
    assert "Ask for a refund" not in page and "Full refund" not in page
    assert client.get("/orders/ORD-10001/refund").headers["Location"] == response.headers["Location"]
    form = {"csrf_token": csrf_token(client, "/"), "reason": "no_longer_needed", "amount_choice": "full"}
    refused = post_multipart(client, "/orders/ORD-10001/refund", form, {})
    assert refused.status_code in (302, 303) and refused.headers["Location"] == response.headers["Location"]
    assert orders.scalar(select(func.count()).select_from(RefundRequest)) == 1


def test_documents_are_downloaded_only_by_their_owner_as_attachments(app, client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    file_request(client, "ORD-10001", files=[("proof.png", png_bytes())])
    document = orders.scalar(select(Document))
    response = client.get(f"/documents/{document.id}")
    assert response.status_code == 200 and response.data == png_bytes()
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()
    assert app.test_client().get(f"/documents/{document.id}").status_code == 404


def test_every_user_written_text_is_escaped(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001", details="<script>alert('x')</script>").headers["Location"]
    request = latest_request(orders)
    orders.add(InformationRequest(refund_request=request, message="<img src=x onerror=alert(1)>", items=[]))
    transition(orders, request, Action.ASK_INFO, actor=Actor.STAFF, note="<b>bold</b>")
    orders.commit()
    html = client.get(reference).get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html


def test_forms_without_a_csrf_token_are_refused(client, orders):
    response = client.post("/lookup", data={"order_number": "ORD-10001", "email": "alice.m@example.com"})
    assert response.status_code == 400 and "Your session expired" in response.get_data(as_text=True)


def test_the_session_cookie_is_httponly_and_lax(client, orders):
    response = lookup(client, "ORD-10001", "alice.m@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_the_order_page_follows_the_order_s_requests(client, orders, app):
    """The order page leads to the open request, lists earlier ones, and counts what was refunded."""
    from tests.staff_helpers import make_staff, sign_in, staff_post

    lookup(client, "ORD-10001", "alice.m@example.com")
    first = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    page = visible_text(client.get("/orders/ORD-10001"))
    assert f"Follow your request {first}" in page and "Ask for a refund" not in page

    client.post(f"/requests/{first}/withdraw", data={"csrf_token": csrf_token(client, f"/requests/{first}/withdraw")})
    page = visible_text(client.get("/orders/ORD-10001"))
    assert "Earlier requests for this order" in page and f"{first} · Withdrawn" in page
    assert "Full refund of $29.00" in page

    second = file_request(client, "ORD-10001", amount_choice="partial", partial_amount="10.50")
    second = second.headers["Location"].rsplit("/", 1)[1]
    make_staff(orders, "agent@example.com")
    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    for action, fields in (("approve", {"amount": "10.50"}), ("process", {"reference": "re_part"})):
        response = staff_post(agent, f"/staff/requests/{second}/{action}", f"/staff/requests/{second}", **fields)
        assert response.status_code == 303
    page = visible_text(client.get("/orders/ORD-10001"))
    assert f"{first} · Withdrawn" in page and f"{second} · Refunded" in page
    assert page.index(f"{first} · Withdrawn") < page.index(f"{second} · Refunded")  # oldest first
    assert "Full refund of $18.50" in page  # what was paid less what was refunded


def visible_text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


def test_the_promised_decision_day_moves_on_by_the_days_we_waited_for_an_answer(client, orders, frozen):
    # Filed on Sunday 22 November: a decision within 2 business days, by Tuesday the 24th.
    lookup(client, "ORD-10001", "alice.m@example.com")
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    assert "will decide by Tuesday, November 24, 2026" in client.get(f"/requests/{reference}").get_data(as_text=True)
    request = latest_request(orders)
    orders.add(InformationRequest(refund_request=request, message="Which workspace?", items=[]))
    transition(orders, request, Action.ASK_INFO, actor=Actor.STAFF, note="Which workspace?")
    orders.commit()
    frozen.shift(timedelta(days=3))  # the customer answers on Wednesday the 25th
    token = csrf_token(client, f"/requests/{reference}")
    answered = client.post(f"/requests/{reference}/answer", data={"csrf_token": token, "answer": "The blue one."})
    assert answered.status_code == 303
    page = client.get(f"/requests/{reference}").get_data(as_text=True)
    # Three days waited on the customer move the promise three days on (Wednesday the 25th + 2
    # business days), never to a day already past.
    assert "will decide by Friday, November 27, 2026" in page and "November 24" not in page


def test_an_answer_refused_comes_back_in_the_language_of_the_request(client, orders):
    lookup(client, "ORD-10001", "alice.m@example.com")  # Alice's requests are in English
    reference = file_request(client, "ORD-10001").headers["Location"].rsplit("/", 1)[1]
    request = latest_request(orders)
    orders.add(InformationRequest(refund_request=request, message="Which workspace?", items=[]))
    transition(orders, request, Action.ASK_INFO, actor=Actor.STAFF, note="Which workspace?")
    orders.commit()
    dutch = {"Accept-Language": "nl-NL,nl;q=0.9"}
    token = csrf_token(client, f"/requests/{reference}")
    refused = client.post(f"/requests/{reference}/answer", data={"csrf_token": token, "answer": " "}, headers=dutch)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and '<html lang="en"' in page
    assert "Please write an answer or attach a document." in page


def test_a_dutch_customer_is_shown_an_amount_with_a_decimal_comma(client, orders):
    lookup(client, "ORD-30001", "sanne.devries@example.nl")
    refused = file_request(client, "ORD-30001", amount_choice="partial", partial_amount="1e3")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "12,50" in page and "1e3" in page  # what was typed is kept
