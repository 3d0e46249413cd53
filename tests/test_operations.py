"""What an operator relies on: probes, request ids, JSON log lines without personal data or
secrets, Prometheus figures behind a token, 503 when the database is down, one-line CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask_migrate import upgrade
from prometheus_client.parser import text_string_to_metric_families

from portal import create_app
from portal.accounts.staff import create_api_token
from portal.core.database import utcnow
from portal.core.vocabulary import StaffRole
from portal.web.extensions import db
from portal.web.mail import deliver
from tests.journey_helpers import import_samples, lookup, outbox, refund_form
from tests.staff_helpers import PASSWORD, approved_in_full, make_staff, sign_in, staff_post

UNREACHABLE = "postgresql://portal@127.0.0.1:1/portal"  # nothing listens on port 1
TOKEN = "metrics-token-for-the-tests"
# The newest migration, whatever number it has reached.
HEAD = max(
    p.name.split("_", 1)[0] for p in (Path(__file__).parents[1] / "portal" / "migrations" / "versions").glob("0*.py")
)


def production(**overrides):
    # Production wants rate limits shared by every worker: the machine's Redis (the test database).
    redis_url = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    return create_app(
        {
            "ENV": "production",
            "SECRET_KEY": "k" * 48,
            "BASE_URL": "https://refunds.example.com",
            "DATABASE_URL": UNREACHABLE,
            "MAIL_SERVER": "127.0.0.1",
            "RATELIMIT_STORAGE_URI": redis_url,
            **overrides,
        }
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def sample(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


# -- probes ---------------------------------------------------------------------------------------


def test_liveness_needs_no_database_and_readiness_says_what_is_missing():
    app = production()
    client = app.test_client()
    live = client.get("/healthz")  # plain HTTP, as a load balancer probes
    assert live.status_code == 200 and live.json == {"status": "ok"}
    assert live.headers["Cache-Control"] == "no-store"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Cache-Control"] == "no-store"
    assert ready.json["checks"]["database"] == {"ok": False, "detail": "unreachable (OperationalError)"}
    assert "portal@" not in ready.get_data(as_text=True)  # no URL, no credentials
    # Production redirects pages to https, never the probes.
    assert client.get("/").status_code == 302


def test_readiness_is_ok_at_the_migrations_head(app, client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json["status"] == "ok"
    assert response.json["checks"]["database"] == {"ok": True, "detail": f"schema at {HEAD}"}
    # The suite runs once with a folder and once with every file in S3 (.ci/run's last pass).
    in_s3 = app.config["STORAGE_URL"].startswith("s3://")
    expected = "S3 bucket answers" if in_s3 else "folder writable"
    assert response.json["checks"]["storage"] == {"ok": True, "detail": expected}


def test_readiness_waits_for_portal_db_upgrade(tmp_path):
    app = create_app(
        {
            "ENV": "testing",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": f"sqlite:///{tmp_path}/old.sqlite3",
            "UPLOAD_DIR": str(tmp_path / "up"),
            "OUTBOX_DIR": str(tmp_path / "out"),
        }
    )
    with app.app_context():
        upgrade(revision="0007")  # the previous release's schema, new code deployed first
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert (
        response.json["checks"]["database"]["detail"] == f"schema at 0007, code expects {HEAD}: run portal db upgrade"
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()
    assert app.test_client().get("/readyz").status_code == 200


def test_with_the_database_down_the_api_answers_503_problems_and_pages_a_503_page():
    app = create_app({"ENV": "testing", "SECRET_KEY": "x" * 40, "DATABASE_URL": UNREACHABLE})
    client = app.test_client()
    api = client.get("/api/v1/requests", headers={"Authorization": "Bearer rpt_anything"})
    assert api.status_code == 503 and api.mimetype == "application/problem+json"
    assert api.json["status"] == 503 and api.json["title"] == "Service unavailable"
    assert "Retry-After" in api.headers
    page = client.get("/track/some-token", headers={"Accept-Language": "nl"})
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "De dienst is even niet beschikbaar" in page.get_data(as_text=True)


# -- request ids and log lines --------------------------------------------------------------------


def test_the_proxy_request_id_is_kept_and_a_missing_or_odd_one_is_generated(client):
    assert client.get("/", headers={"X-Request-ID": "req-1234abcd"}).headers["X-Request-ID"] == "req-1234abcd"
    generated = client.get("/").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != client.get("/").headers["X-Request-ID"]
    odd = client.get("/", headers={"X-Request-ID": "x\u00e9 <script>"}).headers["X-Request-ID"]
    assert odd != "x\u00e9 <script>" and len(odd) == 32


def test_one_json_line_per_request_with_the_staff_id_and_no_password_email_or_token(
    make_app, db_session, capsys, frozen
):
    app = make_app(LOG_FORMAT="json")
    import_samples(db_session)
    staff = make_staff(db_session, "agent@example.com", StaffRole.AGENT)
    _, token = create_api_token(db_session, "agent@example.com", "helpdesk", now=utcnow())
    db_session.commit()
    capsys.readouterr()

    agent = app.test_client()
    sign_in(agent, "agent@example.com")
    agent.get("/staff/queue", headers={"X-Request-ID": "queue-page-0001"})
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    app.test_client().get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"})
    with app.app_context():
        deliver(db.session)
    logged = capsys.readouterr().err
    lines = json_lines(logged)
    assert lines and len(lines) == len([line for line in logged.splitlines() if line.strip()])  # every line JSON

    [queue] = [line for line in lines if line.get("route") == "/staff/queue"]
    assert queue["event"] == "request" and queue["request_id"] == "queue-page-0001"
    assert queue["method"] == "GET" and queue["status"] == 200 and queue["duration_ms"] >= 0
    assert queue["staff_id"] == staff.id and queue["level"] == "info" and queue["timestamp"]
    [api] = [line for line in lines if line.get("route") == "/api/v1/requests"]
    assert api["status"] == 200 and api["staff_id"] == staff.id  # the token's holder
    [lookup_line] = [line for line in lines if line.get("route") == "/lookup"]
    assert "staff_id" not in lookup_line
    for secret in (PASSWORD, token, "alice.m@example.com", "agent@example.com"):
        assert secret not in logged


def test_the_outbox_message_carries_the_request_id_to_the_workers_lines(make_app, db_session, capsys, frozen):
    app = make_app(LOG_FORMAT="json")
    import_samples(db_session)
    customer = app.test_client()
    lookup(customer, "ORD-10001", "alice.m@example.com")
    data = refund_form(customer, "ORD-10001")
    response = customer.post("/orders/ORD-10001/refund", data=data, headers={"X-Request-ID": "filing-req-42"})
    assert response.status_code == 303
    [ack] = outbox(db_session, "acknowledgement")
    assert ack.request_id == "filing-req-42"
    capsys.readouterr()
    with app.app_context():
        assert deliver(db.session).sent == 1
    worker = [line for line in json_lines(capsys.readouterr().err) if line["event"].startswith("outbox")]
    attempt = next(line for line in worker if line["event"] == "outbox attempt")
    assert attempt["request_id"] == "filing-req-42" and attempt["outbox_id"] == ack.id
    assert attempt["recipient"] == "a***@example.com"
    assert any(line["event"] == "outbox delivered" and line["request_id"] == "filing-req-42" for line in worker)


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_are_there_only_for_a_scraper_with_the_token(make_app):
    assert make_app().test_client().get("/metrics").status_code == 404
    client = make_app(METRICS_TOKEN=TOKEN).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert "# TYPE portal_http_request_duration_seconds histogram" in response.get_data(as_text=True)


def test_a_scrape_counts_requests_refusals_the_outbox_deliveries_refunds_and_receipts(
    make_app, db_session, smtp, frozen
):
    app = make_app(METRICS_TOKEN=TOKEN, LOOKUP_RATE_LIMIT="3 per minute", **smtp.settings)
    scraper = app.test_client()

    def scrape() -> str:
        return scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)

    before = scrape()
    import_samples(db_session)
    agent, reference = approved_in_full(app, db_session)
    page = f"/staff/requests/{reference}"
    assert staff_post(agent, f"{page}/process", page, reference="re_manual_1").status_code == 303
    for _ in range(4):
        lookup(app.test_client(), "ORD-99999", "nobody@example.com")  # with the agent's, the 4th and 5th are refused

    figures = scrape()
    # Filing, approval and the refund queued three emails; nothing delivered yet.
    assert sample(figures, "portal_outbox_pending_messages", channel="email", kind="acknowledgement") == 1
    assert sample(figures, "portal_outbox_pending_messages", channel="email", kind="refunded") == 1
    assert sample(figures, "portal_outbox_oldest_pending_age_seconds", channel="email", kind="acknowledgement") >= 0
    assert (
        sample(figures, "portal_gateway_refunds_total", gateway="manual", outcome="succeeded")
        == sample(before, "portal_gateway_refunds_total", gateway="manual", outcome="succeeded") + 1
    )
    assert (
        sample(figures, "portal_rate_limit_refusals_total", route="/lookup")
        == sample(before, "portal_rate_limit_refusals_total", route="/lookup") + 2
    )
    route = "/staff/requests/<reference>/process"
    assert (
        sample(figures, "portal_http_requests_total", method="POST", route=route, status="303")
        == sample(before, "portal_http_requests_total", method="POST", route=route, status="303") + 1
    )
    assert sample(figures, "portal_http_request_duration_seconds_count", method="POST", route=route) >= 1

    with app.app_context():
        assert deliver(db.session).sent == 3
    after = scrape()
    assert sample(after, "portal_outbox_pending_messages", channel="email", kind="refunded") == 0
    assert (
        sample(after, "portal_outbox_deliveries_total", channel="email", kind="refunded", outcome="sent")
        == sample(before, "portal_outbox_deliveries_total", channel="email", kind="refunded", outcome="sent") + 1
    )
    assert (
        sample(after, "portal_receipt_render_seconds_count", locale="en")
        == sample(before, "portal_receipt_render_seconds_count", locale="en") + 1
    )


# -- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env,says",
    [
        (
            {"PORTAL_ENV": "production"},
            "portal: configuration error: Refusing to start in production: PORTAL_SECRET_KEY",
        ),
        (
            {"PORTAL_DATABASE_URL": "postgres//nowhere"},
            "portal: configuration error: PORTAL_DATABASE_URL is not a database URL",
        ),
        (
            {"PORTAL_DOCUMENT_RETENTION_DAYS": "abc"},
            "portal: configuration error: PORTAL_DOCUMENT_RETENTION_DAYS must be a number, not 'abc'.",
        ),
        (
            {"PORTAL_DOCUMENT_RETENTION_DAYS": "-5"},
            "portal: configuration error: PORTAL_DOCUMENT_RETENTION_DAYS must be at least 1, not -5.",
        ),
    ],
)
def test_a_misconfiguration_is_one_line_and_exit_status_2(tmp_path, env, says):
    portal = Path(sys.executable).with_name("portal")
    result = subprocess.run(
        [str(portal), "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )
    assert result.returncode == 2
    assert result.stderr.startswith(says) and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["automation", "simulate", "--since", "notadate"], "use the form YYYY-MM-DD"),
        (["storage", "migrate", "--to", "ftp://x"], "storage URL must start with file:// or s3://"),
        (["emails", "export", "/proc/nope"], "cannot write the kit to /proc/nope"),
        (["mail", "serve", "--port", "99999"], "99999 is not in the range 1<=x<=65535"),
    ],
)
def test_bad_command_line_input_is_named_not_a_traceback(app, args, message):
    result = app.test_cli_runner().invoke(args=args)
    assert isinstance(result.exception, SystemExit) and result.exit_code in (1, 2)
    assert message in result.output and "Traceback" not in result.output
