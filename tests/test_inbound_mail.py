"""Customers' replies by email, over a real LMTP/SMTP conversation with `portal mail serve`'s listener.

Messages are built with Python's email package (en, zh, nl) or taken from tests/data/inbound/
(copies of shared/samples/inbound, placeholders substituted here).
"""

import email
import email.policy
import json
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from portal.core.vocabulary import RequestState
from portal.documents.models import Document
from portal.inbound.models import InboundMessage
from portal.orders.models import Customer
from portal.refunds.links import Links
from portal.refunds.models import RefundRequest
from portal.web.inbound import listener
from tests.conftest import DATA
from tests.journey_helpers import file_request, import_samples, lookup, outbox, pdf_bytes, png_bytes
from tests.mail_helpers import free_port
from tests.staff_helpers import make_staff

pytestmark = pytest.mark.usefixtures("frozen")
DOMAIN = "reply.example.com"
SECRET = "test-secret-key-that-is-long-enough-for-any-check"


@pytest.fixture
def app(make_app):
    return make_app(INBOUND_DOMAIN=DOMAIN, INBOUND_MAX_BYTES=200_000, INBOUND_LOOP_LIMIT=5)


@pytest.fixture
def lmtp(app):
    controller = listener(app, host="127.0.0.1", port=free_port(), protocol="lmtp")
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def staff_token(app, db_session):
    make_staff(db_session, "agent@example.com")
    db_session.commit()
    result = app.test_cli_runner().invoke(args=["staff", "token", "agent@example.com", "--name", "t"])
    return result.output.strip().splitlines()[-1]


