"""How the experiments that print a Markdown table hand it over: printed, and with ``--out``
written as ``OUT/NAME.md`` beside the rows as ``OUT/NAME.json``."""

from __future__ import annotations

import json
from pathlib import Path


def report_table(lines: list[str], rows: list, out: Path | None, name: str) -> None:
    print("\n".join(lines))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.md").write_text("\n".join(lines) + "\n")
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
