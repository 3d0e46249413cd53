"""Where files live: one interface for documents, staged uploads and receipts, two backends.

``open_storage(url)`` picks the backend from a URL: ``file:///srv/portal/uploads`` (a local folder,
the embedded default) or ``s3://bucket/prefix`` (any S3-compatible service through boto3; the
endpoint, region and credentials come from the caller and the standard AWS variables).

Files are written from a file object or a file on disk and read as chunks, so no backend ever
holds a whole file in memory (S3 uploads go multipart above ``MULTIPART_BYTES``). A file on disk
(``put_file``: every accepted upload, judged in a temporary file first) is sent part by part
straight from the disk; a stream (``put``) has a bounded number of parts read into memory. Every file the portal stores has its SHA-256 recorded beside it; ``verified_chunks``
and ``read_verified`` check it on the way out, and a mismatch is logged and raised, never served.

Keys are relative paths with ``/`` between parts (``staging/ab12…``, ``receipts/RC-…pdf``). No Flask here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import queue
import secrets
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

# Reads of 1 MiB: a quarter of the Python work per byte of 256 KiB reads, which a download through the
# portal (hashed on the way) needs to keep up with a direct GET (bench/storage_s3.py: 47% → 51–60%).
CHUNK = 1024 * 1024
# Chunks an S3 read may hold ready ahead of the one being used.
READ_AHEAD = 4
# S3 parts: 5 MiB each (S3's smallest), two in flight. From a stream, s3transfer reads each part into
# memory (two ahead, two in flight: about 20 MiB at the peak; boto3's defaults allow ten parts of 8 MiB);
# from a file named by its path it reads each part from the disk as it is sent (about 5 MiB at the peak
# for 100 MB, bench/storage_s3.py).
MULTIPART_BYTES = 5 * 1024 * 1024
PARTS_IN_MEMORY = 2
# Files up to this size are read whole (into a spooled temporary file, on disk past 1 MiB) and
# checked before the first byte leaves; larger ones stream and hold their last chunk back until
# the hash matches (a short response with a Content-Length is an error to every client).
VERIFY_FIRST_BYTES = 16 * 1024 * 1024


class StorageError(Exception):
    """The storage could not do what was asked."""


class StorageUnavailable(StorageError):
    """The storage did not answer (network, timeout, 5xx): trying again later may work."""


class FileMissing(StorageError):
    """No file under this key."""


class FileCorrupted(StorageError):
    """The stored bytes do not have the SHA-256 recorded for them."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a storage key: {key!r}")
    return key


@dataclass(frozen=True)
class Entry:
    """One stored file as a listing sees it."""

    key: str
    size: int
    modified: float  # when it was last written, in seconds since the epoch


