"""The portal with Flask's standard page environment, for bench/order_page.py to compare against.

The same app as ``portal.wsgi:app`` (same settings from the environment, extensions, blueprints,
filters and globals, Flask-Babel's ``jinja2.ext.i18n`` with the portal's gettext callables, the
cached ``url_for``), except that its ``jinja_environment`` is Flask's own ``Environment`` instead
of ``portal.web.templating.LocalizedEnvironment``: each page template is compiled once and cached
by Jinja as usual, and every ``_("…")`` is looked up in the reader's catalog while rendering.

    gunicorn --pythonpath bench _standard_templates_app:app
"""
from __future__ import annotations

from unittest import mock

from flask.templating import Environment

import portal.app
from portal.web.templating import LocalizedEnvironment


class StandardTemplatesFlask(portal.app.PortalFlask):
    jinja_environment = Environment


# create_app builds a portal.app.PortalFlask; in this process only, it builds the subclass above.
with mock.patch.object(portal.app, "PortalFlask", StandardTemplatesFlask):
    app = portal.app.create_app()

assert type(app.jinja_env) is Environment and not isinstance(app.jinja_env, LocalizedEnvironment), \
    "the standard variant must render through Flask's own Environment"
assert "jinja2.ext.InternationalizationExtension" in app.jinja_env.extensions, "Flask-Babel's i18n extension"
