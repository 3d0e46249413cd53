"""Automation rules as data, beside the policy: which requests are approved and refunded without a person.

A rules file (TOML) holds versions with effective dates, oldest first, like the policy; the
version in force at a moment is the last one that had started. Each version holds rules with
stable ids; a rule matches a request when every condition it sets holds (a condition left out
does not constrain). Rules only ever approve: a decline always stays with people, and a review
route of the policy is never automated. Pure: pydantic and the standard library only.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from portal.core.money import Money, MoneyError, is_currency
from portal.core.vocabulary import Channel, Plan, Reason
from portal.policy.loading import PolicyError

DEFAULT_AUTOMATION = Path(__file__).resolve().parent / "default_automation.toml"
AUTOMATABLE_OUTCOMES = ("full", "prorated")


def _both_outcomes() -> list[Literal["full", "prorated"]]:
    return ["full", "prorated"]


class AutomationRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=48)]
    description: str = ""  # for staff only; never shown to customers
    reasons: list[Reason] | None = None
    plans: list[Plan] | None = None
    channels: list[Channel] | None = None
    # The policy decision's outcome: full or prorated only. A review route stays with people.
    outcomes: list[Literal["full", "prorated"]] = Field(default_factory=_both_outcomes, min_length=1)
    # The most a rule refunds, per currency; a currency not listed is never automated.
    max_amount: dict[str, str] = Field(min_length=1)
    no_fraud_signals: bool = True
    # Successful refunds to the same customer in the 365 days before (this request not counted).
    max_refunds_last_365_days: Annotated[int, Field(ge=0)] = 0
    # When the policy asks for proof of purchase, at least one document must be attached.
    documents_when_required: bool = True

    @field_validator("max_amount")
    @classmethod
    def _ceilings(cls, value: dict[str, str]) -> dict[str, str]:
        for currency, amount in value.items():
            if not is_currency(currency):
                raise ValueError(f"max_amount: {currency!r} is not a currency code")
            try:
                ceiling = Money.parse(str(amount), currency)
            except (MoneyError, InvalidOperation, ValueError):
                raise ValueError(f"max_amount: {amount!r} is not an amount in {currency}") from None
            if ceiling.amount <= Decimal(0):
                raise ValueError(f"max_amount: the {currency} ceiling must be more than zero")
        return value

    def ceiling(self, currency: str) -> Money | None:
        amount = self.max_amount.get(currency)
        return _money(str(amount), currency) if amount is not None else None


@lru_cache(maxsize=4096)
def _money(amount: str, currency: str) -> Money:
    return Money.parse(amount, currency)  # a rule's ceiling, read for every request it judges


class RulesVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=32)]
    effective_from: datetime
    rules: list[AutomationRule] = Field(default_factory=list)

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("effective_from needs a time zone, e.g. 2026-01-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [r.id for r in self.rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule id(s) used twice: {', '.join(repeated)}")
        return self


class AutomationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(alias="schema")
    versions: list[RulesVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        ids = [v.id for v in self.versions]
        if len(set(ids)) != len(ids):
            raise ValueError("two versions share an id")
        dates = [v.effective_from for v in self.versions]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("versions must be listed oldest first, each with a later effective_from")
        return self


class AutomationRules:
    """A parsed rules file: its versions and where it came from."""

    def __init__(self, versions: tuple[RulesVersion, ...], source: str, text: str):
        self.versions = versions
        self.source = source
        self.text = text

    @property
    def file_name(self) -> str:
        """The rules file's name without its folder: what pages and the security log show (the
        server's paths stay on the server)."""
        return PurePath(self.source).name or self.source

    def version_for(self, when: datetime) -> RulesVersion | None:
        """The version in force at ``when``; None before the first one (nothing is automated)."""
        chosen = None
        for version in self.versions:
            if version.effective_from <= when:
                chosen = version
        return chosen


def _where(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    version: dict[str, Any] = {}
    i = 0
    while i < len(loc):
        key, index = loc[i], loc[i + 1] if i + 1 < len(loc) else None
        if key == "versions" and isinstance(index, int):
            version = raw["versions"][index]
            parts.append(f"version {version.get('id', index + 1)}")
            i += 2
            continue
        if key == "rules" and isinstance(index, int):
            rule = version.get("rules", [])[index]
            parts.append(f"rule {rule.get('id', '#' + str(index + 1))}")
            i += 2
            continue
        parts.append(str(key))
        i += 1
    return " › ".join(parts) or "file"


def parse_automation(text: str, source: str = "<automation>") -> AutomationRules:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, [f"not valid TOML: {exc}"]) from None
    try:
        parsed = AutomationFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = _where(raw, tuple(error["loc"]))
            message = (
                "unknown setting" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
            )
            problems.append(f"{where}: {message}")
        raise PolicyError(source, problems) from None
    return AutomationRules(tuple(parsed.versions), source, text)


def load_automation(path: str | Path | None = None) -> AutomationRules:
    path = Path(path) if path else DEFAULT_AUTOMATION
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), [f"cannot be read: {exc}"]) from None
    return parse_automation(text, str(path))
