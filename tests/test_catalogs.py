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


# -- the glossary (translations/GLOSSARY.md) and the house style of each language ------------------

GLOSSARY = ROOT / "translations" / "GLOSSARY.md"
HAN = "\u3400-\u4dbf\u4e00-\u9fff"  # CJK ideographs (Chinese characters)
FULL_WIDTH_MARKS = "：，。；！？、（）"
# A placeholder whose value is a day (no time): in Chinese it ends in a character (2026年11月24日星期二).
# window_end and when carry a time, ending in digits, so a space after them stays.
DATE_PLACEHOLDER = r"%\((?:date|due|since|start|end|until|deadline)\)s"


def glossary_never() -> dict[str, list[str]]:
    """The forbidden variants of each language, from the glossary's table."""
    text = GLOSSARY.read_text(encoding="utf-8")
    table = text.split("<!-- glossary:start -->", 1)[1].split("<!-- glossary:end -->", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]
    header, rows = rows[0], [r for r in rows[2:] if len(r) == len(rows[0])]
    never = {"zh": header.index("Never (中文)"), "nl": header.index("Never (Nederlands)")}
    return {
        locale: [word.strip() for row in rows for word in row[column].split(",") if word.strip()]
        for locale, column in never.items()
    }


def translations_of(locale: str):
    """(msgid, msgstr) for every translated form in ``locale``'s catalog."""
    for message in _read(ROOT / "translations" / locale / "LC_MESSAGES" / "messages.po"):
        if message.id:
            ids, strs = _strings(message)
            for translated in strs:
                yield ids[0], translated


def test_the_glossary_lists_forbidden_variants_for_both_languages():
    never = glossary_never()
    assert "贷记单" in never["zh"] and "ordernummer" in never["nl"] and "we" in never["nl"]


@pytest.mark.parametrize("locale", ["zh", "nl"])
def test_translations_use_the_glossary_terms_not_their_variants(locale):
    words = glossary_never()[locale]
    if locale == "zh":
        found = [(word, s) for _id, s in translations_of(locale) for word in words if word in s]
    else:
        patterns = {word: re.compile(rf"\b{re.escape(word)}(s|en)?\b", re.IGNORECASE) for word in words}
        found = [(word, s) for _id, s in translations_of(locale) for word, p in patterns.items() if p.search(s)]
    assert not found, "use the glossary's term (translations/GLOSSARY.md) instead of:\n" + "\n".join(
        f"  {word!r} in {s!r}" for word, s in found
    )


def chinese_punctuation_problems(text: str) -> list[str]:
    """ASCII punctuation or stray spaces beside Chinese characters in one Chinese text."""
    checks = {
        "ASCII punctuation beside a Chinese character": rf"[{HAN}][:;,!?]|[:;,!?](?=\s*[{HAN}])",
        "a space between two Chinese characters": rf"[{HAN}] +(?=[{HAN}])",
        "a space after a full-width mark": rf"[{FULL_WIDTH_MARKS}] +",
        "a space before a full-width mark": rf" +[{FULL_WIDTH_MARKS}]",
        "a space between a date and Chinese text": rf"{DATE_PLACEHOLDER} +(?=[{HAN}])",
    }
    return [name for name, pattern in checks.items() if re.search(pattern, text)]


def test_the_chinese_check_catches_what_the_walk_found():
    assert chinese_punctuation_problems("编号: RF-1") == ["ASCII punctuation beside a Chinese character"]
    assert chinese_punctuation_problems("状态： 已收到") == ["a space after a full-width mark"]
    assert chinese_punctuation_problems("星期二 前") == ["a space between two Chinese characters"]
    assert chinese_punctuation_problems("将于 %(due)s 前作出决定") == ["a space between a date and Chinese text"]
    assert chinese_punctuation_problems("订单 %(number)s：已退款 %(amount)s，共 %(count)s 次") == []
    assert chinese_punctuation_problems("请以 https:// 开头") == []  # a URL's colon is not punctuation


def test_chinese_uses_full_width_punctuation_and_no_stray_spaces():
    problems = [(s, found) for _id, s in translations_of("zh") if (found := chinese_punctuation_problems(s))]
    assert not problems, "\n".join(f"  {s!r}: {', '.join(found)}" for s, found in problems)


INFORMAL = re.compile(r"\b(je|jij|jou|jouw|jullie)\b", re.IGNORECASE)


def test_dutch_addresses_the_reader_formally():
    informal = [s for _id, s in translations_of("nl") if INFORMAL.search(s)]
    assert not informal, f"use u/uw, not je/jij/jouw: {informal}"
