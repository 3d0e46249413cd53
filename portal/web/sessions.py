"""Flask's signed-cookie session, its serializer built once instead of on every request.

Flask makes a new ``URLSafeTimedSerializer`` for each request that opens or saves a session
(probing its JSON serializer and listing its keys each time); the keys change only when the
configuration does, so the serializer is kept for as long as they stay the same.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class PortalSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializer: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        kept = self._serializer
        if kept is not None and kept[0] == keys:
            return kept[1]
        serializer = super().get_signing_serializer(app)
        self._serializer = (keys, serializer)
        return serializer
