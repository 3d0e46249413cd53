"""The email kit: one rendering API for the app, the previews, the test sends and the export.

``EmailKit.render(message, locale, **variables)`` gives the subject, preheader, HTML and plain
text of a message in the recipient's language. The templates live in ``emails/`` (Jinja with
gettext, one shared layout, one stylesheet inlined by css-inline at render time) and
``emails/messages.toml`` declares each message's variables with sample values. A variable
that is missing or undeclared is an error, never a blank. Nothing here imports Flask.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError
from markupsafe import Markup

from portal.core import formatting
from portal.core.brand import localized
from portal.core.money import Money, MoneyError
from portal.core.vocabulary import HTML_LANG, LOCALES

TYPES = ("text", "bool", "int", "money", "date", "datetime", "url", "list")
# The layout's own context; a message may not declare a variable by these names.
GLOBALS = (
    "brand",
    "base_url",
    "support_url",
    "logo_url",
    "locale",
    "html_lang",
    "stylesheet",
    "email_subject",
    "email_preheader",
)


class KitError(ValueError):
    """A message that cannot be rendered as asked: unknown message, bad or missing variables."""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    sample: object
    description: str = ""


@dataclass(frozen=True)
class MessageSpec:
    name: str
    description: str
    variables: dict[str, Variable]

    def samples(self) -> dict[str, object]:
        return {name: variable.sample for name, variable in self.variables.items()}


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Rendered:
    subject: str
    preheader: str
    html: str
    text: str
    attachments: tuple[Attachment, ...] = field(default=())


def load_specs(root: Path) -> dict[str, MessageSpec]:
    with open(root / "messages.toml", "rb") as f:
        data = tomllib.load(f)
    specs = {}
    for name, entry in data.items():
        variables = {}
        for var_name, var in entry.get("variables", {}).items():
            if var_name in GLOBALS:
                raise KitError(f"{name}: the variable {var_name!r} is reserved for the layout")
            if var.get("type") not in TYPES:
                raise KitError(f"{name}.{var_name}: type must be one of {', '.join(TYPES)}")
            if "sample" not in var:
                raise KitError(f"{name}.{var_name}: a sample value is required")
            variables[var_name] = Variable(var_name, var["type"], var["sample"], var.get("description", ""))
        specs[name] = MessageSpec(name, entry.get("description", ""), variables)
    return specs


@lru_cache(maxsize=4)
def specs_in(root: Path) -> dict[str, MessageSpec]:
    """The declarations of the kit in ``root``, read once per process."""
    return load_specs(root)


def check_variables(
    specs: Mapping[str, MessageSpec], message: str, locale: str, variables: Mapping[str, object]
) -> dict[str, object]:
    """The variables as the outbox stores them (JSON), or :class:`KitError` naming what is wrong.

    The same checks as rendering, made when the message is queued: a missing, undeclared or
    ill-typed variable fails the action that queued it instead of a delivery after the commit.
    """
    try:
        spec = specs[message]
    except KeyError:
        raise KitError(f"there is no message called {message!r}") from None
    if locale not in LOCALES:
        raise KitError(f"{message}: {locale!r} is not one of the kit's languages ({', '.join(LOCALES)})")
    missing = sorted(set(spec.variables) - set(variables))
    unknown = sorted(set(variables) - set(spec.variables))
    if missing:
        raise KitError(f"{message}: missing variable(s) {', '.join(missing)}")
    if unknown:
        raise KitError(f"{message}: undeclared variable(s) {', '.join(unknown)}")
    return {name: _stored(spec.variables[name], value) for name, value in variables.items()}


def _stored(variable: Variable, value: object) -> object:
    kind, name = variable.type, variable.name
    try:
        if kind == "text":
            return "" if value is None else str(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if kind == "int":
            if isinstance(value, bool):
                raise TypeError("expected a whole number")
            return int(str(value))
        if kind == "money":
            return money_variable(value if isinstance(value, Money) else _parse_money(str(value)))
        if kind == "date":
            day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
            return (day.date() if isinstance(day, datetime) else day).isoformat()
        if kind == "datetime":
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
        if kind == "url":
            url = str(value)
            if not url.startswith(("https://", "http://", "/")):
                raise ValueError("expected an absolute URL or a path on the portal")
            return url
        if kind == "list":
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise TypeError("expected a list")
            return [str(item) for item in value]
    except (TypeError, ValueError, InvalidOperation, MoneyError) as error:
        raise KitError(f"the variable {name!r} ({kind}) cannot take {value!r}: {error}") from None
    raise KitError(f"unknown type {kind!r}")


class EmailKit:
    def __init__(self, root: Path, translations_dir: Path, *, base_url: str, brand: Mapping[str, Any]):
        self.root = Path(root)
        self.translations_dir = Path(translations_dir)
        self.base_url = base_url.rstrip("/")
        self.brand = brand
        self.specs = load_specs(self.root)
        self.stylesheet = (self.root / "styles.css").read_text(encoding="utf-8")
        # @media rules (mobile, dark mode) stay in the <style> block; remote stylesheets are never fetched.
        self._environments: dict[str, Environment] = {}
        self._layout_globals: dict[str, dict[str, object]] = {}
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)

    @property
    def messages(self) -> list[str]:
        return list(self.specs)

    def spec(self, message: str) -> MessageSpec:
        try:
            return self.specs[message]
        except KeyError:
            raise KitError(f"there is no message called {message!r}") from None

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self, message: str, locale: str, *, attachments: Iterable[Attachment] = (), **variables: object
    ) -> Rendered:
        return self._render_checked(message, locale, variables, tuple(attachments))

    def render_sample(self, message: str, locale: str) -> Rendered:
        return self._render_checked(message, locale, self.spec(message).samples(), ())

    def _render_checked(
        self, message: str, locale: str, variables: dict[str, object], attachments: tuple[Attachment, ...]
    ) -> Rendered:
        spec = self.spec(message)
        stored = check_variables(self.specs, message, locale, variables)
        context = {name: self._format(spec.variables[name], value, locale) for name, value in stored.items()}
        return self._render(message, locale, context, attachments)

    def render_merge_tags(self, message: str, locale: str, style: str) -> Rendered:
        """The message with an ESP's merge tags (``*|AMOUNT|*``, ``{{amount}}``) where our values go."""
        tag = MERGE_TAGS[style]
        context: dict[str, object] = {name: MergeTag(tag(name)) for name in self.spec(message).variables}
        for name, variable in self.spec(message).variables.items():
            if variable.type == "bool":
                context[name] = bool(variable.sample)  # a condition cannot be a tag; keep the sample's branch
            elif variable.type == "list":
                context[name] = [MergeTag(tag(name))]
        return self._render(message, locale, context, ())

    def _render(
        self, message: str, locale: str, context: dict[str, object], attachments: tuple[Attachment, ...]
    ) -> Rendered:
        environment = self._environment(locale)
        context = {**self._globals(locale), **context}
        try:
            html_template = environment.get_template(f"messages/{message}.html")
            text_template = environment.get_template(f"messages/{message}.txt")
            block_context = html_template.new_context(context)
            subject = _threaded(_plain("".join(html_template.blocks["subject"](block_context))), context)
            preheader = _plain("".join(html_template.blocks["preheader"](block_context)))
            html = html_template.render({**context, "email_subject": subject, "email_preheader": preheader})
            text = text_template.render(context)
        except UndefinedError as error:
            raise KitError(f"{message} ({locale}): the template uses an undeclared variable: {error.message}") from None
        except TemplateNotFound as error:
            raise KitError(f"{message}: the template {error.name} is missing") from None
        except KeyError as error:
            raise KitError(f"{message}: the template has no {error} block") from None
        return Rendered(subject, preheader, self._inliner.inline(html), _tidy_text(text), attachments)

    # -- helpers -----------------------------------------------------------------------------

    def _environment(self, locale: str) -> Environment:
        # One environment per language for the kit's life (a method-level lru_cache would keep
        # every kit ever made alive).
        if locale in self._environments:
            return self._environments[locale]
        environment = self._environments[locale] = Environment(
            loader=FileSystemLoader(self.root),
            autoescape=lambda name: bool(name and name.endswith(".html")),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        translations = self._translations(locale)
        # The jinja2.ext.i18n extension adds this method, which Jinja's types cannot show.
        environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        # For values that may be standard texts (a standard question): translated when the catalog
        # knows them, kept as written otherwise, and escaped like any value, never trusted as markup.
        environment.filters["translated"] = lambda text: translations.gettext(str(text)) if text else ""
        environment.filters["colon"] = lambda label: formatting.colon(label, locale)
        return environment

    def _translations(self, locale: str) -> NullTranslations:
        try:
            return load_catalog(self.translations_dir, locale)
        except LookupError as error:
            raise KitError(str(error)) from None

    def _globals(self, locale: str) -> dict[str, object]:
        if locale not in self._layout_globals:
            self._layout_globals[locale] = self._globals_for(locale)
        return self._layout_globals[locale]

    def _globals_for(self, locale: str) -> dict[str, object]:
        return {
            "brand": localized(self.brand, locale),
            "base_url": self.base_url,
            "support_url": self.absolute(self.brand.get("support_url", "/")),
            "logo_url": self.absolute(self.brand["logo_url"]) if self.brand.get("logo_url") else "",
            "locale": locale,
            "html_lang": HTML_LANG.get(locale, locale),
            "stylesheet": Markup(self.stylesheet),
        }

    def absolute(self, url: str) -> str:
        if url.startswith(("https://", "http://")):
            return url
        if url.startswith("/"):
            return self.base_url + url
        raise KitError(f"{url!r} is neither an absolute URL nor a path on the portal")

    def _format(self, variable: Variable, value: object, locale: str) -> object:
        """A stored value (see :func:`check_variables`) as the reader reads it."""
        kind = variable.type
        if kind == "int":
            return formatting.number(int(str(value)), locale)
        if kind == "money":
            return formatting.money(_parse_money(str(value)), locale)
        if kind == "date":
            return formatting.day(date.fromisoformat(str(value)), locale, "long")
        if kind == "datetime":
            return formatting.instant(datetime.fromisoformat(str(value)), locale)
        if kind == "url":
            return self.absolute(str(value))
        return value


def load_catalog(translations_dir: Path, locale: str) -> NullTranslations:
    """The compiled catalog of ``locale`` (English, the source language, needs none)."""
    if locale == "en":
        return NullTranslations()
    translations = Translations.load(str(translations_dir), [locale])
    if not isinstance(translations, Translations):
        raise LookupError(f"no compiled catalog for {locale!r} in {translations_dir}")
    return translations


def _parse_money(text: str) -> Money:
    """'29.00 USD' (the form the outbox stores) into Money with the currency's minor units."""
    amount, _, currency = text.strip().partition(" ")
    if not currency:
        raise ValueError("expected an amount and a currency code, such as '29.00 USD'")
    Decimal(amount)
    return Money.parse(amount, currency.strip())


def money_variable(money: Money) -> str:
    """How a Money travels in an outbox message's variables (JSON)."""
    return f"{money.amount} {money.currency}"


def _plain(text: str) -> str:
    """A subject or preheader as plain text: entities decoded, whitespace and newlines folded."""
    return " ".join(Markup(text).unescape().split())


def _threaded(subject: str, context: dict[str, object]) -> str:
    """Every email about a request starts its subject with the request's reference, in the same place
    in every message and language, so mail programs that thread by subject keep them together."""
    reference = context.get("reference")
    return f"[{reference}] {subject}" if reference else subject


def _tidy_text(text: str) -> str:
    # Trailing blanks go, except in the signature separator "-- " (RFC 3676), which mail programs
    # recognise only with its space.
    text = re.sub(r"(?m)^(?!-- $)(.*?)[ \t]+$", r"\1", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


class MergeTag(str):
    """A value that prints as an ESP merge tag, unescaped and unformatted."""

    def __html__(self) -> str:
        return str(self)


MERGE_TAGS: dict[str, Callable[[str], str]] = {
    "mailchimp": lambda name: f"*|{name.upper()}|*",
    "handlebars": lambda name: "{{" + name + "}}",
}
