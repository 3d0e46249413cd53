"""Absolute links for emails and API answers, from the app's public address and secret."""

from flask import current_app

from portal.refunds.links import Links


def links() -> Links:
    return Links(
        current_app.config["BASE_URL"], current_app.config["SECRET_KEY"], current_app.config.get("INBOUND_DOMAIN") or ""
    )
