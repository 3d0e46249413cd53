"""Customer documents: decided by their content, streamed to disk, stored under random names.

Pure: takes file objects and a folder, knows nothing of Flask. The type comes from the bytes
(``filetype`` reads the signature), never from the name or the declared type; images are
opened by Pillow within a pixel budget, PDFs by pypdf, so a disguised or damaged file is caught.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clean_name(name: str | None) -> str:
    # Keep only the last path part and drop control characters; the name is only ever displayed.
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "document"


def store_upload(stream: BinaryIO, original_name: str | None, folder: Path, *, max_bytes: int = MAX_BYTES) -> StoredFile:
    """Copy ``stream`` to ``folder`` in chunks, checking size and content; raise UploadRejected."""
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
                    raise UploadRejected(N_("“%(name)s” is larger than %(limit)s MB."), name=name,
                                         limit=max_bytes // (1024 * 1024))
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
    damaged = UploadRejected(N_("“%(name)s” could not be read as a %(kind)s file; it may be damaged."),
                             name=name, kind=ALLOWED[mime])
    if mime == "application/pdf":
        try:
            reader = PdfReader(str(path), strict=False)
            if len(reader.pages) < 1:
                raise damaged
        except (PyPdfError, ValueError, KeyError, TypeError, OSError):
            raise damaged from None
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
    return mime


# -- in storage: staged under staging/, kept at the top level once their request is filed ----------

STAGING = "staging/"


def staged_key(stored_name: str) -> str:
    return STAGING + stored_name


def document_key(stored_name: str) -> str:
    return stored_name


def stage_upload(stream: BinaryIO, original_name: str | None, storage: Storage, *,
                 max_bytes: int = MAX_BYTES) -> StoredFile:
    """Judge the upload in a local temporary folder (``store_upload``), then stream it into storage as staged."""
    with tempfile.TemporaryDirectory(prefix="portal-upload-") as folder:
        stored = store_upload(stream, original_name, Path(folder), max_bytes=max_bytes)
        with open(Path(folder) / stored.stored_name, "rb") as judged:
            storage.put(staged_key(stored.stored_name), judged)
    return stored


def move_into(stored: StoredFile, storage: Storage) -> None:
    storage.move(staged_key(stored.stored_name), document_key(stored.stored_name))


def discard(stored_name: str, storage: Storage) -> None:
    storage.delete(staged_key(stored_name))
