"""The staff queue with 10,000 and 1,000,000 refund requests (target: every page under 50 ms).

Seeds a migrated database with N requests (one order each, spread over states, reasons,
languages and channels, a tenth of them waiting on staff for over a day), then times
``queue_page`` — the function the queue page calls — for the first page, each filter, a
search, and a page deep in the list reached by its cursor. Each figure is the median of 25
runs, next to a baseline measured in the same run: one request fetched by primary key.

    .venv/bin/python bench/staff_queue.py [N ...]              # default: 10000 1000000
    PORTAL_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/staff_queue.py

SQLite always; PostgreSQL too when PORTAL_BENCH_DATABASE_URL is set (its public schema is
replaced).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Quiet: the portal logs every request (and Alembic every migration) at INFO; the apps built here
# read PORTAL_LOG_LEVEL when created.
os.environ["PORTAL_LOG_LEVEL"] = "WARNING"

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal import create_app  # noqa: E402
from portal.config import engine_options, normalize_database_url  # noqa: E402
from portal.core.vocabulary import Channel, Reason, RequestState  # noqa: E402
from portal.orders.models import Customer, Order  # noqa: E402
from portal.refunds.models import RefundRequest, RequestStateCount  # noqa: E402
from portal.refunds.queue import QueueFilter, queue_page  # noqa: E402

SIZES = [int(a) for a in sys.argv[1:]] or [10_000, 1_000_000]
# The requests are laid out back from the hour the bench runs, so the figures mean the same on any date.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
STATES = (
    [RequestState.REFUNDED] * 5
    + [RequestState.DECLINED] * 2
    + [
        RequestState.RECEIVED,
        RequestState.IN_REVIEW,
        RequestState.AWAITING_CUSTOMER,
        RequestState.APPROVED,
        RequestState.WITHDRAWN,
        RequestState.RESOLVED_WITH_OFFER,
        RequestState.REFUND_FAILED,
    ]
)
OPEN = {RequestState.RECEIVED, RequestState.IN_REVIEW, RequestState.APPROVED, RequestState.REFUND_FAILED}


def migrate(url: str) -> None:
    engine = create_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app({"ENV": "testing", "SECRET_KEY": "bench" * 10, "DATABASE_URL": url})
    with app.app_context():
        upgrade()
        from portal.web.extensions import db

        db.engine.dispose()


def rows(n: int):
    rng = random.Random(42)
    start = NOW - timedelta(days=400)
    customers, orders, requests = [], [], []
    for i in range(n // 4 + 1):
        email = f"customer{i}@example.com"
        customers.append(
            {
                "id": i + 1,
                "email": email,
                "email_normalized": email,
                "name": f"Customer {i}",
                "locale": ("en", "zh", "nl")[i % 3],
                "created_at": start,
            }
        )
    for i in range(n):
        created = start + timedelta(seconds=i * (400 * 86400 // n))
        state = STATES[rng.randrange(len(STATES))]
        if created > NOW - timedelta(days=3) and state not in OPEN:
            state = RequestState.RECEIVED
        waiting = created if state in (RequestState.RECEIVED, RequestState.IN_REVIEW) else None
        acted = created + timedelta(hours=rng.randrange(1, 48)) if state is not RequestState.RECEIVED else None
        closed = state in (
            RequestState.REFUNDED,
            RequestState.DECLINED,
            RequestState.WITHDRAWN,
            RequestState.RESOLVED_WITH_OFFER,
        )
        orders.append(
            {
                "id": i + 1,
                "order_number": f"ORD-{i + 1:08d}",
                "customer_id": i // 4 + 1,
                "product": "Team Workspace",
                "plan": "monthly",
                "amount_minor": 2900,
                "currency": "USD",
                "purchased_at": created - timedelta(days=3),
                "payment_reference": f"ch_{i}",
                "channel": (Channel.WEB, Channel.WEB, Channel.WEB, Channel.RESELLER)[i % 4].value,
                "payment_status": "paid",
                "created_at": created,
                "updated_at": created,
            }
        )
        requests.append(
            {
                "id": i + 1,
                "reference": f"RF-{i + 1:08d}",
                "order_id": i + 1,
                "state": state.value,
                "channel": orders[-1]["channel"],
                "reason": list(Reason)[rng.randrange(5)].value,
                "details": "",
                "currency": "USD",
                "amount_requested_minor": 2900,
                "locale": ("en", "zh", "nl")[i % 3],
                "review_requested": False,
                "tracking_token_hash": f"{i:064d}",
                "processing_attempt": 1,
                "awaiting_staff_since": waiting,
                "created_at": created,
                "updated_at": created,
                "acknowledged_at": created + timedelta(seconds=rng.randrange(2, 90)),
                "first_staff_action_at": acted,
                "resolved_at": acted + timedelta(hours=rng.randrange(1, 72)) if closed else None,
                "amount_approved_minor": 2900 if state is RequestState.REFUNDED else None,
            }
        )
    return customers, orders, requests


def seed(engine, n: int) -> None:
    customers, orders, requests = rows(n)
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                for table, data in (("customer", customers), ('"order"', orders), ("refund_request", requests)):
                    columns = list(data[0])
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in data:
                            copy.write_row(
                                [v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row.values()]
                            )
            raw.commit()
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            for table, data in (
                (Customer.__table__, customers),
                (Order.__table__, orders),
                (RefundRequest.__table__, requests),
            ):
                for chunk in range(0, len(data), 50_000):
                    conn.execute(insert(table), data[chunk : chunk + 50_000])
    with engine.begin() as conn:
        counts = conn.execute(select(RefundRequest.state, func.count()).group_by(RefundRequest.state)).all()
        conn.execute(RequestStateCount.__table__.delete())
        conn.execute(insert(RequestStateCount.__table__), [{"state": state, "count": count} for state, count in counts])
        conn.execute(text("ANALYZE"))


def median_ms(work, runs: int = 25) -> float:
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(url: str, n: int) -> None:
    migrate(url)
    engine = create_engine(url, **engine_options(url))
    started = time.perf_counter()
    seed(engine, n)
    seeded = time.perf_counter() - started
    with Session(engine) as session:
        deep = None
        page = queue_page(session, QueueFilter(), now=NOW)
        for _ in range(200):  # walk 200 pages in to get a cursor from deep in the list
            deep = page.next_cursor
            page = queue_page(session, QueueFilter(), now=NOW, cursor=deep)
        cases = {
            "first page": (QueueFilter(), None),
            "state = received": (QueueFilter(state=RequestState.RECEIVED), None),
            "reason = billing error": (QueueFilter(reason=Reason.BILLING_ERROR), None),
            "language = zh": (QueueFilter(locale="zh"), None),
            "channel = reseller": (QueueFilter(channel=Channel.RESELLER), None),
            "overdue": (QueueFilter(overdue=True), None),
            "state + reason + language": (
                QueueFilter(state=RequestState.IN_REVIEW, reason=Reason.OTHER, locale="nl"),
                None,
            ),
            "search by email": (QueueFilter(search="customer1234@example.com"), None),
            "search by order number": (QueueFilter(search=f"ord-{n // 2:08d}"), None),
            "page 201 by cursor": (QueueFilter(), deep),
        }
        baseline = median_ms(lambda: session.get(RefundRequest, n // 2, populate_existing=True))
        dialect = engine.dialect.name
        print(
            f"{dialect}, {n:,} requests (seeded in {seeded:.1f} s); baseline: one request by primary key "
            f"{baseline:.2f} ms"
        )
        worst = 0.0
        for label, (f, cursor) in cases.items():
            ms = median_ms(lambda f=f, cursor=cursor: queue_page(session, f, now=NOW, cursor=cursor))
            worst = max(worst, ms)
            rows_found = len(queue_page(session, f, now=NOW, cursor=cursor).rows)
            print(f"  {label:<28} {ms:7.2f} ms  ({ms / baseline:5.1f}x baseline, {rows_found} rows)")
        print(f"  slowest page {worst:.2f} ms (target < 50 ms)")
    engine.dispose()


def databases(folder: Path, name: str):
    """Where a bench measures: a SQLite file in ``folder``, then PostgreSQL when
    PORTAL_BENCH_DATABASE_URL names one."""
    yield f"sqlite:///{folder / f'{name}.sqlite3'}"
    pg = os.environ.get("PORTAL_BENCH_DATABASE_URL")
    if pg:
        yield normalize_database_url(pg)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            for url in databases(Path(tmp), f"queue-{n}"):
                measure(url, n)


if __name__ == "__main__":
    main()