def file_and_ask(app, token, number, email, documents=("bank_statement",)):
    customer = app.test_client()
    lookup(customer, number, email)
    reference = (
        file_request(customer, number, files=[("invoice.pdf", pdf_bytes())]).headers["Location"].rsplit("/", 1)[1]
    )
    answer = app.test_client().post(
        f"/api/v1/requests/{reference}/information-requests",
        data=json.dumps({"questions": ["what_went_wrong"], "documents": list(documents)}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.json
    return reference


def address(reference):
    return Links("http://portal.test", SECRET, DOMAIN).reply_address(reference)


def lmtp_send(controller, message, rcpt):
    with smtplib.LMTP(controller.hostname, controller.port) as client:
        return client.sendmail(message["From"], [rcpt], message.as_bytes())


def reply(sender, rcpt, subject, text, *, html=None, attachments=(), in_reply_to=None, **headers):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, rcpt, subject
    message["Message-ID"] = make_msgid(domain="mail.example")
    if in_reply_to:
        message["In-Reply-To"] = message["References"] = in_reply_to
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    if text is not None:
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    for name, kind, data in attachments:
        maintype, subtype = kind.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def request_of(db_session, reference):
    db_session.expire_all()
    return db_session.scalar(select(RefundRequest).where(RefundRequest.reference == reference))


def test_replies_in_three_languages_answer_their_requests_over_lmtp(app, lmtp, staff_token, db_session):
    import_samples(db_session)
    cases = [
        (
            "ORD-10001",
            "alice.m@example.com",
            "Re: RF",
            "It was charged twice, statement attached.\n\nOn Tue, 1 Dec 2026 at 09:12, Northwind <s@example.com> wrote:\n> Please answer\n",
            "It was charged twice, statement attached.",
            "Please answer",
        ),
        (
            "ORD-20001",
            "zhang.wei@example.cn",
            "回复：退款",
            "银行对账单在附件里。\n\n在 2026年12月1日 09:12，Northwind <s@example.com> 写道：\n> 请回答以下问题\n",
            "银行对账单在附件里。",
            "请回答",
        ),
        (
            "ORD-30001",
            "sanne.devries@example.nl",
            "Re: Terugbetaling",
            "Het bankafschrift zit in de bijlage.\n\nOp di 1 dec 2026 om 09:12 schreef Northwind <s@example.com>:\n> Wilt u antwoorden?\n",
            "Het bankafschrift zit in de bijlage.",
            "Wilt u",
        ),
    ]
    for number, sender, subject, text, kept, trimmed in cases:
        reference = file_and_ask(app, staff_token, number, sender)
        assert request_of(db_session, reference).state is RequestState.AWAITING_CUSTOMER
        message = reply(
            sender, address(reference), subject, text, attachments=[("statement.png", "image/png", png_bytes())]
        )
        assert lmtp_send(lmtp, message, address(reference)) == {}
        found = request_of(db_session, reference)
        assert found.state is RequestState.IN_REVIEW, number  # answered, back to staff
        assert found.events[-1].note == kept and trimmed not in found.events[-1].note
        inbound = db_session.scalar(select(InboundMessage).where(InboundMessage.refund_request_id == found.id))
        assert inbound.kind == "reply" and inbound.answered and inbound.text == kept
        documents = db_session.scalars(select(Document).where(Document.refund_request_id == found.id)).all()
        assert {d.checklist_item for d in documents} == {None, "bank_statement"}
        # The attachment went through staging (staging/inbound/) into the storage, a folder or S3.
        [statement] = [d for d in documents if d.original_name == "statement.png"]
        assert b"".join(app.extensions["storage"].chunks(statement.stored_name)) == png_bytes()
        assert not list(app.extensions["storage"].walk("staging/inbound/"))
    assert len(outbox(db_session, "reply_received")) == 3


def test_html_only_reply_drops_the_gmail_quote_and_shows_on_both_timelines(app, lmtp, staff_token, db_session):
    import_samples(db_session)
    reference = file_and_ask(app, staff_token, "ORD-10001", "alice.m@example.com", documents=())
    html = (
        '<div dir="ltr"><p>Thank you, <b>here is</b> my answer.</p><div class="gmail_quote">On Tue wrote:'
        "<blockquote>Please answer</blockquote></div></div>"
    )
    lmtp_send(lmtp, reply("alice.m@example.com", address(reference), "Re: x", None, html=html), address(reference))
    found = request_of(db_session, reference)
    assert found.state is RequestState.IN_REVIEW and found.events[-1].note == "Thank you, here is my answer."


def test_the_sample_replies_land_with_their_attachments(app, staff_token, db_session, runner):
    import_samples(db_session)
    for sample, number, address_, kept, attachment in [
        ("gmail-en-quoted.eml", "ORD-10001", "alice.m@example.com", "statement attached", "statement.pdf"),
        (
            "gmail-zh-quoted.eml",
            "ORD-20001",
            "zhang.wei@example.cn",
            "我已经在附件中上传了银行对账单",
            "银行对账单.png",
        ),
        (
            "outlook-nl-quoted.eml",
            "ORD-30001",
            "sanne.devries@example.nl",
            "In de bijlage vindt u de factuur.",
            "factuur.pdf",
        ),
        ("html-only-en.eml", "ORD-10003", "bob.tanaka@example.org", "Thank you, here is the screenshot.", None),
    ]:
        reference = file_and_ask(app, staff_token, number, address_, documents=())
        sent = outbox(db_session, "information_request")[-1]
        raw = (
            (DATA / "inbound" / sample)
            .read_text(encoding="utf-8")
            .replace("{TOKEN}", address(reference).split("+")[1].split("@")[0])
        )
        raw = raw.replace("{ORIGINAL_MESSAGE_ID}", sent.message_id.strip("<>")).replace("RF-XXXXXXXX", reference)
        result = runner.invoke(args=["mail", "receive"], input=raw.encode("utf-8"))
        assert result.exit_code == 0, result.output
        found = request_of(db_session, reference)
        inbound = db_session.scalar(select(InboundMessage).where(InboundMessage.refund_request_id == found.id))
        assert kept in inbound.text, sample
        assert "Northwind" not in inbound.text and ">" not in inbound.text, sample
        names = {d.original_name for d in found.documents}
        refused = {a["name"] for a in inbound.refused_attachments}
        if attachment:
            # The samples' PDFs have no cross-reference table, as viewers forgive: they land all the same.
            assert attachment in names and not refused, (sample, names, refused)


def test_auto_replies_bounces_forgeries_and_loops(app, lmtp, staff_token, db_session, runner):
    import_samples(db_session)
    reference = file_and_ask(app, staff_token, "ORD-10001", "alice.m@example.com")
    rcpt = address(reference)

    sample = (
        (DATA / "inbound" / "auto-reply-out-of-office.eml")
        .read_text()
        .replace("{TOKEN}", rcpt.split("+")[1].split("@")[0])
        .replace("{ORIGINAL_MESSAGE_ID}", "x@y")
    )
    assert runner.invoke(args=["mail", "receive"], input=sample.encode()).exit_code == 0
    lmtp_send(lmtp, reply("alice.m@example.com", rcpt, "Afwezig", "Ik ben afwezig.", Precedence="auto_reply"), rcpt)
    assert request_of(db_session, reference).state is RequestState.AWAITING_CUSTOMER  # nothing answered

    # A forged token is refused at RCPT TO with 550 5.1.1; `portal mail receive` exits 67 (EX_NOUSER).
    forged = rcpt.replace(rcpt.split("-")[-1].split("@")[0], "a" * 16)
    with smtplib.LMTP(lmtp.hostname, lmtp.port) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail("x@example.com", [forged], reply("x@example.com", forged, "hi", "hi").as_bytes())
    assert refused.value.recipients[forged][0] == 550 and b"5.1.1" in refused.value.recipients[forged][1]
    result = runner.invoke(args=["mail", "receive"], input=reply("x@example.com", forged, "hi", "hi").as_bytes())
    assert result.exit_code == 67
    assert runner.invoke(args=["mail", "receive"], input=b"\n\n").exit_code == 65

    # Too large: 552 5.3.4, at MAIL FROM, since smtplib declares the SIZE.
    big = reply(
        "alice.m@example.com", rcpt, "big", "x", attachments=[("big.pdf", "application/pdf", b"%PDF" + b"0" * 300_000)]
    )
    with smtplib.LMTP(lmtp.hostname, lmtp.port) as client, pytest.raises(smtplib.SMTPSenderRefused) as too_big:
        client.sendmail("alice.m@example.com", [rcpt], big.as_bytes())
    assert too_big.value.smtp_code == 552 and b"5.3.4" in too_big.value.smtp_error
    # A client that does not declare the size is told the same after its data.
    with smtplib.LMTP(lmtp.hostname, lmtp.port) as client:
        client.ehlo("mx.example.com")
        assert client.mail("alice.m@example.com")[0] == 250 and client.rcpt(rcpt)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(smtplib.quotedata(big.as_string()).encode("ascii") + b"\r\n.\r\n")
        code, text = client.getreply()
    assert code == 552 and b"5.3.4" in text

    # A bounce (an RFC 3464 DSN) marks the address undeliverable, and staff see it.
    dsn = email.message_from_string(
        f"""From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
To: {rcpt}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system at host mx.example.com. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; alice.m@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <alice.m@example.com>: user unknown

--BOUNDARY--
""",
        policy=email.policy.SMTP,
    )
    assert lmtp_send(lmtp, dsn, rcpt) == {}
    db_session.expire_all()
    customer = db_session.scalar(select(Customer).where(Customer.email_normalized == "alice.m@example.com"))
    assert customer.email_undeliverable_at is not None and "5.1.1" in customer.email_undeliverable_reason

    # Loop guard: our own mail coming back is dropped, and so is a flood from one address.
    lmtp_send(lmtp, reply(app.config["MAIL_DEFAULT_SENDER"][1], rcpt, "Re", "ours"), rcpt)
    for n in range(6):
        lmtp_send(lmtp, reply("robot@example.com", rcpt, f"Re {n}", "again"), rcpt)
    kinds = [m.kind for m in db_session.scalars(select(InboundMessage).order_by(InboundMessage.id))]
    assert kinds[:3] == ["auto_reply", "auto_reply", "bounce"] and kinds[3] == "loop"
    assert kinds[4:].count("reply") == 5 and kinds[-1] == "loop"


def test_emails_carry_the_reply_address_and_in_reply_to_finds_the_request(app, smtp, staff_token, db_session, make_app):
    import_samples(db_session)
    sending = make_app(INBOUND_DOMAIN=DOMAIN, **smtp.settings)
    reference = file_and_ask(app, staff_token, "ORD-10001", "alice.m@example.com", documents=())
    with sending.app_context():
        from portal.web.extensions import db
        from portal.web.mail import deliver

        deliver(db.session)
    sent = smtp.inbox.find("alice.m@example.com")
    assert sent and all(m["Reply-To"] == address(reference) for m in sent)
    # No reply address (a forward, say) but In-Reply-To names our message: matched by it.
    message = reply(
        "alice.m@example.com", "support@example.com", "Re", "Answer by thread.", in_reply_to=sent[-1]["Message-ID"]
    )
    result = app.test_cli_runner().invoke(args=["mail", "receive"], input=message.as_bytes())
    assert result.exit_code == 0, result.output
    assert request_of(db_session, reference).events[-1].note == "Answer by thread."
