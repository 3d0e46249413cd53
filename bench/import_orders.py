"""How long `portal orders import` takes for 100,000 rows (target: under 15 s).

Prints the whole import (validate + upsert + commit) on SQLite, and on PostgreSQL when
PORTAL_BENCH_DATABASE_URL is set, next to a baseline measured in the same run: reading the
same file with the csv module alone. Then a second import of the same file (all unchanged).

    .venv/bin/python bench/import_orders.py [ROWS]
"""

from __future__ import annotations

import csv
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

import portal.app  # noqa: F401  (imports every feature's models: create_all needs every table)
from portal.config import engine_options, normalize_database_url
from portal.core.database import Base
from portal.orders.importing import import_orders
from portal.orders.validation import COLUMNS

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def write_orders(path: Path, rows: int) -> None:
    rng = random.Random(7)
    # Purchases spread over the 417 days up to 3 days before the bench runs.
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=420)
    plans = [
        ("monthly", "29.00", "USD"),
        ("annual", "588.00", "USD"),
        ("one-time", "15.00", "EUR"),
        ("monthly", "4300", "JPY"),
        ("annual", "3999.00", "CNY"),
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(rows):
            plan, amount, currency = plans[i % len(plans)]
            bought = start + timedelta(minutes=rng.randrange(0, 600_000))
            period = (
                ("", "")
                if plan == "one-time"
                else (
                    bought.date().isoformat(),
                    (bought + timedelta(days=30 if plan == "monthly" else 365)).date().isoformat(),
                )
            )
            affiliate = ("partnerhub", "1.00") if i % 7 == 0 and currency != "JPY" else ("", "")
            writer.writerow(
                [
                    f"B-{i:07d}",
                    f"customer{i // 3}@example.com",
                    f"Customer {i // 3}",
                    ("en", "zh", "nl")[i % 3],
                    "Team Workspace",
                    plan,
                    amount,
                    currency,
                    bought.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    *period,
                    f"ch_{i:010d}",
                    "reseller" if i % 11 == 0 else "web",
                    *affiliate,
                ]
            )


def fresh_engine(url: str):
    url = normalize_database_url(url)
    engine = create_engine(url, **engine_options(url))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    Base.metadata.create_all(engine)
    return engine


def timed_import(engine, path: Path):
    with Session(engine) as session, open(path, encoding="utf-8", newline="") as f:
        started = time.perf_counter()
        result = import_orders(session, f)
        session.commit()  # the import runs in the caller's transaction
        elapsed = time.perf_counter() - started
    assert result.ok, result.errors[:3]
    return elapsed, result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        write_orders(path, ROWS)
        started = time.perf_counter()
        with open(path, encoding="utf-8", newline="") as f:
            sum(1 for _ in csv.DictReader(f))
        baseline = time.perf_counter() - started
        print(f"rows: {ROWS}")
        print(f"baseline (csv.DictReader only): {baseline:.2f} s")
        targets = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3"}
        if os.environ.get("PORTAL_BENCH_DATABASE_URL"):
            targets["postgresql"] = os.environ["PORTAL_BENCH_DATABASE_URL"]
        for name, url in targets.items():
            engine = fresh_engine(url)
            first, result = timed_import(engine, path)
            second, again = timed_import(engine, path)
            engine.dispose()
            print(
                f"{name}: first import {first:.2f} s ({result.created} created, "
                f"{ROWS / first:,.0f} rows/s, {first / baseline:.1f}x baseline); "
                f"second import {second:.2f} s ({again.unchanged} unchanged); target < 15 s: "
                f"{'met' if first < 15 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
