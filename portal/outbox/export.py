"""The kit as files marketing can take to another tool: ``portal emails export`` writes them to a
folder, the kit page (``/staff/emails/kit.zip``) hands the same files over as a zip.

  index.json              every message × language: subject, preheader, files
  variables.json          each message's variables with type, sample and description
  brand.toml              the brand settings
  source/                 the templates, stylesheet and declarations as we edit them
  rendered/<locale>/      each message rendered with its sample values (.html, .txt)
  <style>/<locale>/       with merge tags: the ESP's merge tags in place of our variables,
                          conditions and lists in its own syntax (mailchimp/, handlebars/)
  README.txt              what the folders hold and how the merge tags are written
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from portal.core.vocabulary import LOCALES
from portal.outbox.kit import MAILCHIMP_LIST_ITEMS, EmailKit

SOURCES = ("layout.html", "layout.txt", "macros.html", "styles.css", "messages.toml", "brand.toml")
STYLES = ("mailchimp", "handlebars")

README = f"""The email kit, exported.

rendered/<language>/    every message with its sample values, as customers receive it
mailchimp/<language>/   Mailchimp merge tags: *|CUSTOMER_NAME|*; conditions as
                        *|IF:NOTE|* ... *|ELSE:|* ... *|END:IF|*; the header, body and footer are
                        mc:edit regions. Mailchimp has no loops, so a list is one merge field per
                        item: *|QUESTIONS_1|* ... *|QUESTIONS_{MAILCHIMP_LIST_ITEMS}|*, each item in its own
                        *|IF:QUESTIONS_n|* (fill as many as there are, leave the rest empty).
handlebars/<language>/  Handlebars (Mandrill, SendGrid, Postmark): {{{{customer_name}}}};
                        {{{{#if note}}}} ... {{{{else}}}} ... {{{{/if}}}}; lists as {{{{#each questions}}}}
                        ... {{{{this}}}} ... {{{{/each}}}} (the plain-text part marks items with "-").
source/                 the templates as the portal renders them (Jinja), and their variables
variables.json          each message's variables: type, sample value, description
index.json              every message and language: subject, preheader and its files
"""


def kit_files(kit: EmailKit, styles: Iterable[str] = ()) -> Iterable[tuple[str, bytes]]:
    """Every file of the export as (path inside the export, bytes)."""
    for name in SOURCES:
        source = kit.root / name
        if source.exists():
            yield f"source/{name}", source.read_bytes()
    for template in sorted((kit.root / "messages").iterdir()):
        yield f"source/messages/{template.name}", template.read_bytes()
    yield "brand.toml", (kit.root / "brand.toml").read_bytes()

    variables = {
        spec.name: {
            "description": spec.description,
            "variables": {
                v.name: {"type": v.type, "sample": v.sample, "description": v.description}
                for v in spec.variables.values()
            },
        }
        for spec in kit.specs.values()
    }
    yield "variables.json", _json(variables)

    index = []
    kinds = [("rendered", None)] + [(style, style) for style in styles]
    for message in kit.messages:
        for locale in LOCALES:
            for directory, style in kinds:
                rendered = (
                    kit.render_merge_tags(message, locale, style) if style else kit.render_sample(message, locale)
                )
                base = f"{directory}/{locale}/{message}"
                yield f"{base}.html", rendered.html.encode("utf-8")
                yield f"{base}.txt", rendered.text.encode("utf-8")
                index.append(
                    {
                        "message": message,
                        "locale": locale,
                        "kind": directory,
                        "subject": rendered.subject,
                        "preheader": rendered.preheader,
                        "html": f"{base}.html",
                        "text": f"{base}.txt",
                    }
                )
    yield "index.json", _json(index)
    yield "README.txt", README.encode("utf-8")


def export_kit(kit: EmailKit, folder: Path, *, merge_tags: str | None = None) -> list[Path]:
    """The export written into ``folder``; returns the files written."""
    return _write(kit_files(kit, [merge_tags] if merge_tags else []), lambda path, data: _to_folder(folder, path, data))


def export_zip(kit: EmailKit, styles: Iterable[str] = STYLES) -> bytes:
    """The export as one zip (every merge-tag style by default), made in memory: a few hundred KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in kit_files(kit, styles):
            archive.writestr(f"email-kit/{path}", data)
    return buffer.getvalue()


def _write(files: Iterable[tuple[str, bytes]], write: Callable[[str, bytes], Path]) -> list[Path]:
    return [write(path, data) for path, data in files]


def _to_folder(folder: Path, path: str, data: bytes) -> Path:
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")
