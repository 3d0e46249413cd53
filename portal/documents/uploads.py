"""Customer documents: decided by their content, streamed to disk, stored under random names.

Pure: takes file objects and a folder, knows nothing of Flask. The type comes from the bytes
(``filetype`` reads the signature), never from the name or the declared type; images are
opened by Pillow within a pixel budget, PDFs by pypdf, so a disguised or damaged file is caught.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import filetype
from PIL import Image
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from portal.core.markers import N_
from portal.documents.storage import Storage

MAX_FILES = 5
MAX_BYTES = 10 * 1024 * 1024
# A 10 MB PNG of a single colour can unpack to billions of pixels; this bounds what we open.
MAX_PIXELS = 40_000_000
CHUNK = 64 * 1024

TOO_MANY = N_("You can attach at most %(count)s files.")
OVER_QUOTA = N_(
    "You have sent more documents than we keep for an unfinished form (%(limit)s MB). Send the form "
    "with the documents already attached, or try again in an hour."
)
TOO_LARGE_TOGETHER = N_(
    "“%(name)s” did not fit: the documents sent at once may add up to %(limit)s MB. Attach it again on its own."
)
NUL_NAME = N_(
    "The name of one of your files contains a character we cannot accept. Rename the file and attach it again."
)
ACTIVE_PDF = N_(
    "“%(name)s” contains active content (scripts, actions that open other programs, attached files "
    "or XFA forms). Print it to a new PDF, or send a scan or screenshot instead."
)
TRAILING_DATA = N_(
    "“%(name)s” has other data hidden after the end of the image. Save the image again, or send a "
    "screenshot of it instead."
)

ALLOWED = {"application/pdf": "PDF", "image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}


class UploadRejected(ValueError):
    def __init__(self, message: str, **params: object):
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class StoredFile:
    stored_name: str
    original_name: str
    content_type: str
    size: int
    sha256: str
    checklist_item: str | None = None  # the document asked for that this file answers
    # Where it waits in storage until its request is filed (staging/<owner>/<stored name>); None
    # while it is only in a local folder. Kept through the Flask session with the rest.
    staging_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean_name(name: str | None) -> str:
    # Keep only the last path part and drop control characters; the name is only ever displayed.
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "document"


def store_upload(
    stream: IO[bytes], original_name: str | None, folder: Path, *, max_bytes: int = MAX_BYTES
) -> StoredFile:
    """Copy ``stream`` to ``folder`` in chunks, checking size and content; raise UploadRejected."""
    if "\x00" in (original_name or ""):
        raise UploadRejected(NUL_NAME)
    name = _clean_name(original_name)
    folder.mkdir(parents=True, exist_ok=True)
    stored_name = secrets.token_hex(16)
    path = folder / stored_name
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "xb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRejected(
                        N_("“%(name)s” is larger than %(limit)s MB."), name=name, limit=max_bytes // (1024 * 1024)
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise UploadRejected(N_("“%(name)s” is empty."), name=name)
        content_type = _check_content(path, name)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
    return StoredFile(stored_name, name, content_type, size, digest.hexdigest())


def _check_content(path: Path, name: str) -> str:
    kind = filetype.guess(str(path))
    mime: str | None = kind.mime if kind else None
    if mime not in ALLOWED:
        raise UploadRejected(N_("“%(name)s” is not a PDF, PNG, JPEG or WebP file."), name=name)
    damaged = UploadRejected(
        N_("“%(name)s” could not be read as a %(kind)s file; it may be damaged."), name=name, kind=ALLOWED[mime]
    )
    if mime == "application/pdf":
        try:
            # From the open file, not read whole into memory first (pypdf does that with a path).
            with open(path, "rb") as handle:
                reader = PdfReader(handle, strict=False)
                if len(reader.pages) < 1:
                    raise damaged
                active = has_active_content(reader)
        except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError):
            judged = active_in_plain_pdf(path)
            if judged is None:
                raise damaged from None
            active = judged
        if active:
            raise UploadRejected(ACTIVE_PDF, name=name)
        return mime
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise UploadRejected(N_("“%(name)s” has too many pixels to be opened safely."), name=name)
                image.verify()
    except UploadRejected:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UploadRejected(N_("“%(name)s” has too many pixels to be opened safely."), name=name) from None
    except Exception:  # Pillow raises many kinds for a broken image
        raise damaged from None
    if data_after_end(path, mime):
        raise UploadRejected(TRAILING_DATA, name=name)
    return mime


def active_in_plain_pdf(path: Path) -> bool | None:
    """A PDF the parser cannot walk, judged by its bytes when nothing in it is hidden from a byte scan.

    Small PDFs written by hand or by careless tools (invoices attached to replies among them) often
    lack a cross-reference table; viewers rebuild it and show them. When such a file has a page and
    no encoded stream or object stream, every name it holds is in plain sight, so scanning the bytes
    for active content is as good as walking the objects. None: it cannot be judged that way.
    """
    data = path.read_bytes()
    if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
        return None
    if b"/Filter" in data or b"/ObjStm" in data or b"/Encrypt" in data or not PAGE_TYPE.search(data):
        return None
    return any(key.encode() in data for key in (*ACTIVE_KEYS, *ACTIVE_ACTIONS, "/FileAttachment"))


PAGE_TYPE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")

# Names whose presence anywhere in a PDF's object graph means content that runs or opens something.
ACTIVE_KEYS = {
    "/JS",
    "/JavaScript",
    "/OpenAction",
    "/AA",
    "/Launch",
    "/EmbeddedFile",
    "/EmbeddedFiles",
    "/XFA",
    "/RichMedia",
    "/GoToE",
    "/SubmitForm",
    "/ImportData",
}
ACTIVE_ACTIONS = {"/JavaScript", "/Launch", "/GoToE", "/RichMedia", "/SubmitForm", "/ImportData"}
MAX_PDF_OBJECTS = 50_000


def has_active_content(reader: PdfReader) -> bool:
    """Walk the document's objects from its root (streams' dictionaries, not their data) for
    scripts, launch actions, embedded files and XFA forms, wherever they hide (names tree,
    pages, annotations, form fields, object streams)."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

    seen: set[tuple[int, int]] = set()
    stack = [reader.trailer]
    visited = 0
    while stack:
        item = stack.pop()
        if isinstance(item, IndirectObject):
            key = (item.idnum, item.generation)
            if key in seen:
                continue
            seen.add(key)
            item = item.get_object()
        visited += 1
        if visited > MAX_PDF_OBJECTS:
            return True  # too tangled to judge: refuse rather than guess
        if isinstance(item, DictionaryObject):
            for key, value in item.items():
                if key in ACTIVE_KEYS:
                    return True
                if (
                    key in ("/S", "/Type", "/Subtype")
                    and isinstance(value, NameObject)
                    and value in ACTIVE_ACTIONS | {"/EmbeddedFile", "/FileAttachment"}
                ):
                    return True
                if key != "/Parent":
                    stack.append(value)
        elif isinstance(item, ArrayObject):
            stack.extend(item)
    return False


