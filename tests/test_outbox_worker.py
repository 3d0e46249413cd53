"""The outbox worker never jams: a crashing message goes dead on its own while the rest flows, a
database outage is waited out, and SIGTERM lets the message in flight finish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import select

from portal import create_app
from portal.core.brand import load_brand
from portal.core.database import utcnow
from portal.core.paths import resource_dir
from portal.core.vocabulary import OutboxStatus
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import queue_email
from portal.outbox.worker import StopFlag, backoff, deliver_due
from portal.web.extensions import db
from portal.web.mail import RECEIPTS, TimedReceiptRenderer, deliver, run_worker
from tests.journey_helpers import import_samples, outbox
from tests.mail_helpers import Inbox, SMTPServer
from tests.staff_helpers import approved_in_full, staff_post

SAMPLE = {"customer_name": "Alice Moreau", "link": "/access/sample-token", "expires_minutes": 30}


class CrashingRenderer(TimedReceiptRenderer):
    """The real renderer with a fault no one planned for, as a broken font cache would raise."""

    def pdf(self, data) -> bytes:
        raise RuntimeError("the font cache is corrupt")


def test_a_message_that_crashes_goes_dead_after_the_last_attempt_while_the_rest_is_delivered(
    make_app, smtp, db_session, frozen, capsys
):
    app = make_app(OUTBOX_MAX_ATTEMPTS=3, LOG_FORMAT="json", **smtp.settings)
    import_samples(db_session)
    agent, reference = approved_in_full(app, db_session)
    page = f"/staff/requests/{reference}"
    assert staff_post(agent, f"{page}/process", page, reference="re_manual_7").status_code == 303
    app.extensions[RECEIPTS] = CrashingRenderer(
        resource_dir("templates") / "receipts", resource_dir("translations"), dict(load_brand())
    )
    for n in range(2):  # queued after the refunded email, so behind it
        queue_email(db_session, "magic_link", f"behind{n}@example.com", "en", SAMPLE)
    db_session.commit()

    with app.app_context():
        first = deliver(db.session)
    assert (first.sent, first.retried, first.dead) == (4, 1, 0)
    [refunded] = outbox(db_session, "refunded")
    assert refunded.status is OutboxStatus.PENDING and refunded.attempts == 1
    assert "RuntimeError: the font cache is corrupt" in refunded.last_error
    assert {m["To"] for m in smtp.inbox.messages} >= {
        "alice.m@example.com",
        "behind0@example.com",
        "behind1@example.com",
    }
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [crash] = [line for line in lines if line["event"] == "outbox attempt crashed"]
    assert crash["outbox_id"] == refunded.id and "Traceback" in crash["exception"]
    assert "RuntimeError: the font cache is corrupt" in crash["exception"]
    assert any(line["event"] == "outbox backoff" and line["retry_in_s"] == 30 for line in lines)

    # Each later round: the crash again, counted, until the third attempt; new mail still flows.
    for attempt in (2, 3):
        frozen.shift(backoff(attempt - 1) + timedelta(seconds=1))
        queue_email(db_session, "magic_link", f"later{attempt}@example.com", "en", SAMPLE)
        db_session.commit()
        with app.app_context():
            report = deliver(db.session)
        assert report.sent == 1
        db_session.expire_all()
        assert db_session.get(OutboxMessage, refunded.id).attempts == attempt
    dead = db_session.get(OutboxMessage, refunded.id)
    assert dead.status is OutboxStatus.DEAD and dead.attempts == 3
    assert smtp.inbox.find("later3@example.com")
    assert not [m for m in smtp.inbox.messages if list(m.iter_attachments())]  # no refunded email went out
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line["event"] == "outbox dead letter" and line["outbox_id"] == refunded.id for line in lines)
    frozen.shift(timedelta(hours=2))
    with app.app_context():
        assert deliver(db.session).attempts == 0  # dead stays dead until someone resends it


def test_the_watch_loop_waits_out_a_database_outage_and_goes_on(tmp_path, capsys):
    """The database is gone (here: its folder does not exist yet), then comes back."""
    url = f"sqlite:///{tmp_path}/later/portal.sqlite3"
    config = {
        "ENV": "testing",
        "SECRET_KEY": "x" * 40,
        "DATABASE_URL": url,
        "LOG_FORMAT": "json",
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "UPLOAD_DIR": str(tmp_path / "up"),
    }
    worker_app = create_app(config)
    stop = StopFlag()
    failures = []

    def work():
        with worker_app.app_context():
            try:
                run_worker(watch=True, interval=0.05, stop=stop)
            except BaseException as error:  # the loop must never end on its own
                failures.append(error)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "outbox database unavailable" not in capsys.readouterr().err and time.monotonic() < deadline:
            time.sleep(0.05)
        assert thread.is_alive() and not failures

        (tmp_path / "later").mkdir()  # the database is back
        other = create_app(config)
        with other.app_context():
            upgrade()
            queue_email(db.session, "magic_link", "back@example.com", "en", SAMPLE)
            db.session.commit()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                db.session.expire_all()
                if db.session.scalar(select(OutboxMessage.status)) is OutboxStatus.SENT:
                    break
                time.sleep(0.1)
            assert db.session.scalar(select(OutboxMessage.status)) is OutboxStatus.SENT
            db.engine.dispose()
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not failures
    assert list((tmp_path / "outbox").glob("*-magic_link.eml"))
    with worker_app.app_context():
        db.engine.dispose()


class SlowInbox(Inbox):
    """An SMTP server that takes its time over each message."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(1.5)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp():
    server = SMTPServer()
    server.inbox = SlowInbox()
    server.start()
    yield server
    server.stop()


