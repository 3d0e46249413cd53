"""The request class: a form whose documents together pass the size limit still has its fields read.

Werkzeug refuses a body over ``MAX_CONTENT_LENGTH`` before reading a byte, so the customer would
lose everything typed. For forms with files (``multipart/form-data``) the body may be up to twice
the limit: every field is read, and file bytes past the limit are dropped rather than kept, the
file marked ``truncated`` so the upload code refuses it with a message beside what was typed.
Bodies past twice the limit are still refused unread.
"""

from __future__ import annotations

import tempfile

from flask import Request, current_app


class CappedFile(tempfile.SpooledTemporaryFile):
    """A spooled file that stops keeping bytes once the request's file budget is spent."""

    def __init__(self, budget: _Budget):
        super().__init__(max_size=500 * 1024, mode="w+b")
        self.budget = budget
        self.truncated = False

    def write(self, data: bytes) -> int:  # type: ignore[override]  # SpooledTemporaryFile.write takes any buffer
        if self.truncated or not self.budget.take(len(data)):
            self.truncated = True
            return len(data)
        return super().write(data)


class _Budget:
    def __init__(self, limit: int | None):
        self.left = limit

    def take(self, size: int) -> bool:
        if self.left is None:
            return True
        if size > self.left:
            self.left = 0
            return False
        self.left -= size
        return True


class PortalRequest(Request):
    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is not None:
            return self._max_content_length
        if not current_app:
            return super().max_content_length
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if limit and self.mimetype == "multipart/form-data":
            return limit * 2
        return limit

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        budget = self.__dict__.get("_file_budget")
        if budget is None:
            budget = self.__dict__["_file_budget"] = _Budget(
                current_app.config["MAX_CONTENT_LENGTH"] if current_app else None
            )
        return CappedFile(budget)

    @property
    def files_truncated(self) -> bool:
        return any(getattr(f.stream, "truncated", False) for f in self.files.values())
