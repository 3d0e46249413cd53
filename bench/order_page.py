"""The order page under gunicorn against a bare Flask page, and the memory a 10 MB upload costs.

1. Requests per second of the order page (session lookup + policy decision + render) served by
   gunicorn with 2 sync workers, next to a bare Flask app rendering a one-line template under
   the same gunicorn settings, both measured in this run with wrk on 127.0.0.1. A second, stricter
   baseline renders the line from a template compiled once (the first recompiles its string).
   Target: the order page reaches at least half the bare page's rate. Also printed: the CPU one
   worker spends per request on each page, which varies less from run to run.
2. The peak resident memory (VmHWM) of a warmed gunicorn worker while it receives a refund request
   with a 10 MB PDF, against its resident size just before (the peak is reset to it first: the
   worker's start leaves a higher peak that would hide the upload). Target: it grows by less than
   20 MB (the upload is streamed to disk).

    .venv/bin/python bench/order_page.py [SECONDS] [ROUNDS]

The pages are measured in alternating rounds (3 by default; the bare page first in odd rounds,
the order page first in even ones); the median and the lowest ratio are printed, since a two-core
machine's speed drifts from one ten-second pass to the next.

The sample orders of tests/data/orders.csv are imported with their dates moved by whole days
from the day they describe (SAMPLE_DAY) to the day the bench runs, so the order keeps its age, and
its prorated decision, on any date.

The portal writes a log line per request; the bench runs it, and every gunicorn it starts, at
PORTAL_LOG_LEVEL=WARNING so that only its figures are printed (and no page pays for its line).

Needs wrk (Debian package; `make bench` installs it).
"""

from __future__ import annotations

import csv
import http.cookiejar
import io
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Quiet: the portal logs every request at INFO. Set before create_app reads PORTAL_* variables, and
# inherited by every gunicorn started below.
os.environ["PORTAL_LOG_LEVEL"] = "WARNING"

from flask_migrate import upgrade  # noqa: E402
from pypdf import PdfWriter  # noqa: E402
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject  # noqa: E402

