"""The pages' template environment: each page compiled once per language, addresses built once.

A page asks for the same texts and addresses on every request: the layout alone makes a dozen
``_("…")`` and ``url_for`` calls, each through Jinja's call machinery, Flask-Babel's locale lookup
and Werkzeug's URL builder. A literal message has one translation per language, and an address
depends only on its endpoint, its values and the script root, so both are worked out once.
"""
from __future__ import annotations

from collections import ChainMap
from functools import lru_cache

from flask import has_request_context, request
from flask import url_for as flask_url_for
from flask.templating import Environment
from flask_babel import get_locale, get_translations
from jinja2 import nodes
from jinja2.utils import LRUCache
from jinja2.visitor import NodeTransformer

from portal.web.i18n import translator

# The names pages call for a translation (see portal.i18n); a message given as a literal is
# translated when the template is compiled for a language, any other call is left to run.
TRANSLATING = frozenset({"_", "gettext"})
FORMAT_TRANSLATED = "_format_translated"


class LocalizedEnvironment(Environment):
    """Flask's page environment, holding one compiled copy of each template per language.

    Each language gets an overlay of this environment with a template cache of its own, in which
    ``_("Refund policy")`` is compiled in as the translated text (trusted markup, as at run time),
    and ``_("Order %(number)s", number=…)`` as its translated pattern, formatted while rendering
    with its variables escaped. Outside a request, templates compile as usual and translate while rendering.
    """

    locale: str | None = None  # set on the per-language overlays only
    translations = None

    def get_template(self, name, parent=None, globals=None):
        localized = self._localized()
        if localized is not None:
            return localized.get_template(name, parent, globals)
        return super().get_template(name, parent, globals)

    def select_template(self, names, parent=None, globals=None):
        localized = self._localized()
        if localized is not None:
            return localized.select_template(names, parent, globals)
        return super().select_template(names, parent, globals)

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        if self.translations is not None and isinstance(source, str):
            source = _Translator(self.translations).visit(self.parse(source, name, filename))
        return super().compile(source, name, filename, raw, defer_init)

    def _localized(self) -> LocalizedEnvironment | None:
        if self.locale is not None or not has_request_context():
            return None  # a language's overlay already, or no reader to choose a language for
        locale = get_locale()
        if locale is None:
            return None
        code = str(locale)
        overlays = self.__dict__.setdefault("_overlays", {})
        overlay = overlays.get(code)
        if overlay is None:
            overlay = self.overlay(cache_size=self.cache.capacity if isinstance(self.cache, LRUCache) else 400)
            # Bound to the language it was made for: Flask-Babel caches its catalogs, and this
            # keeps the overlay from reading another language's if it is compiled under force_locale.
            overlay.locale, overlay.translations = code, get_translations()
            # Messages computed while rendering (a plan's title) are looked up in the same catalog,
            # without asking Flask-Babel for it on every request.
            translate = translator(lambda: overlay.translations)
            # Jinja only reads its globals as a mapping; the overlay's are layered on the parent's.
            overlay.globals = ChainMap({name: translate for name in TRANSLATING}, self.globals)  # type: ignore[assignment]
            overlays[code] = overlay
        return overlay


class _Translator(NodeTransformer):
    def __init__(self, translations) -> None:
        self.translations = translations

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        self.generic_visit(node)  # rewrites the arguments in place and returns the same node
        if not (isinstance(node.node, nodes.Name) and node.node.name in TRANSLATING and len(node.args) == 1
                and isinstance(node.args[0], nodes.Const) and isinstance(node.args[0].value, str)
                and node.dyn_args is None and node.dyn_kwargs is None):
            return node
        text = self.translations.ugettext(node.args[0].value)
        if node.kwargs:
            pattern = nodes.MarkSafeIfAutoescape(nodes.Const(text, lineno=node.lineno), lineno=node.lineno)
            return nodes.Call(nodes.Name(FORMAT_TRANSLATED, "load", lineno=node.lineno), [pattern], node.kwargs,
                              None, None, lineno=node.lineno)
        try:
            text = text % {}  # as at run time: "%%" reads "%"
        except (KeyError, TypeError, ValueError):
            return node  # a placeholder with no value: left to fail while rendering, as before
        return nodes.MarkSafeIfAutoescape(nodes.Const(text, lineno=node.lineno), lineno=node.lineno)


def format_translated(pattern: str, **variables) -> str:
    # ``pattern`` is Markup under autoescape, so the variables are escaped and the pattern is not.
    return pattern % variables


def relative_url_builder():
    """Flask's ``url_for`` for templates, remembering the relative addresses built during requests.

    One cache per app: the portal registers no url_defaults and no host or subdomain rules, so a
    relative address is a function of the script root, the endpoint and its values alone.
    """
    @lru_cache(maxsize=4096)
    def relative(script_root: str, endpoint: str, values: tuple) -> str:
        return flask_url_for(endpoint, **dict(values))

    def url_for(endpoint: str, **values) -> str:
        if not has_request_context() or endpoint[:1] == "." or any(key[:1] == "_" for key in values):
            return flask_url_for(endpoint, **values)
        try:
            return relative(request.script_root, endpoint, tuple(sorted(values.items())))
        except TypeError:  # a value that cannot be a cache key, such as a list of query values
            return flask_url_for(endpoint, **values)

    return url_for


def init_app(app) -> None:
    app.jinja_env.globals.update(url_for=relative_url_builder(), **{FORMAT_TRANSLATED: format_translated})
