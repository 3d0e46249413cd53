"""What ``/readyz`` checks: each part the portal needs to serve, named, with what went wrong.

- the database answers, and its schema is at the migrations' head (a new release whose
  ``portal db upgrade`` has not run yet is not ready);
- Redis answers, when rate-limit counters live there;
- the file storage takes files: its folder can be written, or its S3 bucket answers (a HEAD of
  the bucket with a two-second timeout);
- the outbox folder can be written, when mail is written to files.

Each check answers ``{"ok": bool, "detail": str}``; details name the kind of failure, never a
password or a URL.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from sqlalchemy import text

from portal.core.paths import PACKAGE_DIR


@cache
def migration_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(PACKAGE_DIR / "migrations")).get_heads())


def _database(db) -> dict:
    try:
        with db.engine.connect() as connection:
            # Alembic's own table, read directly: its MigrationContext logs a line on every probe.
            current = frozenset(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except Exception as error:  # any driver error means "not reachable" to a load balancer
        return {"ok": False, "detail": f"unreachable ({type(error).__name__})"}
    if current != migration_heads():
        return {
            "ok": False,
            "detail": f"schema at {', '.join(sorted(current)) or 'nothing'}, "
            f"code expects {', '.join(sorted(migration_heads()))}: run portal db upgrade",
        }
    return {"ok": True, "detail": f"schema at {', '.join(sorted(current))}"}


def _redis(app) -> dict:
    from portal.web.extensions import limiter

    try:
        ok = bool(limiter.storage.check())
    except Exception as error:
        return {"ok": False, "detail": f"unreachable ({type(error).__name__})"}
    return {"ok": ok, "detail": "answers" if ok else "does not answer"}


def _writable(folder: str) -> dict:
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return {"ok": False, "detail": f"cannot be created ({error.strerror})"}
    if not os.access(path, os.W_OK | os.X_OK):
        return {"ok": False, "detail": "not writable"}
    return {"ok": True, "detail": "writable"}


def _storage(app) -> dict:
    from portal.documents.storage import StorageError
    from portal.web.storage import STORAGE

    try:
        return {"ok": True, "detail": app.extensions[STORAGE].check()}
    except StorageError as error:
        return {"ok": False, "detail": str(error)}


def checks(app, db) -> dict[str, dict]:
    results = {"database": _database(db)}
    if str(app.config.get("RATELIMIT_STORAGE_URI", "")).startswith(("redis", "rediss")):
        results["redis"] = _redis(app)
    results["storage"] = _storage(app)
    if not app.config.get("MAIL_SERVER"):
        results["outbox_files"] = _writable(app.config["OUTBOX_DIR"])
    return results
