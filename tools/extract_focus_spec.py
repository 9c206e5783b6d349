"""Extract the FOCUS 1.2 column table from the spec text into the package's data file.

Run by a developer when the spec copy changes (never at run time):
    python tools/extract_focus_spec.py ../shared/reference/focus-1.2 src/aifinops/model/data/focus_1_2.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def _section(text: str, heading: str) -> str:
    m = re.search(rf"^## {heading}[^\n]*\n+(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1).strip() if m else ""


def _constraint(text: str, name: str) -> str:
    m = re.search(rf"^\|\s*{name}\s*\|\s*(.*?)\s*\|", text, re.M | re.I)
    return m.group(1).strip() if m else ""


def _allowed(text: str) -> list[str]:
    values: list[str] = []
    idx = text.find("Allowed values:")
    if idx < 0:
        return values
    for line in text[idx:].splitlines()[1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            continue
        cell = line.split("|")[1].strip()
        if not cell or cell.startswith(":") or cell.startswith("-") or cell in ("Value", "Service Category"):
            continue
        values.append(cell)
    return values


def main(src: str, out: str) -> None:
    columns = []
    for f in sorted(Path(src, "columns").glob("*.md")):
        text = f.read_text()
        col = {
            "id": _section(text, "Column ID").splitlines()[0].strip(),
            "feature_level": _constraint(text, "Feature level"),
            "nullable": _constraint(text, "Allows nulls").lower() == "true",
            "data_type": _constraint(text, "Data type"),
            "introduced": _section(text, "Introduced").splitlines()[0].strip(),
            "allowed_values": _allowed(text),
        }
        if col["id"] == "ServiceSubcategory":
            table = text[text.find("| Service Category"):]
            rows = [line.split("|")[1:3] for line in table.splitlines()[2:] if line.startswith("|")]
            col["allowed_values"] = [sub.strip() for _cat, sub in rows]
        columns.append(col)
    Path(out).write_text(json.dumps({"version": "1.2", "columns": columns}, indent=1) + "\n")
    print(f"{len(columns)} columns -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