class Storage(ABC):
    url: str

    @abstractmethod
    def put(self, key: str, stream: BinaryIO) -> int:
        """Store what ``stream`` holds (read in chunks) under ``key``; return the number of bytes."""

    def put_file(self, key: str, path: Path) -> int:
        """Store the file at ``path`` under ``key``; return the number of bytes."""
        with open(path, "rb") as source:
            return self.put(key, source)

    @abstractmethod
    def chunks(self, key: str) -> Iterator[bytes]:
        """The file's bytes, in chunks of at most ``CHUNK``; raises FileMissing before the first."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the file; a missing one is not an error."""

    @abstractmethod
    def walk(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``."""

    @abstractmethod
    def modified(self, key: str) -> float:
        """When the file was last written, in seconds since the epoch; raises FileMissing."""

    def listing(self, prefix: str = "") -> Iterator[Entry]:
        """Every file under ``prefix`` with its size and time (backends with a cheaper listing override it)."""
        for key in self.walk(prefix):
            try:
                yield Entry(key, self.size(key), self.modified(key))
            except FileMissing:
                continue  # deleted since it was listed

    def prune_empty(self, prefix: str) -> None:  # noqa: B027 (a no-op but for backends with folders)
        """Remove folders left empty under ``prefix`` (only a folder has them; keys need none)."""

    @abstractmethod
    def check(self) -> str:
        """Whether files can be stored now, for a readiness probe: a short answer when they can,
        StorageError (StorageUnavailable when it did not answer) with the reason when not; quickly
        either way, and naming no URL or credential."""

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileMissing:
            return False
        return True

    def move(self, source: str, target: str) -> None:
        with io.BufferedReader(ChunkReader(self.chunks(source)), CHUNK) as reader:
            self.put(target, reader)
        self.delete(source)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class LocalStorage(Storage):
    """A folder on this machine (or a shared mount). Writes land in a temporary file renamed into place."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, stream: BinaryIO) -> int:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    size += len(chunk)
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return size

    def check(self) -> str:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"folder cannot be created ({error.strerror})") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError("folder not writable")
        return "folder writable"

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            handle = open(self.path(key), "rb")  # noqa: SIM115 (closed by the generator)
        except FileNotFoundError:
            raise FileMissing(key) from None
        return _file_chunks(handle)

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise FileMissing(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def move(self, source: str, target: str) -> None:
        path = self.path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.path(source), path)
        except FileNotFoundError:
            raise FileMissing(source) from None

    def walk(self, prefix: str = "") -> Iterator[str]:
        # Only the folder the prefix names is searched (staging/<session>/, not every document).
        folder = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith(".incoming-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def modified(self, key: str) -> float:
        try:
            return self.path(key).stat().st_mtime
        except FileNotFoundError:
            raise FileMissing(key) from None

    def prune_empty(self, prefix: str) -> None:
        folder = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if not folder.is_dir():
            return
        for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty


def _file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None = None
    region: str | None = None
    # "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with kms_key_id or the bucket's default key); empty: none.
    server_side_encryption: str = ""
    kms_key_id: str | None = None
    connect_timeout: float = 5
    read_timeout: float = 30
    max_attempts: int = 3


class S3Storage(Storage):
    """A bucket (and key prefix) on any S3-compatible service, through boto3."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.settings = settings
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client: Any = None
        self._probe: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # imported on first use: the embedded default never loads it
            from botocore.config import Config

            config = Config(
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
                retries={"max_attempts": self.settings.max_attempts, "mode": "standard"},
                s3={"addressing_style": "path"} if self.settings.endpoint_url else {},
            )
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.settings.endpoint_url, region_name=self.settings.region, config=config
            )
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def check(self) -> str:
        # A client of its own with short timeouts and no retries: a probe must answer within the
        # load balancer's timeout even when the service hangs, where uploads are patient.
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        if self._probe is None:
            self._probe = boto3.session.Session().client(
                "s3",
                endpoint_url=self.settings.endpoint_url,
                region_name=self.settings.region,
                config=Config(
                    connect_timeout=2,
                    read_timeout=2,
                    retries={"max_attempts": 1, "mode": "standard"},
                    s3={"addressing_style": "path"} if self.settings.endpoint_url else {},
                ),
            )
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError("S3 bucket missing") from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise StorageError("S3 bucket not accessible with these credentials") from None
            raise StorageUnavailable(f"S3 answered {code or 'an error'}") from None
        except BotoCoreError as error:
            raise StorageUnavailable(f"S3 unreachable ({type(error).__name__})") from None
        return "S3 bucket answers"

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=MULTIPART_BYTES,
            multipart_chunksize=MULTIPART_BYTES,
            max_concurrency=PARTS_IN_MEMORY,
            preferred_transfer_client="classic",
        )
        # s3transfer's own knob (boto3's subclass does not take it as an argument): how many parts
        # of a non-file stream may be read into memory ahead of their upload.
        config.max_in_memory_upload_chunks = PARTS_IN_MEMORY
        return config

    def extra_args(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self.settings.server_side_encryption:
            extra["ServerSideEncryption"] = self.settings.server_side_encryption
            if self.settings.kms_key_id:
                extra["SSEKMSKeyId"] = self.settings.kms_key_id
        return extra

    def put(self, key: str, stream: BinaryIO) -> int:
        counted = _CountingReader(stream)
        with _errors(key):
            self.client.upload_fileobj(
                counted, self.bucket, self._key(key), ExtraArgs=self.extra_args(), Config=self._transfer_config()
            )
        return counted.count

    def put_file(self, key: str, path: Path) -> int:
        # By name, not as an open file: s3transfer then reads each part from the disk while it is
        # sent, where from a file object it holds every part it has read ahead in memory.
        with _errors(key):
            self.client.upload_file(
                str(path), self.bucket, self._key(key), ExtraArgs=self.extra_args(), Config=self._transfer_config()
            )
        return Path(path).stat().st_size

    def chunks(self, key: str) -> Iterator[bytes]:
        with _errors(key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return self._body_chunks(key, body)

    def _body_chunks(self, key: str, body: Any) -> Iterator[bytes]:
        # A thread reads ahead (at most READ_AHEAD chunks): the next chunk comes over the network
        # while this one is hashed and sent on, where one thread would do each in turn.
        ready: queue.Queue[bytes | BaseException | None] = queue.Queue(READ_AHEAD)
        stop = threading.Event()

        def offer(item: bytes | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                with _errors(key):
                    for chunk in body.iter_chunks(CHUNK):
                        if not offer(chunk):
                            return
                offer(None)
            except BaseException as error:  # raised again where the chunks are taken
                offer(error)

        reader = threading.Thread(target=read, name=f"storage-read {key}", daemon=True)
        reader.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            body.close()
            reader.join(timeout=5)

    def size(self, key: str) -> int:
        with _errors(key):
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    def delete(self, key: str) -> None:
        with _errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def move(self, source: str, target: str) -> None:
        with _errors(source):
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(source)},
                self.bucket,
                self._key(target),
                ExtraArgs=self.extra_args(),
                Config=self._transfer_config(),
            )
        self.delete(source)

    def walk(self, prefix: str = "") -> Iterator[str]:
        for entry in self.listing(prefix):
            yield entry.key

    def modified(self, key: str) -> float:
        with _errors(key):
            return float(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["LastModified"].timestamp())

    def listing(self, prefix: str = "") -> Iterator[Entry]:
        """One paginated listing gives each key's size and LastModified: no request per file."""
        paginator = self.client.get_paginator("list_objects_v2")
        with _errors(prefix or "/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield Entry(
                        item["Key"][len(self.prefix) :], int(item["Size"]), float(item["LastModified"].timestamp())
                    )

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests and first runs; production buckets are made by ops)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            with _errors(self.bucket):
                self.client.create_bucket(Bucket=self.bucket)


