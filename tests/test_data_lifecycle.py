"""The data lifecycle: retention, erasure on request and export, from the command line and the console."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from email import message_from_bytes
from email.policy import default

import pytest
import time_machine
from sqlalchemy import select, text

from portal.accounts.models import SecurityEvent
from portal.core.database import utcnow
from portal.core.vocabulary import OutboxStatus, RequestState, StaffRole
from portal.documents.models import Document
from portal.inbound.models import InboundMessage
from portal.orders.models import Customer, Order
from portal.outbox.models import OutboxMessage, WebhookSubscription
from portal.outbox.queue import queue_email
from portal.outbox.worker import deliver_due
from portal.refunds import replies
from portal.refunds.models import Feedback, Receipt, Refund, RefundRequest
from portal.web.extensions import db
from portal.web.mail import deliver
from tests.journey_helpers import file_request, import_samples, lookup, png_bytes
from tests.staff_helpers import make_staff, sign_in, staff_post

FILED = "2026-11-22T12:00:00Z"


def refunded_with_document(app, session):
    """张伟 files for ORD-20001 with a screenshot; an agent approves and refunds; the worker sends the receipt."""
    import_samples(session)
    make_staff(session)
    with time_machine.travel(FILED, tick=True):
        customer = app.test_client()
        lookup(customer, "ORD-20001", "zhang.wei@example.cn")
        response = file_request(
            customer, "ORD-20001", files=[("截图.png", png_bytes())], locale="zh", details="功能和演示不一样。"
        )
        reference = response.headers["Location"].rsplit("/", 1)[1]
        agent = app.test_client()
        sign_in(agent, "agent@example.com")
        page = f"/staff/requests/{reference}"
        assert staff_post(agent, f"{page}/approve", page, amount="199.00").status_code == 303
        assert staff_post(agent, f"{page}/process", page, reference="re_lifecycle").status_code == 303
        with app.app_context():
            deliver(db.session)
    session.expire_all()
    return customer, reference


def test_documents_go_after_the_retention_period_and_receipts_after_the_financial_one(make_app, db_session):
    app = make_app()
    customer, reference = refunded_with_document(app, db_session)
    storage = app.extensions["storage"]
    [document] = db_session.scalars(select(Document)).all()
    receipt = db_session.scalar(select(Receipt))
    db_session.expunge_all()  # keep what was read: the rows go while the test looks on
    runner = app.test_cli_runner()

    with time_machine.travel("2027-05-01T12:00:00Z"):  # 160 days after closing: nothing is due
        result = runner.invoke(args=["retention", "run"])
    assert "deleted 0 document(s)" in result.output and storage.exists(document.stored_name)

    with time_machine.travel("2027-06-01T12:00:00Z"):  # past 180 days
        dry = runner.invoke(args=["retention", "run", "--dry-run"])
        assert "would delete 1 document(s)" in dry.output and f"{reference}: 截图.png" in dry.output
        assert storage.exists(document.stored_name)
        result = runner.invoke(args=["retention", "run"])
        assert "deleted 1 document(s) of 1 closed request(s) and 0 receipt(s)" in result.output
        again = runner.invoke(args=["retention", "run"])
        assert "deleted 0 document(s)" in again.output
    db_session.expire_all()
    assert db_session.scalar(select(Document)) is None and not storage.exists(document.stored_name)
    request = db_session.scalar(select(RefundRequest))
    assert request.events[-1].note == "Documents deleted under the retention policy."
    assert request.state is RequestState.REFUNDED and storage.exists(receipt.storage_key)
    page = customer.get(f"/requests/{reference}").get_data(as_text=True)
    assert "截图.png" not in page and "根据数据保留政策，文件已被删除。" in page

    with time_machine.travel("2033-12-01T12:00:00Z"):  # seven years after the refund
        result = runner.invoke(args=["retention", "run"])
    assert f"receipt {receipt.number}" in result.output and not storage.exists(receipt.storage_key)
    db_session.expire_all()
    assert db_session.scalar(select(Receipt)) is None and db_session.scalar(select(Refund)) is not None


def test_export_holds_everything_about_the_customer_with_their_files(make_app, db_session, tmp_path):
    app = make_app()
    _, reference = refunded_with_document(app, db_session)
    [document] = db_session.scalars(select(Document)).all()
    receipt = db_session.scalar(select(Receipt))
    refund_request = db_session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))
    db_session.add_all(
        [
            InboundMessage(
                refund_request=refund_request,
                kind="reply",
                matched_by="token",
                sender="zhang.wei@example.cn",
                subject="Re: 退款",
                text="收据收到了，谢谢。",
            ),
            Feedback(refund_request=refund_request, rating=4, comment="很快。", come_back="maybe", locale="zh"),
        ]
    )
    db_session.commit()
    result = app.test_cli_runner().invoke(
        args=["customers", "export", "ZHANG.WEI@example.cn", "-o", str(tmp_path / "export.zip")]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "export.zip") as archive:
        record = json.loads(archive.read("customer.json"))
        assert record["customer"]["name"] == "张伟" and record["customer"]["email"] == "zhang.wei@example.cn"
        order = next(o for o in record["orders"] if o["order_number"] == "ORD-20001")
        [request] = order["refund_requests"]
        assert request["details"] == "功能和演示不一样。" and request["documents"][0]["original_name"] == "截图.png"
        assert order["refunds"][0]["processor_reference"] == "re_lifecycle"
        data = archive.read(f"documents/{document.id}-截图.png")
        assert hashlib.sha256(data).hexdigest() == document.sha256
        assert hashlib.sha256(archive.read(f"receipts/{receipt.number}.pdf")).hexdigest() == receipt.sha256
        # What they wrote by email, their feedback, and every email the portal sent them.
        assert [(r["request"], r["text"]) for r in record["email_replies"]] == [(reference, "收据收到了，谢谢。")]
        assert request["feedback"][0]["comment"] == "很快。"
        sent = {m["message"] for m in record["emails"]}
        assert {"acknowledgement", "approval", "refunded"} <= sent, sent
        assert all(m["recipient"] == "zhang.wei@example.cn" for m in record["emails"])


def test_erasure_anonymises_deletes_documents_keeps_the_accounts_and_tells_the_customer_in_their_language(
    make_app, db_session, tmp_path
):
    app = make_app()
    refunded_with_document(app, db_session)
    storage = app.extensions["storage"]
    # A reply by email on the request (issue 21): what the customer wrote there is personal data too.
    db_session.add(
        InboundMessage(
            refund_request_id=db_session.scalar(select(RefundRequest.id)),
            kind="reply",
            matched_by="token",
            sender="zhang.wei@example.cn",
            subject="回复：退款",
            text="我的银行卡号是 1234。",
            refused_attachments=[{"name": "张伟的护照.exe", "problem": "x"}],
        )
    )
    db_session.commit()
    [document] = db_session.scalars(select(Document)).all()
    receipt = db_session.scalar(select(Receipt))
    db_session.expunge_all()
    result = app.test_cli_runner().invoke(args=["customers", "erase", "zhang.wei@example.cn", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 document(s) deleted from storage" in result.output
    assert "1 email(s) from the customer cleared" in result.output
    reply = db_session.scalar(select(InboundMessage))
    assert (reply.sender, reply.subject, reply.text, reply.refused_attachments) == ("", "", "", [])
    [event] = db_session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "customer_erased"))
    assert "document(s) deleted from storage" in event.detail
    db_session.expire_all()
    customer = db_session.scalar(select(Order).where(Order.order_number == "ORD-20001")).customer
    assert customer.name == "Erased customer" and "zhang" not in customer.email
    assert db_session.scalar(select(Customer).where(Customer.email_normalized == "zhang.wei@example.cn")) is None
    assert db_session.scalar(select(Document)) is None and not storage.exists(document.stored_name)
    request = db_session.scalar(select(RefundRequest))
    assert request.details == "" and all(e.note != "功能和演示不一样。" for e in request.events)
    assert db_session.scalar(select(Refund)).processor_reference == "re_lifecycle"
    assert storage.exists(receipt.storage_key)  # financial records are kept
    [message] = db_session.scalars(select(OutboxMessage).where(OutboxMessage.message == "erasure_confirmed"))
    assert message.recipient == "zhang.wei@example.cn" and message.locale == "zh"
    with app.app_context():
        assert deliver(db.session).sent >= 1
    eml = tmp_path / "outbox" / f"{message.id:06d}-erasure_confirmed.eml"
    email = message_from_bytes(eml.read_bytes(), policy=default)
    assert email["Subject"] == "您的个人数据已被删除" and email["To"] == "zhang.wei@example.cn"
    assert "张伟" in email.get_body(("plain",)).get_content()


def test_the_console_exports_and_erases_for_admins_only(make_app, db_session):
    app = make_app()
    refunded_with_document(app, db_session)
    admin = app.test_client()
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    sign_in(admin, "admin@example.com")
    response = staff_post(admin, "/staff/customers", "/staff/customers", email="zhang.wei@example.cn", action="export")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "customer.json" in zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    response.close()  # as a WSGI server does: the temporary zip goes with it

    refused = staff_post(
        admin,
        "/staff/customers",
        "/staff/customers",
        email="zhang.wei@example.cn",
        action="erase",
        confirm="someone@else.example",
    )
    assert refused.status_code == 422 and "Type the customer" in refused.get_data(as_text=True)
    erased = staff_post(
        admin,
        "/staff/customers",
        "/staff/customers",
        email="zhang.wei@example.cn",
        action="erase",
        confirm="Zhang.Wei@example.cn",
    )
    assert erased.status_code == 303
    db_session.expire_all()
    assert db_session.scalar(select(Document)) is None
    # Both are in the console's security log, by whom and about which customer.
    logged = {
        e.kind: e for e in db_session.scalars(select(SecurityEvent).where(SecurityEvent.email == "admin@example.com"))
    }
    assert logged["export"].detail.startswith("customer ") and "document(s) deleted" in logged["customer_erased"].detail

    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    assert agent.get("/staff/customers").status_code == 403


NAME, EMAIL = "张伟", "zhang.wei@example.cn"


def personal(session, table: str, *columns: str) -> list:
    """Rows of ``table`` (read straight from the database) whose ``columns`` hold the name or the address
    (JSON columns may come back as text with the name escaped, or parsed)."""
    rows = session.execute(text(f"SELECT id, {', '.join(columns)} FROM {table}")).all()
    needles = (NAME, json.dumps(NAME)[1:-1], EMAIL)
    return [row for row in rows if any(n in " ".join(map(str, row)).lower() for n in needles)]


def test_erasure_scrubs_the_name_and_address_from_notes_questions_and_the_outbox(make_app, db_session, smtp):
    """Staff wrote 张伟's name and address in a question (a saved reply's {customer_name} filled in)
    and an internal note; emails and a webhook event went out or wait. After the erasure neither is
    anywhere in the database or on the staff pages, and the confirmation still reaches the customer,
    whose address its row forgets once it is sent."""
    app = make_app(**smtp.settings)
    import_samples(db_session)
    make_staff(db_session)
    make_staff(db_session, "admin@example.com", StaffRole.ADMIN)
    reply = replies.save(
        db_session,
        None,
        title="Need details",
        bodies={"en": "Dear {customer_name},", "zh": "{customer_name}您好，"},
        staff_user_id=None,
        now=utcnow(),
    )
    db_session.add(WebhookSubscription(url="http://127.0.0.1:9/hook", secret="s" * 32))
    db_session.commit()
    with time_machine.travel(FILED, tick=True):
        customer = app.test_client()
        lookup(customer, "ORD-20001", EMAIL)
        reference = file_request(customer, "ORD-20001", locale="zh").headers["Location"].rsplit("/", 1)[1]
        with app.app_context():
            deliver(db.session)  # the acknowledgement is sent
        agent = app.test_client()
        sign_in(agent, "agent@example.com")
        page = f"/staff/requests/{reference}"
        asked = staff_post(
            agent, f"{page}/ask", page, message=f"请把收据发到 {EMAIL.upper()}。", saved_reply=str(reply.id)
        )
        assert asked.status_code == 303
        noted = staff_post(agent, f"{page}/note", page, text=f"{NAME} ({EMAIL}) called; Zhang.Wei@Example.CN")
        assert noted.status_code == 303
    assert personal(db_session, "status_event", "note") and personal(db_session, "internal_note", "text")
    assert personal(db_session, "information_request", "message")
    waiting = db_session.scalar(select(OutboxMessage).where(OutboxMessage.message == "information_request"))
    assert waiting.status is OutboxStatus.PENDING and NAME in waiting.variables["note"]

    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    erased = staff_post(admin, "/staff/customers", "/staff/customers", email=EMAIL, action="erase", confirm=EMAIL)
    assert erased.status_code == 303
    db_session.expire_all()
    assert personal(db_session, "status_event", "note") == []
    assert personal(db_session, "internal_note", "text") == []
    assert personal(db_session, "information_request", "message", "answer", "items") == []
    note = db_session.execute(text("SELECT text FROM internal_note")).scalar_one()
    assert note.startswith("Erased customer (erased-") and note.count("@erased.invalid") == 2
    [confirmation] = db_session.scalars(select(OutboxMessage).where(OutboxMessage.message == "erasure_confirmed"))
    # Only the confirmation still knows where to go: it has not been sent yet.
    assert [row.id for row in personal(db_session, "outbox_message", "recipient", "variables")] == [confirmation.id]
    waiting = db_session.get(OutboxMessage, waiting.id)
    assert waiting.status is OutboxStatus.DEAD and "erased" in waiting.last_error
    assert waiting.recipient.endswith("@erased.invalid")
    assert db_session.scalar(select(OutboxMessage).where(OutboxMessage.message == "acknowledgement")).status is (
        OutboxStatus.SENT
    )
    [event] = db_session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "customer_erased"))
    assert "name and address scrubbed from 3 note(s) and question(s)" in event.detail, event.detail
    assert "outbox message(s) anonymised (1 waiting cancelled)" in event.detail

    with app.app_context():
        assert deliver(db.session).sent >= 1
    [arrived] = smtp.inbox.find(EMAIL)[-1:]
    assert arrived["Subject"] == "您的个人数据已被删除" and NAME in arrived.get_body(("plain",)).get_content()
    db_session.expire_all()
    confirmation = db_session.get(OutboxMessage, confirmation.id)
    assert confirmation.status is OutboxStatus.SENT and confirmation.recipient.endswith("@erased.invalid")
    assert personal(db_session, "outbox_message", "recipient", "variables") == []
    logged = db_session.scalars(select(SecurityEvent).where(SecurityEvent.kind == "customer_erased")).all()
    assert any(f"erasure confirmation (outbox message {confirmation.id}) sent" in e.detail for e in logged)

    for url, shown in ((page, "Erased customer"), ("/staff/outbox", "@erased.invalid")):
        response = admin.get(url)  # the agent's session of November has ended; the admin's is fresh
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and shown in html, url
        assert NAME not in html and EMAIL not in html.lower(), url
    listed = app.test_cli_runner().invoke(args=["outbox", "list"]).output
    assert EMAIL not in listed.lower() and "erased" in listed
    assert admin.get(f"/staff/outbox/{waiting.id}/resend").status_code == 409  # no one to send it to


def test_a_confirmation_sent_while_the_database_was_away_is_anonymised_when_it_is_recorded(app, db_session):
    """The worker remembers a message the SMTP server took whose "sent" the database did not; when it
    records it, an erasure confirmation forgets its address there too, and the caller is told."""
    message = queue_email(db_session, "erasure_confirmed", EMAIL, "zh", {"customer_name": NAME})
    db_session.commit()
    told = []
    report = deliver_due(
        db_session,
        lambda m: pytest.fail("nothing is due: the message was sent already"),
        clock=utcnow,
        max_attempts=3,
        unrecorded={message.id: utcnow()},
        forgotten=told.append,
    )
    assert report.attempts == 0 and [m.id for m in told] == [message.id]
    db_session.expire_all()
    assert message.status is OutboxStatus.SENT and message.recipient == "erased@erased.invalid"
    assert message.variables == {"customer_name": "[erased]"}
