"""The staff console: the queue, each request, the outbox, the email gallery, staff accounts."""

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff")

from portal.staff import auth, automation, desk, hooks, insights, security, views  # noqa: E402,F401  (routes register on import)
