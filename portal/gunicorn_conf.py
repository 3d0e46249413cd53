"""gunicorn's settings for the portal, from the environment:

    gunicorn -c python:portal.gunicorn_conf portal.wsgi:app

| variable | default | |
|---|---|---|
| ``GUNICORN_BIND`` | ``127.0.0.1:8000`` | where to listen (the TLS proxy talks to it) |
| ``GUNICORN_WORKERS`` | 2 × cores + 1 | processes |
| ``GUNICORN_THREADS`` | 4 | threads per process (gthread worker) |
| ``GUNICORN_TIMEOUT`` | 60 | seconds a request may take before its worker is restarted |
| ``GUNICORN_GRACEFUL_TIMEOUT`` | 30 | seconds to finish requests in flight on SIGTERM or a reload |
| ``GUNICORN_KEEPALIVE`` | 5 | seconds an idle keep-alive connection from the proxy stays open |
| ``GUNICORN_MAX_REQUESTS`` | 2000 | requests before a worker is replaced (0: never) |

Logs: gunicorn's access log is off, because the app writes its own line per request (with the
request id, route and staff id); gunicorn's own lines (start, worker exits, timeouts) go
through the portal's formatter, so they are JSON too in production.

Metrics: with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment (it must be set before Python
starts: in the systemd unit, not here), the folder is emptied when gunicorn starts and a dead
worker's live figures are dropped, as prometheus_client's multiprocess mode requires.
"""

from __future__ import annotations

import multiprocessing as _multiprocessing
import os as _os
from pathlib import Path as _Path


def _setting(name: str, default):
    value = _os.environ.get(f"GUNICORN_{name}")
    return type(default)(value) if value not in (None, "") else default


bind = _setting("BIND", "127.0.0.1:8000")
workers = _setting("WORKERS", _multiprocessing.cpu_count() * 2 + 1)
threads = _setting("THREADS", 4)
timeout = _setting("TIMEOUT", 60)
graceful_timeout = _setting("GRACEFUL_TIMEOUT", 30)
keepalive = _setting("KEEPALIVE", 5)
max_requests = _setting("MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
# The heartbeat file on a RAM disk where there is one: a slow disk must not look like a hung worker.
worker_tmp_dir = "/dev/shm" if _os.path.isdir("/dev/shm") else None

accesslog = None  # the app logs each request itself (portal.web.telemetry)
errorlog = "-"
loglevel = _os.environ.get("PORTAL_LOG_LEVEL", "info").lower()
# gunicorn's loggers hand their lines to the root logger, which on_starting gives the portal's
# formatter (and every worker inherits).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}


def _log_format() -> str:
    fmt = _os.environ.get("PORTAL_LOG_FORMAT")
    if fmt:
        return fmt
    return "json" if _os.environ.get("PORTAL_ENV") == "production" else "console"


def on_starting(server) -> None:
    from portal.core import logs

    logs.configure(_log_format(), loglevel.upper())
    folder = _os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        path = _Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # figures of a previous run
            stale.unlink()
    elif _os.environ.get("PORTAL_METRICS_TOKEN") and server.cfg.workers > 1:
        server.log.warning(
            "PORTAL_METRICS_TOKEN is set but PROMETHEUS_MULTIPROC_DIR is not: each scrape "
            "will see one worker's figures only"
        )


def child_exit(server, worker) -> None:
    if _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
