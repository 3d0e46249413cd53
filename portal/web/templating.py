"""The pages' addresses, built once: a page asks for the same few on every request.

Pages are compiled by Flask's standard Jinja environment with the i18n extension (installed by
``portal.web.i18n``). A per-language copy of each compiled page, with literal messages translated
at compile time, saved only 3–8% of a worker's CPU per order page on ``bench/order_page.py``: under
the 10% the project set for keeping machinery of its own, so the standard mechanism stays.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask import Flask, has_request_context, request
from flask import url_for as flask_url_for


def relative_url_builder() -> Callable[..., str]:
    """Flask's ``url_for`` for templates, remembering the relative addresses built during requests.

    One cache per app: the portal registers no url_defaults and no host or subdomain rules, so a
    relative address is a function of the script root, the endpoint and its values alone.
    """

    @lru_cache(maxsize=4096)
    def relative(script_root: str, endpoint: str, values: tuple[tuple[str, Any], ...]) -> str:
        return flask_url_for(endpoint, **dict(values))

    def for_root(script_root: str) -> Callable[..., str]:
        """The same ``url_for`` for one request whose script root is known: a page asks for a dozen
        addresses, and finding the request again for each was most of the cost of a cached one."""

        def url_for(endpoint: str, **values: Any) -> str:
            if endpoint[:1] == "." or any(key[:1] == "_" for key in values):
                return flask_url_for(endpoint, **values)
            try:
                return relative(script_root, endpoint, tuple(sorted(values.items())) if values else ())
            except TypeError:  # a value that cannot be a cache key, such as a list of query values
                return flask_url_for(endpoint, **values)

        return url_for

    def url_for(endpoint: str, **values: Any) -> str:
        if not has_request_context():
            return flask_url_for(endpoint, **values)
        return for_root(request.script_root)(endpoint, **values)

    url_for.for_root = for_root  # type: ignore[attr-defined]
    return url_for


def init_app(app: Flask) -> None:
    url_for = relative_url_builder()
    app.jinja_env.globals.update(url_for=url_for)

    @app.context_processor
    def request_url_for() -> dict[str, Any]:
        # Rendering a page always happens in a request here (e-mails are rendered by their own
        # environment); outside one, the global above is used.
        if not has_request_context():
            return {}
        return {"url_for": url_for.for_root(request.script_root)}  # type: ignore[attr-defined]
