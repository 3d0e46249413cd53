"""Two nodes behind one address: the portal as it runs on several hosts, with its faults.

Two gunicorn instances (their own ports and instance folders) and two ``portal outbox send
--watch`` workers share one PostgreSQL database (made for this test beside the suite's own),
Redis and a SeaweedFS; a real SMTP server (aiosmtpd) takes the email. A customer files with a
document through node A; an agent on node B downloads it, approves and processes; the receipt is
issued by a worker and downloaded through the other node. Then faults: a worker killed with
SIGKILL in the middle of a batch, every database connection cut and new ones refused for a while
(what a PostgreSQL restart looks like to the portal; the machine's server itself is left alone),
and the S3 server killed and started again on its data. At the end every email has arrived
exactly once, every receipt was issued once, and every row names a stored file with its hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import portal.app  # noqa: F401 (every model mapped, for the queries below)
from portal.config import normalize_database_url
from portal.core.vocabulary import OutboxStatus
from portal.documents.models import Document
from portal.outbox.models import OutboxMessage
from portal.outbox.queue import queue_email
from portal.refunds.models import Receipt, Refund, RefundRequest
from tests.journey_helpers import pdf_bytes
from tests.mail_helpers import SMTPServer
from tests.seaweed_helpers import SeaweedFS, free_port

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PASSWORD = "cluster-password-long-enough-1"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
# Carol reads the portal in Dutch (her orders say so): the refusal is in her language.
STORAGE_DOWN = "Probeert u het over een paar minuten opnieuw; wat u hebt ingevuld, is bewaard."
BATCH = 30


class HoldingInbox:
    """aiosmtpd handler: holds each message ``hold`` seconds before its "250 OK" and keeps it only
    if the client is still there, as an MTA does; says which client port it is holding."""

    def __init__(self, hold: float):
        self.hold = hold
        self.messages: list[email.message.EmailMessage] = []
        self.holding: set[int] = set()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        port = session.peer[1]
        with self.lock:
            self.holding.add(port)
        try:
            await asyncio.sleep(self.hold)  # cancelled when the client goes away meanwhile
        finally:
            with self.lock:
                self.holding.discard(port)
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def held(self) -> set[int]:
        with self.lock:
            return set(self.holding)


def client_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (from /proc), to tell whose connection is held."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_for(condition, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"waited {timeout} s for {what}")


class Cluster:
    def __init__(self, folder: Path, database_url: str, redis_url: str, seaweed: SeaweedFS, smtp_port: int):
        self.folder = folder
        self.seaweed = seaweed
        self.env = {
            **os.environ,
            **seaweed.environment,
            "PORTAL_ENV": "development",
            "PORTAL_SECRET_KEY": "cluster-secret-key-shared-by-every-node-0123456789",
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_RATELIMIT_STORAGE_URI": redis_url,
            "PORTAL_RATELIMIT_KEY_PREFIX": f"cluster-{uuid.uuid4().hex}",
            "PORTAL_LOOKUP_RATE_LIMIT": "8 per minute",
            "PORTAL_STORAGE_URL": "s3://cluster/portal",
            "PORTAL_S3_ENDPOINT_URL": seaweed.endpoint_url,
            "PORTAL_MAIL_SERVER": "127.0.0.1",
            "PORTAL_MAIL_PORT": str(smtp_port),
            "PORTAL_MAIL_TIMEOUT": "5",
            "PORTAL_OUTBOX_POLL_SECONDS": "0.5",
            "PORTAL_OUTBOX_LEASE_SECONDS": "8",
            "PORTAL_BASE_URL": "http://portal.test",
            "PORTAL_LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "4",
            "GUNICORN_TIMEOUT": "60",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def node_env(self, name: str) -> dict[str, str]:
        instance = self.folder / name
        return {
            **self.env,
            "PORTAL_INSTANCE_PATH": str(instance),
            "PORTAL_UPLOAD_DIR": str(instance / "uploads"),
            "PORTAL_OUTBOX_DIR": str(instance / "outbox"),
        }

    def portal(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(BIN / "portal"), *args],
            env=self.node_env("admin"),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.folder,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 (the process holds it)
        self.processes[name] = subprocess.Popen(
            command, env=env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def start_node(self, name: str) -> str:
        port = self.ports.setdefault(name, free_port())
        env = {**self.node_env(name), "GUNICORN_BIND": f"127.0.0.1:{port}"}
        self._start(name, [str(BIN / "gunicorn"), "-c", "python:portal.gunicorn_conf", "portal.wsgi:app"], env)
        base = f"http://127.0.0.1:{port}"

        def up():
            with contextlib.suppress(requests.RequestException):  # refused, or the worker still booting
                return requests.get(f"{base}/healthz", timeout=10).status_code == 200
            return False

        wait_for(up, 90, f"node {name}")
        return base

    def start_worker(self, name: str) -> None:
        self._start(name, [str(BIN / "portal"), "outbox", "send", "--watch"], self.node_env(name))

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")


def form(session: requests.Session, url: str) -> dict:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, (url, page.status_code)
    data = {"csrf_token": CSRF.search(page.text).group(1)}
    key = re.search(r'name="submission_key" type="hidden" value="([^"]*)"', page.text)
    if key:
        data["submission_key"] = key.group(1)
    return data


def lookup(session: requests.Session, base: str, number: str, address: str) -> requests.Response:
    data = {**form(session, f"{base}/"), "order_number": number, "email": address}
    return session.post(f"{base}/lookup", data=data, timeout=30, allow_redirects=False)


def file_with_document(session: requests.Session, base: str, number: str, details: str) -> requests.Response:
    data = {
        **form(session, f"{base}/orders/{number}/refund"),
        "reason": "no_longer_needed",
        "details": details,
        "amount_choice": "full",
        "partial_amount": "",
        "locale": "nl",
    }
    files = {"documents": ("invoice.pdf", pdf_bytes(f"Invoice {number}"), "application/pdf")}
    return session.post(f"{base}/orders/{number}/refund", data=data, files=files, timeout=60, allow_redirects=False)


def staff_post(session: requests.Session, base: str, page: str, action: str, **fields) -> requests.Response:
    data = {**form(session, f"{base}{page}"), **fields}
    return session.post(f"{base}{page}/{action}", data=data, timeout=60, allow_redirects=False)


@pytest.fixture
def cluster_database():
    """A database of the test's own beside the suite's (PORTAL_TEST_DATABASE_URL), dropped afterwards."""
    url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not url or not url.startswith(("postgres://", "postgresql")):
        pytest.skip("the cluster test needs PostgreSQL: set PORTAL_TEST_DATABASE_URL (.ci/run does)")
    if not os.environ.get("PORTAL_TEST_REDIS_URL"):
        pytest.skip("the cluster test needs Redis for limits shared by the nodes: set PORTAL_TEST_REDIS_URL")
    base = make_url(normalize_database_url(url))
    name = f"{base.database}_cluster"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")

    def drop():
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))

    drop()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin, name, base.set(database=name).render_as_string(hide_password=False)
    drop()
    admin.dispose()


def orders_csv(path: Path) -> Path:
    """Two orders bought yesterday (well inside any refund window, whatever the date)."""
    bought = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    columns = "order_number,customer_email,customer_name,locale,product,plan,amount,currency,purchased_at,period_start,period_end,payment_reference,channel,affiliate,affiliate_commission"
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns.split(","))
        for number, amount in (("CL-1001", "49.00"), ("CL-1002", "19.00")):
            writer.writerow(
                [
                    number,
                    "carol@example.net",
                    "Carol Jones",
                    "nl",
                    "Team Workspace",
                    "monthly",
                    amount,
                    "USD",
                    bought.isoformat().replace("+00:00", "Z"),
                    bought.date(),
                    (bought + timedelta(days=30)).date(),
                    f"ch_{number}",
                    "web",
                    "",
                    "",
                ]
            )
    return path


def test_two_nodes_and_two_workers_share_everything_and_survive_their_faults(cluster_database, tmp_path):
    admin, database_name, database_url = cluster_database
    seaweed = SeaweedFS(tmp_path / "seaweedfs").start()
    seaweed.make_bucket("cluster")
    inbox = HoldingInbox(hold=0.05)
    smtp = SMTPServer()
    smtp.inbox = inbox
    smtp.start()
    cluster = Cluster(tmp_path, database_url, os.environ["PORTAL_TEST_REDIS_URL"], seaweed, smtp.port)
    engine = create_engine(normalize_database_url(database_url), pool_pre_ping=True)
    try:
        _run(cluster, admin, database_name, engine, seaweed, inbox)
    except BaseException:
        for name in ("a", "b", "worker-1", "worker-2"):
            with contextlib.suppress(FileNotFoundError):
                print(f"--- {name}.log (last lines)\n" + "\n".join(cluster.log(name).splitlines()[-30:]))
        raise
    finally:
        cluster.stop()
        engine.dispose()
        smtp.stop()
        seaweed.stop()


def _run(cluster: Cluster, admin, database_name: str, engine, seaweed: SeaweedFS, inbox: HoldingInbox) -> None:
    cluster.portal("db", "upgrade")
    cluster.portal("orders", "import", str(orders_csv(cluster.folder / "orders.csv")))
    cluster.portal("staff", "create", "agent@example.com", "--role", "agent", "--password-stdin", stdin=PASSWORD)
    node_a, node_b = cluster.start_node("a"), cluster.start_node("b")
    cluster.start_worker("worker-1")
    cluster.start_worker("worker-2")

    # -- the journey across nodes -----------------------------------------------------------------
    customer = requests.Session()
    assert lookup(customer, node_a, "CL-1001", "carol@example.net").status_code in (302, 303)
    # The session cookie node A set opens the order on node B: sessions hold across nodes.
    assert "CL-1001" in customer.get(f"{node_b}/orders/CL-1001", timeout=30).text
    filed = file_with_document(customer, node_a, "CL-1001", "Bought the wrong plan.")
    assert filed.status_code == 303, filed.text
    reference = filed.headers["Location"].rsplit("/", 1)[1]
    with Session(engine) as session:
        document = session.scalar(select(Document))
        sha256, document_id = document.sha256, document.id

    agent = requests.Session()
    signed_in = agent.post(
        f"{node_b}/staff/login",
        data={**form(agent, f"{node_b}/staff/login"), "email": "agent@example.com", "password": PASSWORD},
        timeout=30,
        allow_redirects=False,
    )
    assert signed_in.status_code in (302, 303)
    assert reference in agent.get(f"{node_b}/staff/queue", timeout=30).text
    downloaded = agent.get(f"{node_b}/staff/documents/{document_id}", timeout=30)
    assert downloaded.status_code == 200 and hashlib.sha256(downloaded.content).hexdigest() == sha256
    page = f"/staff/requests/{reference}"
    assert staff_post(agent, node_b, page, "approve", amount="49.00").status_code == 303
    assert staff_post(agent, node_b, page, "process", reference="re_cluster_1").status_code == 303

    def receipt_mail():
        return [m for m in inbox.messages if any(p.get_filename() for p in m.iter_attachments())]

    [mail] = wait_for(receipt_mail, 60, "the email with the receipt")
    attached = next(p for p in mail.iter_attachments() if p.get_filename().endswith(".pdf")).get_content()
    # Issued by whichever worker; downloaded through the node the customer did not file on, and
    # by the agent through the other one.
    # (The server has the email a moment before the worker commits the receipt with "sent".)
    receipt = wait_for(
        lambda: (r := customer.get(f"{node_b}/requests/{reference}/receipt", timeout=30)).ok and r,
        30,
        "the receipt to be committed",
    )
    assert receipt.content == attached
    assert agent.get(f"{node_a}{page}/receipt", timeout=30).content == attached

    # -- a worker killed in the middle of a batch -------------------------------------------------
    inbox.hold = 0.3
    queue_batch(engine, "batch-1")
    worker_1 = cluster.processes["worker-1"].pid
    wait_for(lambda: inbox.held() & client_ports(worker_1), 60, "worker 1 to be in the middle of a message", 0.02)
    cluster.kill("worker-1")  # SIGKILL while its message waits for the server's "250 OK"
    wait_for(lambda: batch_received(inbox, "batch-1") >= 5, 60, "worker 2 to go on with the batch")
    cluster.start_worker("worker-1")

    # -- the database goes away: every connection cut, new ones refused for a few seconds ---------
    queue_batch(engine, "batch-2")
    wait_for(lambda: batch_received(inbox, "batch-2") >= 3, 60, "the second batch to be under way")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{database_name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": database_name},
        )
        engine.dispose()
        assert requests.get(f"{node_a}/readyz", timeout=30).status_code == 503
        assert customer.get(f"{node_b}/requests/{reference}", timeout=30).status_code == 503
        time.sleep(3)
        connection.execute(text(f'ALTER DATABASE "{database_name}" ALLOW_CONNECTIONS true'))
    for base in (node_a, node_b):
        wait_for(lambda base=base: requests.get(f"{base}/readyz", timeout=30).status_code == 200, 30, "readiness")
    wait_for(
        lambda: "outbox database unavailable" in cluster.log("worker-1") + cluster.log("worker-2"),
        30,
        "the workers to notice the database gone",
    )
    assert customer.get(f"{node_a}/requests/{reference}", timeout=30).status_code == 200

    # -- the S3 server goes away ------------------------------------------------------------------
    assert lookup(customer, node_b, "CL-1002", "carol@example.net").status_code in (302, 303)
    seaweed.stop(grace=0)
    ready = requests.get(f"{node_b}/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["storage"]["ok"] is False
    assert agent.get(f"{node_b}/staff/documents/{document_id}", timeout=60).status_code == 503
    refused = file_with_document(customer, node_a, "CL-1002", "Charged twice this month.")
    assert refused.status_code == 422 and STORAGE_DOWN in refused.text, refused.text[-3000:]
    assert "Charged twice this month." in refused.text  # what they typed is kept
    seaweed.start()
    wait_for(lambda: requests.get(f"{node_a}/readyz", timeout=30).status_code == 200, 30, "storage back")
    again = file_with_document(customer, node_b, "CL-1002", "Charged twice this month.")
    assert again.status_code == 303, again.text
    second = again.headers["Location"].rsplit("/", 1)[1]
    page = f"/staff/requests/{second}"
    assert staff_post(agent, node_a, page, "approve", amount="19.00").status_code == 303
    assert staff_post(agent, node_a, page, "process", reference="re_cluster_2").status_code == 303

    # -- rate limits count across nodes -----------------------------------------------------------
    # 8 lookups a minute from one client, in all: two used above, six more on either node.
    statuses = [
        lookup(requests.Session(), (node_a, node_b)[i % 2], "CL-9999", "nobody@example.net").status_code
        for i in range(8)
    ]
    assert statuses.count(429) == 2 and statuses[-2:] == [429, 429], statuses

    # -- at the end: everything once, nothing half-written ----------------------------------------
    def all_sent():
        with Session(engine) as session:
            statuses = session.scalars(select(OutboxMessage.status).where(OutboxMessage.channel == "email")).all()
        return statuses and all(status is OutboxStatus.SENT for status in statuses)

    wait_for(all_sent, 90, "every email to be sent")
    with Session(engine) as session:
        sent = set(session.scalars(select(OutboxMessage.message_id).where(OutboxMessage.channel == "email")))
        counted = Counter(m["Message-ID"].strip("<>") for m in inbox.messages)
        assert {key.strip("<>") for key in sent} == set(counted), "an email missing, or one nobody queued"
        assert [mid for mid, n in counted.items() if n > 1] == [], "an email delivered twice"
        assert len(counted) >= 2 * BATCH
        refunds = session.scalars(select(Refund)).all()
        receipts = session.scalars(select(Receipt)).all()
        assert len(refunds) == 2 and sorted(r.refund_id for r in receipts) == sorted(r.id for r in refunds)
        assert session.scalar(select(RefundRequest).where(RefundRequest.reference == second)).documents
        client = seaweed.client()
        stored = [(d.stored_name, d.sha256) for d in session.scalars(select(Document))]
        stored += [(r.storage_key, r.sha256) for r in receipts]
        assert len(stored) == 4
        for key, digest in stored:
            body = client.get_object(Bucket="cluster", Key=f"portal/{key}")["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, key


def queue_batch(engine, tag: str) -> None:
    with Session(engine) as session:
        for i in range(BATCH):
            queue_email(
                session,
                "magic_link",
                f"{tag}-{i}@example.net",
                "en",
                {"customer_name": "Carol Jones", "link": f"http://portal.test/access/{tag}-{i}", "expires_minutes": 30},
            )
        session.commit()


def batch_received(inbox: HoldingInbox, tag: str) -> int:
    with inbox.lock:
        return sum(1 for m in inbox.messages if str(m["To"]).startswith(f"{tag}-"))