class _errors:
    """Translate botocore's exceptions into ours: missing, unavailable, or another storage error."""

    def __init__(self, key: str):
        self.key = key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            return
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileMissing(self.key) from error
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                raise StorageUnavailable(f"{self.key}: {error}") from error
            raise StorageError(f"{self.key}: {error}") from error
        if isinstance(error, ConnectionError | HTTPClientError | S3UploadFailedError):
            raise StorageUnavailable(f"{self.key}: {error}") from error
        if isinstance(error, BotoCoreError):
            raise StorageError(f"{self.key}: {error}") from error


class _CountingReader(io.RawIOBase):
    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class ChunkReader(io.RawIOBase):
    """A readable file object over an iterator of chunks (to put what another storage yields)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def open_storage(url: str, settings: S3Settings | None = None) -> Storage:
    """The backend a URL names: ``file:///absolute/folder`` or ``s3://bucket[/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"a file: storage URL names a local folder (file:///…), not {url!r}")
        return LocalStorage(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"an s3: storage URL names a bucket (s3://bucket/prefix), not {url!r}")
        return S3Storage(parts.netloc, unquote(parts.path), settings or S3Settings())
    raise ValueError(f"storage URL must start with file:// or s3://, not {url!r}")


def new_key(folder: str, suffix: str = "") -> str:
    return f"{folder}/{secrets.token_hex(16)}{suffix}"


# -- reading with the hash checked ------------------------------------------------------------------


def _corrupted(storage: Storage, key: str, expected: str, actual: str) -> FileCorrupted:
    log.error(
        "stored file %s in %s has SHA-256 %s, not the recorded %s; not served", key, storage.url, actual, expected
    )
    return FileCorrupted(f"{key}: SHA-256 {actual} differs from the recorded {expected}")


def read_verified(storage: Storage, key: str, sha256: str) -> bytes:
    """A small file's bytes (a receipt), checked against its SHA-256."""
    data = b"".join(storage.chunks(key))
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise _corrupted(storage, key, sha256, actual)
    return data


