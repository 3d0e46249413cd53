"""Every CSV the portal writes: cells that a spreadsheet would run as a formula are neutralised.

OWASP's advice for CSV injection: a cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with a single quote, so Excel, LibreOffice and Google Sheets show it
as text. Files start with a UTF-8 byte-order mark, without which Excel reads Chinese as mojibake.
Numbers the portal itself formats (amounts, counts) are written as numbers, not text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from numbers import Number
from typing import Any, TextIO

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A cell that cannot be run as a formula; numbers pass as they are."""
    if value is None:
        return ""
    if isinstance(value, Number) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class SafeWriter:
    """``csv.writer`` that neutralises every cell; the byte-order mark is written first."""

    def __init__(self, out: TextIO, **kwargs: Any):
        out.write(BOM)
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: TextIO, **kwargs: Any) -> SafeWriter:
    return SafeWriter(out, **kwargs)
