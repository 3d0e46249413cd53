"""The staff console: sign-in and roles, the queue, a request's page, and every path of the workflow."""

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.core.vocabulary import Actor, RefundStatus, RequestState, StaffRole
from portal.refunds.models import InternalNote, Refund, RefundRequest, RequestStateCount, StatusEvent
from tests.conftest import csrf_token
from tests.journey_helpers import file_request, latest_request, lookup, outbox, pdf_bytes, post_multipart
from tests.staff_helpers import PASSWORD, make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW


@pytest.fixture
def agent(app, orders):
    make_staff(orders, "agent@example.com", StaffRole.AGENT, "Ada Agent")
    client = app.test_client()
    assert sign_in(client, "agent@example.com").status_code == 302
    return client


def filed(app, number="ORD-10001", email="alice.m@example.com", **fields) -> str:
    customer = app.test_client()
    lookup(customer, number, email)
    response = file_request(customer, number, **fields)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


def page(client, reference):
    return client.get(f"/staff/requests/{reference}")


def act(client, ref, action, **fields):
    return staff_post(client, f"/staff/requests/{ref}/{action}", f"/staff/requests/{ref}", **fields)


# -- accounts, sign-in and roles -------------------------------------------------------------------


def test_staff_create_reads_the_password_from_stdin_and_stores_an_argon2_hash(runner, db_session):
    result = runner.invoke(
        args=["staff", "create", "Lead@Example.com", "--role", "admin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    from portal.accounts.models import StaffUser

    user = db_session.scalar(select(StaffUser))
    assert user.email == "lead@example.com" and user.role is StaffRole.ADMIN
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    short = runner.invoke(
        args=["staff", "create", "b@example.com", "--role", "agent", "--password-stdin"], input="short\n"
    )
    assert short.exit_code != 0 and "Use at least 12 characters." in short.output


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(app, orders):
    make_staff(orders)
    wrong = sign_in(app.test_client(), "agent@example.com", "wrong password here")
    unknown = sign_in(app.test_client(), "nobody@example.com", "wrong password here")
    assert wrong.status_code == unknown.status_code == 422
    message = "That email and password do not match an active staff account."
    assert message in wrong.get_data(as_text=True) and message in unknown.get_data(as_text=True)


def test_sign_in_is_rate_limited(app, orders):
    make_staff(orders)
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "agent@example.com", "wrong password here").status_code == 422
    assert sign_in(client, "agent@example.com").status_code == 429


def test_a_session_expires_after_inactivity(agent, frozen):
    assert agent.get("/staff/queue").status_code == 200
    frozen.shift(timedelta(minutes=31))
    response = agent.get("/staff/queue")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    assert agent.get("/staff/queue").status_code == 302


def test_every_page_checks_the_role(app, orders):
    make_staff(orders, "m@example.com", StaffRole.MARKETING)
    make_staff(orders, "a@example.com", StaffRole.AGENT)
    make_staff(orders, "boss@example.com", StaffRole.ADMIN)
    reference = filed(app)
    marketing, agent, admin, anonymous = (app.test_client() for _ in range(4))
    sign_in(marketing, "m@example.com"), sign_in(agent, "a@example.com"), sign_in(admin, "boss@example.com")
    assert anonymous.get("/staff/queue").status_code == 302
    assert marketing.get("/staff/queue").status_code == 403
    assert marketing.get(f"/staff/requests/{reference}").status_code == 403
    assert marketing.get("/staff/emails").status_code == 200
    assert agent.get("/staff/emails").status_code == 403
    assert agent.get("/staff/users").status_code == 403
    assert admin.get("/staff/users").status_code == 200 and admin.get("/staff/emails").status_code == 200
    assert agent.get(f"/staff/requests/{reference}").status_code == 200


# -- the workflow ---------------------------------------------------------------------------------


def test_information_loop_then_partial_approval_and_a_manual_refund(app, agent, orders):
    reference = filed(app, details="It crashes")
    response = act(
        agent,
        reference,
        "ask",
        questions=["what_went_wrong", "tried_help"],
        documents=["screenshot"],
        custom="Which browser do you use?",
        message="Thanks for your patience.",
    )
    assert response.status_code == 303
    request = latest_request(orders)
    assert request.state is RequestState.AWAITING_CUSTOMER and request.awaiting_staff_since is None
    [ask] = outbox(orders, "information_request")
    assert ask.variables["questions"] == [
        "What went wrong?",
        "Have you tried our help resources or contacted support?",
        "Which browser do you use?",
        "A screenshot of the problem",
    ]

    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    token = csrf_token(customer, f"/requests/{reference}")
    answered = post_multipart(
        customer,
        f"/requests/{reference}/answer",
        {"csrf_token": token, "answer": "Firefox"},
        {"item_screenshot": [("shot.pdf", pdf_bytes())]},
    )
    assert answered.status_code == 303
    orders.expire_all()
    assert latest_request(orders).state is RequestState.IN_REVIEW

    assert act(agent, reference, "approve", amount="12.50", note="Half of the month.").status_code == 303
    request = latest_request(orders)
    assert request.state is RequestState.APPROVED and request.amount_approved_minor == 1250
    [approval] = outbox(orders, "approval")
    assert approval.variables["amount"] == "12.50 USD" and approval.variables["partial"] is True

    refused = act(agent, reference, "process", reference="")
    assert refused.status_code == 422 and "Enter the processor" in refused.get_data(as_text=True)
    assert act(agent, reference, "process", reference="re_manual_1").status_code == 303
    request = latest_request(orders)
    assert request.state is RequestState.REFUNDED
    [refund] = request.refunds
    assert (refund.status, refund.gateway, refund.processor_reference, refund.amount_minor) == (
        RefundStatus.SUCCEEDED,
        "manual",
        "re_manual_1",
        1250,
    )
    [refunded] = outbox(orders, "refunded")
    assert "processor_reference" not in refunded.variables  # left to the receipt
    assert refunded.variables["feedback_url"].startswith("http://portal.test/feedback/")
    states = [(e.from_state, e.to_state, e.actor) for e in request.events]
    assert states == [
        (None, RequestState.RECEIVED, Actor.CUSTOMER),
        (RequestState.RECEIVED, RequestState.AWAITING_CUSTOMER, Actor.STAFF),
        (RequestState.AWAITING_CUSTOMER, RequestState.IN_REVIEW, Actor.CUSTOMER),
        (RequestState.IN_REVIEW, RequestState.APPROVED, Actor.STAFF),
        (RequestState.APPROVED, RequestState.REFUNDED, Actor.STAFF),
    ]
    assert [m.message for m in outbox(orders)] == [
        "acknowledgement",
        "information_request",
        "reply_received",
        "approval",
        "refunded",
    ]


def test_decline_cites_the_clause_and_offers_an_alternative_in_the_customers_language(app, agent, orders):
    reference = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    html = page(agent, reference).get_data(as_text=True)
    assert 'value="monthly"' in html and 'value="extended-trial"' in html
    # The policy grants this one (filed within the month), so the agent says why it is declined anyway.
    response = act(
        agent,
        reference,
        "decline",
        clause="monthly",
        offer="extended-trial",
        note="Outside the window",
        override_reason="Used the workspace all month",
    )
    assert response.status_code == 303
    request = latest_request(orders)
    assert (request.state, request.decline_clause, request.alternative_offer_id) == (
        RequestState.DECLINED,
        "monthly",
        "extended-trial",
    )
    [message] = outbox(orders, "decline")
    assert message.locale == "zh" and message.variables["clause_url"] == "http://portal.test/policy#monthly"
    assert message.variables["clause_title"] == "月度套餐"
    assert "30" in message.variables["alternative_title"] and message.variables["alternative_text"]
    assert act(agent, reference, "approve", amount="1.00").status_code == 409
    assert latest_request(orders).state is RequestState.DECLINED


def test_a_wrong_state_action_answers_409_and_changes_nothing(app, agent, orders):
    reference = filed(app)
    before = orders.scalar(select(func.count()).select_from(StatusEvent))
    response = act(agent, reference, "process", reference="re_1")
    assert response.status_code == 409
    assert "This request is “Received”: it cannot be refunded now." in response.get_data(as_text=True)
    assert act(agent, reference, "retry").status_code == 409
    orders.expire_all()
    assert orders.scalar(select(func.count()).select_from(StatusEvent)) == before
    assert orders.scalar(select(func.count()).select_from(Refund)) == 0
    assert latest_request(orders).state is RequestState.RECEIVED


def test_only_an_admin_with_a_reason_approves_above_the_policy(app, agent, orders):
    reference = filed(app, "ORD-10002", "alice.m@example.com", review_requested="y")  # outside the window
    refused = act(agent, reference, "approve", amount="29.00")
    assert refused.status_code == 422
    assert "The policy allows at most $0.00; only an admin can approve more." in refused.get_data(as_text=True)
    make_staff(orders, "boss@example.com", StaffRole.ADMIN)
    admin = app.test_client()
    sign_in(admin, "boss@example.com")
    no_reason = act(admin, reference, "approve", amount="29.00")
    assert no_reason.status_code == 422 and "Write why you approve more" in no_reason.get_data(as_text=True)
    assert act(admin, reference, "approve", amount="29.00", override_reason="Long-standing customer").status_code == 303
    request = latest_request(orders)
    assert request.state is RequestState.APPROVED and "Long-standing customer" not in request.events[-1].note
    # Why the admin went above the policy is for staff: an internal note, never the customer's timeline.
    assert request.notes[-1].text == "Long-standing customer"
    too_much = filed(app, "ORD-10001", "alice.m@example.com")
    over = act(admin, too_much, "approve", amount="30.00", override_reason="x")
    assert "Only $29.00 of this order is left to refund." in over.get_data(as_text=True)


def test_internal_notes_stay_internal(app, agent, orders):
    reference = filed(app)
    assert act(agent, reference, "note", text="Called the customer <b>twice</b>").status_code == 303
    html = page(agent, reference).get_data(as_text=True)
    assert "Called the customer &lt;b&gt;twice&lt;/b&gt;" in html and "Ada Agent" in html
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    assert "Called the customer" not in customer.get(f"/requests/{reference}").get_data(as_text=True)
    assert orders.scalar(select(func.count()).select_from(InternalNote)) == 1


def test_the_customer_withdraws_and_staff_can_no_longer_act(app, agent, orders):
    reference = filed(app)
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    customer.post(
        f"/requests/{reference}/withdraw", data={"csrf_token": csrf_token(customer, f"/requests/{reference}/withdraw")}
    )
    assert latest_request(orders).state is RequestState.WITHDRAWN
    assert act(agent, reference, "approve", amount="1.00").status_code == 409


def test_reminder_after_three_days_without_an_answer(app, agent, orders, frozen):
    reference = filed(app)
    act(agent, reference, "ask", questions=["what_went_wrong"])
    runner = app.test_cli_runner()
    runner.invoke(args=["outbox", "send"])
    assert len(outbox(orders, "information_request")) == 1
    frozen.shift(timedelta(days=3, minutes=1))
    result = runner.invoke(args=["outbox", "send"])
    assert "queued 1 reminder(s)" in result.output
    runner.invoke(args=["outbox", "send"])
    reminders = [m for m in outbox(orders, "information_request") if m.variables["reminder"]]
    assert len(reminders) == 1


# -- the request page ------------------------------------------------------------------------------


def test_the_request_page_shows_history_decisions_documents_and_fraud_signals(app, agent, orders):
    invoice = pdf_bytes()
    other = filed(app, "ORD-10004", "carol@example.net", files=[("invoice.pdf", invoice)])
    lookup(app.test_client(), "ORD-10001", "wrong@example.com")
    reference = filed(app, "ORD-10001", "alice.m@example.com", files=[("same.pdf", invoice)])
    html = page(agent, reference).get_data(as_text=True)
    assert "ORD-10002" in html  # the customer's other order
    assert "1 failed lookup of this order number" in html
    assert f"A document is identical to one sent with request {other} by another customer." in html
    assert "When filed" in html and "Today" in html and 'href="/policy#monthly"' in html
    assert (
        "same.pdf" in html and '<iframe class="doc-frame" src="/staff/documents/' in html
    )  # Chromium shows no PDF in a sandboxed frame
    doc = latest_request(orders).documents[0]
    view = agent.get(f"/staff/documents/{doc.id}/view")
    assert view.status_code == 200 and "sandbox" in view.headers["Content-Security-Policy"]
    assert view.headers["X-Frame-Options"] == "SAMEORIGIN" and view.headers["X-Content-Type-Options"] == "nosniff"
    assert view.get_data() == invoice
    view.close()  # a file response: the server closes it after sending; the test client leaves it to us
    download = agent.get(f"/staff/documents/{doc.id}")
    assert download.headers["Content-Disposition"].startswith("attachment")
    download.close()
    assert page(agent, reference).headers["X-Frame-Options"] == "DENY"


# -- the queue -------------------------------------------------------------------------------------


def test_the_queue_filters_searches_counts_and_flags_overdue(app, agent, orders, frozen):
    first = filed(app, "ORD-10001", "alice.m@example.com")
    frozen.shift(timedelta(hours=30))
    second = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh", reason="technical_problem")
    sign_in(agent, "agent@example.com")  # the earlier sign-in expired while the day went by
    html = agent.get("/staff/queue").get_data(as_text=True)
    assert html.index(first) < html.index(second)  # oldest first
    # (the row's first cell is its bulk-work checkbox)
    assert re.search(
        rf'class="overdue">\s*<td>(?:(?!</td>).)*</td>\s*<td><a [^>]*>{first}</a>\s*<span class="overdue-flag">',
        html,
        re.S,
    )
    assert second in html and "Received <strong>2</strong>" in html
    overdue = agent.get("/staff/queue?overdue=1").get_data(as_text=True)
    assert first in overdue and second not in overdue
    assert second in agent.get("/staff/queue?locale=zh").get_data(as_text=True)
    assert first not in agent.get("/staff/queue?reason=technical_problem").get_data(as_text=True)
    for term in (second, "ord-20001", "ZHANG.WEI@example.cn"):
        found = agent.get(f"/staff/queue?q={term}").get_data(as_text=True)
        assert second in found and first not in found, term
    act(agent, first, "review")
    counts = dict(orders.execute(select(RequestStateCount.state, RequestStateCount.count)).all())
    actual = dict(orders.execute(select(RefundRequest.state, func.count()).group_by(RefundRequest.state)).all())
    assert {s: c for s, c in counts.items() if c} == actual == {RequestState.RECEIVED: 1, RequestState.IN_REVIEW: 1}


STAFF_WORDS = {
    # locale: the staff's name for a request waiting on the customer, and the customer's own
    "en": ("Waiting on customer", "Waiting for your reply"),
    "zh": ("等待客户回复", "等待您的回复"),
    "nl": ("Wacht op de klant", "Wacht op uw antwoord"),
}


@pytest.mark.parametrize("locale", STAFF_WORDS)
def test_staff_read_their_own_words_and_no_amount_or_address_breaks(app, agent, orders, locale):
    staff_words, customer_words = STAFF_WORDS[locale]
    reference = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    assert (
        act(agent, reference, "ask", message="Could you show us the error?", documents="screenshot").status_code == 303
    )
    agent.get(f"/language/{locale}")
    for url in ("/staff/queue", f"/staff/requests/{reference}"):
        html = agent.get(url).get_data(as_text=True)
        assert staff_words in html and customer_words not in html, url
    # The customer still reads their own words on the tracking page.
    customer = app.test_client()
    lookup(customer, "ORD-20001", "zhang.wei@example.cn")
    customer.get(f"/language/{locale}")
    tracking = customer.get(f"/requests/{reference}").get_data(as_text=True)
    assert customer_words in tracking and staff_words not in tracking
    # It waits on the customer, so it is in that view (not in "needs action").
    queue = agent.get("/staff/queue?view=waiting").get_data(as_text=True)
    assert re.search(r'<td class="nowrap">[^<]*199.00</td>', queue)  # the amount in one piece
    assert '<span class="muted nowrap">zhang.wei@example.cn</span>' in queue
    assert re.search(rf'<a class="queue-link nowrap" [^>]*>{reference}</a>', queue)


def test_the_queue_pages_by_keyset(app, agent, orders):
    from portal.refunds import queue as queue_module

    references = [
        filed(app, n, e)
        for n, e in [
            ("ORD-10001", "alice.m@example.com"),
            ("ORD-10003", "bob.tanaka@example.org"),
            ("ORD-30001", "sanne.devries@example.nl"),
        ]
    ]
    queue_module.PAGE_SIZE, saved = 2, queue_module.PAGE_SIZE
    try:
        from portal.core.database import utcnow
        from portal.refunds.queue import QueueFilter, queue_page

        first = queue_page(orders, QueueFilter(), now=utcnow(), size=2)
        second = queue_page(orders, QueueFilter(), now=utcnow(), cursor=first.next_cursor, size=2)
        assert [r.reference for r in first.rows + second.rows] == references and second.next_cursor is None
        assert queue_page(orders, QueueFilter(), now=utcnow(), cursor="garbage", size=2).rows == first.rows
    finally:
        queue_module.PAGE_SIZE = saved


# -- costs and export ------------------------------------------------------------------------------


def test_business_costs_are_recorded_and_exported(app, agent, orders):
    reference = filed(app, "ORD-10003", "bob.tanaka@example.org")  # an affiliate order: 58.80 commission
    act(agent, reference, "approve", amount="294.00")  # half of 588.00
    act(agent, reference, "process", reference="re_half")
    [refund] = latest_request(orders).refunds
    assert refund.commission_clawback_minor == 2940  # half of the commission
    assert refund.fee_kept_minor == round((58800 * 0.029 + 30) / 2)
    result = app.test_cli_runner().invoke(args=["refunds", "export", "--since", "2026-11-01"])
    assert result.stdout.startswith("\ufeff")  # so spreadsheet programs read it as UTF-8
    rows = list(csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff"))))
    assert rows == [
        {
            "refunded_at": rows[0]["refunded_at"],
            "refund_request": reference,
            "order_number": "ORD-10003",
            "customer_email": "bob.tanaka@example.org",
            "currency": "USD",
            "amount": "294.00",
            "gateway": "manual",
            "processor_reference": "re_half",
            "processor_fee_kept": "8.68",
            "affiliate": "partnerhub",
            "affiliate_commission_clawback": "29.40",
        }
    ]
