"""Signed cookies and tokens: Flask's session and Flask-WTF's CSRF token, their signers kept.

Flask makes a new ``URLSafeTimedSerializer`` for each request that opens or saves a session
(probing its JSON serializer and listing its keys each time), Flask-WTF another for each page with
a form, and each of them a new signer, hashing the secret into its key, for every token it signs
or reads. None of that changes while the keys stay the same, so the serializers and their signers
are kept: the cookies and tokens are byte for byte the ones Flask and Flask-WTF make.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app, g, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import csrf_meta_tag, generate_csrf
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer

CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's


class _KeptKeySigner(TimestampSigner):
    """A signer that derives its key from each secret once."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        derived: dict[str | bytes | None, bytes] = self.__dict__.setdefault("_derived", {})
        key = derived.get(secret_key)
        if key is None:
            key = derived[secret_key] = super().derive_key(secret_key)
        return key


class KeptSignerSerializer(URLSafeTimedSerializer):
    """A serializer that makes its signer once per salt (a signer holds nothing a request changes)."""

    default_signer = _KeptKeySigner

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        signers: dict[str | bytes | None, Signer] = self.__dict__.setdefault("_signers", {})
        signer = signers.get(salt)
        if signer is None:
            signer = signers[salt] = super().make_signer(salt)
        return signer


class PortalSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializer: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        kept = self._serializer
        if kept is not None and kept[0] == keys:
            return kept[1]
        serializer = None
        if app.secret_key:
            # Flask's own serializer (SecureCookieSessionInterface.get_signing_serializer), kept.
            serializer = KeptSignerSerializer(
                [*keys[1:], keys[0]],  # itsdangerous expects the current key last
                salt=self.salt,
                serializer=self.serializer,
                signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
            )
        self._serializer = (keys, serializer)
        return serializer


_csrf_serializers: dict[Any, KeptSignerSerializer] = {}
TOKEN_REUSE_SECONDS = 60
RECENT_TOKENS = 10_000
_recent_tokens: dict[tuple[Any, str], tuple[str, float]] = {}


def csrf_token() -> str:
    """Templates' ``csrf_token()``: Flask-WTF's ``generate_csrf`` with its serializer kept.

    The same token, remembered in ``g`` for the rest of the request as Flask-WTF does (the form
    fields built later in the request call Flask-WTF and find it there). The first token of a
    session, whose secret does not exist yet, is left to Flask-WTF.
    """
    config = current_app.config
    field_name = config["WTF_CSRF_FIELD_NAME"]
    token = g.get(field_name)
    if token is not None:
        return str(token)
    raw = session.get(field_name)
    secret_key = config.get("WTF_CSRF_SECRET_KEY", current_app.secret_key)
    if not isinstance(raw, str) or not secret_key:
        return str(generate_csrf())
    # A token signed for this session's secret in the last minute is given again: it is the token
    # that page would have had a minute earlier (Flask-WTF checks its age against
    # WTF_CSRF_TIME_LIMIT, hours), and signing one was 3% of an order page.
    now = time.time()  # the clock the token's own timestamp is read from
    key = (secret_key, raw)
    kept = _recent_tokens.get(key)
    if kept is not None and 0 <= now - kept[1] < TOKEN_REUSE_SECONDS:
        token = kept[0]
    else:
        serializer = _csrf_serializers.get(secret_key)
        if serializer is None:
            serializer = _csrf_serializers[secret_key] = KeptSignerSerializer(secret_key, salt=CSRF_SALT)
        token = serializer.dumps(raw)
        if len(_recent_tokens) >= RECENT_TOKENS:
            _recent_tokens.clear()  # bounded: at most this many sessions' tokens are kept per worker
        _recent_tokens[key] = (token, now)
    setattr(g, field_name, token)
    return str(token)


def init_app(app: Flask) -> None:
    app.session_interface = PortalSessionInterface()
    app.jinja_env.globals["csrf_token"] = csrf_token  # after CSRFProtect, which sets Flask-WTF's
    # CSRFProtect also hands templates Flask-WTF's generate_csrf through a context processor, which
    # outranks the global above: every page built a new serializer and signer for its token. Its
    # processor is replaced by one that gives the kept one (the meta tag helper stays Flask-WTF's).
    processors = app.template_context_processors[None]
    for i, processor in enumerate(processors):
        if getattr(processor, "__module__", None) == "flask_wtf.csrf":
            processors[i] = _csrf_context
            break
    else:
        processors.append(_csrf_context)


def _csrf_context() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "csrf_meta_tag": csrf_meta_tag}
