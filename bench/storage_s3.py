"""A 100 MB file through S3 and the portal: memory of the process that uploads, and download throughput.

A SeaweedFS (tests/seaweed_helpers.py) is started on 127.0.0.1. Then, in the same run:

- **upload**: a worker process sends a 100 MB file from disk into S3 exactly as the portal
  stores an accepted upload (``Storage.put_file``: multipart, 5 MiB parts read from the disk as
  they are sent); its peak memory growth (VmHWM after − VmRSS before) must stay under 20 MB. For
  comparison the same file is sent as an open file object (``Storage.put``, which s3transfer
  reads into memory part by part: what the portal did before);
- **download**: the file is recorded as a document and fetched by a signed-in agent through the
  portal under gunicorn (one sync worker; the view streams it with the SHA-256 checked), and
  directly from S3 with boto3; the portal's throughput must be at least half the direct one, and
  the gunicorn worker's memory growth under 20 MB too.

Run: .venv/bin/python bench/storage_s3.py
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.seaweed_helpers import SeaweedFS, free_port  # noqa: E402

SIZE = 100 * 1024 * 1024
MB = 1024 * 1024
PASSWORD = "bench-password-long-enough-1"


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


UPLOADER = textwrap.dedent("""
    import os, sys, time
    from portal.documents.storage import S3Settings, open_storage
    storage = open_storage(sys.argv[1], S3Settings(endpoint_url=sys.argv[2]))
    import io
    storage.put("warm-up", io.BytesIO(b"x"))  # a warm worker: boto3, the client and s3transfer loaded
    def field(name):
        for line in open("/proc/self/status"):
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    before = field("VmRSS")
    start = time.perf_counter()
    if sys.argv[5] == "path":
        storage.put_file(sys.argv[4], sys.argv[3])
    else:
        with open(sys.argv[3], "rb") as source:
            storage.put(sys.argv[4], source)
    elapsed = time.perf_counter() - start
    print(before, field("VmHWM"), elapsed)