from portal import create_app  # noqa: E402
from portal.orders.importing import import_orders  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ORDER = ("ORD-10003", "bob.tanaka@example.org")  # an annual order: a prorated decision, the costliest
SECRET = "bench-secret-key-" + "x" * 32
# The day tests/data/orders.csv describes (the suite freezes its clock there): ORD-10003 was bought
# 82 days before it, between the annual plan's 30-day full refund and its 90-day prorated window.
SAMPLE_DAY = date(2026, 11, 22)
DATE_COLUMNS = ("purchased_at", "period_start", "period_end")
PORTAL_APP = "portal.wsgi:app"
BARE_APP = "_bare_app:app"  # in bench/, loaded with --pythonpath


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_orders_as_of(today: date, target: Path) -> Path:
    """Copy the sample orders to ``target`` with every date moved from SAMPLE_DAY to ``today``."""
    shift = timedelta(days=(today - SAMPLE_DAY).days)
    with open(ROOT / "tests" / "data" / "orders.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for column in DATE_COLUMNS:
            if not row[column]:
                continue
            if "T" in row[column]:
                moved = datetime.strptime(row[column], "%Y-%m-%dT%H:%M:%SZ") + shift
                row[column] = moved.strftime("%Y-%m-%dT%H:%M:%SZ")
            else:
                row[column] = (date.fromisoformat(row[column]) + shift).isoformat()
    with open(target, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def prepare(folder: Path) -> dict:
    env = {
        **os.environ,
        "PORTAL_ENV": "development",
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
        "PORTAL_UPLOAD_DIR": str(folder / "uploads"),
        "PORTAL_BASE_URL": "http://127.0.0.1",
        "PORTAL_LOG_LEVEL": "WARNING",
    }
    app = create_app(
        {
            "ENV": "development",
            "SECRET_KEY": SECRET,
            "DATABASE_URL": env["PORTAL_DATABASE_URL"],
            "UPLOAD_DIR": env["PORTAL_UPLOAD_DIR"],
            "LOG_LEVEL": "WARNING",
        }
    )
    with app.app_context():
        upgrade()
        from portal.web.extensions import db

        orders = sample_orders_as_of(datetime.now(UTC).date(), folder / "orders.csv")
        with open(orders, encoding="utf-8", newline="") as f:
            assert import_orders(db.session, f).ok
        db.session.commit()  # the import runs in the caller's transaction
        db.engine.dispose()
    return env


def gunicorn(target: str, port: int, env: dict, workers: int = 2):
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    if target == BARE_APP:
        command += ["--pythonpath", str(ROOT / "bench")]
    process = subprocess.Popen([*command, target], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120  # a loaded two-core machine takes its time to import the portal twice
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"gunicorn {target} did not start")


def stop(process) -> None:
    process.terminate()
    process.wait(60)  # a loaded machine may take a while to stop both workers


def opened_order_session(base: str) -> tuple[urllib.request.OpenerDirector, str]:
    """Look the order up as a customer does and return the browser and its session cookie."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    home = browser.open(f"{base}/").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', home).group(1)
    data = urllib.parse.urlencode({"csrf_token": token, "order_number": ORDER[0], "email": ORDER[1]}).encode()
    page = browser.open(f"{base}/lookup", data=data).read().decode()
    assert "it falls by about" in page, "the lookup did not open the order"  # its prorated headline
    cookie = next(c for c in jar if c.name == "session")
    return browser, f"{cookie.name}={cookie.value}"


def wrk(url: str, cookie: str | None = None) -> float:
    command = ["wrk", "--threads", "2", "--connections", "8", "--duration", f"{SECONDS}s", "--latency"]
    if cookie:
        command += ["--header", f"Cookie: {cookie}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"wrk saw errors on {url}:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def reset_peak_rss(pid: int) -> None:
    """Lower the process's VmHWM to its current resident size (Linux 4.0+: ``5`` to clear_refs), so
    that a later peak is the peak of what happened since, not of the worker's start."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_per_request(target: str, path: str, env: dict, *, cookie_from_lookup: bool = False) -> float:
    """Milliseconds of one gunicorn worker's CPU per request, one connection at a time: steadier
    than requests per second, which move with whatever else the machine is doing."""
    port = free_port()
    server = gunicorn(target, port, env, workers=1)
    try:
        cookie = opened_order_session(f"http://127.0.0.1:{port}")[1] if cookie_from_lookup else None
        [worker] = worker_pids(server.pid)
        command = ["wrk", "--threads", "1", "--connections", "1", "--duration", f"{SECONDS}s"]
        if cookie:
            command += ["--header", f"Cookie: {cookie}"]
        before = cpu_seconds(worker)
        output = subprocess.run(
            [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
        ).stdout
        used = cpu_seconds(worker) - before
        return used / int(re.search(r"(\d+) requests in", output).group(1)) * 1000
    finally:
        stop(server)


def big_pdf(size: int) -> bytes:
    """A one-page PDF of about ``size`` bytes: an uncompressed image of random pixels (random
    bytes do not compress), and no attached file, which the upload check refuses as active content."""
    writer = PdfWriter()
    page = writer.add_blank_page(595, 842)
    side = int((size / 3) ** 0.5)
    image = DecodedStreamObject()
    image.set_data(os.urandom(side * side * 3))
    image.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Image"),
            NameObject("/Width"): NumberObject(side),
            NameObject("/Height"): NumberObject(side),
            NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
            NameObject("/BitsPerComponent"): NumberObject(8),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/XObject"): DictionaryObject({NameObject("/Im0"): writer._add_object(image)})}
    )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def multipart(fields: dict, name: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/pdf\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload_growth(env: dict) -> tuple[float, float, float, int]:
    port = free_port()
    server = gunicorn(PORTAL_APP, port, env, workers=1)
    try:
        base = f"http://127.0.0.1:{port}"
        browser, _ = opened_order_session(base)
        for _ in range(20):  # warm the worker: templates, policy, database connections
            form = browser.open(f"{base}/orders/{ORDER[0]}/refund").read().decode()
        [worker] = worker_pids(server.pid)
        # The worker's peak so far (its start) lies well above what it holds now and would hide any
        # growth below it: measure from the current size, with the peak reset to it.
        earlier_peak = peak_rss_mb(worker)
        reset_peak_rss(worker)
        before = peak_rss_mb(worker)
        fields = {
            name: re.search(rf'name="{name}" type="hidden" value="([^"]*)"', form).group(1)
            for name in ("csrf_token", "submission_key")
        }
        fields.update(reason="not_as_expected", details="", amount_choice="full", partial_amount="", locale="en")
        content = big_pdf(10 * 1024 * 1024 - 4096)
        body, content_type = multipart(fields, "documents", "statement.pdf", content)
        request = urllib.request.Request(
            f"{base}/orders/{ORDER[0]}/refund", data=body, headers={"Content-Type": content_type}
        )
        page = browser.open(request).read().decode()
        assert "has been received" in page, "the 10 MB upload was not accepted"
        stored = sorted((Path(env["PORTAL_UPLOAD_DIR"])).glob("*"), key=lambda p: p.stat().st_size)
        assert stored and stored[-1].stat().st_size == len(content)
        return earlier_peak, before, peak_rss_mb(worker), len(content)
    finally:
        stop(server)


def bare_rates(env: dict) -> dict[str, float]:
    """The bare page and the compiled-once page from one gunicorn, each warmed first."""
    port = free_port()
    server = gunicorn(BARE_APP, port, env)
    try:
        rates = {}
        for key, path in (("bare", "/"), ("compiled", "/compiled")):
            wrk(f"http://127.0.0.1:{port}{path}")  # warm-up pass, not counted
            rates[key] = wrk(f"http://127.0.0.1:{port}{path}")
        return rates
    finally:
        stop(server)


def order_page_rate(env: dict) -> float:
    """The order page's requests per second from one gunicorn serving the portal, warmed first."""
    port = free_port()
    server = gunicorn(PORTAL_APP, port, env)
    try:
        _, cookie = opened_order_session(f"http://127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}/orders/{ORDER[0]}"
        wrk(url, cookie)  # warm-up pass, not counted
        return wrk(url, cookie)
    finally:
        stop(server)


def requests_per_second(env: dict, number: int) -> dict[str, float]:
    """One round: the bare pages and the order page, the bare ones first in odd rounds."""
    if number % 2:
        rates = bare_rates(env)
        rates["order"] = order_page_rate(env)
    else:
        order = order_page_rate(env)
        rates = {**bare_rates(env), "order": order}
    return rates


def median_and_lowest(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}x, lowest {min(values):.2f}x"


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `make bench` installs it (Debian package wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = prepare(folder)
        rounds = []
        for number in range(1, ROUNDS + 1):  # alternated, so a slow spell of the machine falls on every page
            rounds.append(requests_per_second(env, number))
        print(f"gunicorn, 2 sync workers, wrk 2 threads x 8 connections, {SECONDS} s per page, {ROUNDS} rounds")
        for number, r in enumerate(rounds, 1):
            print(
                f"  round {number}: bare Flask one-line template {r['bare']:6.0f} requests/s, "
                f"order page {ORDER[0]} {r['order']:6.0f} requests/s: {r['order'] / r['bare']:.2f}x "
                f"(compiled-once baseline {r['compiled']:6.0f}: {r['order'] / r['compiled']:.2f}x)"
            )
        ratios = [r["order"] / r["bare"] for r in rounds]
        strict = [r["order"] / r["compiled"] for r in rounds]
        print(
            f"  order page against the bare page: {median_and_lowest(ratios)} "
            f"(target >= 0.50x: {'met' if statistics.median(ratios) >= 0.5 else 'MISSED'} by the median); "
            f"against the compiled-once baseline: median {statistics.median(strict):.2f}x"
        )

        cpu: dict[str, list[float]] = {"bare": [], "order": []}
        for number in range(1, ROUNDS + 1):  # alternated as well
            for key in ("bare", "order") if number % 2 else ("order", "bare"):
                if key == "bare":
                    cpu[key].append(cpu_per_request(BARE_APP, "/", env))
                else:
                    cpu[key].append(cpu_per_request(PORTAL_APP, f"/orders/{ORDER[0]}", env, cookie_from_lookup=True))
        bare_cpu, order_cpu = statistics.median(cpu["bare"]), statistics.median(cpu["order"])
        print(
            f"  worker CPU per request, one connection (median of {ROUNDS} rounds): bare {bare_cpu:.2f} ms, "
            f"order page {order_cpu:.2f} ms ({bare_cpu / order_cpu:.2f}x; the steadier figure to follow)"
        )
        print(
            f"    rounds: bare {', '.join(f'{x:.2f}' for x in cpu['bare'])} ms; "
            f"order page {', '.join(f'{x:.2f}' for x in cpu['order'])} ms"
        )

        earlier_peak, before, after, size = upload_growth(env)
        print(f"10 MB upload ({size / 1_048_576:.1f} MiB PDF) through the refund form, 1 worker:")
        print(
            f"  worker resident {before:.1f} MB before (its peak since start, {earlier_peak:.1f} MB, reset to it), "
            f"peak {after:.1f} MB after: "
            f"+{after - before:.1f} MB (target < 20 MB: {'met' if after - before < 20 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
