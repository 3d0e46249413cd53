"""Domain packages load no Flask: each is imported, with every module in it, in a fresh interpreter.

import-linter (`make lint`) reads the import statements; this test runs them, so it also sees
what a third-party package drags in (Flask-Mail imports Flask, for instance) and what a package
root imports on the way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DOMAIN_PACKAGES = [
    "portal.core",
    "portal.policy",
    "portal.orders",
    "portal.payments",
    "portal.accounts",
    "portal.documents",
    "portal.insights",
    "portal.inbound",
    "portal.refunds",
    "portal.outbox",
]
WATCHED = ("flask", "werkzeug")

# Run in the child: import the package, then every module in it (skipping the ones named after
# the package), and name, for each module, the watched packages that importing it loaded.
CHILD = """
import importlib, json, pkgutil, sys

package, skip, watched = sys.argv[1], set(sys.argv[2].split(",")) - {""}, sys.argv[3].split(",")

def loaded():
    return {name for name in watched if name in sys.modules}

names, culprits = [], {}
for name in [package]:
    before = loaded()
    root = importlib.import_module(name)
    names.append(name)
    if loaded() - before:
        culprits[name] = sorted(loaded() - before)
if hasattr(root, "__path__"):
    found = sorted(m.name for m in pkgutil.walk_packages(root.__path__, package + "."))
    for name in found:
        if name in skip:
            continue
        before = loaded()
        importlib.import_module(name)
        names.append(name)
        if loaded() - before:
            culprits[name] = sorted(loaded() - before)
print(json.dumps({"modules": names, "culprits": culprits, "loaded": sorted(loaded())}))
"""


def _import_fresh(target: str, skip: tuple[str, ...] | list[str] = (), env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, target, ",".join(skip), ",".join(WATCHED)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"importing {target} failed:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", DOMAIN_PACKAGES)
def test_domain_package_loads_no_flask(package):
    report = _import_fresh(package)
    assert len(report["modules"]) > 1, f"no module found in {package}"
    assert not report["culprits"], (
        f"importing these modules of {package} loaded {', '.join(WATCHED)}: {report['culprits']}"
    )
    assert report["loaded"] == []


def test_the_check_names_the_module_that_loads_flask(tmp_path):
    package = tmp_path / "leaky_domain"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "clean.py").write_text("import json\n")
    (package / "views.py").write_text("import flask\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    report = _import_fresh("leaky_domain", env=env)
    assert report["modules"] == ["leaky_domain", "leaky_domain.clean", "leaky_domain.views"]
    assert report["culprits"] == {"leaky_domain.views": ["flask", "werkzeug"]}
