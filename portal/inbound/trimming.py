"""The customer's own words from a reply: quoted history and signature cut off.

`mail-parser-reply` (maintained; quote headers and signatures of 13 languages, zh and nl among
them) does the work. What it does not know, checked against the mail programs our customers
use, is added here as a few patterns, each cut at before the library runs:

- Chinese: Gmail's "… 于2026年12月1日周二 09:12写道：" (the library's zh header must *start*
  with the date), Apple Mail's and Thunderbird's "在 … 写道：", QQ Mail's and Foxmail's
  "------------------ 原始邮件 ------------------" and Outlook's header block with full-width
  colons ("发件人：").
- Dutch: Gmail's "Op di 1 dec 2026 om 09:12 schreef Naam <adres>:" (the library's nl header
  must end in "schreef:").

HTML-only replies are turned into text first, leaving out Gmail's ``gmail_quote``, Outlook's
``divRplyFwdMsg`` and Thunderbird's ``moz-cite-prefix`` blocks and every ``blockquote``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser

LANGUAGES = ["en", "zh", "nl"]

_QUOTE = r"(?:> ?)*"
EXTRA_HEADERS = [
    # zh, Gmail: "Northwind Cloud <support@example.com> 于2026年12月1日周二 09:12写道："
    re.compile(rf"^{_QUOTE}.+?于\s*\d{{4}}\s*年\s*\d{{1,2}}\s*月\s*\d{{1,2}}\s*日.*?写道\s*[：:]\s*$", re.M),
    # zh, Apple Mail / Thunderbird: "在 2026年12月1日 09:12，Northwind Cloud <…> 写道："
    re.compile(rf"^{_QUOTE}在\s*.+?写道\s*[：:]\s*$", re.M),
    # zh, QQ Mail / Foxmail: the original message's separator
    re.compile(rf"^{_QUOTE}-{{3,}}\s*(?:原始邮件|Original)\s*-{{3,}}\s*$", re.M),
    # zh, Outlook: two header lines with full-width or ASCII colons
    re.compile(rf"^{_QUOTE}(?:发件人|寄件者)\s*[：:].*\n{_QUOTE}(?:发送时间|日期|寄件日期|收件人|时间)\s*[：:]", re.M),
    # nl, Gmail: "Op di 1 dec 2026 om 09:12 schreef Northwind Cloud <support@example.com>:" (may wrap once)
    re.compile(rf"^{_QUOTE}Op\s.+?\sschreef\s[^\n]*(?:\n[^\n]*)?:\s*$", re.M),
]

_SKIP_CLASSES = {"gmail_quote", "moz-cite-prefix", "yahoo_quoted", "protonmail_quote"}
_SKIP_IDS = {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"}
_BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0  # depth inside a quoted block (or style/script)
        self.stop = False  # Outlook's reply header: everything after it is history

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stop or tag in _VOID:
            if tag == "br" and not self.skipping:
                self.parts.append("\n")
            return
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        ident = (values.get("id") or "").lower()
        if self.skipping:
            self.skipping += 1
        elif ident in ("divrplyfwdmsg", "appendonsend"):
            self.stop = True
        elif tag in ("blockquote", "style", "script", "head") or classes & _SKIP_CLASSES or ident in _SKIP_IDS:
            self.skipping = 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if self.skipping:
            self.skipping -= 1
        elif tag in _BLOCKS and not self.stop:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping and not self.stop:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def cut_extra_headers(text: str) -> str:
    """Cut at the first quote header the library does not know."""
    cut = len(text)
    for pattern in EXTRA_HEADERS:
        match = pattern.search(text)
        if match is not None:
            cut = min(cut, match.start())
    return text[:cut]


def latest_reply(text: str) -> str:
    """The newest part of a plain-text reply, without quoted history and signature."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = cut_extra_headers(text)
    reply = EmailReplyParser(languages=LANGUAGES).parse_reply(text)
    return (reply if reply is not None else text).strip()