def verified_chunks(storage: Storage, key: str, sha256: str, size: int) -> Iterator[bytes]:
    """The file's chunks, never all of a file whose hash differs.

    Up to ``VERIFY_FIRST_BYTES`` the file is read and checked before this returns (so a caller
    can still answer with an error page); above, the returned iterator holds back the last chunk
    until the hash matches and raises instead of yielding it when it does not.
    """
    if size <= VERIFY_FIRST_BYTES:
        spooled = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 (closed by _file_chunks)
        digest = hashlib.sha256()
        try:
            for chunk in storage.chunks(key):
                digest.update(chunk)
                spooled.write(chunk)
            if digest.hexdigest() != sha256:
                raise _corrupted(storage, key, sha256, digest.hexdigest())
        except BaseException:
            spooled.close()
            raise
        spooled.seek(0)
        return _file_chunks(spooled)  # type: ignore[arg-type]
    return _held_back(storage, key, sha256, storage.chunks(key))


def _held_back(storage: Storage, key: str, sha256: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    digest = hashlib.sha256()
    previous: bytes | None = None
    try:
        for chunk in chunks:
            digest.update(chunk)
            if previous is not None:
                yield previous
            previous = chunk
        if digest.hexdigest() != sha256:
            raise _corrupted(storage, key, sha256, digest.hexdigest())
        if previous is not None:
            yield previous
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def verified_range(storage: Storage, key: str, sha256: str, size: int, start: int, stop: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``stop`` (exclusive) of the file, under the same promise as ``verified_chunks``:
    the whole file's hash is checked, before the first byte up to ``VERIFY_FIRST_BYTES``, above that
    before the last chunk of the range leaves (the rest of the file is read to check it)."""
    if not 0 <= start < stop <= size:
        raise ValueError(f"not a range of a file of {size} bytes: {start}-{stop}")
    if size <= VERIFY_FIRST_BYTES:
        return _sliced(verified_chunks(storage, key, sha256, size), start, stop)
    return _held_back_range(storage, key, sha256, storage.chunks(key), start, stop)


def _sliced(chunks: Iterator[bytes], start: int, stop: int) -> Iterator[bytes]:
    offset = 0
    try:
        for chunk in chunks:
            end = offset + len(chunk)
            if end > start and offset < stop:
                yield chunk[max(start - offset, 0) : min(stop - offset, len(chunk))]
            offset = end
            if offset >= stop:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _held_back_range(
    storage: Storage, key: str, sha256: str, chunks: Iterator[bytes], start: int, stop: int
) -> Iterator[bytes]:
    """The range's bytes of a file read whole for its hash, the last of them held back until it matches."""
    digest = hashlib.sha256()
    pending: bytes | None = None
    offset = 0
    try:
        for chunk in chunks:
            digest.update(chunk)
            part = chunk[max(start - offset, 0) : max(min(stop - offset, len(chunk)), 0)]
            offset += len(chunk)
            if part:
                if pending is not None:
                    yield pending
                pending = part
        if digest.hexdigest() != sha256:
            raise _corrupted(storage, key, sha256, digest.hexdigest())
        if pending is not None:
            yield pending
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class Copied:
    key: str
    size: int
    sha256: str


def copy_verified(source: Storage, target: Storage, key: str, expected_sha256: str | None = None) -> Copied:
    """Copy one file across storages, then read it back from the target and compare hashes."""
    digest = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for chunk in source.chunks(key):
            digest.update(chunk)
            yield chunk

    with io.BufferedReader(ChunkReader(hashed()), CHUNK) as reader:
        size = target.put(key, reader)
    copied = digest.hexdigest()
    if expected_sha256 is not None and copied != expected_sha256:
        raise _corrupted(source, key, expected_sha256, copied)
    back = hashlib.sha256()
    for chunk in target.chunks(key):
        back.update(chunk)
    if back.hexdigest() != copied:
        raise _corrupted(target, key, copied, back.hexdigest())
    return Copied(key, size, copied)


@dataclass
class MigrationReport:
    copied: list[Copied]
    failed: dict[str, str]  # key: what went wrong
    missing: list[str]  # recorded in the database, absent from the source


def migrate_files(source: Storage, target: Storage, recorded: dict[str, str]) -> MigrationReport:
    """Copy every file of ``source`` to ``target`` and verify each: against the SHA-256 recorded for
    it (``recorded``: key to hash, documents and receipts) or, for files with no record (staged
    uploads), against the hash of the bytes read from the source."""
    report = MigrationReport([], {}, [])
    seen: set[str] = set()
    for key in source.walk():
        seen.add(key)
        try:
            report.copied.append(copy_verified(source, target, key, recorded.get(key)))
        except StorageError as error:
            report.failed[key] = str(error)
    report.missing = sorted(set(recorded) - seen)
    return report
