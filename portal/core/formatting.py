"""One formatting stack for pages, emails and receipts: money, numbers, dates and times in a
reader's language, by Babel from CLDR data. Nothing here imports Flask; the web layer passes
the page's locale, the email kit and the receipts pass the recipient's.

Every function is cached: a page or an email repeats the same few amounts and dates, and their
text in a language never changes, so Babel's pattern parsing is done once per value and language.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache, lru_cache
from zoneinfo import available_timezones

from babel import Locale, dates
from babel.numbers import format_currency, format_decimal, format_percent

from portal.core.money import Money


@cache
def babel_locale(code: str) -> Locale:
    return Locale.parse(code)  # parsing the code again for every value on a page adds up


def money(value: Money, locale: str) -> str:
    """``US$29.00``, ``€ 29,00``, ``¥3,999``: the currency's own decimals, the reader's symbols."""
    return _money(value.minor, value.currency, str(locale))


@lru_cache(maxsize=8192)
def _money(minor: int, currency: str, locale: str) -> str:
    return format_currency(Money.from_minor(minor, currency).amount, currency, locale=babel_locale(locale))


@lru_cache(maxsize=4096)
def number(value: int | float | Decimal, locale: str) -> str:
    return format_decimal(value, locale=babel_locale(locale))


def percent(value: float, locale: str, fmt: str = "#,##0.0%") -> str:
    return format_percent(value, fmt, locale=babel_locale(locale))


def colon(label: str, locale: str) -> str:
    """A label before its value: "Reference: " in English and Dutch, "编号：" in Chinese, where the
    full-width colon carries its own space (an ASCII colon or a space after "：" looks foreign)."""
    base = label.rstrip(":： ")
    return base + ("：" if locale == "zh" else ": ")


def gap(sentence: str, locale: str) -> str:
    """A sentence followed by more text: a space, except after Chinese full-width punctuation,
    which carries its own ("重试。API 参考", not "重试。 API 参考")."""
    return sentence if locale == "zh" and sentence.endswith(FULL_WIDTH_MARKS) else sentence + " "


def aside(text: str, note: str, locale: str) -> str:
    """A note in brackets after a text: "Annual plan (annual)", "年度套餐（annual）"."""
    return f"{text}（{note}）" if locale == "zh" else f"{text} ({note})"


FULL_WIDTH_MARKS = ("。", "，", "：", "；", "！", "？", "）")


@lru_cache(maxsize=8192)
def day(value: date, locale: str, fmt: str = "medium") -> str:
    """A calendar date (no time, no time zone)."""
    return dates.format_date(value, fmt, locale=babel_locale(locale))


@lru_cache(maxsize=8192)
def month_day(value: date, locale: str) -> str:
    """A day of the month without the year, as the language writes it: "Nov 23", "11月23日", "23 nov."."""
    return dates.format_skeleton("MMMd", value, locale=babel_locale(locale))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # stored times are UTC


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def valid_zone(name: object) -> str | None:
    """An IANA zone name as a browser reports it ("Europe/Amsterdam"), or None for anything else."""
    return name if isinstance(name, str) and 0 < len(name) <= 64 and name in _known_zones() else None


def local(value: datetime, zone: str = "UTC") -> datetime:
    return _aware(value).astimezone(dates.get_timezone(zone))


def local_day(value: datetime, zone: str = "UTC") -> date:
    """The calendar day ``value`` falls on where the reader lives (a Beijing evening is the next day there)."""
    return local(value, zone).date()


@lru_cache(maxsize=1024)
def zone_name(zone: str, locale: str, when: datetime) -> str:
    """The zone as a reader names it: "CET", "EST", "UTC", else its long name ("中国标准时间"),
    never a bare offset like "+0800" that names nothing."""
    moment_there = local(when, zone)
    short = dates.get_timezone_name(moment_there, "short", locale=babel_locale(locale))
    if short.isalpha():
        return short
    return dates.get_timezone_name(moment_there, "long", locale=babel_locale(locale))


@lru_cache(maxsize=8192)
def moment(value: datetime, locale: str, zone: str = "UTC", fmt: str = "medium") -> str:
    """A date with hours and minutes and the zone named, never seconds: "Nov 1, 2026, 1:00 PM UTC",
    "2026年11月1日 21:00 中国标准时间".

    Babel's datetime formats show seconds, which read as noise on a receipt or a timeline.
    """
    there = local(value, zone)
    date_part = dates.format_date(there, fmt, locale=babel_locale(locale))
    time_part = dates.format_time(there, "short", locale=babel_locale(locale))
    # The medium pattern joins date and time plainly; the long one adds quoted words ("'at'").
    pattern = babel_locale(locale).datetime_formats["medium"]
    joined = str(pattern).replace("{1}", date_part).replace("{0}", time_part)
    return f"{joined} {zone_name(zone, locale, _hour(there))}"


def _hour(value: datetime) -> datetime:
    # The zone's name depends on the date (summer time); the hour is precise enough and caches well.
    return value.replace(minute=0, second=0, microsecond=0)


def instant(value: datetime, locale: str, zone: str = "UTC", fmt: str = "long") -> str:
    """A precise moment with its time zone named (a window that ends at a given minute)."""
    return moment(value, locale, zone, fmt)


def time_left(delta: timedelta, locale: str) -> str:
    """ "1 day", "20 hours", "1天", "20 uur": how long until something closes, rounded as people say it."""
    return dates.format_timedelta(delta, threshold=0.85, locale=babel_locale(locale))
