"""Documents a customer already sent while the rest of the form still needs fixing.

Valid files are kept (staged) between attempts, so a form refused for one bad file or a typo
does not make the customer choose every document again. They wait in the file storage under
``staging/<session id>/`` until the form is filed (or the worker sweeps them).
"""

from __future__ import annotations

import secrets

from flask import current_app, session
from werkzeug.datastructures import FileStorage

from portal.core.markers import N_
from portal.documents.storage import StorageUnavailable
from portal.documents.uploads import (
    MAX_FILES,
    OVER_QUOTA,
    TOO_LARGE_TOGETHER,
    TOO_MANY,
    StoredFile,
    UploadRejected,
    _clean_name,
    discard,
    stage_upload,
    staged_key,
    staging_prefix,
    staging_usage,
)
from portal.web.storage import storage

KEY = "staged_documents"
ID_KEY = "staging_id"

STORAGE_DOWN = N_(
    "We could not store “%(name)s” just now. Please try again in a few minutes; what you typed has been kept."
)


def session_prefix() -> str:
    """This browser session's own staging prefix in the storage (``staging/<session id>/``).

    The size of what it holds is the session's quota, so replaying one session cookie many times
    fills the same prefix and meets the same limit. The worker deletes files older than
    ``PORTAL_STAGING_MAX_AGE_MINUTES``.
    """
    if ID_KEY not in session:
        session[ID_KEY] = secrets.token_hex(16)
    return staging_prefix(session[ID_KEY])


def staged(scope: str) -> list[StoredFile]:
    """Files staged for ``scope`` that are still there (not swept, not filed from a copy of this session)."""
    files = [StoredFile(**d) for d in session.get(KEY, {}).get(scope, [])]
    if not files:
        return []
    try:
        present = set(storage().walk(session_prefix()))
    except StorageUnavailable:
        return files  # cannot look just now: filing will tell if one has gone
    return [f for f in files if staged_key(f) in present]


def _save(scope: str, files: list[StoredFile]) -> None:
    all_scopes = dict(session.get(KEY, {}))
    if files:
        all_scopes[scope] = [f.to_dict() for f in files]
    else:
        all_scopes.pop(scope, None)
    session[KEY] = all_scopes


def stage(
    scope: str, uploads: list[FileStorage], slot_uploads: dict[str, FileStorage] | None = None
) -> tuple[list[StoredFile], list[UploadRejected]]:
    """Store every acceptable upload, keep the ones staged earlier, and report each refusal."""
    kept = staged(scope)
    problems: list[UploadRejected] = []
    incoming: list[tuple[FileStorage, str | None]] = [(f, None) for f in uploads if f and f.filename]
    incoming += [(f, slot) for slot, f in (slot_uploads or {}).items() if f and f.filename]
    quota = int(current_app.config["STAGING_QUOTA_BYTES"])
    files = storage()
    for upload, slot in incoming:
        if len(kept) >= MAX_FILES:
            problems.append(UploadRejected(TOO_MANY, count=MAX_FILES))
            break
        prefix = session_prefix()
        try:
            if getattr(upload.stream, "truncated", False):
                raise UploadRejected(
                    TOO_LARGE_TOGETHER,
                    name=_clean_name(upload.filename),
                    limit=int(current_app.config["MAX_CONTENT_LENGTH"]) // (1024 * 1024),
                )
            used = staging_usage(files, prefix)
            if used >= quota:
                raise UploadRejected(OVER_QUOTA, limit=quota // (1024 * 1024))
            stored = stage_upload(upload.stream, upload.filename, files, prefix=prefix)
            if used + stored.size > quota:
                discard(stored, files)
                raise UploadRejected(OVER_QUOTA, limit=quota // (1024 * 1024))
        except UploadRejected as rejected:
            problems.append(rejected)
            continue
        except StorageUnavailable:
            problems.append(UploadRejected(STORAGE_DOWN, name=_clean_name(upload.filename)))
            continue
        kept.append(StoredFile(**{**stored.to_dict(), "checklist_item": slot}) if slot else stored)
    _save(scope, kept)
    return kept, problems


def clear(scope: str, *, delete_files: bool = False) -> None:
    if delete_files:
        for stored in staged(scope):
            discard(stored, storage())
    _save(scope, [])
