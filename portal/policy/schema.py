"""The policy file's schema. Pure: pydantic and the standard library only.

A policy file (TOML) holds versions with effective dates; each version holds clauses with
stable ids, a kind that says how the engine applies them, the kind's parameters, and the
public title and text in every language. Texts name parameters as ``{full_refund_days}``,
so the published wording is filled from the very numbers the engine applies.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self, overload

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portal.core.vocabulary import LOCALES, Channel, PaymentStatus, Plan, Reason

ID_PATTERN = r"^[a-z][a-z0-9-]*$"


class Localized(BaseModel):
    """One text in every language the portal speaks; none may be missing or empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    en: Annotated[str, Field(min_length=1)]
    zh: Annotated[str, Field(min_length=1)]
    nl: Annotated[str, Field(min_length=1)]

    def get(self, locale: str) -> str:
        text: str = getattr(self, locale if locale in LOCALES else "en")
        return text


class _Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=ID_PATTERN)]
    title: Localized
    text: Localized

    def parameters(self) -> dict[str, Any]:
        return self.model_dump(exclude={"id", "kind", "title", "text"})

    @model_validator(mode="after")
    def _text_names_only_parameters(self) -> Self:
        known = set(self.parameters())
        for part in ("title", "text"):
            used_by_language: dict[str, set[str]] = {}
            for locale in LOCALES:
                written = getattr(self, part).get(locale)
                try:
                    fields = {name for _, name, _, _ in string.Formatter().parse(written) if name is not None}
                except ValueError as exc:
                    raise ValueError(f"the {locale} {part} has a broken placeholder ({exc})") from None
                unknown = fields - known
                if unknown:
                    raise ValueError(f"the {locale} {part} names unknown parameter(s) {', '.join(sorted(unknown))}")
                used_by_language[locale] = fields
            if len({frozenset(v) for v in used_by_language.values()}) > 1:
                detail = "; ".join(f"{k}: {', '.join(sorted(v)) or 'none'}" for k, v in used_by_language.items())
                raise ValueError(f"the languages' {part}s do not state the same parameters ({detail})")
        return self

    def render(self, part: str, locale: str, number: Callable[[int], str] = str) -> str:
        """The title or text in ``locale`` with the parameters written in (``number`` formats ints)."""
        values = {
            k: number(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in self.parameters().items()
        }
        localized: Localized = getattr(self, part)
        return localized.get(locale).format_map(values)


class EligibilityClause(_Clause):
    """Who may ask at all: orders in these payment states are refused."""

    kind: Literal["eligibility"]
    refused_payment_statuses: list[PaymentStatus] = Field(min_length=1)


class WindowClause(_Clause):
    """The refund window of one plan: full at first, then optionally prorated, then none."""

    kind: Literal["window"]
    plan: Plan
    full_refund_days: int = Field(gt=0, le=3650)
    prorated_until_days: int | None = Field(default=None, gt=0, le=3650)
    proration: Literal["unused_days"] = "unused_days"
    rounding: Literal["down"] = "down"

    @model_validator(mode="after")
    def _prorated_after_full(self) -> Self:
        if self.prorated_until_days is not None and self.prorated_until_days <= self.full_refund_days:
            raise ValueError("prorated_until_days must be greater than full_refund_days")
        return self


class DocumentsClause(_Clause):
    """Orders sold through these channels need proof of purchase with the request."""

    kind: Literal["documents"]
    channels: list[Channel]


class ReviewClause(_Clause):
    """Requests citing these reasons go to staff review: always, or instead of a refusal."""

    kind: Literal["review"]
    reasons: list[Reason] = Field(min_length=1)
    applies: Literal["always", "outside_window"]


class InformationClause(_Clause):
    """Published text the engine does not apply by itself (exclusions judged by staff)."""

    kind: Literal["information"]


class ProcessClause(_Clause):
    """How requests are handled: the promises the portal and its emails repeat."""

    kind: Literal["process"]
    decision_business_days: int = Field(gt=0, le=60)
    payout_business_days_min: int = Field(gt=0, le=60)
    payout_business_days_max: int = Field(gt=0, le=60)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.payout_business_days_min > self.payout_business_days_max:
            raise ValueError("payout_business_days_min is greater than payout_business_days_max")
        return self


AnyClause = EligibilityClause | WindowClause | DocumentsClause | ReviewClause | InformationClause | ProcessClause
Clause = Annotated[AnyClause, Field(discriminator="kind")]
CLAUSE_KINDS = ("eligibility", "window", "documents", "review", "information", "process")


class Offer(_Clause):
    """An alternative to a refund the business offers (shown beside the refundable amount)."""

    kind: Literal["extended_trial", "upgrade_discount", "account_credit", "personal_support"]
    plans: list[Plan] = Field(default_factory=lambda: list(Plan))
    days: int | None = Field(default=None, gt=0, le=3650)
    percent: int | None = Field(default=None, gt=0, le=100)
    months: int | None = Field(default=None, gt=0, le=120)


class PolicyVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=32)]
    effective_from: datetime
    summary: Localized | None = None
    clauses: list[Clause] = Field(min_length=1)

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("effective_from needs a time zone, e.g. 2026-01-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [c.id for c in self.clauses]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"clause id(s) used twice: {', '.join(repeated)}")
        plans = [c.plan for c in self.clauses if isinstance(c, WindowClause)]
        twice = sorted({p.value for p in plans if plans.count(p) > 1})
        if twice:
            raise ValueError(f"more than one window for plan(s) {', '.join(twice)}")
        for kind in ("eligibility", "documents", "process"):
            if sum(1 for c in self.clauses if c.kind == kind) > 1:
                raise ValueError(f"more than one {kind} clause")
        return self

    def clause(self, clause_id: str) -> AnyClause:
        for clause in self.clauses:
            if clause.id == clause_id:
                return clause
        raise KeyError(clause_id)

    @overload
    def of_kind(self, kind: Literal["eligibility"]) -> Sequence[EligibilityClause]: ...
    @overload
    def of_kind(self, kind: Literal["window"]) -> Sequence[WindowClause]: ...
    @overload
    def of_kind(self, kind: Literal["documents"]) -> Sequence[DocumentsClause]: ...
    @overload
    def of_kind(self, kind: Literal["review"]) -> Sequence[ReviewClause]: ...
    @overload
    def of_kind(self, kind: Literal["information"]) -> Sequence[InformationClause]: ...
    @overload
    def of_kind(self, kind: Literal["process"]) -> Sequence[ProcessClause]: ...
    @overload
    def of_kind(self, kind: str) -> Sequence[AnyClause]: ...
    def of_kind(self, kind: str) -> Sequence[AnyClause]:
        # The kind is the clauses' discriminator, so each kind names exactly one clause class.
        return [c for c in self.clauses if c.kind == kind]

    def window_for(self, plan: Plan) -> WindowClause | None:
        return next((c for c in self.of_kind("window") if c.plan == plan), None)


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(alias="schema")
    name: Localized
    versions: list[PolicyVersion] = Field(min_length=1)
    offers: list[Offer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        offer_ids = [o.id for o in self.offers]
        if len(set(offer_ids)) != len(offer_ids):
            raise ValueError("two offers share an id")
        ids = [v.id for v in self.versions]
        if len(set(ids)) != len(ids):
            raise ValueError("two versions share an id")
        dates = [v.effective_from for v in self.versions]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("versions must be listed oldest first, each with a later effective_from")
        return self
