"""Charts drawn on the server as SVG: no script, no CDN, with a title and a description to read."""

from __future__ import annotations

from markupsafe import Markup, escape

from portal.core.formatting import colon

PALETTE = ("#1f4e79", "#2e7d32", "#b26a00", "#8e24aa", "#c62828", "#00838f")


def stacked_bars(
    title: str,
    description: str,
    columns: list[str],
    series: list[tuple[str, list[int]]],
    width: int = 760,
    height: int = 300,
    locale: str = "en",
) -> Markup:
    """One bar per column, stacked by series; a legend below names each colour."""
    left, bottom, top = 44, 56, 16
    plot_h = height - bottom - top
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
                f'fill="currentColor">{escape(column[5:])}</text>'
            )
    x = left
    for s, (name, _) in enumerate(series):
        parts.append(
            f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{PALETTE[s % len(PALETTE)]}"/>'
            f'<text x="{x + 16}" y="{height - 12}" font-size="12" fill="currentColor">{escape(name)}</text>'
        )
        x += 26 + sum(12 if ord(c) > 0x2E80 else 7 for c in name)
    parts.append("</svg>")
    return Markup("".join(parts))
