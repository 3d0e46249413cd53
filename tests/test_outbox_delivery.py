"""Delivery through a real SMTP server (aiosmtpd): nothing lost, nothing sent twice, nothing hangs."""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from portal.core.vocabulary import OutboxStatus
from portal.outbox.kit import KitError
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import queue_email, resend
from portal.outbox.worker import claim_next
from portal.web.extensions import db
from portal.web.mail import deliver
from tests.journey_helpers import file_request, import_samples, lookup, outbox
from tests.mail_helpers import HungServer, SMTPServer, body

pytestmark = pytest.mark.usefixtures("frozen")  # the clock stands at conftest.NOW
CUSTOMERS = {
    "en": ("ORD-10001", "alice.m@example.com"),
    "zh": ("ORD-20001", "zhang.wei@example.cn"),
    "nl": ("ORD-30001", "sanne.devries@example.nl"),
}
# The reference leads every subject, in the same place in every message and language.
SUBJECT_STARTS = {
    "en": "] We have received your refund request",
    "zh": "] 我们已收到您的退款申请",
    "nl": "] Wij hebben uw terugbetalingsaanvraag",
}


@pytest.fixture
def mail_app(make_app, smtp):
    return make_app(**smtp.settings)


def run_worker(app):
    with app.app_context():
        report = deliver(db.session)
        db.session.remove()
    return report


def file_in_each_language(app, session):
    import_samples(session)
    for locale, (number, email) in CUSTOMERS.items():
        client = app.test_client()
        lookup(client, number, email)
        assert file_request(client, number, locale=locale).status_code == 303


def test_acknowledgements_arrive_in_each_language_with_working_links(mail_app, smtp, db_session):
    file_in_each_language(mail_app, db_session)
    report = run_worker(mail_app)
    assert (report.sent, report.retried, report.dead) == (3, 0, 0)
    stored = {m.recipient: m for m in outbox(db_session)}
    for locale, (number, email) in CUSTOMERS.items():
        [message] = smtp.inbox.find(email)
        assert message["Subject"].startswith("[RF-") and SUBJECT_STARTS[locale] in message["Subject"]
        # Transactional: no auto-replies, and a plain multipart/alternative when nothing is attached.
        assert message["X-Auto-Response-Suppress"] == "All" and message.get_content_type() == "multipart/alternative"
        assert "=?" not in message["From"] and message["In-Reply-To"] is None  # the first email is the root
        assert message["Content-Language"] == locale and message["Auto-Submitted"] == "auto-generated"
        assert message["Message-ID"] == stored[email].message_id
        assert message["From"] == "Northwind Cloud <support@northwind.example>"
        text, html = body(message, "plain"), body(message, "html")
        assert number in text and number in html
        link = stored[email].variables["tracking_url"]
        assert link.startswith("http://portal.test/track/") and link in text and f'href="{link}"' in html
        stranger = mail_app.test_client()
        page = stranger.get(link.removeprefix("http://portal.test"), follow_redirects=True)
        assert page.status_code == 200 and stored[email].refund_request.reference in page.get_data(as_text=True)
    assert "我们将在" in body(smtp.inbox.find("zhang.wei@example.cn")[0], "plain")
    assert all(m.status is OutboxStatus.SENT for m in outbox(db_session))
    assert run_worker(mail_app).sent == 0  # nothing goes twice


def test_an_outage_keeps_messages_queued_and_they_arrive_once_each_when_it_ends(mail_app, smtp, db_session, frozen):
    file_in_each_language(mail_app, db_session)
    smtp.stop()
    report = run_worker(mail_app)
    assert (report.sent, report.retried) == (0, 3)
    for message in outbox(db_session):
        assert message.status is OutboxStatus.PENDING and message.attempts == 1
        assert "Connection refused" in message.last_error or "ConnectionRefused" in message.last_error
    assert run_worker(mail_app).retried == 0, "a message was retried before its backoff ended"

    smtp.start()
    frozen.shift(timedelta(seconds=31))
    assert run_worker(mail_app).sent == 3
    frozen.shift(timedelta(hours=2))
    assert run_worker(mail_app).sent == 0
    ids = [m["Message-ID"] for m in smtp.inbox.messages]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert sorted(m["To"] for m in smtp.inbox.messages) == sorted(e for _, e in CUSTOMERS.values())


def test_a_4xx_answer_is_retried_and_a_5xx_answer_is_dead_until_resent(mail_app, smtp, db_session, frozen):
    file_in_each_language(mail_app, db_session)
    smtp.inbox.reply = "451 4.3.0 Mailbox temporarily unavailable"
    assert run_worker(mail_app).retried == 3
    assert "451" in outbox(db_session)[0].last_error

    smtp.inbox.reply = "550 5.1.1 No such user"
    frozen.shift(timedelta(seconds=31))
    assert run_worker(mail_app).dead == 3
    dead = outbox(db_session)
    assert all(m.status is OutboxStatus.DEAD and "550" in m.last_error for m in dead)

    smtp.inbox.reply = None
    frozen.shift(timedelta(hours=1))
    assert run_worker(mail_app).sent == 0  # dead stays dead until someone decides
    runner = mail_app.test_cli_runner()
    result = runner.invoke(args=["outbox", "resend", str(dead[0].id)])
    assert result.exit_code == 0, result.output
    assert run_worker(mail_app).sent == 1
    [arrived] = smtp.inbox.messages
    assert arrived["Message-ID"] == dead[0].message_id


