"""The insights page with 10,000 and 1,000,000 refund requests (target: under 300 ms).

Seeds the same data as bench/staff_queue.py, plus a refund for every refunded request and
feedback from a third of those customers, counts the daily rollups once (the app keeps them in
step as it goes; the seeding bypasses it), then times GET /staff/insights (the default 90 days:
every aggregate, the chart and the template) for a signed-in agent, median of 5. The baseline,
measured in the same run, is GET /healthz, a page that asks the database one question.

    .venv/bin/python bench/insights.py [N ...]
    PORTAL_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/insights.py
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
# Quiet: the portal logs every request (and Alembic every migration) at INFO; the apps built here
# read PORTAL_LOG_LEVEL when created.
os.environ["PORTAL_LOG_LEVEL"] = "WARNING"

import time_machine  # noqa: E402
from sqlalchemy import create_engine, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from staff_queue import NOW, databases, migrate, seed  # noqa: E402

from portal import create_app  # noqa: E402
from portal.accounts.staff import create_staff  # noqa: E402
from portal.config import engine_options  # noqa: E402
from portal.core.vocabulary import StaffRole  # noqa: E402
from portal.insights import rollups  # noqa: E402
from portal.refunds.models import Feedback, Refund, RefundRequest  # noqa: E402

SIZES = [int(a) for a in sys.argv[1:]] or [10_000, 1_000_000]


def seed_more(engine) -> None:
    with engine.begin() as conn:
        refunded = conn.execute(
            select(RefundRequest.id, RefundRequest.order_id, RefundRequest.resolved_at, RefundRequest.locale).where(
                RefundRequest.state == "refunded"
            )
        ).all()
        refunds = [
            {
                "refund_request_id": rid,
                "order_id": oid,
                "gateway": "manual",
                "status": "succeeded",
                "amount_minor": 2900,
                "currency": "USD",
                "attempt": 1,
                "idempotency_key": f"k{rid}",
                "processor_reference": f"re_{rid}",
                "processor_message": "",
                "fee_kept_minor": 114,
                "commission_clawback_minor": 0,
                "created_at": done,
                "completed_at": done,
            }
            for rid, oid, done, _ in refunded
        ]
        feedback = [
            {
                "refund_request_id": rid,
                "rating": 1 + rid % 5,
                "comment": "Quick and kind" if rid % 7 else "",
                "come_back": ("yes", "maybe", "no")[rid % 3],
                "locale": locale,
                "created_at": done + timedelta(hours=5),
            }
            for rid, _, done, locale in refunded
            if rid % 3 == 0
        ]
        for table, data in ((Refund.__table__, refunds), (Feedback.__table__, feedback)):
            for chunk in range(0, len(data), 50_000):
                conn.execute(insert(table), data[chunk : chunk + 50_000])
        conn.execute(text("ANALYZE"))


def median_ms(client, url: str, runs: int = 5) -> float:
    client.get(url)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times)


def measure(url: str, n: int) -> None:
    migrate(url)
    engine = create_engine(url, **engine_options(url))
    started = time.perf_counter()
    seed(engine, n)
    seed_more(engine)
    with Session(engine) as session:  # the rows came in bypassing the app: count the rollups once
        rollups.rebuild(session)
        session.commit()
    if engine.dialect.name == "postgresql":  # what autovacuum does in a running system
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    seeded = time.perf_counter() - started
    engine.dispose()
    app = create_app({"ENV": "testing", "SECRET_KEY": "bench" * 10, "DATABASE_URL": url, "WTF_CSRF_ENABLED": False})
    with time_machine.travel(NOW, tick=True):  # the hour staff_queue laid the requests out from
        with app.app_context():
            from portal.web.extensions import db

            create_staff(db.session, "bench@example.com", StaffRole.AGENT, "bench-password-long")
            db.session.commit()  # services only flush; the caller commits
        client = app.test_client()
        signed_in = client.post("/staff/login", data={"email": "bench@example.com", "password": "bench-password-long"})
        assert signed_in.status_code == 302, f"the agent could not sign in ({signed_in.status_code})"
        baseline = median_ms(client, "/healthz")
        page = median_ms(client, "/staff/insights")
        html = client.get("/staff/insights").get_data(as_text=True)
    weeks = len(re.findall(r"<rect x=", html))
    print(f"{engine.dialect.name}, {n:,} requests (seeded in {seeded:.1f} s)")
    print(f"  baseline GET /healthz            {baseline:8.1f} ms")
    print(
        f"  GET /staff/insights (90 days)   {page:8.1f} ms ({page / baseline:.0f}x baseline; target < 300 ms; "
        f"{weeks} bars drawn)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            for url in databases(Path(tmp), f"insights-{n}"):
                measure(url, n)


if __name__ == "__main__":
    main()
