"""The desk: saved replies in three languages, bulk work from the queue, and the guard rails
(declining what the policy grants, the decline form's clause, the outbox's "Send again")."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.accounts.models import StaffUser
from portal.core.database import utcnow
from portal.core.vocabulary import OutboxStatus, RequestState, StaffRole
from portal.outbox.models import OutboxMessage
from portal.refunds import bulk, replies
from portal.refunds.acting import Staff
from portal.refunds.models import InternalNote, RefundRequest
from portal.web.extensions import db
from portal.web.links import links
from portal.web.policy import current_policy
from tests.conftest import csrf_token
from tests.journey_helpers import outbox
from tests.staff_console_helpers import act, filed
from tests.staff_helpers import make_staff, sign_in, staff_post

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW

BODIES = {
    "en": "Dear {customer_name}, about {reference} ({amount}): please answer by {deadline}.",
    "zh": "{customer_name}您好，关于 {reference}（{amount}）：请在 {deadline} 前回复。",
    "nl": "Beste {customer_name}, over {reference} ({amount}): antwoordt u vóór {deadline}.",
}


def signed_in(app, session, email, role, name=""):
    make_staff(session, email, role, name)
    client = app.test_client()
    assert sign_in(client, email).status_code == 302
    return client


@pytest.fixture
def agent(app, orders):
    return signed_in(app, orders, "agent@example.com", StaffRole.AGENT, "Ada Agent")


@pytest.fixture
def admin(app, orders):
    return signed_in(app, orders, "boss@example.com", StaffRole.ADMIN, "Bo Boss")


def saved(session, title="Need details", **bodies) -> replies.SavedReply:
    reply = replies.save(session, None, title=title, bodies=bodies or BODIES, staff_user_id=None, now=utcnow())
    session.commit()
    return reply


def request_of(session, reference) -> RefundRequest:
    session.expire_all()
    return session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))


# -- saved replies: the domain --------------------------------------------------------------------


def test_a_saved_reply_refuses_unknown_variables_and_an_empty_text(orders):
    with pytest.raises(replies.ReplyError) as unknown:
        replies.save(orders, None, title="x", bodies={"en": "Hi {custmer_name}"}, staff_user_id=None, now=utcnow())
    assert unknown.value.field == "body_en" and unknown.value.params["name"] == "custmer_name"
    with pytest.raises(replies.ReplyError) as empty:
        replies.save(orders, None, title="x", bodies={"en": " "}, staff_user_id=None, now=utcnow())
    assert empty.value.message == "Write the reply in at least one language."
    with pytest.raises(replies.ReplyError) as untitled:
        replies.save(orders, None, title="", bodies={"en": "Hi"}, staff_user_id=None, now=utcnow())
    assert untitled.value.field == "title"


def test_a_saved_reply_renders_in_the_customers_language_with_the_variables_filled(app, orders):
    reference = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    request = request_of(orders, reference)
    reply = saved(orders)
    zh = replies.render(reply, request, "zh", now=utcnow())
    assert zh.locale == "zh"
    assert zh.text.startswith("张伟您好，关于 " + reference) and "¥199.00" in zh.text and "2026年12月6日" in zh.text
    only_english = saved(orders, "English only", en="Hello {customer_name}")
    assert only_english.missing == ["zh", "nl"]
    assert replies.render(only_english, request, "zh", now=utcnow()) == replies.Rendered("Hello 张伟", "en")


def test_rendering_is_one_pass_so_a_value_that_looks_like_a_variable_stays_text(app, orders):
    reference = filed(app)
    request = request_of(orders, reference)
    request.order.customer.name = "{reference} <b>"
    reply = saved(orders, "Hi", en="Hi {customer_name}")
    assert replies.render(reply, request, "en", now=utcnow()).text == "Hi {reference} <b>"


# -- saved replies: the console and the API -------------------------------------------------------


def test_admins_and_marketing_keep_saved_replies_agents_only_use_them(app, orders, agent, admin):
    marketing = signed_in(app, orders, "m@example.com", StaffRole.MARKETING)
    bad = staff_post(
        marketing, "/staff/saved-replies", "/staff/saved-replies", title="Welcome", body_en="Hi {nme}", body_zh=""
    )
    assert bad.status_code == 422
    assert "Unknown variable {nme}. Use only: {customer_name}, {reference}" in bad.get_data(as_text=True)
    made = staff_post(
        marketing, "/staff/saved-replies", "/staff/saved-replies", title="Welcome", body_en="Hi {customer_name}"
    )
    assert made.status_code == 303
    [reply] = replies.listed(orders)
    listing = agent.get("/staff/saved-replies").get_data(as_text=True)
    assert "Welcome" in listing and listing.count("⚠ Translation missing") == 2
    assert "/edit" not in listing and f"/staff/saved-replies/{reply.id}/delete" not in listing
    token = csrf_token(agent, "/staff/saved-replies")
    assert (
        agent.post("/staff/saved-replies", data={"csrf_token": token, "title": "x", "body_en": "y"}).status_code == 403
    )
    assert agent.get(f"/staff/saved-replies/{reply.id}").status_code == 403
    edit = f"/staff/saved-replies/{reply.id}"
    form = admin.get(edit).get_data(as_text=True)
    assert "No 中文 text yet: customers who read 中文 get another language." in form
    changed = staff_post(
        admin, edit, edit, title="Welcome", body_en="Hi {customer_name}", body_zh="{customer_name}您好"
    )
    assert changed.status_code == 303
    orders.expire_all()
    assert reply.missing == ["nl"]
    assert staff_post(admin, f"{edit}/delete", "/staff/saved-replies").status_code == 303
    assert replies.listed(orders) == []


def test_a_saved_reply_reaches_a_chinese_customer_in_chinese_and_the_timeline_names_it(app, orders, agent):
    reply = saved(orders)
    reference = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    page = agent.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f'<option value="{reply.id}">Need details</option>' in page
    response = act(agent, reference, "ask", questions=["what_went_wrong"], saved_reply=str(reply.id))
    assert response.status_code == 303
    [ask] = outbox(orders, "information_request")
    assert ask.locale == "zh" and ask.variables["note"].startswith(f"张伟您好，关于 {reference}（¥199.00）")
    timeline = agent.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Saved reply used" in timeline and "“Need details” in a question to the customer, in 中文" in timeline


def test_a_saved_reply_in_an_approval_reaches_a_dutch_customer_in_dutch(app, orders, agent):
    reply = saved(orders)
    reference = filed(app, "ORD-30001", "sanne.devries@example.nl", locale="nl")
    assert act(agent, reference, "approve", amount="27.00", saved_reply=str(reply.id)).status_code == 303
    [approval] = outbox(orders, "approval")
    assert approval.locale == "nl"
    assert approval.variables["note"].startswith(f"Beste Sanne de Vries, over {reference} (€\xa027,00)")
    assert "“Need details” in the approval, in Nederlands" in agent.get(f"/staff/requests/{reference}").get_data(
        as_text=True
    )


def test_a_saved_reply_in_an_internal_note_uses_the_agents_language(app, orders, agent):
    reply = saved(orders)
    reference = filed(app, "ORD-20001", "zhang.wei@example.cn", locale="zh")
    assert act(agent, reference, "note", text="Checked.", saved_reply=str(reply.id)).status_code == 303
    note = orders.scalar(select(InternalNote))
    assert note.text.startswith("Checked.\n\nDear 张伟, about " + reference)
    assert act(agent, reference, "note", text="", saved_reply="").status_code == 422
    gone = act(agent, reference, "note", text="x", saved_reply="999")
    assert gone.status_code == 422 and "Choose one of the saved replies." in gone.get_data(as_text=True)


def test_the_api_lists_the_saved_replies(app, orders, runner):
    make_staff(orders, "agent@example.com", StaffRole.AGENT)
    saved(orders)
    saved(orders, "English only", en="Hello {customer_name}")
    token = runner.invoke(args=["staff", "token", "agent@example.com", "--name", "t"]).stdout.strip().splitlines()[-1]
    answer = app.test_client().get("/api/v1/saved-replies", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert [r["title"] for r in body["replies"]] == ["English only", "Need details"]
    assert body["replies"][0]["missing"] == ["zh", "nl"] and body["replies"][1]["bodies"]["zh"] == BODIES["zh"]
    assert "customer_name" in body["variables"]


# -- bulk work ------------------------------------------------------------------------------------


def test_bulk_decline_goes_through_the_state_machine_and_keeps_the_successes(app, orders, agent):
    first = filed(app, "ORD-10002", "alice.m@example.com", review_requested="y")  # outside the window
    second = filed(app, "ORD-20004", "chen.jie@example.cn", locale="zh", review_requested="y")
    done_already = filed(app, "ORD-30003", "emma.visser@example.be", locale="nl", review_requested="y")
    granted = filed(app, "ORD-10001", "alice.m@example.com")  # within the window: the policy grants it
    assert act(agent, done_already, "decline", clause="annual").status_code == 303
    emails_before = len(outbox(orders, "decline"))
    with app.test_request_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == "agent@example.com"))
        staff = Staff(user=user, now=utcnow(), links=links(), policy=current_policy())
        report = bulk.run(
            db.session(),
            [first, second, done_already, granted, "RF-NOTHERE"],
            staff,
            bulk.BulkAction.DECLINE,
            bulk.BulkInput(clause_id="monthly", offer_id="extended-trial", text="Outside the window."),
        )
        db.session.commit()
    assert [(r.reference, r.ok) for r in report.results] == [
        (first, True),
        (second, True),
        (done_already, False),
        (granted, False),
        ("RF-NOTHERE", False),
    ]
    assert report.results[2].message == "This request is “%(state)s”: it cannot be declined now."
    assert report.results[2].params["state"] is RequestState.DECLINED
    assert "write why you decline it anyway" in report.results[3].message
    assert request_of(orders, first).state is request_of(orders, second).state is RequestState.DECLINED
    assert request_of(orders, granted).state is RequestState.RECEIVED
    declines = outbox(orders, "decline")[emails_before:]
    assert sorted((m.recipient, m.locale) for m in declines) == [
        ("alice.m@example.com", "en"),
        ("chen.jie@example.cn", "zh"),
    ]


def test_bulk_work_from_the_queue_reports_what_was_done_and_why_not(app, orders, agent):
    reply = saved(orders)
    refs = [
        filed(app, "ORD-20004", "chen.jie@example.cn", locale="zh", review_requested="y"),
        filed(app, "ORD-30001", "sanne.devries@example.nl", locale="nl"),
    ]
    assert act(agent, refs[1], "ask", questions=["what_went_wrong"]).status_code == 303  # already asked
    queue = agent.get("/staff/queue").get_data(as_text=True)
    assert 'name="select_all"' in queue and f'name="reference" value="{refs[0]}"' in queue
    token = re.search(r'name="csrf_token" value="([^"]+)"', queue).group(1)
    chosen = agent.post(
        "/staff/bulk",
        data={"csrf_token": token, "step": "choose", "select_all": "1", "on_page": refs, "bulk_action": "ask"},
    )
    assert chosen.status_code == 200
    form = chosen.get_data(as_text=True)
    assert all(f'type="hidden" name="reference" value="{r}"' in form for r in refs)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    report = agent.post(
        "/staff/bulk",
        data={
            "csrf_token": token,
            "reference": refs,
            "action": "ask",
            "questions": ["what_went_wrong"],
            "saved_reply": str(reply.id),
        },
    )
    html = report.get_data(as_text=True)
    assert report.status_code == 200 and "1 done, 1 not done." in html
    assert "This request is “Waiting on customer”: the customer cannot be asked for more information now." in html
    [asked] = [m for m in outbox(orders, "information_request") if m.locale == "zh"]
    assert asked.variables["note"].startswith("陈杰您好")
    # Without the page's CSRF token nothing happens, and marketing may not do bulk work at all.
    assert agent.post("/staff/bulk", data={"reference": refs, "action": "note", "text": "x"}).status_code == 400
    marketing = signed_in(app, orders, "m@example.com", StaffRole.MARKETING)
    token = csrf_token(marketing, "/staff/saved-replies")
    denied = marketing.post("/staff/bulk", data={"csrf_token": token, "reference": refs, "action": "note", "text": "x"})
    assert denied.status_code == 403
    assert orders.scalar(select(func.count()).select_from(InternalNote)) == 0


def test_bulk_notes_and_an_empty_selection(app, orders, agent):
    refs = [filed(app), filed(app, "ORD-30001", "sanne.devries@example.nl", locale="nl")]
    token = re.search(r'name="csrf_token" value="([^"]+)"', agent.get("/staff/queue").get_data(as_text=True)).group(1)
    nothing = agent.post("/staff/bulk", data={"csrf_token": token, "step": "choose", "bulk_action": "note"})
    assert nothing.status_code == 303
    assert "Select at least one request." in agent.get(nothing.headers["Location"]).get_data(as_text=True)
    form = agent.post(
        "/staff/bulk", data={"csrf_token": token, "step": "choose", "reference": refs, "bulk_action": "note"}
    ).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    done = agent.post(
        "/staff/bulk", data={"csrf_token": token, "reference": refs, "action": "note", "text": "Batch checked"}
    )
    assert "2 done, 0 not done." in done.get_data(as_text=True)
    assert [n.text for n in orders.scalars(select(InternalNote))] == ["Batch checked", "Batch checked"]
    assert not outbox(orders, "information_request")


# -- guard rails ----------------------------------------------------------------------------------


def test_declining_what_the_policy_grants_needs_a_reason_or_an_admin(app, orders, agent, admin):
    reference = filed(app)  # ORD-10001, within the month: a full refund under the policy
    page = agent.get(f"/staff/requests/{reference}").get_data(as_text=True)
    # The form cites the decision's own clause, not the first one in the policy ("Who can ask").
    assert re.search(r'<option selected value="monthly">|<option value="monthly" selected>', page)
    refused = act(agent, reference, "decline", clause="monthly")
    assert refused.status_code == 422
    assert "The policy grants this request $29.00; write why you decline it anyway." in refused.get_data(as_text=True)
    assert request_of(orders, reference).state is RequestState.RECEIVED
    assert act(agent, reference, "decline", clause="monthly", override_reason="Abuse of trials").status_code == 303
    request = request_of(orders, reference)
    assert request.state is RequestState.DECLINED and request.events[-1].note == ""
    assert request.notes[-1].text == "Abuse of trials"  # staff's reason stays with staff
    other = filed(app, "ORD-30001", "sanne.devries@example.nl", locale="nl")
    assert act(admin, other, "decline", clause="monthly").status_code == 303


def test_send_again_only_for_failed_or_dead_messages_after_a_confirmation(app, orders, agent):
    filed(app)
    [sent] = outbox(orders, "acknowledgement")
    sent.status, sent.attempts, sent.sent_at = OutboxStatus.SENT, 1, utcnow()
    dead = OutboxMessage(
        message="reply_received",
        recipient="x@example.com",
        locale="en",
        variables={},
        status=OutboxStatus.DEAD,
        attempts=8,
        message_id="<dead@test>",
        last_error="550 mailbox unavailable",
    )
    failing = OutboxMessage(
        message="reply_received",
        recipient="y@example.com",
        locale="en",
        variables={},
        status=OutboxStatus.PENDING,
        attempts=2,
        message_id="<retry@test>",
        last_error="451 try later",
        next_attempt_at=utcnow() + timedelta(minutes=5),
    )
    orders.add_all([dead, failing])
    orders.commit()
    html = agent.get("/staff/outbox").get_data(as_text=True)
    for words in ("Sent", "Gave up", "Failed, will retry"):
        assert f">{words}</span>" in html
    assert f"/staff/outbox/{sent.id}/resend" not in html
    assert f"/staff/outbox/{dead.id}/resend" in html and f"/staff/outbox/{failing.id}/resend" in html
    assert agent.get(f"/staff/outbox/{sent.id}/resend").status_code == 409
    confirm_page = f"/staff/outbox/{dead.id}/resend"
    unconfirmed = staff_post(agent, confirm_page, confirm_page)
    assert unconfirmed.status_code == 422 and "Tick the box to confirm." in unconfirmed.get_data(as_text=True)
    assert staff_post(agent, confirm_page, confirm_page, confirm="y").status_code == 303
    orders.expire_all()
    assert (dead.status, dead.attempts) == (OutboxStatus.PENDING, 0)
    zh = agent.get("/staff/outbox", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "已发送" in zh
