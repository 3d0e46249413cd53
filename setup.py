"""The one build step pyproject.toml cannot declare: put the resources inside the package.

In the source tree ``templates/``, ``emails/`` and ``translations/`` sit beside ``portal/``;
the built package carries them inside (``portal/templates`` …), where ``portal.core.paths``
looks when they are not beside it. The translation catalogs are compiled to ``.mo`` here, at
build time, so compiled files are never committed; a fuzzy or broken catalog fails the build.
Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RESOURCES = ("templates", "emails")


class build_py_with_resources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the resources beside the package
        target = Path(self.build_lib) / "portal"
        for name in RESOURCES:
            destination = target / name
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(ROOT / name, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self._compile_catalogs(ROOT / "translations", target / "translations")

    def _compile_catalogs(self, source: Path, destination: Path) -> None:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        shutil.rmtree(destination, ignore_errors=True)
        catalogs = sorted(source.glob("*/LC_MESSAGES/messages.po"))
        if not catalogs:
            raise SystemExit(f"no translation catalogs under {source}")
        for po in catalogs:
            with po.open("rb") as stream:
                catalog = read_po(stream, locale=po.parent.parent.name)
            fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
            if fuzzy:
                raise SystemExit(f"{po}: {len(fuzzy)} fuzzy entries; translate them before building")
            mo = destination / po.relative_to(source).with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with mo.open("wb") as stream:
                write_mo(stream, catalog)
            self.announce(f"compiled {mo.relative_to(destination.parent.parent)}", level=2)


setup(cmdclass={"build_py": build_py_with_resources})