def data_after_end(path: Path, mime: str) -> bool:
    """Whether bytes follow the image's own end (a zip, HTML or script appended to a picture)."""
    data = path.read_bytes()
    if mime == "image/png":
        return _png_end(data) != len(data)
    if mime == "image/jpeg":
        return _jpeg_end(data) != len(data)
    if mime == "image/webp":
        riff_size = int.from_bytes(data[4:8], "little")
        return 8 + riff_size + (riff_size & 1) < len(data)
    return False


def _png_end(data: bytes) -> int:
    at = 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        at += 12 + length
        if kind == b"IEND":
            return at
    return -1


def _jpeg_end(data: bytes) -> int:
    """Follow the markers: segments by their length, entropy-coded scans to the next real marker."""
    at = 2  # after SOI
    size = len(data)
    while at + 2 <= size:
        if data[at] != 0xFF:
            return -1
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xD9:  # EOI
            return at + 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        if at + 4 > size:
            return -1
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data until a marker other than a stuffed 00 or RSTn
            while True:
                at = data.find(b"\xff", at)
                if at < 0 or at + 1 >= size:
                    return -1
                follower = data[at + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7:
                    at += 2
                    continue
                break
    return -1


# -- in storage: staged under staging/<owner>/, kept at the top level once their request is filed ---
#
# The owner is the browser session that sent the files (its staging quota is the size of its prefix)
# or "inbound" for attachments of replies by email. Staged files older than
# PORTAL_STAGING_MAX_AGE_MINUTES are swept (``sweep_staging``).

STAGING = "staging/"
INBOUND_OWNER = "inbound"


def staging_prefix(owner: str) -> str:
    if not owner or "/" in owner or owner in (".", ".."):
        raise ValueError(f"not a staging owner: {owner!r}")
    return f"{STAGING}{owner}/"


def staged_key(stored: StoredFile | str) -> str:
    """Where a staged file is: the key it was staged under (``staging/<owner>/<name>``), or, for a
    file staged without an owner, ``staging/<name>``."""
    if isinstance(stored, StoredFile):
        return stored.staging_key or STAGING + stored.stored_name
    return STAGING + stored


def document_key(stored_name: str) -> str:
    return stored_name


def stage_upload(
    stream: IO[bytes], original_name: str | None, storage: Storage, *, prefix: str = STAGING, max_bytes: int = MAX_BYTES
) -> StoredFile:
    """Judge the upload in a local temporary folder (``store_upload``: size, type, active content),
    then stream it into storage under ``prefix`` (``staging_prefix(owner)``)."""
    if not prefix.startswith(STAGING) or not prefix.endswith("/"):
        raise ValueError(f"not a staging prefix: {prefix!r}")
    with tempfile.TemporaryDirectory(prefix="portal-upload-") as folder:
        stored = store_upload(stream, original_name, Path(folder), max_bytes=max_bytes)
        key = prefix + stored.stored_name
        storage.put_file(key, Path(folder) / stored.stored_name)
    return replace(stored, staging_key=key)


def move_into(stored: StoredFile, storage: Storage) -> None:
    storage.move(staged_key(stored), document_key(stored.stored_name))


def discard(stored: StoredFile, storage: Storage) -> None:
    storage.delete(staged_key(stored))


def staging_usage(storage: Storage, prefix: str) -> int:
    """Bytes staged under ``prefix``: one session's staging quota is measured by it."""
    return sum(entry.size for entry in storage.listing(prefix))


def sweep_staging(storage: Storage, *, max_age_seconds: float, now: float) -> int:
    """Delete staged files older than ``max_age_seconds``; returns how many went."""
    removed = 0
    for entry in list(storage.listing(STAGING)):
        if now - entry.modified > max_age_seconds:
            storage.delete(entry.key)
            removed += 1
    storage.prune_empty(STAGING)
    return removed
