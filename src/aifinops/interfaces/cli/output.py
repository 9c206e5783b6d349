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

console = Console()
err_console = Console(stderr=True)
FORMATS = ("table", "csv", "json")
MONEY_HINTS = ("cost", "billed", "effective", "spend", "amount")


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v.normalize()) if v == v.to_integral_value() else format(v, "f")
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _cell(name: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, Decimal):
        digits = 2 if any(h in name.lower() for h in MONEY_HINTS) else 4
        return f"{v:,.{digits}f}"
    if isinstance(v, float):
        return f"{v:.1%}" if name.lower() in ("share", "coverage") else f"{v:,.4g}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M") if (v.hour or v.minute) else v.strftime("%Y-%m-%d")
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(rows: list[dict[str, Any]], fmt: str = "table", title: str | None = None,
           caption: str | None = None) -> None:
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
    for n in names:
        numeric = bool(rows) and isinstance(rows[0][n], Decimal | int | float)
        table.add_column(n, justify="right" if numeric else "left", overflow="ellipsis",
                         no_wrap=not numeric, max_width=None if numeric else 48)
    for r in rows:
        table.add_row(*(_cell(n, r[n]) for n in names))
    console.print(table)
