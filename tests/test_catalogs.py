"""Every customer-facing string exists in every language, with the same placeholders and tags."""

import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = sorted(ROOT.glob("translations/*/LC_MESSAGES/messages.po"))
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_]*\}")
TAG = re.compile(r"</?[a-z][a-z0-9]*")


def _read(path):
    with open(path, "rb") as f:
        return read_po(f)


def _strings(message):
    ids = message.id if isinstance(message.id, tuple) else (message.id,)
    strs = message.string if isinstance(message.string, tuple) else (message.string,)
    return ids, strs


def test_there_is_a_catalog_for_chinese_and_dutch():
    assert {p.parts[-3] for p in CATALOGS} == {"zh", "nl"}


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parts[-3])
def test_catalog_is_complete_and_not_fuzzy(path):
    catalog = _read(path)
    untranslated = [m.id for m in catalog if m.id and not all(_strings(m)[1])]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not untranslated, f"untranslated in {path.parts[-3]}: {untranslated}"
    assert not fuzzy, f"fuzzy in {path.parts[-3]}: {fuzzy}"


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parts[-3])
def test_placeholders_and_tags_match(path):
    problems = []
    for message in _read(path):
        if not message.id:
            continue
        ids, strs = _strings(message)
        for translated in strs:
            if sorted(PLACEHOLDER.findall(ids[-1])) != sorted(PLACEHOLDER.findall(translated)):
                problems.append(("placeholders", ids[0], translated))
            if sorted(TAG.findall(ids[-1])) != sorted(TAG.findall(translated)):
                problems.append(("tags", ids[0], translated))
    assert not problems


def test_catalogs_hold_every_string_marked_in_the_sources(tmp_path):
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "-q",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "N_",
            "-k",
            "Nn_:1,2",
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-o",
            str(pot),
            str(ROOT),
        ]
    )
    marked = {m.id if isinstance(m.id, str) else m.id[0] for m in _read(pot) if m.id}
    for path in CATALOGS:
        catalog = _read(path)
        have = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
        missing = marked - have
        assert not missing, f"run `make translations`; {path.parts[-3]} lacks {sorted(missing)[:10]}"
