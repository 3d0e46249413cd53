"""Secrets that travel in URLs: random, shown once, and stored only as a SHA-256 hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def derived_token(secret: str, purpose: str, subject: str) -> str:
    """A token the server can recompute (for links in every later email) but nobody can guess.

    Rotating the secret key invalidates such links; the order lookup still reaches the request.
    """
    mac = hmac.new(secret.encode("utf-8"), f"{purpose}:{subject}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
