"""Security headers (Talisman), worked out once per view instead of on every request.

Talisman gathers a view's options four times per request (the https redirect, the nonce, the
headers, the policy) and joins the Content-Security-Policy from its parts on every response. The
options never change once the app is built, and the portal uses no nonces, so both are kept per
endpoint: every response still carries the same headers, built by Talisman's own code the first time.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_talisman import Talisman


class PortalTalisman(Talisman):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._view_options: dict[str | None, dict[str, Any]] = {}
        self._policies: dict[tuple[str | None, int], str] = {}
        super().__init__(*args, **kwargs)

    def _get_local_options(self) -> dict[str, Any]:
        endpoint = request.endpoint
        options = self._view_options.get(endpoint)
        if options is None:
            options = self._view_options[endpoint] = super()._get_local_options()
        return options

    def _parse_policy(self, policy: Any) -> str:
        if getattr(request, "csp_nonce", None):  # a nonce differs on every response (none is configured today)
            return str(super()._parse_policy(policy))
        key = (request.endpoint, id(policy))
        text = self._policies.get(key)
        if text is None:
            text = self._policies[key] = super()._parse_policy(policy)
        return text
