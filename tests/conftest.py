"""Fixtures: a fresh app per test on a migrated database whose tables are emptied between tests.

The suite runs on SQLite by default and on PostgreSQL when PORTAL_TEST_DATABASE_URL is set.
"""
from __future__ import annotations

import os
import re
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
def make_app(migrated, tmp_path):
    """Build apps on the test database with settings of the test's own; tables start empty."""
    made = []

    def make(**overrides):
        config = {**_test_config(migrated, tmp_path / "uploads"), "OUTBOX_DIR": str(tmp_path / "outbox"),
                  **overrides}
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