def test_a_hung_server_does_not_hang_the_worker(make_app, db_session):
    hung = HungServer()
    try:
        app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=hung.port, MAIL_TIMEOUT=1)
        file_in_each_language(app, db_session)
        started = time.monotonic()
        report = run_worker(app)
        assert time.monotonic() - started < 10
        assert report.retried == 3
        assert all("timed out" in m.last_error.lower() for m in outbox(db_session))
    finally:
        hung.close()


def test_a_message_that_keeps_failing_is_dead_after_the_last_attempt(make_app, db_session, frozen):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=SMTPServer().port, OUTBOX_MAX_ATTEMPTS=3)
    file_in_each_language(app, db_session)
    for _ in range(3):
        run_worker(app)
        frozen.shift(timedelta(hours=2))
    assert [(m.status, m.attempts) for m in outbox(db_session)] == [(OutboxStatus.DEAD, 3)] * 3


def test_a_message_with_missing_variables_is_refused_when_queued(db_session):
    # The action that queues it fails at once, in its own transaction, instead of a dead letter later.
    with pytest.raises(KitError, match=r"missing variable\(s\) amount, customer_name"):
        queue_email(db_session, "acknowledgement", "x@example.com", "en", {"reference": "RF-1"})
    with pytest.raises(KitError, match="undeclared variable"):
        queue_email(
            db_session,
            "reply_received",
            "x@example.com",
            "en",
            {"customer_name": "C", "reference": "RF-1", "tracking_url": "/track/x", "surprise": 1},
        )
    with pytest.raises(KitError, match="'amount' \\(money\\) cannot take"):
        queue_email(
            db_session,
            "refund_failed",
            "x@example.com",
            "en",
            {
                "customer_name": "C",
                "reference": "RF-1",
                "tracking_url": "/track/x",
                "amount": "lots",
                "reason": "unknown",
            },
        )
    assert outbox(db_session) == []


def test_a_message_whose_template_cannot_render_is_dead_with_the_reason(mail_app, smtp, db_session):
    # Queued before the kit changed under it (a template edited, a variable dropped from the declarations).
    db_session.add(
        OutboxMessage(
            message="acknowledgement",
            recipient="x@example.com",
            locale="en",
            variables={"reference": "RF-1"},
            message_id="<stale@portal.test>",
        )
    )
    db_session.commit()
    assert run_worker(mail_app).dead == 1
    [message] = outbox(db_session)
    assert "missing variable(s)" in message.last_error and smtp.inbox.messages == []


def test_without_smtp_messages_are_written_as_eml_files_once(make_app, db_session, tmp_path, frozen):
    app = make_app()  # the embedded default: no MAIL_SERVER
    file_in_each_language(app, db_session)
    assert run_worker(app).sent == 3
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3
    content = files[0].read_bytes()
    assert b"Message-ID: <" in content and b"Content-Language: en" in content
    message = outbox(db_session)[0]
    with app.app_context():
        resend(db.session, db.session.get(OutboxMessage, message.id), now=datetime.now(UTC))
        db.session.commit()
    assert run_worker(app).sent == 1
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3  # the same file, rewritten


def test_the_send_command_delivers_what_is_due(mail_app, smtp, db_session):
    file_in_each_language(mail_app, db_session)
    result = mail_app.test_cli_runner().invoke(args=["outbox", "send"])
    assert result.exit_code == 0, result.output
    assert "sent 3, to retry 0, dead 0" in result.output
    assert len(smtp.inbox.messages) == 3


@pytest.mark.skipif(
    not os.environ.get("PORTAL_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="SKIP LOCKED is PostgreSQL's; SQLite runs a single worker",
)
def test_two_workers_never_claim_the_same_message(app, db_session):
    for n in range(2):
        queue_email(
            db_session,
            "reply_received",
            f"c{n}@example.com",
            "en",
            {"customer_name": "C", "reference": f"RF-{n}", "tracking_url": "/track/x"},
        )
    db_session.commit()
    with app.app_context():
        engine = db.engine
    now = datetime.now(UTC) + timedelta(seconds=1)
    with Session(engine) as first, Session(engine) as second:
        one = claim_next(first, now)
        other = claim_next(second, now)
        assert one is not None and other is not None and one.id != other.id
        third = Session(engine)
        assert claim_next(third, now) is None
        third.close()
