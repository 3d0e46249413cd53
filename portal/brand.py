"""The brand file (``emails/brand.toml``): one place for the company's name, address and colours."""
from __future__ import annotations

import tomllib
from functools import lru_cache
from types import MappingProxyType

from portal.paths import resource_dir


@lru_cache(maxsize=1)
def load_brand() -> MappingProxyType:
    with open(resource_dir("emails") / "brand.toml", "rb") as f:
        return MappingProxyType(tomllib.load(f))
