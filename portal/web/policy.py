"""Flask glue for the policy: load it once at start-up, and put decisions into the reader's words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app

from portal.core import formatting
from portal.core.markers import N_, Plural
from portal.core.money import Money
from portal.policy import Decision, Policy, load_policy
from portal.policy.explain import Sentence, explain
from portal.policy.schema import PolicyVersion
from portal.web.i18n import current_locale, gettext, instant, money, number, reader_zone, translated

EXTENSION = "refund_policy"
RENDERED = "refund_policy.rendered"
SENTENCES = "refund_policy.sentences"
SENTENCE_CACHE_SIZE = 10_000


def init_app(app) -> None:
    # A broken policy file stops the start with every problem named, rather than serving a wrong page.
    app.extensions[EXTENSION] = load_policy(app.config.get("POLICY_FILE"))
    # The policy never changes while the app runs, so each clause and offer is put into words once
    # per language; the cache lives and dies with the policy it holds.
    app.extensions[RENDERED] = {}
    app.extensions[SENTENCES] = {}

    @app.context_processor
    def process_promises():
        # The promises pages repeat ("we decide within 2 business days") come from the policy in force.
        version = version_in_force(datetime.now(UTC))
        return {"process": next(iter(version.of_kind("process")), None)}


def current_policy() -> Policy:
    return current_app.extensions[EXTENSION]


def _format(value: object, locale: str) -> object:
    if isinstance(value, Money):
        return money(value, locale)
    if isinstance(value, datetime):
        return instant(value, "long", locale)  # with the time zone: windows end at a precise minute
    if isinstance(value, timedelta):
        return formatting.time_left(value, locale)
    if isinstance(value, int):
        return number(value, locale)
    return value


class Wording:
    """The policy put into one reader's words: their language and zone, and the app's caches, looked
    up once for a page that says several sentences and names several clauses and offers."""

    __slots__ = ("_rendered", "_sentences", "locale", "zone")

    def __init__(self, locale: str | None = None, zone: str | None = None) -> None:
        self.locale = locale or current_locale()
        self.zone = zone or reader_zone()
        extensions = current_app.extensions
        self._sentences: dict = extensions[SENTENCES]
        self._rendered: dict = extensions[RENDERED]

    def say(self, sentence: Sentence) -> str:
        """One of the policy's marked sentences in the reader's language, zone and numbers."""
        locale, cache = self.locale, self._sentences
        # Orders share a handful of windows and amounts; each sentence is put into words once per
        # language and zone (the cache is bounded: a policy has few clauses, amounts repeat).
        key = (locale, self.zone, sentence.message, tuple(sorted(sentence.params.items())))
        text = cache.get(key)
        if text is None:
            message = sentence.message
            count = sentence.params.get(message.param) if isinstance(message, Plural) else None
            count = count if isinstance(count, int) else None  # the number itself, before it is formatted
            text = translated(message, count, **{k: _format(v, locale) for k, v in sentence.params.items()})
            if len(cache) >= SENTENCE_CACHE_SIZE:
                cache.clear()
            cache[key] = text
        return text

    def rendered(self, part_of, part: str) -> str:
        """The title or text of a clause or offer, its parameters written in."""
        locale, cache = self.locale, self._rendered
        key = (id(part_of), part, locale)
        found = cache.get(key)
        if found is None:
            found = cache[key] = (part_of, part_of.render(part, locale, lambda n: number(n, locale)))
        return found[1]


def say(sentence: Sentence, locale: str | None = None) -> str:
    """One of the policy's marked sentences in the reader's language, zone and numbers."""
    return Wording(locale).say(sentence)


def explain_decision(decision: Decision, locale: str | None = None) -> list[str]:
    wording = Wording(locale)
    return [wording.say(s) for s in explain(decision)]


def rendered(part_of, part: str, locale: str) -> str:
    """The title or text of a clause or offer in ``locale``, its parameters written in."""
    return Wording(locale, zone=UNUSED_ZONE).rendered(part_of, part)


# A clause's or offer's text names no moment, so its wording needs no zone.
UNUSED_ZONE = "UTC"


def clause_paragraphs(clause, locale: str) -> list[str]:
    """The clause's public text in ``locale`` with its parameters written in, split into paragraphs."""
    return [p.strip() for p in rendered(clause, "text", locale).split("\n\n") if p.strip()]


def clause_title(clause, locale: str) -> str:
    return rendered(clause, "title", locale)


def version_in_force(now: datetime) -> PolicyVersion:
    return current_policy().version_for(now)


# What each kind of offer is, for staff (the policy's own title says what it gives).
OFFER_KINDS = {
    "extended_trial": N_("Extended trial"),
    "upgrade_discount": N_("Upgrade discount"),
    "account_credit": N_("Account credit"),
    "personal_support": N_("One-to-one support"),
}


def offer_title(offer_id: str | None, locale: str) -> str:
    """The policy's title of an offer in ``locale`` ("30 more days, free"); its id if the policy no
    longer has it."""
    try:
        return rendered(current_policy().offer(offer_id or ""), "title", locale)
    except KeyError:
        return offer_id or ""


def offer_label(offer_id: str | None, locale: str) -> str:
    """An offer as staff name it, its kind and title: "Extended trial: 30 more days, free"."""
    try:
        offer = current_policy().offer(offer_id or "")
    except KeyError:
        return offer_id or ""
    return gettext("%(kind)s: %(title)s", kind=gettext(OFFER_KINDS[offer.kind]), title=rendered(offer, "title", locale))
