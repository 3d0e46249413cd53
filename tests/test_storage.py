"""File storage: the local folder and a real S3 server (SeaweedFS) behind one interface.

Tests marked ``s3`` start one SeaweedFS for the session (about 5–10 s); the rest need no server.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time

import pytest
from sqlalchemy import event, select, text

from portal.documents.models import Document
from portal.documents.storage import (
    VERIFY_FIRST_BYTES,
    FileCorrupted,
    FileMissing,
    S3Settings,
    S3Storage,
    StorageUnavailable,
    open_storage,
    verified_chunks,
    verified_range,
)
from portal.web.extensions import db
from tests.journey_helpers import file_request, import_samples, latest_request, lookup, pdf_bytes
from tests.staff_helpers import make_staff, sign_in


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request, tmp_path):
    if request.param == "file":
        return open_storage(tmp_path.joinpath("files").as_uri())
    settings = request.getfixturevalue("s3_settings")
    return open_storage(settings["STORAGE_URL"], S3Settings(endpoint_url=settings["S3_ENDPOINT_URL"]))


BLOCK = bytes(range(256)) * 4096


class Pattern(io.RawIOBase):
    """``size`` bytes made as they are read: an upload that never exists whole in memory."""

    def __init__(self, size: int):
        self.size = size
        self.offset = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.offset, len(BLOCK) - self.offset % len(BLOCK))
        start = self.offset % len(BLOCK)
        buffer[:n] = BLOCK[start : start + n]
        self.offset += n
        return n


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    source = Pattern(size)
    while chunk := source.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def test_both_backends_put_read_move_list_and_delete_alike(backend):
    assert backend.put("staging/a1", io.BytesIO(b"hello")) == 5
    assert b"".join(backend.chunks("staging/a1")) == b"hello" and backend.size("staging/a1") == 5
    backend.move("staging/a1", "a1")
    assert not backend.exists("staging/a1") and backend.exists("a1")
    backend.put("receipts/r.pdf", io.BytesIO(b"%PDF"))
    assert sorted(backend.walk()) == ["a1", "receipts/r.pdf"] and list(backend.walk("receipts/")) == ["receipts/r.pdf"]
    backend.delete("a1")
    backend.delete("a1")  # deleting what is gone is not an error
    with pytest.raises(FileMissing):
        backend.chunks("a1")
    with pytest.raises(ValueError):
        backend.put("../escape", io.BytesIO(b"x"))


def test_both_backends_date_and_list_files_and_the_sweep_takes_only_old_staged_ones(backend):
    from portal.documents.uploads import staging_usage, sweep_staging

    before = time.time()
    backend.put("staging/0a0a/old", io.BytesIO(b"12345"))
    backend.put("staging/inbound/new", io.BytesIO(b"123"))
    backend.put("kept", io.BytesIO(b"a document"))
    written = backend.modified("staging/0a0a/old")
    assert before - 5 <= written <= time.time() + 5  # seconds since the epoch (S3: LastModified)
    with pytest.raises(FileMissing):
        backend.modified("nothing-here")
    listed = {entry.key: entry for entry in backend.listing("staging/")}
    assert set(listed) == {"staging/0a0a/old", "staging/inbound/new"} and listed["staging/0a0a/old"].size == 5
    assert staging_usage(backend, "staging/0a0a/") == 5
    assert sweep_staging(backend, max_age_seconds=3600, now=written + 60) == 0
    assert sweep_staging(backend, max_age_seconds=3600, now=backend.modified("staging/inbound/new") + 3601) == 2
    assert list(backend.walk()) == ["kept"]


def test_a_file_larger_than_a_part_goes_up_in_parts_and_comes_back_identical(backend):
    size = 20 * 1024 * 1024 + 123
    assert backend.put("big", io.BufferedReader(Pattern(size))) == size
    assert backend.size("big") == size
    assert b"".join(verified_chunks(backend, "big", pattern_sha256(size), size)) != b""  # checked all the way
    if isinstance(backend, S3Storage):
        etag = backend.client.head_object(Bucket=backend.bucket, Key=backend._key("big"))["ETag"]
        assert "-" in etag, "a 20 MB upload should have been multipart (8 MB parts)"


def test_a_file_on_disk_goes_up_in_parts_read_from_the_disk_and_comes_back_identical(backend, tmp_path):
    size = 12 * 1024 * 1024 + 5
    path = tmp_path / "judged"
    with open(path, "wb") as out, io.BufferedReader(Pattern(size)) as source:
        while chunk := source.read(1 << 20):
            out.write(chunk)
    assert backend.put_file("from-disk", path) == size
    assert b"".join(verified_chunks(backend, "from-disk", pattern_sha256(size), size)) != b""
    if isinstance(backend, S3Storage):
        etag = backend.client.head_object(Bucket=backend.bucket, Key=backend._key("from-disk"))["ETag"]
        assert "-" in etag, "a 12 MB file should have gone up in parts"


def test_bytes_that_differ_from_their_hash_are_refused_before_a_byte_or_before_the_last(backend, caplog):
    backend.put("small", io.BytesIO(b"original"))
    wrong = hashlib.sha256(b"something else").hexdigest()
    with caplog.at_level(logging.ERROR), pytest.raises(FileCorrupted):
        verified_chunks(backend, "small", wrong, 8)
    assert "not served" in caplog.text
    # Above VERIFY_FIRST_BYTES the file streams; the last chunk is held back and never yielded.
    size = VERIFY_FIRST_BYTES + 1
    backend.put("large", io.BufferedReader(Pattern(size)))
    received = 0
    with pytest.raises(FileCorrupted):
        for chunk in verified_chunks(backend, "large", wrong, size):
            received += len(chunk)
    assert received < size


def test_a_range_is_read_with_the_whole_file_checked_in_both_ways_of_reading(backend, monkeypatch):
    import portal.documents.storage as storage_module

    size = 3 * 256 * 1024 + 17  # four chunks, the last one short
    backend.put("file", io.BufferedReader(Pattern(size)))
    whole = b"".join(backend.chunks("file"))
    sha = pattern_sha256(size)
    for threshold in (VERIFY_FIRST_BYTES, 1024):  # checked first; streamed with the last piece held back
        monkeypatch.setattr(storage_module, "VERIFY_FIRST_BYTES", threshold)
        for start, stop in ((0, 1), (10, 300_000), (262_144, 524_288), (size - 5, size), (0, size)):
            assert b"".join(verified_range(backend, "file", sha, size, start, stop)) == whole[start:stop]
        received = b""
        with pytest.raises(FileCorrupted):
            for chunk in verified_range(backend, "file", "0" * 64, size, 0, 300_000):
                received += chunk
        assert len(received) < 300_000  # never all of a range of a file whose hash differs


def filed_with_document(app, data=None):
    client = app.test_client()
    lookup(client, "ORD-10004", "carol@example.net")
    response = file_request(
        client, "ORD-10004", files=[("invoice.pdf", data or pdf_bytes())], partial_amount="", amount_choice="full"
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def test_downloads_stream_from_storage_with_the_same_headers_and_a_corrupted_file_is_never_served(
    make_app, db_session, caplog, frozen
):
    app = make_app()
    import_samples(db_session)
    customer = filed_with_document(app)
    document = latest_request(db_session).documents[0]
    response = customer.get(f"/documents/{document.id}")
    assert response.status_code == 200 and hashlib.sha256(response.data).hexdigest() == document.sha256
    assert response.headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["ETag"] == f'"{document.sha256}"' and response.content_length == document.size
    assert (
        customer.get(f"/documents/{document.id}", headers={"If-None-Match": f'"{document.sha256}"'}).status_code == 304
    )
    agent = app.test_client()
    make_staff(db_session, "agent@example.com")
    sign_in(agent, "agent@example.com")
    preview = agent.get(f"/staff/documents/{document.id}/view")
    assert preview.data == response.data and preview.headers["Content-Disposition"].startswith("inline")
    assert "sandbox" in preview.headers["Content-Security-Policy"]

    app.extensions["storage"].put(document.stored_name, io.BytesIO(b"%PDF-1.4 Tampered"))
    with caplog.at_level(logging.ERROR):
        for response in (customer.get(f"/documents/{document.id}"), agent.get(f"/staff/documents/{document.id}")):
            assert response.status_code == 500 and b"Tampered" not in response.data
    assert f"stored file {document.stored_name}" in caplog.text and "not served" in caplog.text


@pytest.mark.parametrize("where", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_a_range_request_gets_206_with_those_bytes_and_the_same_authorization_and_headers(
    where, request, make_app, db_session, frozen, tmp_path
):
    settings = request.getfixturevalue("s3_settings") if where == "s3" else {"STORAGE_URL": tmp_path.as_uri()}
    app = make_app(**settings)
    import_samples(db_session)
    customer = filed_with_document(app, pdf_bytes("A longer invoice " * 50))
    document = latest_request(db_session).documents[0]
    url, size = f"/documents/{document.id}", document.size
    whole = customer.get(url)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    data = whole.data
    for header, start, stop in (("bytes=10-99", 10, 100), ("bytes=-20", size - 20, size), ("bytes=100-", 100, size)):
        part = customer.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.data == data[start:stop] and part.content_length == stop - start
        assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
        assert part.headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
        assert part.headers["ETag"] == f'"{document.sha256}"' and part.headers["X-Content-Type-Options"] == "nosniff"
    past = customer.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{size}"
    # Another version named by If-Range, or several ranges at once: the whole file.
    assert customer.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}).data == data
    assert customer.get(url, headers={"Range": "bytes=0-9,20-29"}).data == data
    resumed = customer.get(url, headers={"Range": "bytes=0-9", "If-Range": f'"{document.sha256}"'})
    assert resumed.status_code == 206 and resumed.data == data[:10]
    # A range asks for part of a file, never for the right to read it.
    stranger = app.test_client().get(url, headers={"Range": "bytes=0-9"})
    assert stranger.status_code != 206 and data[:10] not in stranger.data
    agent = app.test_client()
    make_staff(db_session, "agent@example.com")
    sign_in(agent, "agent@example.com")
    staff_part = agent.get(f"/staff/documents/{document.id}", headers={"Range": "bytes=5-14"})
    assert staff_part.status_code == 206 and staff_part.data == data[5:15]


def test_when_storage_is_down_the_customer_is_asked_to_try_again_with_the_form_kept(make_app, db_session, frozen):
    # Nothing listens on port 9: every S3 call is refused at once, as when the service is away.
    app = make_app(STORAGE_URL="s3://portal/down", S3_ENDPOINT_URL="http://127.0.0.1:9")
    import_samples(db_session)
    client = app.test_client()
    lookup(client, "ORD-10004", "carol@example.net")
    response = file_request(
        client,
        "ORD-10004",
        files=[("invoice.pdf", pdf_bytes())],
        partial_amount="",
        amount_choice="full",
        details="My invoice shows the wrong plan.",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "We could not store “invoice.pdf” just now. Please try again in a few minutes" in page
    assert "My invoice shows the wrong plan." in page
    assert db_session.scalar(select(Document)) is None


@pytest.mark.s3
def test_storage_migrate_copies_every_file_to_s3_and_verifies_each(
    make_app, db_session, s3_settings, runner_for, frozen, tmp_path
):
    # The operator runs the command with the target's endpoint (and AWS variables) set.
    local = make_app(S3_ENDPOINT_URL=s3_settings["S3_ENDPOINT_URL"], STORAGE_URL=(tmp_path / "local").as_uri())
    import_samples(db_session)
    filed_with_document(local)
    staged = local.extensions["storage"]
    staged.put("staging/0123abcd", io.BytesIO(b"a staged upload"))
    result = runner_for(local).invoke(args=["storage", "migrate", "--to", s3_settings["STORAGE_URL"]])
    assert result.exit_code == 0, result.output
    assert "2 file(s) copied and verified" in result.output
    remote = make_app(**s3_settings)
    document = db_session.scalar(select(Document))
    assert b"".join(remote.extensions["storage"].chunks("staging/0123abcd")) == b"a staged upload"
    customer = remote.test_client()
    lookup(customer, "ORD-10004", "carol@example.net")
    assert hashlib.sha256(customer.get(f"/documents/{document.id}").data).hexdigest() == document.sha256

    # A file whose bytes no longer match its record is reported and the command fails.
    staged.put(document.stored_name, io.BytesIO(b"changed on disk"))
    result = runner_for(local).invoke(args=["storage", "migrate", "--to", s3_settings["STORAGE_URL"] + "-again"])
    assert result.exit_code == 1 and f"FAILED {document.stored_name}" in result.output


@pytest.fixture
def runner_for():
    return lambda app: app.test_cli_runner()


def test_receipts_move_from_the_database_to_storage_byte_for_byte(tmp_path):
    """Migration 0012 on a database holding a receipt made before it: same bytes, key and hash kept."""
    from flask_migrate import downgrade, upgrade

    from portal import create_app

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    app = create_app(
        {
            "ENV": "testing",
            "TESTING": True,
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": url,
            "UPLOAD_DIR": str(tmp_path / "files"),
            "OUTBOX_DIR": str(tmp_path / "outbox"),
        }
    )
    pdf = b"%PDF-1.7\n" + os.urandom(3000)
    with app.app_context():
        # A receipt row without its refund and order: the test is about the bytes, so SQLite's
        # foreign keys (which the portal turns on for every connection) are turned off again.
        event.listen(db.engine, "connect", lambda connection, record: connection.execute("PRAGMA foreign_keys=OFF"))
        db.engine.dispose()
        upgrade(revision="0007")
        engine = db.engine
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO receipt (id, refund_id, number, locale, pdf, sha256, created_at) "
                    "VALUES (1, 1, 'RC-2026-000001', 'nl', :pdf, :sha, '2026-11-20 10:00:00')"
                ),
                {"pdf": pdf, "sha": hashlib.sha256(pdf).hexdigest()},
            )
        upgrade(revision="0012")
        with engine.connect() as conn:
            key, size, sha = conn.execute(text("SELECT storage_key, size, sha256 FROM receipt")).one()
            columns = [row[1] for row in conn.execute(text("PRAGMA table_info(receipt)"))]
        assert "pdf" not in columns and size == len(pdf) and sha == hashlib.sha256(pdf).hexdigest()
        assert b"".join(app.extensions["storage"].chunks(key)) == pdf
        downgrade(revision="0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pdf FROM receipt")).scalar_one() == pdf
        db.session.remove()
        engine.dispose()


def test_the_storage_defaults_to_the_upload_folder(make_app, tmp_path):
    app = make_app(UPLOAD_DIR=str(tmp_path / "docs"), STORAGE_URL=None)
    assert app.config["STORAGE_URL"] == (tmp_path / "docs").as_uri()
    assert app.extensions["storage"].url == (tmp_path / "docs").as_uri()


@pytest.mark.s3
def test_the_s3_backend_uses_the_standard_aws_variables(seaweedfs, s3_settings):
    storage = open_storage(s3_settings["STORAGE_URL"], S3Settings(endpoint_url=s3_settings["S3_ENDPOINT_URL"]))
    storage.put("probe", io.BytesIO(b"x"))  # credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    saved = os.environ["AWS_SECRET_ACCESS_KEY"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = "wrong"
    try:
        wrong = open_storage(s3_settings["STORAGE_URL"], S3Settings(endpoint_url=s3_settings["S3_ENDPOINT_URL"]))
        with pytest.raises(Exception) as refused:
            wrong.put("probe2", io.BytesIO(b"x"))
        assert not isinstance(refused.value, StorageUnavailable)
    finally:
        os.environ["AWS_SECRET_ACCESS_KEY"] = saved


@pytest.mark.s3
def test_readiness_reports_the_s3_bucket_and_answers_503_when_it_is_missing_or_unreachable(make_app, s3_settings):
    ready = make_app(**s3_settings).test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["storage"] == {"ok": True, "detail": "S3 bucket answers"}
    missing = make_app(STORAGE_URL="s3://no-such-bucket-here/x", S3_ENDPOINT_URL=s3_settings["S3_ENDPOINT_URL"])
    response = missing.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["storage"] == {"ok": False, "detail": "S3 bucket missing"}
    away = make_app(STORAGE_URL="s3://portal/x", S3_ENDPOINT_URL="http://127.0.0.1:9")
    response = away.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["storage"] == {"ok": False, "detail": "S3 unreachable (EndpointConnectionError)"}
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_readiness_answers_503_when_the_storage_folder_cannot_be_written(make_app, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        response = make_app(STORAGE_URL=locked.as_uri()).test_client().get("/readyz")
    finally:
        locked.chmod(0o700)
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: the folder's permissions cannot refuse it")
    assert response.status_code == 503
    assert response.json["checks"]["storage"] == {"ok": False, "detail": "folder not writable"}


@pytest.mark.s3
def test_with_server_side_encryption_every_file_is_stored_encrypted_and_read_back_alike(
    make_app, db_session, s3_settings, frozen
):
    """SeaweedFS encrypts with SSE-S3 (AES256) when it has a key-encryption key (tests/seaweed_helpers.py)."""
    app = make_app(**s3_settings, STORAGE_SSE="AES256")
    import_samples(db_session)
    customer = filed_with_document(app)
    document = latest_request(db_session).documents[0]
    storage = app.extensions["storage"]
    staged = storage.put("staging/x/streamed", io.BytesIO(b"a stream"))
    assert staged == 8
    for key in (document.stored_name, "staging/x/streamed"):
        head = storage.client.head_object(Bucket=storage.bucket, Key=storage._key(key))
        assert head["ServerSideEncryption"] == "AES256", key
    response = customer.get(f"/documents/{document.id}")
    assert hashlib.sha256(response.data).hexdigest() == document.sha256
    assert customer.get(f"/documents/{document.id}", headers={"Range": "bytes=0-7"}).data == response.data[:8]


@pytest.mark.s3
def test_a_download_given_up_half_way_stops_reading_from_s3(s3_settings):
    import threading

    storage = open_storage(s3_settings["STORAGE_URL"], S3Settings(endpoint_url=s3_settings["S3_ENDPOINT_URL"]))
    size = 12 * 1024 * 1024
    storage.put("long", io.BufferedReader(Pattern(size)))
    chunks = storage.chunks("long")
    assert len(next(chunks)) > 0  # the client reads a little, then goes away
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("storage-read")]
    assert len(b"".join(storage.chunks("long"))) == size  # and a whole read still comes back whole
