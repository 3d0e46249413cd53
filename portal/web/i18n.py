"""Locale selection and locale-aware formatting for pages.

We use the bare code ``zh`` for Simplified Chinese everywhere (folders, session, database,
URLs). Browsers send ``zh-CN``, ``zh-Hans-CN``, ``zh-SG`` or ``zh``; Werkzeug's ``best_match``
compares whole tags and would answer ``en`` to most of them, so we match on the primary
language subtag ourselves.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache, lru_cache

from babel import Locale, support
from flask import current_app, g, request, session
from flask_babel import get_locale, get_translations, refresh
from jinja2 import pass_eval_context
from markupsafe import Markup
from wtforms.i18n import messages_path

from portal.core import formatting
from portal.core.brand import brand_for
from portal.core.markers import Plural
from portal.core.money import Money
from portal.core.vocabulary import HTML_LANG, LOCALES, Actor

SESSION_KEY = "locale"
# The browser's time zone, as the first-party script (static/zone.js) reads it from the Intl API.
ZONE_COOKIE = "tz"
# The zone remembered for the customer whose orders this session opened (also on their record).
ZONE_SESSION_KEY = "time_zone"

NATIVE_NAMES = {"en": "English", "zh": "中文", "nl": "Nederlands"}


def locale_from_tag(tag: str) -> str | None:
    """``zh-Hans-CN`` → ``zh``; ``nl-BE`` → ``nl``; anything we do not speak → None."""
    primary = tag.replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary in LOCALES else None


def locale_from_accept_language(values) -> str | None:
    for tag, _quality in values:  # Werkzeug keeps them ordered by quality
        found = locale_from_tag(tag)
        if found:
            return found
    return None


def select_locale() -> str:
    """Explicit switch (kept in the session) > the customer's own language on their pages >
    Accept-Language > en. Only the switch is remembered: opening someone's order never changes
    the language of the pages that follow."""
    chosen = session.get(SESSION_KEY)
    if chosen in LOCALES:
        return chosen
    owner = g.get("_portal_owner_locale")
    if owner in LOCALES:
        return owner
    return locale_from_accept_language(request.accept_languages) or current_app.config["DEFAULT_LOCALE"]


def speak_owners_language(locale: str | None) -> None:
    """This page belongs to a customer: speak their language unless the visitor chose one."""
    if locale in LOCALES and g.get("_portal_owner_locale") != locale:
        g._portal_owner_locale = locale
        g.pop("_portal_translations", None)
        refresh()  # a form or a flash may have asked for the locale before the page knew its owner


def select_babel_locale() -> Locale:
    """Flask-Babel's locale selector: :func:`select_locale`'s answer as a parsed Locale, kept per
    language. Flask-Babel parses a code afresh on every request (tens of microseconds, the locale's
    data looked up again) but takes a Locale as it is."""
    return formatting.babel_locale(select_locale())


def current_locale() -> str:
    return _code(get_locale())


@lru_cache(maxsize=64)
def _code(locale: Locale | None) -> str:
    # A page asks for the code a dozen times; Babel builds the string anew each time.
    return str(locale or "en")


def reader_zone() -> str:
    """The reader's time zone: this browser's (the cookie), else the one remembered for the
    customer, else the app's (UTC), which every time on the page then names."""
    zone = g.get("_portal_zone")
    if zone is None:
        zone = g._portal_zone = (
            formatting.valid_zone(request.cookies.get(ZONE_COOKIE))
            or formatting.valid_zone(session.get(ZONE_SESSION_KEY))
            or str(current_app.config["BABEL_DEFAULT_TIMEZONE"])
        )
    return zone


# Customer pages that show times: reached by GET without a zone, the script draws them once more.
PAGES_WITH_TIMES = frozenset({"customer.order_page", "customer.request_page", "customer.orders"})


def browser_zone() -> str | None:
    return formatting.valid_zone(request.cookies.get(ZONE_COOKIE))


def _zone() -> str:
    return reader_zone()


# The page's side of the one formatting stack (portal.core.formatting): the reader's locale and
# the app's time zone filled in.
def money(value: Money, locale: str | None = None) -> str:
    return formatting.money(value, locale or current_locale())


def moment(value: datetime, locale: str | None = None) -> str:
    """A date with hours and minutes in the reader's zone, named, no seconds: "Nov 1, 2026, 1:00 PM UTC"."""
    return formatting.moment(value, locale or current_locale(), _zone())


def day(value: date, fmt: str = "medium", locale: str | None = None) -> str:
    """A calendar date (no time, no time zone) in the reader's locale."""
    return formatting.day(value, locale or current_locale(), fmt)


def instant(value: datetime, fmt: str = "medium", locale: str | None = None) -> str:
    """A precise moment with its time zone."""
    return formatting.instant(value, locale or current_locale(), _zone(), fmt)


def number(value: int | float, locale: str | None = None) -> str:
    return formatting.number(value, locale or current_locale())


