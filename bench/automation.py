"""Automation at scale: the runner over 100,000 filed requests (target: under 10 s) and the
simulation over a year of 1,000,000 requests (target: under 60 s).

The data is built relative to the moment the bench runs: the 100,000 requests were filed in the
last hour, the million over the last 365 days, a quarter of them for plans or reasons no rule
covers, some with failed lookups or earlier refunds to the customer, as staff left them (refunded,
declined, approved for less, withdrawn, still open). Each figure is printed against a baseline
measured in the same run on the same database: reading the very rows the work reads (one query,
every row fetched), which is the least any pass over them can cost.

    .venv/bin/python bench/automation.py [RUNNER_N SIMULATION_N]
    PORTAL_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python bench/automation.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import create_engine, delete, func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from staff_queue import databases, migrate  # noqa: E402

from portal.config import engine_options  # noqa: E402
from portal.core.database import bulk_insert  # noqa: E402
from portal.orders.models import Customer, LookupFailure, Order  # noqa: E402
from portal.policy.automation import load_automation  # noqa: E402
from portal.refunds.automation.models import AutomationAction  # noqa: E402
from portal.refunds.automation.runner import _columns, queue_new  # noqa: E402
from portal.refunds.automation.simulation import simulate  # noqa: E402
from portal.refunds.models import Refund, RefundRequest  # noqa: E402

RUNNER_N, SIMULATION_N = (
    ([int(a) for a in sys.argv[1:3]] + [100_000, 1_000_000])[:2] if len(sys.argv) > 2 else (100_000, 1_000_000)
)
TARGETS = {"runner": 10.0, "simulation": 60.0}
REASONS = ["no_longer_needed", "technical_problem", "not_as_expected", "billing_error", "other"]
CLOSED = ("refunded", "declined", "withdrawn", "resolved_with_offer")


def snapshot(amount_minor: int, outcome: str, filed: datetime, purchased: datetime) -> dict:
    amount = f"{amount_minor // 100}.{amount_minor % 100:02d}"
    money = {"amount": amount, "currency": "USD"}
    return {
        "outcome": outcome,
        "amount": money if outcome in ("full", "prorated") else {"amount": "0.00", "currency": "USD"},
        "documents_required": False,
        "clauses": ["monthly"],
        "basis": "within_full_window",
        "policy_version": "2025-01",
        "as_of": filed.isoformat(),
        "facts": {
            "paid": money,
            "refunded_before": {"amount": "0.00", "currency": "USD"},
            "remaining": money,
            "days_since_purchase": (filed - purchased).days,
            "window_days": 14,
            "window_end": (purchased + timedelta(days=14)).isoformat(),
            "prorated_until_days": None,
        },
    }


def seed(engine, n: int, *, now: datetime, span: timedelta, settled: bool) -> None:
    """``n`` requests filed evenly over ``span`` before ``now``; ``settled``: as staff left them."""
    rng = random.Random(22)
    start = now - span
    customers, orders, requests, refunds, failures = [], [], [], [], []
    for i in range(n // 3 + 1):
        email = f"customer{i}@example.com"
        customers.append(
            {
                "id": i + 1,
                "email": email,
                "email_normalized": email,
                "name": f"Customer {i}",
                "locale": ("en", "zh", "nl")[i % 3],
                "created_at": start - timedelta(days=30),
            }
        )
    for i in range(n):
        filed = start + timedelta(seconds=i * span.total_seconds() / n)
        purchased = filed - timedelta(days=rng.randrange(0, 20), hours=1)
        plan = ("monthly", "monthly", "monthly", "annual")[i % 4]
        outcome = "full" if (filed - purchased).days < 14 else ("review" if i % 2 else "refused")
        amount = (2900, 1900, 4900, 9900)[i % 4]
        state = "received"
        approved = None
        if settled and filed < now - timedelta(days=3):
            state = rng.choice(("refunded",) * 5 + ("declined",) * 2 + CLOSED[2:] + ("refunded",))
            approved = (amount if rng.random() < 0.9 else amount // 2) if state == "refunded" else None
        orders.append(
            {
                "id": i + 1,
                "order_number": f"ORD-{i + 1:08d}",
                "customer_id": i // 3 + 1,
                "product": "Team Workspace",
                "plan": plan,
                "amount_minor": amount,
                "currency": "USD",
                "purchased_at": purchased,
                "payment_reference": f"ch_{i}",
                "channel": ("web", "web", "web", "reseller")[i % 4],
                "payment_status": "paid",
                "created_at": purchased,
                "updated_at": purchased,
            }
        )
        requests.append(
            {
                "id": i + 1,
                "reference": f"RF-{i + 1:08d}",
                "order_id": i + 1,
                "state": state,
                "channel": orders[-1]["channel"],
                "reason": REASONS[rng.randrange(5)],
                "details": "",
                "currency": "USD",
                "amount_requested_minor": amount,
                "locale": "en",
                "review_requested": outcome == "review",
                "tracking_token_hash": f"{i:064d}",
                "processing_attempt": 1,
                "policy_version": "2025-01",
                "decision_snapshot": snapshot(amount, outcome, filed, purchased),
                "awaiting_staff_since": filed if state == "received" else None,
                "created_at": filed,
                "updated_at": filed,
                "amount_approved_minor": approved,
                "resolved_at": filed + timedelta(days=1) if state in CLOSED else None,
            }
        )
        if state == "refunded":
            refunds.append(
                {
                    "refund_request_id": i + 1,
                    "order_id": i + 1,
                    "gateway": "manual",
                    "status": "succeeded",
                    "amount_minor": approved,
                    "currency": "USD",
                    "attempt": 1,
                    "idempotency_key": f"k{i}",
                    "processor_reference": f"re_{i}",
                    "processor_message": "",
                    "fee_kept_minor": 0,
                    "commission_clawback_minor": 0,
                    "created_at": filed,
                    "completed_at": filed + timedelta(days=1),
                }
            )
        if i % 50 == 0:
            failures.append({"order_number": f"ORD-{i + 1:08d}", "client_hash": "0" * 64, "created_at": filed})
    with Session(engine) as session:  # COPY on PostgreSQL, as the runner writes its actions
        for table, data in (
            (Customer.__table__, customers),
            (Order.__table__, orders),
            (RefundRequest.__table__, requests),
            (Refund.__table__, refunds),
            (LookupFailure.__table__, failures),
        ):
            for chunk in range(0, len(data), 20_000):
                bulk_insert(session, table, data[chunk : chunk + 20_000])
        session.commit()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def baseline(engine, since: datetime) -> float:
    """Read the rows the work reads: the requests with their orders, every row fetched."""
    with Session(engine) as session:
        started = time.perf_counter()
        session.execute(
            select(*_columns()).join(Order, RefundRequest.order_id == Order.id).where(RefundRequest.created_at >= since)
        ).all()
        return time.perf_counter() - started


def report(name: str, n: int, seconds: float, base: float, url: str, detail: str) -> None:
    verdict = "OK" if seconds < TARGETS[name] else "OVER TARGET"
    print(
        f"{name:<10} {n:>9,} requests on {url.split(':')[0]:<10} {seconds:7.2f} s "
        f"(target {TARGETS[name]:.0f} s: {verdict}); baseline, reading the rows: {base:6.2f} s "
        f"({seconds / base:4.1f}x); {detail}",
        flush=True,
    )


def run_runner(url: str, now: datetime, rules) -> None:
    migrate(url)
    engine = create_engine(url, **engine_options(url))
    seed(engine, RUNNER_N, now=now, span=timedelta(hours=1), settled=False)
    base = baseline(engine, now - timedelta(hours=1))
    with Session(engine) as session:
        started = time.perf_counter()
        counts = queue_new(session, rules, now=now, delay=timedelta(minutes=60))
        session.commit()
        seconds = time.perf_counter() - started
        stored = session.scalar(select(func.count()).select_from(AutomationAction))
        session.execute(delete(AutomationAction))
        session.commit()
    assert stored == RUNNER_N, stored
    report(
        "runner", RUNNER_N, seconds, base, url, f"{counts.queued:,} queued, {counts.left_for_staff:,} left for staff"
    )
    engine.dispose()


def run_simulation(url: str, now: datetime, rules) -> None:
    migrate(url)
    engine = create_engine(url, **engine_options(url))
    seed(engine, SIMULATION_N, now=now, span=timedelta(days=365), settled=True)
    since = now - timedelta(days=365)
    base = baseline(engine, since)
    with Session(engine) as session:
        started = time.perf_counter()
        result = simulate(session, rules, since=since)
        seconds = time.perf_counter() - started
    money = ", ".join(f"{m.amount} {m.currency}" for m in result.money())
    report(
        "simulation",
        result.requests,
        seconds,
        base,
        url,
        f"{result.automated:,} would be automated ({money}), {result.false_positives:,} false positives",
    )
    engine.dispose()


def main() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # The shipped rules, made to apply from a year before today whatever day the bench runs.
    shipped = load_automation()
    rules = type(shipped)(
        tuple(v.model_copy(update={"effective_from": now - timedelta(days=400)}) for v in shipped.versions[-1:]),
        shipped.source,
        shipped.text,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for url in databases(Path(tmp), "automation-runner"):
            run_runner(url, now, rules)
        for url in databases(Path(tmp), "automation-simulation"):
            run_simulation(url, now, rules)


if __name__ == "__main__":
    main()
