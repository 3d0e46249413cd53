"""Fixtures: a fresh app per test on a migrated database whose tables are emptied between tests.

The suite runs on SQLite by default and on PostgreSQL when PORTAL_TEST_DATABASE_URL is set.
Files go to a temporary folder by default; with PORTAL_TEST_STORAGE_URL=s3://bucket/prefix (or
``--storage=s3``) every test keeps them under a prefix of its own in S3: a SeaweedFS started for
the session, unless PORTAL_TEST_S3_ENDPOINT_URL names another service (credentials then come from
the standard AWS variables).
"""

from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import create_engine, text

from portal import create_app
from portal.config import normalize_database_url
from portal.core.database import Base

# Where the clock stands in modules that mark themselves with usefixtures("frozen"): the
# sample orders' policy windows are judged from this minute. It ticks on from there.
NOW = "2026-11-22T12:00:00Z"

# Copies of ../shared/samples, so the suite does not depend on what sits beside the clone.
DATA = Path(__file__).resolve().parent / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--storage",
        choices=("file", "s3"),
        default=None,
        help="where every test keeps its files: a temporary folder (default) or S3 "
        "(PORTAL_TEST_STORAGE_URL, else a SeaweedFS started for the session)",
    )


@pytest.fixture(scope="session")
def suite_storage(request) -> str:
    """The base storage URL of the whole suite: "" for a temporary folder per test, or s3://bucket/prefix."""
    url = os.environ.get("PORTAL_TEST_STORAGE_URL", "")
    option = request.config.getoption("--storage")
    if option == "file":
        return ""
    if option == "s3" and not url.startswith("s3://"):
        url = "s3://portal-suite/run"
    return url if url.startswith("s3://") else ""


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real S3 server (SeaweedFS) for the session; the standard AWS variables point at it."""
    from tests.seaweed_helpers import SeaweedFS

    with real_clock_for_s3_signatures():
        server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
        saved = {name: os.environ.get(name) for name in server.environment}
        os.environ.update(server.environment)
        yield server
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@contextmanager
def real_clock_for_s3_signatures():
    """Many tests travel in time (time-machine) to judge policy windows, but an S3 server refuses a
    request signed more than 15 minutes from its own clock: botocore signs with the real time."""
    import botocore.auth

    def now(remove_tzinfo: bool = True):
        clock = time_machine.escape_hatch.datetime.datetime if time_machine.escape_hatch.is_travelling() else datetime
        real = clock.now(UTC)
        return real.replace(tzinfo=None) if remove_tzinfo else real

    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = now
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = original


@pytest.fixture(scope="session")
def s3_endpoint(request, suite_storage) -> str:
    """The S3 service the tests use: PORTAL_TEST_S3_ENDPOINT_URL, or a SeaweedFS of the session's own."""
    endpoint = os.environ.get("PORTAL_TEST_S3_ENDPOINT_URL")
    if endpoint:
        return endpoint
    return request.getfixturevalue("seaweedfs").endpoint_url


@pytest.fixture
def s3_settings(suite_storage, s3_endpoint) -> dict:
    """Settings that put this test's files in S3 under a prefix of its own."""
    from portal.documents.storage import S3Settings, S3Storage

    base = (suite_storage or "s3://portal-suite/run").rstrip("/")
    S3Storage(base[len("s3://") :].split("/", 1)[0], "", S3Settings(endpoint_url=s3_endpoint)).ensure_bucket()
    return {"STORAGE_URL": f"{base}/{uuid.uuid4().hex}", "S3_ENDPOINT_URL": s3_endpoint}


@pytest.fixture
def storage_settings(request, suite_storage) -> dict:
    if not suite_storage:
        return {}
    return request.getfixturevalue("s3_settings")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if url:
        return normalize_database_url(url)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def migrated(database_url, tmp_path_factory):
    """Run the real Alembic migrations once, on a schema emptied first."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app(_test_config(database_url, tmp_path_factory.mktemp("uploads")))
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        from portal.web.extensions import db

        db.engine.dispose()
    return database_url


def _test_config(database_url: str, upload_dir) -> dict:
    return {
        "ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-any-check",
        "DATABASE_URL": database_url,
        "UPLOAD_DIR": str(upload_dir),
        "BASE_URL": "http://portal.test",
        "SERVER_NAME": None,
        # The console's own tests sign admins in with the password alone; tests/test_security.py
        # runs the default ("admins") and "required" with real second factors.
        "STAFF_MFA": "optional",
    }


def _empty_tables(engine) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def make_app(migrated, tmp_path, storage_settings):
    """Build apps on the test database with settings of the test's own; tables start empty."""
    made = []

    def make(**overrides):
        config = {
            **_test_config(migrated, tmp_path / "uploads"),
            "OUTBOX_DIR": str(tmp_path / "outbox"),
            **storage_settings,
            **overrides,
        }
        app = create_app(config)
        from portal.web.extensions import db

        if not made:
            with app.app_context():
                _empty_tables(db.engine)
        made.append(app)
        return app

    yield make
    from portal.web.extensions import db

    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def orders(db_session):
    """The sample orders imported, and the session to read them with."""
    from tests.journey_helpers import import_samples

    import_samples(db_session)
    return db_session


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 for the duration of a test."""
    from tests.mail_helpers import SMTPServer

    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stripe_stub():
    """A stateful Stripe look-alike on 127.0.0.1 (tests/stripe_stub.py)."""
    from tests.stripe_stub import StripeStub

    stub = StripeStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def db_session(app):
    """A plain session on the app's database, used outside any request.

    It deliberately holds no app context open: one would be shared by every request the test
    client makes (and with it ``g``), which no real browser ever sees.
    """
    from sqlalchemy.orm import Session

    from portal.web.extensions import db

    with app.app_context():
        engine = db.engine
    with Session(engine) as session:
        yield session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def data_dir() -> Path:
    return DATA


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(client, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1) or match.group(2)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def paddle_stub():
    """A stateful Paddle Billing look-alike on 127.0.0.1 (tests/paddle_stub.py)."""
    from tests.paddle_stub import PaddleStub

    stub = PaddleStub().start()
    yield stub
    stub.stop()


CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium without the services a headless test has no use for (and no network for).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole session: starting it costs more than most browser tests."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: `make test` installs it (package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app):
    import logging
    import threading

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns a failure
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = base_url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base_url
    server.shutdown()
    thread.join(5)
    server.server_close()
