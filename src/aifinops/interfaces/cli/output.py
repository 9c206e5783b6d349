"""Tables for people (Rich), CSV and JSON for machines, from the same rows."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from ..display import cell as _cell

# Piped output (CI logs, files) gets a wide fixed width instead of Rich's 80-column fallback.
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, soft_wrap=True)
FORMATS = ("table", "csv", "json")
def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v == v.to_integral_value() else format(v, "f")  # 10, not 1E+1
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def render(rows: list[dict[str, Any]], fmt: str = "table", title: str | None = None,
           caption: str | None = None, drop_empty: bool = False) -> None:
    """Rows as a Rich table, CSV or JSON. ``drop_empty`` leaves out of the table (never out of CSV or JSON)
    the columns with nothing in them (NULL or 0 in every row)."""
    if fmt == "json":
        sys.stdout.write(json.dumps([_plain(r) for r in rows], indent=1) + "\n")
        return
    if fmt == "csv":
        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(_plain(v)) if isinstance(v, list | dict) else _plain(v)
                            for k, v in r.items()})
        return
    table = Table(title=title, caption=caption, show_lines=False)
    names = list(rows[0]) if rows else []
    if drop_empty:
        names = [n for n in names if any(r[n] not in (None, 0) for r in rows)] or names
    cells = [[_cell(n, r[n]) for n in names] for r in rows]
    for i, n in enumerate(names):
        numeric = any(isinstance(r[n], Decimal | int | float) for r in rows)
        # Numbers are never cut; long ids are cut in the middle, where they differ least.
        width = max([len(n), *(len(c[i]) for c in cells)])
        table.add_column(n, justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis",
                         min_width=width if numeric else min(width, 12))
        if not numeric:
            for c in cells:
                c[i] = _middle(c[i], MAX_TEXT)
    for c in cells:
        table.add_row(*c)
    console.print(table)


MAX_TEXT = 48


def _middle(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit // 3] + "…" + text[-(limit - limit // 3 - 1):]
