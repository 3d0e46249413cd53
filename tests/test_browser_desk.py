"""The staff desk in a real Chromium: a bulk decline from the queue, and a saved reply that reaches a
Chinese customer in Chinese (the email read as the test SMTP server received it)."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from portal.core.database import utcnow
from portal.core.vocabulary import RequestState, StaffRole
from portal.refunds import replies
from portal.refunds.models import RefundRequest
from portal.web.extensions import db
from portal.web.mail import deliver
from tests.journey_helpers import import_samples
from tests.mail_helpers import body
from tests.staff_console_helpers import act, filed
from tests.staff_helpers import PASSWORD, make_staff, sign_in
from tests.test_browser_journey import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("frozen")]

DESK = {"width": 1280, "height": 900}


@pytest.fixture
def desk_app(make_app, smtp, db_session):
    app = make_app(**smtp.settings)
    import_samples(db_session)
    make_staff(db_session, "agent@example.com", StaffRole.AGENT, "Ada Agent")
    return app


@pytest.fixture
def desk(browser, desk_app):
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, desk_app, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    desk_app.config["BASE_URL"] = base_url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context(viewport=DESK, base_url=base_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/staff/login")
    page.get_by_label("Email address").fill("agent@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/staff/queue"))
    yield page
    context.close()
    server.shutdown()
    thread.join(5)
    server.server_close()
    assert errors == [], f"the browser reported errors: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_bulk_decline_reports_what_was_declined_and_what_could_not_be(desk, desk_app, db_session, smtp):
    outside = filed(desk_app, "ORD-10002", "alice.m@example.com", review_requested="y")
    chinese = filed(desk_app, "ORD-20004", "chen.jie@example.cn", locale="zh", review_requested="y")
    done = filed(desk_app, "ORD-30003", "emma.visser@example.be", locale="nl", review_requested="y")
    agent = desk_app.test_client()
    sign_in(agent, "agent@example.com")
    assert act(agent, done, "decline", clause="annual").status_code == 303

    # The declined one is closed, so not in the default "needs action" view: the agent picks "all".
    desk.goto("/staff/queue?view=all")
    for reference in (outside, chinese, done):
        desk.get_by_label(f"Select {reference}").check()
    desk.get_by_label("With the selected requests").select_option(label="Decline, citing a clause")
    shot(desk, "desk-bulk-selected")
    desk.get_by_role("button", name="Continue").click()
    desk.get_by_label("Policy clause the decision rests on").select_option("monthly")
    desk.get_by_label("Alternative to offer").select_option("extended-trial")
    desk.get_by_label("Your text (optional when a saved reply is chosen)").fill("Outside the refund window.")
    shot(desk, "desk-bulk-form")
    desk.get_by_role("button", name="Apply to the selected requests").click()
    desk.wait_for_selector("table.bulk-report")
    shot(desk, "desk-bulk-report")
    assert desk.get_by_role("status").inner_text() == "2 done, 1 not done."
    failed = desk.locator(f'tr[data-reference="{done}"]').inner_text()
    assert "Not done" in failed and "it cannot be declined now" in failed

    with desk_app.app_context():
        states = {r.reference: r.state for r in db.session.scalars(select(RefundRequest))}
        assert states[outside] is states[chinese] is RequestState.DECLINED
        deliver(db.session)
    # One email per declined request, in its customer's language; none for the one not declined.
    assert len(smtp.inbox.find("alice.m@example.com")) == 2  # the acknowledgement and the decline
    [_acknowledgement, declined] = smtp.inbox.find("chen.jie@example.cn")
    assert "Outside the refund window." in body(declined, "plain") and declined["Content-Language"] == "zh"
    assert len(smtp.inbox.find("emma.visser@example.be")) == 2  # the acknowledgement and the earlier decline


def test_a_saved_reply_reaches_a_chinese_customer_in_chinese(desk, desk_app, db_session, smtp):
    reply = replies.save(
        db_session,
        None,
        title="Need the invoice",
        bodies={
            "en": "Dear {customer_name}, please send the invoice for {order_number} ({amount}) by {deadline}.",
            "zh": "{customer_name}您好，请在 {deadline} 前发送订单 {order_number}（{amount}）的发票。",
            "nl": "",
        },
        staff_user_id=None,
        now=utcnow(),
    )
    db_session.commit()
    reference = filed(desk_app, "ORD-20001", "zhang.wei@example.cn", locale="zh")

    desk.goto(f"/staff/requests/{reference}")
    ask = desk.locator("section", has=desk.get_by_role("heading", name="Ask for information"))
    ask.get_by_label("What went wrong?").check()
    ask.get_by_label("Insert a saved reply").select_option(label="Need the invoice")
    shot(desk, "desk-saved-reply-chosen")
    ask.get_by_role("button", name="Ask the customer").click()
    desk.wait_for_url(re.compile(rf".*/staff/requests/{reference}$"))
    timeline = desk.locator("body").inner_text()
    assert "“Need the invoice” in a question to the customer, in 中文" in timeline
    shot(desk, "desk-saved-reply-timeline")

    with desk_app.app_context():
        deliver(db.session)
    texts = [body(m, "plain") for m in smtp.inbox.find("zhang.wei@example.cn")]
    [text] = [t for t in texts if "张伟您好，请在" in t]
    assert "张伟您好，请在 2026年12月6日 前发送订单 ORD-20001（¥199.00）的发票。" in text
    assert "{" not in text and "Dear " not in text
    assert reply.missing == ["nl"]