""")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = SeaweedFS(work / "seaweedfs")
    started = time.perf_counter()
    server.start()
    print(f"SeaweedFS up in {time.perf_counter() - started:.1f} s at {server.endpoint_url}")
    env = {**os.environ, **server.environment}
    os.environ.update(server.environment)
    gunicorn = None
    try:
        server.make_bucket("bench")
        storage_url = "s3://bench/portal"
        big = work / "big.pdf"
        digest = hashlib.sha256()
        with open(big, "wb") as out:
            block = os.urandom(MB)
            for _ in range(SIZE // MB):
                out.write(block)
                digest.update(block)
        sha256 = digest.hexdigest()

        # -- upload: a process of its own, as a web worker would be --------------------------------
        stored_name = "b" * 32

        def upload(how: str, key: str) -> float:
            result = subprocess.run(
                [sys.executable, "-c", UPLOADER, storage_url, server.endpoint_url, str(big), key, how],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            before, peak, upload_seconds = result.stdout.split()
            growth = (int(peak) - int(before)) / MB
            label = "as the portal stores an upload (put_file)" if how == "path" else "from an open file (put)"
            print(
                f"upload   100 MB {label} in {float(upload_seconds):.2f} s "
                f"({SIZE / MB / float(upload_seconds):.0f} MB/s); peak memory growth {growth:.1f} MB"
            )
            return growth

        upload("stream", "s" * 32)
        upload_growth = upload("path", stored_name)

        # -- the portal: a database with the document and an agent, served by gunicorn -----------
        database = f"sqlite:///{work / 'portal.sqlite3'}"
        settings = {
            "PORTAL_ENV": "development",
            "PORTAL_DATABASE_URL": database,
            "PORTAL_SECRET_KEY": "bench-secret-key-that-is-long-enough-for-the-check",
            "PORTAL_STORAGE_URL": storage_url,
            "PORTAL_S3_ENDPOINT_URL": server.endpoint_url,
            "PORTAL_UPLOAD_DIR": str(work / "uploads"),
            "PORTAL_OUTBOX_DIR": str(work / "outbox"),
        }
        env = {**env, **settings}
        portal = [str(ROOT / ".venv/bin/portal")]
        subprocess.run([*portal, "db", "upgrade"], env=env, check=True, capture_output=True, cwd=work)
        subprocess.run(
            [*portal, "orders", "import", str(ROOT / "tests/data/orders.csv")],
            env=env,
            check=True,
            capture_output=True,
            cwd=work,
        )
        subprocess.run(
            [*portal, "staff", "create", "agent@example.com", "--role", "agent", "--password-stdin"],
            env=env,
            input=PASSWORD,
            text=True,
            check=True,
            capture_output=True,
            cwd=work,
        )
        seed = textwrap.dedent(f"""
            from portal import create_app
            from portal.web.extensions import db
            from portal.refunds import filing
            from portal.orders.models import Order
            from portal.documents.models import Document
            from portal.core.vocabulary import Actor
            from portal.web.links import links
            from portal.core.database import utcnow
            from sqlalchemy import select
            app = create_app()
            with app.test_request_context():
                order = db.session.scalar(select(Order).where(Order.order_number == "ORD-10001"))
                request = filing.open_on_behalf(db.session, order, actor=Actor.STAFF, locale="en",
                                                amount_minor=100, now=utcnow(), links=links())
                document = Document(refund_request=request, original_name="big.pdf", stored_name="{stored_name}",
                                    content_type="application/pdf", size={SIZE}, sha256="{sha256}")
                db.session.add(document)
                db.session.commit()
                print(document.id)
        """)
        seeded = subprocess.run([sys.executable, "-c", seed], env=env, capture_output=True, text=True, cwd=work)
        if seeded.returncode:
            raise SystemExit(seeded.stderr)
        document_id = int(seeded.stdout.split()[-1])
        port = free_port()
        gunicorn = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/gunicorn"),
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{port}",
                "--timeout",
                "120",
                "portal.wsgi:app",
            ],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        agent = requests.Session()
        for _ in range(300):
            try:
                login = agent.get(f"{base}/staff/login", timeout=10)
                break
            except requests.RequestException:  # refused, or the worker still booting
                time.sleep(0.2)
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login.text).group(1)
        agent.post(
            f"{base}/staff/login",
            data={"csrf_token": token, "email": "agent@example.com", "password": PASSWORD},
            timeout=10,
        )
        worker = int(
            subprocess.run(["pgrep", "-P", str(gunicorn.pid)], capture_output=True, text=True).stdout.split()[0]
        )

        def through_portal() -> float:
            start = time.perf_counter()
            check = hashlib.sha256()
            with agent.get(f"{base}/staff/documents/{document_id}", stream=True, timeout=120) as response:
                response.raise_for_status()
                for chunk in response.iter_content(256 * 1024):
                    check.update(chunk)
            assert check.hexdigest() == sha256, "the portal served other bytes"
            return time.perf_counter() - start

        def direct() -> float:
            client = server.client()
            start = time.perf_counter()
            check = hashlib.sha256()
            body = client.get_object(Bucket="bench", Key=f"portal/{stored_name}")["Body"]
            for chunk in body.iter_chunks(256 * 1024):
                check.update(chunk)
            assert check.hexdigest() == sha256
            return time.perf_counter() - start

        through_portal()  # warm up: the worker's imports, the S3 client, the page cache
        rss_before = vm(worker, "VmRSS")
        hwm_before = vm(worker, "VmHWM")
        portal_seconds = min(through_portal() for _ in range(3))
        download_growth = (vm(worker, "VmHWM") - max(rss_before, hwm_before)) / MB
        direct_seconds = min(direct() for _ in range(3))
        portal_rate, direct_rate = SIZE / MB / portal_seconds, SIZE / MB / direct_seconds
        print(
            f"download 100 MB through the portal {portal_seconds:.2f} s ({portal_rate:.0f} MB/s), "
            f"direct S3 GET {direct_seconds:.2f} s ({direct_rate:.0f} MB/s): {portal_rate / direct_rate:.0%}"
        )
        print(
            f"         gunicorn worker memory: {rss_before / MB:.0f} MB before, peak growth "
            f"{max(download_growth, 0):.1f} MB"
        )
        ok = upload_growth < 20 and download_growth < 20 and portal_rate >= 0.5 * direct_rate
        print("PASS" if ok else "FAIL", "(memory growth < 20 MB, portal ≥ 50% of a direct GET)")
        if not ok:
            sys.exit(1)
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(10)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)  # the 100 MB file and SeaweedFS's copies of it


if __name__ == "__main__":
    main()
