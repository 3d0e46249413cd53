"""The brand file (``emails/brand.toml``): one place for the company's name, address and colours.

A value may be a table by language (``signature = { en = "…", zh = "…", nl = "…" }``);
``brand_for(locale)`` picks the reader's language, falling back to English.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

from portal.core.paths import resource_dir


@lru_cache(maxsize=1)
def load_brand() -> MappingProxyType[str, Any]:
    with open(resource_dir("emails") / "brand.toml", "rb") as f:
        return MappingProxyType(tomllib.load(f))


def localized(brand: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """The brand with each per-language value resolved for ``locale`` (English when missing)."""
    return {
        key: (value.get(locale) or value.get("en", "")) if isinstance(value, Mapping) else value
        for key, value in brand.items()
    }


@cache
def brand_for(locale: str) -> MappingProxyType[str, Any]:
    return MappingProxyType(localized(load_brand(), locale))
