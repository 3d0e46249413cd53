"""The refund portal. The package root stays light: importing a domain package such as
``portal.policy`` must not load Flask, so the app factory lives in :mod:`portal.app`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app (see :func:`portal.app.create_app`)."""
    from portal.app import create_app as build

    return build(config)
