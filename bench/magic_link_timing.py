"""Does "email me a link" tell, by its timing, which addresses are customers? (target: < 0.5 ms)

Posts the form for an address with orders and for one without, alternately, through the real
app (CSRF, limiter, session, commit) on a migrated SQLite file, and prints the median time of
each and their difference. The baseline, measured in the same run, is the old way: the request
itself looked the address up and, for a customer, made the link and queued the email
(``send_magic_link`` called in the request), which is what gave customers away.

    .venv/bin/python bench/magic_link_timing.py [ROUNDS]
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
# Quiet: the portal logs every request (and Alembic every migration) at INFO; the apps built here
# read PORTAL_LOG_LEVEL when created.
os.environ["PORTAL_LOG_LEVEL"] = "WARNING"

from staff_queue import migrate  # noqa: E402

from portal import create_app  # noqa: E402
from portal.core.database import utcnow  # noqa: E402
from portal.orders import magic  # noqa: E402
from portal.orders.importing import import_orders  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 400
KNOWN, UNKNOWN = "alice.m@example.com", "nobody.at.all@example.com"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'magic.sqlite3'}"
        migrate(url)
        app = create_app(
            {
                "ENV": "testing",
                "SECRET_KEY": "bench" * 10,
                "DATABASE_URL": url,
                "UPLOAD_DIR": tmp,
                "OUTBOX_DIR": tmp,
                "RATELIMIT_ENABLED": False,
            }
        )
        from portal.web.extensions import db

        with app.app_context(), open(ROOT / "tests" / "data" / "orders.csv", encoding="utf-8", newline="") as f:
            assert import_orders(db.session(), f).ok
            db.session.commit()
        client = app.test_client()
        html = client.get("/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)

        def post(address: str) -> float:
            started = time.perf_counter()
            answer = client.post("/access-link", data={"csrf_token": token, "email": address})
            elapsed = time.perf_counter() - started
            assert answer.status_code == 302, answer.status_code
            return elapsed * 1000

        def old_way(address: str) -> float:
            # What the view did before: decide inside the request, for everyone to time.
            with app.test_request_context("/access-link", method="POST"):
                started = time.perf_counter()
                magic.send_magic_link(db.session, address, base_url="http://127.0.0.1:5000", locale="en", now=utcnow())
                db.session.commit()
                elapsed = time.perf_counter() - started
                db.session.remove()
            return elapsed * 1000

        def medians(measure) -> tuple[float, float]:
            for _ in range(20):  # warm up
                measure(KNOWN), measure(UNKNOWN)
            known, unknown = [], []
            for _ in range(ROUNDS):  # alternate, so a slow moment of the machine hits both
                known.append(measure(KNOWN))
                unknown.append(measure(UNKNOWN))
            return statistics.median(known), statistics.median(unknown)

        old_known, old_unknown = medians(old_way)
        known, unknown = medians(post)
        print(f"{ROUNDS} rounds each, alternating an address with orders and one without (SQLite)")
        print(
            f"  baseline, decided in the request: with orders {old_known:.3f} ms, without {old_unknown:.3f} ms, "
            f"difference {old_known - old_unknown:+.3f} ms"
        )
        print(
            f"  POST /access-link now:            with orders {known:.3f} ms, without {unknown:.3f} ms, "
            f"difference {known - unknown:+.3f} ms (target: |difference| < 0.5 ms)"
        )


if __name__ == "__main__":
    main()
