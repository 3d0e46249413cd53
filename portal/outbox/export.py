"""``portal emails export``: the kit as files marketing can take to another tool.

FOLDER/
  index.json              every message × language: subject, preheader, files
  variables.json          each message's variables with type, sample and description
  brand.toml              the brand settings
  source/                 the templates, stylesheet and declarations as we edit them
  rendered/<locale>/      each message rendered with its sample values (.html, .txt)
  <style>/<locale>/       with --merge-tags: the ESP's merge tags in place of our variables
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from portal.core.vocabulary import LOCALES
from portal.outbox.kit import EmailKit

SOURCES = ("layout.html", "layout.txt", "macros.html", "styles.css", "messages.toml", "brand.toml")


def export_kit(kit: EmailKit, folder: Path, *, merge_tags: str | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(path: Path, content: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)

    for name in SOURCES:
        source = kit.root / name
        if source.exists():
            target = folder / "source" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            written.append(target)
    for template in sorted((kit.root / "messages").iterdir()):
        target = folder / "source" / "messages" / template.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
        written.append(target)
    shutil.copyfile(kit.root / "brand.toml", folder / "brand.toml")
    written.append(folder / "brand.toml")

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
    write(folder / "variables.json", json.dumps(variables, ensure_ascii=False, indent=2))

    index = []
    styles = [("rendered", None)] + ([(merge_tags, merge_tags)] if merge_tags else [])
    for message in kit.messages:
        for locale in LOCALES:
            for directory, style in styles:
                rendered = (
                    kit.render_merge_tags(message, locale, style) if style else kit.render_sample(message, locale)
                )
                base = folder / directory / locale / message
                write(base.with_suffix(".html"), rendered.html)
                write(base.with_suffix(".txt"), rendered.text)
                index.append(
                    {
                        "message": message,
                        "locale": locale,
                        "kind": directory,
                        "subject": rendered.subject,
                        "preheader": rendered.preheader,
                        "html": str(base.with_suffix(".html").relative_to(folder)),
                        "text": str(base.with_suffix(".txt").relative_to(folder)),
                    }
                )
    write(folder / "index.json", json.dumps(index, ensure_ascii=False, indent=2))
    return written