def percent(value: float, locale: str | None = None) -> str:
    return formatting.percent(value, locale or current_locale())


def gettext(string: str, **variables: object) -> str:
    """Flask-Babel's ``gettext`` with the request's translations found once (see ``_translations``)."""
    text = _translations().ugettext(string)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, num: int, **variables: object) -> str:
    """Flask-Babel's ``ngettext`` (``num`` is a variable too) with the request's translations found once."""
    variables.setdefault("num", num)
    return _translations().ungettext(singular, plural, num) % variables


def translated(message: str | Plural, count: int | None = None, /, **params: object) -> str:
    """A message marked in a domain module (``N_`` or ``Nn_``), in the reader's language.

    A ``Plural`` takes the form its number asks for: ``count``, or else its own parameter unformatted.
    """
    if isinstance(message, Plural):
        n = count if count is not None else params[message.param]
        return ngettext(message.singular, message.plural, int(n), **params)  # type: ignore[call-overload]
    return gettext(message, **params)


def _translations():
    # Flask-Babel resolves the domain, the locale and its cache key on every call; a page makes
    # dozens of calls, so the answer is kept for the rest of the request.
    translations = g.get("_portal_translations")
    if translations is None:
        translations = g._portal_translations = get_translations()
    return translations


@cache
def wtforms_translations(locale: str):
    """WTForms' own messages ("Not a valid choice") in ``locale``, parsed once per process.

    Flask-WTF would read the catalog file again for every request that builds a form.
    """
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


def translator(catalog):
    """The pages' ``_``: Jinja's newstyle gettext, reached in one call instead of three nested
    context calls. The translation is trusted markup, the variables are escaped, and the string is
    always %-formatted so a broken placeholder fails at once. ``catalog()`` gives the translations.
    """

    @pass_eval_context
    def translate(eval_ctx, string: str, **variables) -> str:
        return _translate(catalog(), eval_ctx.autoescape, string, variables)

    return translate


def bound_translator(translations):
    """The same ``_`` for one page's render, with the request's translations already found: a page
    calls it a few dozen times, and finding them is most of the cost of a call."""

    @pass_eval_context
    def translate(eval_ctx, string: str, **variables) -> str:
        return _translate(translations, eval_ctx.autoescape, string, variables)

    return translate


MARKUP_CACHE = "_portal_markup"


def _translate(translations, autoescape: bool, string: str, variables: dict) -> str:
    if not autoescape:
        text = translations.ugettext(string)
        return text % variables if variables or "%" in text else text
    # A catalog is loaded once per process and never changes, so each message's trusted markup is
    # made once per language rather than on every page.
    cache = translations.__dict__.get(MARKUP_CACHE)
    if cache is None:
        cache = translations.__dict__[MARKUP_CACHE] = {}
    text = cache.get(string)
    if text is None:
        text = cache[string] = Markup(translations.ugettext(string))
    if not variables and "%" not in text:
        # Most of a page's messages: nothing to format, so no trip through Markup's escaping formatter.
        return text
    return text % variables


def init_app(app) -> None:
    app.jinja_env.install_gettext_callables(
        lambda text: _translations().ugettext(text),
        lambda singular, plural, n: _translations().ungettext(singular, plural, n),
        newstyle=True,
    )

    translate = translator(_translations)
    app.jinja_env.globals.update(_=translate, gettext=translate)
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["date"] = lambda value, fmt="long": day(value, fmt)
    app.jinja_env.filters["datetime"] = lambda value, fmt="medium": instant(value, fmt)
    app.jinja_env.filters["moment"] = moment
    app.jinja_env.filters["colon"] = lambda label: formatting.colon(label, current_locale())
    app.jinja_env.filters["gap"] = lambda sentence: formatting.gap(sentence, current_locale())
    app.jinja_env.filters["aside"] = lambda text, note: formatting.aside(text, note, current_locale())
    app.jinja_env.globals.update(money=money, moment=moment, nowrap=nowrap)

    @app.context_processor
    def locale_context():
        code = current_locale()
        page_translate = bound_translator(_translations())
        return {
            "_": page_translate,
            "gettext": page_translate,
            "locale": code,
            "brand": brand_for(code),
            "html_lang": HTML_LANG.get(code, code),
            "html_langs": HTML_LANG,
            "native_names": NATIVE_NAMES,
            "locales": LOCALES,
            # Between the items of a list written out: Chinese uses the enumeration comma.
            "list_separator": "、" if code == "zh" else ", ",
            "zone_unknown": request.method == "GET" and request.endpoint in PAGES_WITH_TIMES and browser_zone() is None,
        }


def nowrap(text: str) -> Markup:
    """A reference, amount or name that must not break across lines ("RF-" | "J3BJBQMP")."""
    return Markup('<span class="nowrap">%s</span>') % text


def system_note(event) -> str:
    """A timeline note in the reader's language: the system writes marked messages (retention, erasure);
    people's notes are shown as written."""
    return gettext(event.note) if event.actor is Actor.SYSTEM and event.note else event.note