def test_sigterm_lets_the_message_in_flight_finish_then_the_worker_exits(app, db_session, slow_smtp, tmp_path):
    for n in range(3):
        queue_email(db_session, "magic_link", f"customer{n}@example.com", "en", SAMPLE)
    db_session.commit()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PORTAL_ENV": "testing",
        "PORTAL_SECRET_KEY": "x" * 40,
        "PORTAL_DATABASE_URL": app.config["DATABASE_URL"],
        "PORTAL_MAIL_SERVER": "127.0.0.1",
        "PORTAL_MAIL_PORT": str(slow_smtp.port),
        "PORTAL_LOG_FORMAT": "json",
        "PORTAL_UPLOAD_DIR": str(tmp_path / "up"),
        "PORTAL_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    portal = Path(sys.executable).with_name("portal")
    worker = subprocess.Popen(
        [str(portal), "outbox", "send", "--watch", "--interval", "0.2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = worker.stderr.readline()
            if not line:
                break
            lines.append(line)
            if '"outbox attempt"' in line:
                break
        assert any('"outbox attempt"' in line for line in lines), "".join(lines)
        worker.send_signal(signal.SIGTERM)  # while the server is still taking the first message
        _, rest = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    log = [json.loads(line) for line in [*lines, *rest.splitlines()] if line.startswith("{")]
    assert worker.returncode == 0
    events = [line["event"] for line in log]
    assert events[-1] == "outbox worker stopped" and log[-1]["signal"] == "SIGTERM"
    assert "Logging error" not in rest and "Traceback" not in rest
    assert events.count("outbox delivered") == 1 and events.count("outbox attempt") == 1
    assert len(slow_smtp.inbox.messages) == 1
    db_session.expire_all()
    statuses = [(m.status, m.attempts) for m in db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert statuses == [(OutboxStatus.SENT, 1), (OutboxStatus.PENDING, 0), (OutboxStatus.PENDING, 0)]


class WorkerDied(BaseException):
    """What the rest of a worker's round sees when its process is killed mid-send: nothing at all."""


def test_a_message_whose_worker_died_mid_send_is_left_alone_for_the_lease_then_goes_out_once(
    make_app, smtp, db_session, frozen
):
    app = make_app(OUTBOX_LEASE_SECONDS=60, **smtp.settings)
    queue_email(db_session, "magic_link", "leased@example.com", "en", SAMPLE)
    db_session.commit()

    def dies(message):
        raise WorkerDied

    with app.app_context():
        with pytest.raises(WorkerDied):
            deliver_due(db.session, dies, clock=utcnow, max_attempts=8, lease=timedelta(seconds=60))
        db.session.remove()
    [message] = outbox(db_session)
    assert message.status is OutboxStatus.PENDING and message.attempts == 1
    with app.app_context():
        assert deliver(db.session).attempts == 0  # leased: another worker leaves it alone
        db.session.remove()
    frozen.shift(timedelta(seconds=61))
    with app.app_context():
        assert deliver(db.session).sent == 1
        db.session.remove()
    assert len(smtp.inbox.find("leased@example.com")) == 1
    [message] = outbox(db_session)
    assert message.status is OutboxStatus.SENT and message.attempts == 2
