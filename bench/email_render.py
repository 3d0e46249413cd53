"""Rendering and inlining speed of the email kit (target: at least 500 messages per second).

Renders every message × language from its sample values, over and over, through the same
``EmailKit.render`` the outbox worker uses (Jinja + gettext, Babel formatting, css-inline).
The baseline, measured in the same run, renders a one-line Jinja template.

    .venv/bin/python bench/email_render.py [SECONDS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jinja2 import Environment  # noqa: E402

from portal.core.brand import load_brand  # noqa: E402
from portal.core.paths import resource_dir  # noqa: E402
from portal.core.vocabulary import LOCALES  # noqa: E402
from portal.outbox.kit import EmailKit  # noqa: E402

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0


def rate(work) -> float:
    work()  # warm: templates compiled, catalogs loaded
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        count += work()
    return count / (time.perf_counter() - started)


def main() -> None:
    kit = EmailKit(
        resource_dir("emails"), resource_dir("translations"), base_url="https://refunds.example.com", brand=load_brand()
    )
    pairs = [(message, locale, kit.spec(message).samples()) for message in kit.messages for locale in LOCALES]

    def render_all() -> int:
        for message, locale, variables in pairs:
            kit.render(message, locale, **variables)
        return len(pairs)

    template = Environment().from_string("<p>Hello {{ name }}</p>")

    def baseline() -> int:
        for _ in range(len(pairs)):
            template.render(name="bench")
        return len(pairs)

    base = rate(baseline)
    kit_rate = rate(render_all)
    sample = kit.render_sample("refunded", "zh")
    print(f"{len(kit.messages)} messages x {len(LOCALES)} languages, {SECONDS:.0f} s each")
    print(f"  baseline one-line Jinja template : {base:10.0f} renders/s")
    print(
        f"  kit render (subject, preheader, HTML inlined, text): {kit_rate:8.0f} messages/s "
        f"({kit_rate / base:.4f}x baseline; target >= 500 messages/s)"
    )
    print(f"  a rendered message: HTML {len(sample.html.encode()):,} bytes, text {len(sample.text.encode()):,} bytes")


if __name__ == "__main__":
    main()
