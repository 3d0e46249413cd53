"""PDF receipt speed and size per language (targets: median under 250 ms warm, under 2 s cold,
Chinese within 2x English, every PDF under 300 KB). The sample has everything a receipt can show:
the logo, an earlier refund, the original invoice and its tax, and Chinese in two weights.

Warm: the median of 15 receipts per language in one process, after one render to warm up.
Cold: a new Python process per language, timing its first receipt (imports and font loading
included) and the whole process. The baseline, measured in the same run, is WeasyPrint turning
a one-line HTML page into a PDF.

    .venv/bin/python bench/receipts.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Quiet: the cold-start processes below inherit it, should anything in them configure the portal's logs.
os.environ["PORTAL_LOG_LEVEL"] = "WARNING"

LOCALES = ("en", "zh", "nl")
NAMES = {"en": "Alice Moreau", "zh": "张伟", "nl": "Sanne de Vries"}
CLAUSES = {"en": "Monthly plans", "zh": "月度套餐", "nl": "Maandabonnementen"}


def sample(locale: str):
    from portal.core.money import Money
    from portal.refunds.receipts import ReceiptData, ReceiptLine

    currency = {"en": "USD", "zh": "CNY", "nl": "EUR"}[locale]
    today = datetime.now(UTC).date()  # a monthly order bought 11 days ago, refunded today
    bought = today - timedelta(days=11)
    return ReceiptData(
        number=f"RC-{today.year}-000042",
        issued=today,
        locale=locale,
        customer_name=NAMES[locale],
        customer_email="customer@example.com",
        order_number="ORD-10001",
        product={"zh": "团队工作区"}.get(locale, "Team Workspace"),
        plan="Monthly plan",
        period=(bought, bought + timedelta(days=30)),
        paid=Money.parse("29.00", currency),
        payment_reference="ch_3QaB10001",
        purchased=bought,
        amount=Money.parse("19.00", currency),
        method="Your original payment method",
        processor_reference="re_3QaB10001",
        refunded_on=today,
        request_reference="RF-7Q2M4KX9",
        clause=CLAUSES[locale],
        clause_id="monthly",
        earlier=[ReceiptLine(bought + timedelta(days=3), Money.parse("5.00", currency), "re_3QaB09999")],
        invoice_number="INV-2026-0042",
        tax=Money.parse("5.03", currency),
        tax_rate=Decimal("21"),
    )


def renderer():
    from portal.core.brand import load_brand
    from portal.core.paths import resource_dir
    from portal.refunds.receipts import ReceiptRenderer

    return ReceiptRenderer(
        resource_dir("templates") / "receipts",
        resource_dir("translations"),
        dict(load_brand()),
        logo=resource_dir("static") / "logo.png",
    )


def cold(locale: str) -> dict:
    """Runs in a new process: the imports, then the first receipt (fonts loaded on the way)."""
    started = time.perf_counter()
    import weasyprint  # noqa: F401

    r = renderer()
    imported = time.perf_counter()
    pdf = r.pdf(sample(locale))
    return {"imports": imported - started, "first": time.perf_counter() - imported, "size": len(pdf)}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--cold":
        print(json.dumps(cold(sys.argv[2])))
        return
    from weasyprint import HTML

    HTML(string="<p>Hello</p>").write_pdf()
    baseline = statistics.median(_times(lambda: HTML(string="<p>Hello</p>").write_pdf(), 15))
    r = renderer()
    warm, sizes = {}, {}
    for locale in LOCALES:
        data = sample(locale)
        sizes[locale] = len(r.pdf(data))
        warm[locale] = statistics.median(_times(lambda data=data: r.pdf(data), 15))
    print(f"baseline: a one-line page to PDF {baseline * 1000:.0f} ms (median of 15)")
    print("warm, median of 15 receipts:")
    for locale in LOCALES:
        print(
            f"  {locale}: {warm[locale] * 1000:6.0f} ms ({warm[locale] / baseline:4.1f}x baseline), "
            f"{sizes[locale] / 1024:6.1f} KB (targets: < 250 ms, < 300 KB)"
        )
    print(f"  zh / en: {warm['zh'] / warm['en']:.2f} (target <= 2)")
    print("cold, a new process per language:")
    for locale in LOCALES:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--cold", locale], capture_output=True, text=True, check=True)
        whole = time.perf_counter() - started
        first = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {locale}: imports {first['imports'] * 1000:5.0f} ms, then the first receipt "
            f"{first['first'] * 1000:5.0f} ms; the whole process {whole * 1000:5.0f} ms (target < 2000 ms)"
        )


def _times(work, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    main()
