"""The staff search at 1,000,000 refund requests (target: every search under 100 ms).

Seeds a migrated database with N requests (one order and one customer each; names, email
addresses and products varied), built inside the database (a recursive CTE on SQLite,
generate_series on PostgreSQL) so a million rows take seconds, then times ``queue_page`` with a
search — the function the console's search and the API's ``q`` call — for a name, an email, part
of an email, an order number fragment, a reference fragment, a product, a two-letter term and a
term found nowhere, in the default view of the API (all) and the console's (needs action). Each
figure is the median of 15 runs, next to a baseline measured in the same run: one request fetched
by primary key.

    .venv/bin/python bench/staff_search.py [N ...]              # default: 1000000
    PORTAL_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/staff_search.py

SQLite always; PostgreSQL too when PORTAL_BENCH_DATABASE_URL is set (its public schema is
replaced).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PORTAL_LOG_LEVEL"] = "WARNING"

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.staff_queue import databases, migrate  # noqa: E402
from portal.config import engine_options  # noqa: E402
from portal.refunds.models import RefundRequest  # noqa: E402
from portal.refunds.queue import QueueFilter, View, queue_page  # noqa: E402

SIZES = [int(a) for a in sys.argv[1:]] or [1_000_000]
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
FIRST = ["liu", "wei", "anna", "jan", "emily", "pieter", "sofia", "chen", "lucas", "mei", "noah", "eva", "li", "tom",
         "sanne", "yang", "daan", "olivia", "zhang", "bram"]  # fmt: skip
LAST = ["yang", "jansen", "clark", "de vries", "wang", "bakker", "smith", "visser", "zhou", "mulder", "brown", "huang",
        "smit", "lee", "meijer", "wu", "bos", "taylor", "xu", "peters"]  # fmt: skip
PRODUCTS = ["Team Workspace", "Photo Studio Pro", "Cloud Backup", "Invoice Desk", "Mail Shield", "Route Planner",
            "Focus Timer", "Data Lens", "Form Builder", "Chat Relay"]  # fmt: skip
# State by i % 20, roughly as a year of requests settles: most closed, a third open.
STATES = ["refunded"] * 8 + ["declined"] * 3 + ["withdrawn", "resolved_with_offer"] + ["received"] * 3
STATES += ["in_review", "in_review", "awaiting_customer", "approved"]


def _case(column: str, values: list[str], index: str) -> str:
    return f"(CASE {index} " + " ".join(f"WHEN {n} THEN '{v}'" for n, v in enumerate(values)) + f" END) AS {column}"


def seed(engine, n: int) -> None:
    postgresql = engine.dialect.name == "postgresql"
    series = (
        f"SELECT i FROM generate_series(1, {n}) AS i"
        if postgresql
        else f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s"
    )
    first, last = _case("first", FIRST, "i % 20"), _case("last", LAST, "(i / 20) % 20")
    people = f"SELECT i, {first}, {last} FROM ({series}) AS n"
    stamp = "now() - (i || ' minutes')::interval" if postgresql else "datetime('now', '-' || (i / 2) || ' minutes')"
    waiting = f"CASE WHEN (i / 7) % 20 IN (13, 14, 15, 16, 17, 19) THEN {stamp} END"
    with engine.begin() as conn:
        # The search index is filled once at the end rather than by its trigger row by row.
        if postgresql:
            conn.execute(text("ALTER TABLE refund_request DISABLE TRIGGER request_search_request"))
            conn.execute(text("DROP INDEX ix_request_search_trgm"))
        else:
            trigger = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'request_search_insert'"))
            conn.execute(text("DROP TRIGGER request_search_insert"))
        conn.execute(
            text(
                "INSERT INTO customer (id, email, email_normalized, name, locale, created_at) "
                f"SELECT i, first || '.' || replace(last, ' ', '') || i || '@example.com', "
                f"first || '.' || replace(last, ' ', '') || i || '@example.com', "
                f"upper(substr(first, 1, 1)) || substr(first, 2) || ' ' || last, 'en', {stamp} FROM ({people}) AS p"
            )
        )
        product = _case("product", PRODUCTS, "i % 10")
        conn.execute(
            text(
                'INSERT INTO "order" (id, order_number, customer_id, product, plan, amount_minor, currency, '
                "purchased_at, payment_reference, channel, payment_status, created_at, updated_at) "
                f"SELECT i, 'ORD-' || lpad_i, i, product, 'monthly', 2900, 'USD', {stamp}, 'ch_' || i, 'web', "
                f"'paid', {stamp}, {stamp} FROM (SELECT i, {product}, "
                + ("lpad(i::text, 8, '0') AS lpad_i" if postgresql else "substr('0000000' || i, -8) AS lpad_i")
                + f" FROM ({series}) AS n) AS o"
            )
        )
        state = _case("state", STATES, "(i / 7) % 20")
        conn.execute(
            text(
                "INSERT INTO refund_request (id, reference, order_id, state, channel, reason, details, currency, "
                "amount_requested_minor, locale, review_requested, tracking_token_hash, processing_attempt, "
                "awaiting_staff_since, sla_clock_at, created_at, updated_at) "
                f"SELECT i, 'RF-' || lpad_i, i, state, 'web', 'other', '', 'USD', 2900, 'en', false, "
                f"'t' || i, 1, {waiting}, {stamp}, {stamp}, {stamp} FROM (SELECT i, {state}, "
                + ("lpad(i::text, 8, '0') AS lpad_i" if postgresql else "substr('0000000' || i, -8) AS lpad_i")
                + f" FROM ({series}) AS n) AS r"
            )
        )
        conn.execute(
            text(
                f"INSERT INTO request_search ({'request_id' if postgresql else 'rowid'}, body) SELECT r.id, "
                "lower(r.reference || ' ' || o.order_number || ' ' || o.product || ' ' || c.name || ' ' || c.email) "
                'FROM refund_request r JOIN "order" o ON o.id = r.order_id JOIN customer c ON c.id = o.customer_id'
            )
        )
        if not postgresql:
            conn.execute(text(trigger))
        if postgresql:
            conn.execute(text("SET maintenance_work_mem = '256MB'"))
            conn.execute(text("CREATE INDEX ix_request_search_trgm ON request_search USING gin (body gin_trgm_ops)"))
            conn.execute(text("ALTER TABLE refund_request ENABLE TRIGGER request_search_request"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def median_ms(work, runs: int = 15) -> float:
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def searches(n: int) -> dict[str, str]:
    # A customer in the middle named Liu Yang (first name by i % 20, last name by i / 20 % 20).
    i = n // 2 - (n // 2) % 400
    return {
        "a name (liu yang)": "Liu Yang",
        "an email address": f"liu.yang{i}@example.com",
        "part of an email": f"liu.yang{i // 10}",
        "an order number fragment": f"ord-{i // 10:07d}",
        "a reference fragment": f"rf-{i // 1000:05d}",
        "a product (photo studio)": "Photo Studio",
        "two letters (li)": "li",
        "found nowhere": "xyzzy",
    }


def measure(url: str, n: int) -> None:
    migrate(url)
    engine = create_engine(url, **engine_options(url))
    started = time.perf_counter()
    seed(engine, n)
    seeded = time.perf_counter() - started
    with Session(engine) as session:
        baseline = median_ms(lambda: session.get(RefundRequest, n // 2, populate_existing=True))
        print(
            f"{engine.dialect.name}, {n:,} requests (seeded in {seeded:.1f} s); baseline: one request by primary "
            f"key {baseline:.2f} ms"
        )
        worst = 0.0
        for view in (View.ALL, View.NEEDS_ACTION):
            for label, term in searches(n).items():
                f = QueueFilter(search=term, view=view)
                ms = median_ms(lambda f=f: queue_page(session, f, now=NOW))
                worst = max(worst, ms)
                found = len(queue_page(session, f, now=NOW).rows)
                print(
                    f"  {view.value:<13} {label:<26} {term:<28} {ms:7.2f} ms  ({ms / baseline:6.1f}x baseline, {found} rows)"
                )
        print(f"  slowest search {worst:.2f} ms (target < 100 ms)")
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            for url in databases(Path(tmp), f"search-{n}"):
                # PORTAL_BENCH_ONLY=postgresql measures PostgreSQL alone (SQLite's seeding takes minutes).
                if os.environ.get("PORTAL_BENCH_ONLY", url.split(":")[0]) in url:
                    measure(url, n)


if __name__ == "__main__":
    main()
