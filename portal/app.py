"""The app factory: settings, extensions, blueprints, error handlers and commands, in that order."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import CodeType, FunctionType, MethodType
from typing import Any

from flask import Flask
from flask.templating import _default_template_ctx_processor
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

# Every feature's models, so the metadata (and Alembic's comparison) knows every table.
import portal.accounts.models
import portal.core.idempotency
import portal.documents.models
import portal.inbound.models
import portal.insights.decisions
import portal.insights.models
import portal.orders.models
import portal.outbox.models
import portal.refunds.automation.models
import portal.refunds.models
import portal.refunds.replies  # noqa: F401
from portal import cli
from portal import config as settings
from portal.api import bp as api_bp
from portal.core.paths import PACKAGE_DIR, resource_dir
from portal.customer import bp as customer_bp
from portal.main import bp as main_bp
from portal.staff import bp as staff_bp
from portal.web import automation, caching, desk, errors, i18n, mail, policy, sessions, storage, telemetry, templating
from portal.web.extensions import babel, csrf, db, limiter, login_manager, migrate
from portal.web.requests import PortalRequest
from portal.web.security import PortalTalisman
from portal.webhooks.views import bp as webhooks_bp


class PortalFlask(Flask):
    request_class = PortalRequest

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask's ``ensure_sync`` without asking ``inspect`` again for code already seen: Flask asks
        whether each view and hook is a coroutine function on every call (about twenty times a
        request). The answer for a function or bound method lies in its code object, which never
        changes; code objects are as many as the functions written, so the set stays small."""
        plain = type(func) in (FunctionType, MethodType)
        code = getattr(getattr(func, "__func__", func), "__code__", None) if plain else None
        if code is not None and code in self._sync_code:
            return func
        sync = super().ensure_sync(func)
        if sync is func and code is not None:
            self._sync_code.add(code)
        return sync

    @cached_property
    def _sync_code(self) -> set[CodeType]:
        return set()


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults, then ``PORTAL_*`` environment variables, then ``config``."""
    app = PortalFlask(
        __name__,
        instance_relative_config=True,
        # One per node when several run from one installation (None: Flask's own choice).
        instance_path=os.environ.get("PORTAL_INSTANCE_PATH") or None,
        template_folder=str(resource_dir("templates")),
        static_folder=str(PACKAGE_DIR / "static"),
    )
    app.config.from_mapping(settings.DEFAULTS)
    app.config.from_prefixed_env("PORTAL")
    if config:
        app.config.from_mapping(config)
    settings.finalize(app.config, _instance(app))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(resource_dir("translations"))
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["DEFAULT_TIMEZONE"]

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def _instance(app: Flask) -> Path:
    path = Path(app.instance_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_limits_only_on_limited_views(app: Flask) -> None:
    """Leave out Flask-Limiter's check before every request when it has nothing to check.

    That hook applies the app-wide and default limits; the portal sets neither (its limits sit on
    the lookup, filing, sign-in and API views, whose decorators check them), yet the hook resolved
    limits for every page: about 8% of the order page's time. An operator who sets
    PORTAL_RATELIMIT_DEFAULT or PORTAL_RATELIMIT_APPLICATION gets the hook, and those limits, back.
    """
    if app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION"):
        return
    hooks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [hook for hook in hooks if hook != limiter._check_request_limit]


def register_extensions(app: Flask) -> None:
    # First: its request hooks wrap every other one (logs, request id, figures, /metrics).
    telemetry.init_app(app)
    if app.config["PROXY_COUNT"]:
        count = int(app.config["PROXY_COUNT"])
        # Flask's documented way to wrap the WSGI app; mypy forbids assigning over a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]
    db.init_app(app)
    limiter.init_app(app)
    _check_limits_only_on_limited_views(app)
    migrate.init_app(app, db, directory=str(PACKAGE_DIR / "migrations"), render_as_batch=True, compare_type=True)
    babel.init_app(app, locale_selector=i18n.select_babel_locale)
    csrf.init_app(app)
    sessions.init_app(app)  # after CSRFProtect: replaces its csrf_token() for templates
    # current_user reaches templates as Flask-Login's lazy proxy, not through its context processor,
    # which would load the user for every page, customers' pages included.
    login_manager.init_app(app, add_context_processor=False)
    app.jinja_env.globals["current_user"] = current_user
    i18n.init_app(app)
    templating.init_app(app)
    caching.init_app(app)
    policy.init_app(app)
    automation.init_app(app)
    desk.init_app(app)
    storage.init_app(app)
    mail.init_app(app)
    app.extensions["talisman"] = PortalTalisman(
        app,
        force_https=app.config["FORCE_HTTPS"],
        frame_options="DENY",
        strict_transport_security=True,  # sent only on HTTPS responses
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        referrer_policy="same-origin",
        content_security_policy={
            "default-src": "'self'",
            "img-src": "'self' data:",
            "style-src": "'self'",
            "script-src": "'self'",
            "object-src": "'none'",
            "base-uri": "'none'",
            "form-action": "'self'",
            "frame-ancestors": "'none'",
        },
    )


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(staff_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(customer_bp)
    # Token- and signature-authenticated machine endpoints: no cookies, so no CSRF to guard against.
    csrf.exempt(api_bp)
    csrf.exempt(webhooks_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(webhooks_bp)
    # Flask gives each blueprint a copy of its default context processor (g, request, session),
    # which the app's own already supplies: every page ran it twice.
    for name, processors in app.template_context_processors.items():
        if name is not None:
            processors[:] = [p for p in processors if p is not _default_template_ctx_processor]


def register_errorhandlers(app: Flask) -> None:
    errors.init_app(app)


def register_commands(app: Flask) -> None:
    cli.init_app(app)
