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
    "esp",
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
        self.stylesheet = brand_stylesheet((self.root / "styles.css").read_text(encoding="utf-8"), brand)
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
        """The message with an ESP's merge tags (``*|AMOUNT|*``, ``{{amount}}``) where our values go.

        Conditions on a variable become the ESP's own (``*|IF:NOTE|*…*|ELSE:|*…*|END:IF|*``,
        ``{{#if note}}…{{else}}…{{/if}}``), so both branches travel; a list becomes
        ``{{#each questions}}`` in Handlebars and, as Mailchimp has no loops, one merge field per
        item (``*|QUESTIONS_1|*`` … ``*|QUESTIONS_5|*``), each in its own ``*|IF:…|*``.
        """
        if style not in MERGE_TAGS:
            raise KitError(f"unknown merge-tag style {style!r} (use {', '.join(MERGE_TAGS)})")
        spec = self.spec(message)
        tag = MERGE_TAGS[style]
        context: dict[str, object] = {}
        for name, variable in spec.variables.items():
            if variable.type == "list":
                context[name] = _list_tags(style, name)
            else:
                context[name] = MergeTag(tag(name))
        return self._render(message, locale, context, (), style=style)

    def _render(
        self,
        message: str,
        locale: str,
        context: dict[str, object],
        attachments: tuple[Attachment, ...],
        style: str = "",
    ) -> Rendered:
        environment = self._environment(locale, style)
        context = {**self._globals(locale), "esp": style, **context}
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

    def _environment(self, locale: str, style: str = "") -> Environment:
        # One environment per language (and merge-tag style) for the kit's life (a method-level
        # lru_cache would keep every kit ever made alive).
        key = f"{locale}:{style}"
        if key in self._environments:
            return self._environments[key]
        loader = MergeTagLoader(self.root, self.specs, style) if style else FileSystemLoader(self.root)
        environment = self._environments[key] = Environment(
            loader=loader,
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


COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def brand_stylesheet(css: str, brand: Mapping[str, Any]) -> str:
    """The stylesheet with the brand's colours filled in; a colour that is not a CSS hex value is an
    error (it would end up inside a style attribute of every message)."""
    for key, value in brand.items():
        if key.endswith("_color") and not (isinstance(value, str) and COLOR.fullmatch(value)):
            raise KitError(f"brand.toml: {key} = {value!r} is not a CSS hex colour such as #1f4e79")
    try:
        return Environment(undefined=StrictUndefined).from_string(css).render(brand=brand)
    except UndefinedError as error:
        raise KitError(f"styles.css uses a brand value that brand.toml does not set: {error.message}") from None


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
# Mailchimp has no loops: a list travels as this many merge fields (QUESTIONS_1 … QUESTIONS_5).
MAILCHIMP_LIST_ITEMS = 5


class ListItemTag(MergeTag):
    """One item of a list in an ESP's terms: prints as its tag; ``open``/``close`` wrap each item
    (Mailchimp: *|IF:QUESTIONS_1|* … *|END:IF|*) and ``number`` replaces ``{{ loop.index }}.``."""

    open: str
    close: str
    number: str

    @classmethod
    def make(cls, text: str, open: str, close: str, number: str) -> ListItemTag:
        item = cls(text)
        item.open, item.close, item.number = open, close, number
        return item


def _list_tags(style: str, name: str) -> list[ListItemTag]:
    if style == "mailchimp":
        return [
            ListItemTag.make(f"*|{name.upper()}_{n}|*", f"*|IF:{name.upper()}_{n}|*", "*|END:IF|*", f"{n}.")
            for n in range(1, MAILCHIMP_LIST_ITEMS + 1)
        ]
    # Handlebars numbers from 0 (@index); the plain-text list shows a dash instead of a number.
    return [ListItemTag.make("{{this}}", "{{#each " + name + "}}", "{{/each}}", "-")]


CONDITIONS: dict[str, tuple[Callable[[str, str], str], str, str]] = {
    # style: (the opening tag for a variable of a type, else, end)
    "mailchimp": (
        lambda name, kind: f"*|IF:{name.upper()}{'_1' if kind == 'list' else ''}|*",
        "*|ELSE:|*",
        "*|END:IF|*",
    ),
    "handlebars": (lambda name, kind: "{{#if " + name + "}}", "{{else}}", "{{/if}}"),
}
_BLOCK_TAG = re.compile(r"{%-?\s*(if|elif|else|endif|for|endfor)\b\s*(.*?)\s*-?%}")
_LOOP_INDEX = re.compile(r"{{\s*loop\.index\s*}}\.?")  # "1." in a numbered plain-text list


def _raw(text: str) -> str:
    # A raw block is a block tag: trim_blocks and lstrip_blocks treat it like the tag it replaces.
    return "{% raw %}" + text + "{% endraw %}"


def merge_tag_source(source: str, variables: Mapping[str, Variable], style: str) -> str:
    """A message template with its conditions and loops over declared variables turned into the
    ESP's own: each ``{% if name %}``/``{% else %}``/``{% endif %}`` on a variable becomes the ESP's
    condition, each ``{% for item in name %}`` wraps every item in the ESP's item tags."""
    opening, otherwise, end = CONDITIONS[style]
    out: list[str] = []
    stack: list[tuple[str, str]] = []  # (kind of block, "" or the converted variable / loop name)
    position = 0
    for match in _BLOCK_TAG.finditer(source):
        keyword, rest = match.group(1), match.group(2)
        replacement = match.group(0)
        segment = source[position : match.start()]
        loop_item = next((name for kind, name in reversed(stack) if kind == "for" and name), "")
        if loop_item:
            segment = _LOOP_INDEX.sub("{{ " + loop_item + ".number }}", segment)
        if keyword == "if":
            name = rest if rest in variables else ""
            stack.append(("if", name))
            if name:
                replacement = _raw(opening(name, variables[name].type))
        elif keyword == "elif":
            if stack and stack[-1][1]:
                raise KitError(f"{{% elif %}} on the variable {stack[-1][1]!r} has no merge-tag form; use else and if")
        elif keyword == "else":
            if stack and stack[-1][0] == "if" and stack[-1][1]:
                replacement = _raw(otherwise)
        elif keyword == "endif":
            name = stack.pop()[1] if stack else ""
            if name:
                replacement = _raw(end)
        elif keyword == "for":
            item, _, iterable = rest.partition(" in ")
            converted = iterable.strip() in variables and variables[iterable.strip()].type == "list"
            stack.append(("for", item.strip() if converted else ""))
            if converted:
                replacement = match.group(0) + "{{ " + item.strip() + ".open }}"
        elif keyword == "endfor":
            item = stack.pop()[1] if stack else ""
            if item:
                replacement = "{{ " + item + ".close }}" + match.group(0)
        out.append(segment)
        out.append(replacement)
        position = match.end()
    out.append(source[position:])
    return "".join(out)


class MergeTagLoader(FileSystemLoader):
    """The kit's templates, each message's turned into the ESP's conditions and loops as it loads."""

    def __init__(self, root: Path, specs: Mapping[str, MessageSpec], style: str):
        super().__init__(root)
        self.specs = specs
        self.style = style

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if template.startswith("messages/"):
            message = template.removeprefix("messages/").rsplit(".", 1)[0]
            if message in self.specs:
                source = merge_tag_source(source, self.specs[message].variables, self.style)
        return source, filename, uptodate
