"""Where the resources that sit beside the package live.

In a source checkout ``templates/``, ``emails/`` and ``translations/`` are siblings of
``portal/``; in a built wheel they are installed inside the package (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

# This file is portal/core/paths.py: the package is two levels up.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    for candidate in (PACKAGE_DIR.parent / name, PACKAGE_DIR / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"resource folder {name!r} is neither beside nor inside the portal package")
