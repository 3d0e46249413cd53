"""Flask glue for file storage: one backend per app, chosen by PORTAL_STORAGE_URL, and streamed downloads."""

from __future__ import annotations

from urllib.parse import quote

from flask import current_app, render_template, request
from werkzeug.datastructures import ContentRange

from portal.documents.storage import (
    FileCorrupted,
    FileMissing,
    S3Settings,
    Storage,
    StorageUnavailable,
    open_storage,
    verified_chunks,
    verified_range,
)

STORAGE = "storage"


def storage_from_config(config) -> Storage:
    return open_storage(
        config["STORAGE_URL"],
        S3Settings(
            endpoint_url=config.get("S3_ENDPOINT_URL") or None,
            region=config.get("S3_REGION") or None,
            server_side_encryption=config.get("STORAGE_SSE") or "",
            kms_key_id=config.get("STORAGE_SSE_KMS_KEY_ID") or None,
        ),
    )


def init_app(app) -> None:
    app.extensions[STORAGE] = storage_from_config(app.config)
    app.register_error_handler(StorageUnavailable, _unavailable)
    app.register_error_handler(FileCorrupted, _corrupted)
    app.register_error_handler(FileMissing, _missing)


def storage() -> Storage:
    return current_app.extensions[STORAGE]


def _unavailable(error):
    current_app.logger.warning("storage unavailable: %s", error)
    return render_template("errors/storage.html"), 503, {"Retry-After": "60"}


def _corrupted(error):
    # Already logged with the hashes where it was found; the bytes are never sent.
    return render_template("errors/storage.html"), 500


def _missing(error):
    current_app.logger.error("stored file missing: %s", error)
    return render_template("errors/storage.html"), 500


def content_disposition(filename: str, *, as_attachment: bool) -> str:
    kind = "attachment" if as_attachment else "inline"
    try:
        filename.encode("ascii")
    except UnicodeEncodeError:
        fallback = filename.encode("ascii", "ignore").decode("ascii").replace('"', "") or "document"
        return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
    return kind + '; filename="' + filename.replace("\\", "\\\\").replace('"', '\\"') + '"'


def download(key: str, *, sha256: str, size: int, filename: str, mimetype: str, as_attachment: bool = True):
    """A stored file streamed through the portal, its hash checked; ETag is the SHA-256.

    One byte range (``Range: bytes=…``, what a PDF viewer or a resumed download asks for) is
    answered 206 with that part; several ranges, or an ``If-Range`` naming another version, get
    the whole file, and a range past the end 416.
    """
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=0",
        "Content-Disposition": content_disposition(filename, as_attachment=as_attachment),
        "Accept-Ranges": "bytes",
    }
    if request.if_none_match.contains(sha256):
        return current_app.response_class(status=304, headers=headers)
    wanted = request.range if request.range and request.range.units == "bytes" else None
    if wanted is not None and request.if_range.etag is not None and request.if_range.etag != sha256:
        wanted = None
    if request.if_range.date is not None:
        wanted = None  # stored files have no dates to compare, only their hash
    if wanted is not None and len(wanted.ranges) == 1:
        bounds = wanted.range_for_length(size)
        if bounds is None:
            return current_app.response_class(
                status=416, headers={**headers, "Content-Range": f"bytes */{size}"}, mimetype=mimetype
            )
        start, stop = bounds
        chunks = verified_range(storage(), key, sha256, size, start, stop)
        response = current_app.response_class(
            chunks, status=206, mimetype=mimetype, headers=headers, direct_passthrough=True
        )
        response.content_length = stop - start
        response.content_range = ContentRange("bytes", start, stop, size)
        return response
    chunks = verified_chunks(storage(), key, sha256, size)
    response = current_app.response_class(chunks, mimetype=mimetype, headers=headers, direct_passthrough=True)
    response.content_length = size
    return response
