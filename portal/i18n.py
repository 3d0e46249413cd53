"""Locale selection and locale-aware formatting for pages.

We use the bare code ``zh`` for Simplified Chinese everywhere (folders, session, database,
URLs). Browsers send ``zh-CN``, ``zh-Hans-CN``, ``zh-SG`` or ``zh``; Werkzeug's ``best_match``
compares whole tags and would answer ``en`` to most of them, so we match on the primary
language subtag ourselves.
"""
from __future__ import annotations

from flask import current_app, request, session
from flask_babel import format_date, format_datetime, format_time, get_locale

from portal.domain import LOCALES
from portal.money import Money, format_money

SESSION_KEY = "locale"
CUSTOMER_LOCALE_KEY = "customer_locale"

# The tag written into <html lang>: the script matters for Chinese fonts (SC, not JP glyphs).
HTML_LANG = {"en": "en", "zh": "zh-Hans", "nl": "nl"}
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
    """Explicit switch (kept in the session) > the customer's own language > Accept-Language > en."""
    for key in (SESSION_KEY, CUSTOMER_LOCALE_KEY):
        chosen = session.get(key)
        if chosen in LOCALES:
            return chosen
    return locale_from_accept_language(request.accept_languages) or current_app.config["DEFAULT_LOCALE"]


def current_locale() -> str:
    return str(get_locale() or "en")


def money(value: Money, locale: str | None = None) -> str:
    return format_money(value, locale or current_locale())


def moment(value) -> str:
    """A date with hours and minutes, no seconds: "Nov 1, 2026, 1:00 PM", "2026年11月1日 13:00".

    Babel's "medium" datetime shows seconds, which read as noise on a receipt or a timeline.
    """
    date_part = format_date(value, "medium")
    time_part = format_time(value, "short")
    pattern = get_locale().datetime_formats["medium"]
    return pattern.replace("{1}", date_part).replace("{0}", time_part)


def init_app(app) -> None:
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["date"] = lambda value, fmt="long": format_date(value, fmt)
    app.jinja_env.filters["datetime"] = lambda value, fmt="medium": format_datetime(value, fmt)
    app.jinja_env.filters["moment"] = moment

    @app.context_processor
    def locale_context():
        code = current_locale()
        return {"locale": code, "html_lang": HTML_LANG.get(code, code), "html_langs": HTML_LANG,
                "native_names": NATIVE_NAMES, "locales": LOCALES}
