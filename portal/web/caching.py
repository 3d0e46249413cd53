"""What caches may keep: pages in the reader's language vary with it, and nobody's private pages are kept."""

from __future__ import annotations

from flask import Flask, Response, request

# Pages about one customer's orders or the staff's work: never stored by a browser or a shared cache.
PRIVATE_BLUEPRINTS = frozenset({"customer", "staff"})
PUBLIC_ENDPOINTS = frozenset({"customer.policy"})


def init_app(app: Flask) -> None:
    @app.after_request
    def cache_headers(response: Response) -> Response:
        if response.mimetype != "text/html":
            return response
        # The language is chosen from Accept-Language when the reader has not chosen one.
        if "Vary" in response.headers:
            response.vary.add("Accept-Language")
        else:  # the usual case; response.vary would parse and rewrite the header to say the same
            response.headers["Vary"] = "Accept-Language"
        if (
            request.blueprint in PRIVATE_BLUEPRINTS
            and request.endpoint not in PUBLIC_ENDPOINTS
            and "Cache-Control" not in response.headers
        ):
            response.headers["Cache-Control"] = "private, no-store"
        return response
