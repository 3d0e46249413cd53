"""Reading a policy file: TOML → inherited versions → schema → :class:`Policy`, or named problems."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from portal.core.vocabulary import LOCALES, Plan
from portal.policy.schema import CLAUSE_KINDS, Localized, Offer, PolicyFile, PolicyVersion

DEFAULT_POLICY = Path(__file__).resolve().parent / "default_policy.toml"


class PolicyError(ValueError):
    """The file cannot be used; ``problems`` names each fault with where it is."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class Policy:
    name: Localized
    versions: tuple[PolicyVersion, ...]
    source: str
    offers: tuple[Offer, ...] = ()

    def offers_for(self, plan: Plan) -> list[Offer]:
        return [offer for offer in self.offers if plan in offer.plans]

    def offer(self, offer_id: str) -> Offer:
        for offer in self.offers:
            if offer.id == offer_id:
                return offer
        raise KeyError(offer_id)

    def version_for(self, when: datetime) -> PolicyVersion:
        """The version in force at ``when``; an order older than every version gets the first."""
        chosen = self.versions[0]
        for version in self.versions:
            if version.effective_from <= when:
                chosen = version
        return chosen

    def version(self, version_id: str) -> PolicyVersion:
        for version in self.versions:
            if version.id == version_id:
                return version
        raise KeyError(version_id)

    def earlier_than(self, version: PolicyVersion) -> list[PolicyVersion]:
        return [v for v in self.versions if v.effective_from < version.effective_from][::-1]


def _inherit(raw: dict[str, Any]) -> list[str]:
    """Resolve ``based_on``: a version repeats an earlier one's clauses, changing only what it lists.

    A listed clause replaces the fields it gives (titles and texts per language), keeps the rest;
    a clause with ``remove = true`` is dropped; a new clause goes after the one named by ``after``.
    """
    problems = []
    seen: dict[str, dict[str, Any]] = {}
    for index, version in enumerate(raw.get("versions") or []):
        if not isinstance(version, dict):
            continue
        base_id = version.pop("based_on", None)
        if base_id is not None:
            base = seen.get(base_id)
            if base is None:
                problems.append(
                    f"version {version.get('id', index + 1)}: based_on names {base_id!r}, "
                    f"which is not an earlier version"
                )
            else:
                clauses = {c["id"]: copy.deepcopy(c) for c in base.get("clauses", [])}
                for change in version.get("clauses", []):
                    cid = change.get("id")
                    if change.get("remove"):
                        clauses.pop(cid, None)
                    elif cid in clauses:
                        merged = clauses[cid]
                        for key, value in change.items():
                            if key in ("title", "text") and isinstance(value, dict):
                                merged[key] = {**merged.get(key, {}), **value}
                            else:
                                merged[key] = value
                    else:
                        # A new clause goes where ``after`` says, or last.
                        after = change.pop("after", None)
                        items = list(clauses.items())
                        at = next((i + 1 for i, (k, _) in enumerate(items) if k == after), len(items))
                        items.insert(at, (cid, change))
                        clauses = dict(items)
                version["clauses"] = list(clauses.values())
        if "id" in version:
            seen[version["id"]] = version
    return problems


def _where(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    parts, node = [], raw
    i = 0
    while i < len(loc):
        key = loc[i]
        index = loc[i + 1] if i + 1 < len(loc) else None  # the list index after a list's name, if any
        if key == "versions" and isinstance(index, int):
            node = raw["versions"][index]
            parts.append(f"version {node.get('id', index + 1)}")
            i += 2
            continue
        if key == "offers" and isinstance(index, int):
            offer = raw["offers"][index]
            parts.append(f"offer {offer.get('id', '#' + str(index + 1))}")
            i += 2
            continue
        if key == "clauses" and isinstance(index, int):
            clause = node["clauses"][index]
            parts.append(f"clause {clause.get('id', '#' + str(index + 1))}")
            i += 2
            if i < len(loc) and loc[i] in CLAUSE_KINDS:  # the discriminator's branch name
                i += 1
            continue
        parts.append(str(key))
        i += 1
    return " › ".join(parts) or "file"


def _describe(raw: dict[str, Any], error: ErrorDetails) -> str:
    where = _where(raw, tuple(error["loc"]))
    kind = error["type"]
    if kind == "union_tag_invalid":
        return f"{where}: unknown clause kind {error['input'].get('kind')!r} (use {', '.join(CLAUSE_KINDS)})"
    if kind == "union_tag_not_found":
        return f"{where}: the clause has no kind (use {', '.join(CLAUSE_KINDS)})"
    if kind == "missing" and error["loc"][-1] in LOCALES:
        return f"{where.rsplit(' › ', 1)[0]}: missing {error['loc'][-1]} translation"
    if kind == "extra_forbidden":
        return f"{where}: unknown setting"
    if kind == "string_too_short" and error["loc"][-1] in LOCALES:
        return f"{where.rsplit(' › ', 1)[0]}: empty {error['loc'][-1]} translation"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def _once(problems: Iterable[str]) -> list[str]:
    """A fault in a clause that later versions inherit is named once, where it was written."""
    seen, kept = set(), []
    for problem in problems:
        key = problem.split(" › ", 1)[-1] if problem.startswith("version ") else problem
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, [f"not valid TOML: {exc}"]) from None
    problems = _inherit(raw)
    if problems:
        raise PolicyError(source, problems)
    try:
        parsed = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(source, _once(_describe(raw, e) for e in exc.errors())) from None
    return Policy(name=parsed.name, versions=tuple(parsed.versions), source=source, offers=tuple(parsed.offers))


def load_policy(path: str | Path | None = None) -> Policy:
    path = Path(path) if path else DEFAULT_POLICY
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), [f"cannot be read: {exc}"]) from None
    return parse_policy(text, str(path))
