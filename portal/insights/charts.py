"""Charts drawn on the server as SVG: no script, no CDN, with a title and a description to read."""

from __future__ import annotations

from markupsafe import Markup, escape

from portal.core.formatting import colon

PALETTE = ("#1f4e79", "#2e7d32", "#b26a00", "#8e24aa", "#c62828", "#00838f")


# Generous widths of a legend's text at 12 px (Noto Sans and system fonts): wide East Asian
# characters, capitals, and the rest. Overestimating wraps a little early; underestimating clips.
def text_width(text: str, size: float = 12) -> float:
    wide = sum(1 for c in text if ord(c) >= 0x2E80)
    capitals = sum(1 for c in text if c.isupper() and ord(c) < 0x2E80)
    return size * (1.05 * wide + 0.72 * capitals + 0.6 * (len(text) - wide - capitals))


def legend_rows(names: list[str], width: int, left: int) -> list[list[tuple[int, str, float]]]:
    """The legend's items (series index, name, x) in rows that fit inside ``width``."""
    rows: list[list[tuple[int, str, float]]] = [[]]
    x = float(left)
    for s, name in enumerate(names):
        item = 16 + text_width(name)
        if rows[-1] and x + item > width - 10:
            rows.append([])
            x = float(left)
        rows[-1].append((s, name, x))
        x += item + 18
    return rows


def stacked_bars(
    title: str,
    description: str,
    columns: list[str],
    series: list[tuple[str, list[int]]],
    width: int = 760,
    height: int = 300,
    labels: list[str] | None = None,
    locale: str = "en",
) -> Markup:
    """One bar per column, stacked by series; a legend below names each colour, in as many rows as
    its names need. ``labels`` are the columns as the reader reads them (localized dates)."""
    labels = labels or columns
    left, bottom, top = 44, 56, 16
    rows = legend_rows([name for name, _ in series], width, left)
    plot_h = height - bottom - top
    height += 20 * (len(rows) - 1)
    totals = [sum(values[i] for _, values in series) for i in range(len(columns))] or [0]
    peak = max(totals) or 1
    step = (width - left - 10) / max(len(columns), 1)
    bar = min(max(step * 0.7, 2), 48)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title chart-desc" class="chart">',
        f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(description)}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="currentColor">'
            f"{round(peak * fraction)}</text>"
        )
    label_every = max(1, len(columns) // 8)
    for i, column in enumerate(columns):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for s, (name, values) in enumerate(series):
            h = plot_h * values[i] / peak
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(column)} · {escape(colon(name, locale))}'
                f"{values[i]}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11" '
                f'fill="currentColor">{escape(labels[i])}</text>'
            )
    for r, row in enumerate(rows):
        y = top + plot_h + 34 + 20 * r
        for s, name, x in row:
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{PALETTE[s % len(PALETTE)]}"/>'
                f'<text x="{x + 16:.1f}" y="{y + 10}" font-size="12" fill="currentColor">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
