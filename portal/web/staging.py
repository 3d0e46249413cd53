"""Documents a customer already sent while the rest of the form still needs fixing.

Valid files are kept (staged) between attempts, so a form refused for one bad file or a typo
does not make the customer choose every document again.
"""
from __future__ import annotations

from flask import session
from werkzeug.datastructures import FileStorage

from portal.core.markers import N_
from portal.documents.storage import StorageUnavailable
from portal.documents.uploads import MAX_FILES, TOO_MANY, StoredFile, UploadRejected, discard, stage_upload
from portal.web.storage import storage

KEY = "staged_documents"


STORAGE_DOWN = N_("We could not store “%(name)s” just now. Please try again in a few minutes; "
                  "what you typed has been kept.")


def staged(scope: str) -> list[StoredFile]:
    return [StoredFile(**d) for d in session.get(KEY, {}).get(scope, [])]


def _save(scope: str, files: list[StoredFile]) -> None:
    all_scopes = dict(session.get(KEY, {}))
    if files:
        all_scopes[scope] = [f.to_dict() for f in files]
    else:
        all_scopes.pop(scope, None)
    session[KEY] = all_scopes


def stage(scope: str, uploads: list[FileStorage], slot_uploads: dict[str, FileStorage] | None = None
          ) -> tuple[list[StoredFile], list[UploadRejected]]:
    """Store every acceptable upload, keep the ones staged earlier, and report each refusal."""
    kept = staged(scope)
    problems: list[UploadRejected] = []
    incoming = [(f, None) for f in uploads if f and f.filename]
    incoming += [(f, slot) for slot, f in (slot_uploads or {}).items() if f and f.filename]
    for upload, slot in incoming:
        if len(kept) >= MAX_FILES:
            problems.append(UploadRejected(TOO_MANY, count=MAX_FILES))
            break
        try:
            stored = stage_upload(upload.stream, upload.filename, storage())
        except UploadRejected as rejected:
            problems.append(rejected)
            continue
        except StorageUnavailable:
            problems.append(UploadRejected(STORAGE_DOWN, name=upload.filename))
            continue
        kept.append(StoredFile(**{**stored.to_dict(), "checklist_item": slot}) if slot else stored)
    _save(scope, kept)
    return kept, problems


def clear(scope: str, *, delete_files: bool = False) -> None:
    if delete_files:
        for stored in staged(scope):
            discard(stored.stored_name, storage())
    _save(scope, [])
