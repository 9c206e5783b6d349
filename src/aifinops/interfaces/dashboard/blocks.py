"""What a page is made of: key figures, Plotly charts and tables. A page builder returns plain data; the
templates render it, and a table's own route renders the same rows as CSV, so the page and the download can
never disagree.

A table cell keeps its raw value (``data-value``: a Decimal as its exact digits) beside its display text, and
may carry the link to the rows behind it. Which columns are money or ratios is said by the column (``kind``),
defaulting to the CLI's rule (``display.cell``: the name says it).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ..display import MONEY_HINTS, RATIO_HINTS, cell

Row = dict[str, Any]
Link = Callable[[Row], str | None]

#: rows a table shows on its page; its own route shows them all, paged
PAGE_ROWS = 12
ROUTE_ROWS = 100


def kind_of(name: str) -> str:
    """money, ratio or plain, by the CLI's naming rule (``inefficiencyCost`` is money, ``gpuEfficiency`` a ratio)."""
    low = name.lower()
    if any(h in low for h in MONEY_HINTS):
        return "money"
    if low == "coverage" or any(h in low for h in RATIO_HINTS):
        return "ratio"
    return "plain"


def text(v: Any, kind: str, name: str = "") -> str:
    """``v`` as a person reads it: money with a dollar sign and cents (unit costs with 4 significant digits),
    ratios as percentages."""
    if v is None:
        return ""
    if kind == "money" and isinstance(v, Decimal | float | int) and not isinstance(v, bool):
        f = float(v)
        sign = "-" if f < 0 else ""
        body = f"{abs(f):.4g}" if 0 < abs(f) < 1 else f"{abs(f):,.2f}"
        return f"{sign}${body}"
    if kind == "ratio" and isinstance(v, Decimal | float | int) and not isinstance(v, bool):
        return f"{float(v):.1%}"
    return cell(name or "value", v)


def raw(v: Any) -> str:
    """The machine value of a cell: exact digits for money, ISO dates, JSON for lists."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v == v.to_integral_value() else format(v, "f").rstrip("0")
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | dict | tuple):
        return json.dumps(v, default=str)
    return str(v)


@dataclass
class Column:
    key: str
    label: str = ""
    kind: str = ""  # money | ratio | plain; "" = by the name

    def __post_init__(self) -> None:
        self.label = self.label or self.key
        self.kind = self.kind or kind_of(self.key)


@dataclass
class Cell:
    value: Any
    text: str
    raw: str
    href: str | None
    kind: str


@dataclass
class Table:
    """Rows with their columns; ``links`` maps a column to the URL of the rows behind its number."""

    id: str
    title: str
    rows: list[Row]
    columns: list[Column]
    links: dict[str, Link] = field(default_factory=dict)
    note: str = ""
    #: rows shown on the page (all on the table's own route)
    show: int = PAGE_ROWS
    #: a last row summing the money columns
    total: Row | None = None

    @classmethod
    def of(cls, id: str, title: str, rows: list[Row], columns: Sequence[str | Column] | None = None,
           **kw: Any) -> Table:
        cols = [c if isinstance(c, Column) else Column(c) for c in (columns or (list(rows[0]) if rows else []))]
        return cls(id, title, rows, cols, **kw)

    def cells(self, row: Row) -> list[Cell]:
        out = []
        for c in self.columns:
            v = row.get(c.key)
            link = self.links.get(c.key)
            out.append(Cell(v, text(v, c.kind, c.key), raw(v), link(row) if link and v is not None else None,
                            c.kind))
        return out

    def render_rows(self, rows: list[Row] | None = None) -> list[list[Cell]]:
        return [self.cells(r) for r in (self.rows[: self.show] if rows is None else rows)]

    def csv(self) -> str:
        """Every row, raw values (what ``data-value`` holds), machine column names."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow([c.key for c in self.columns])
        for r in self.rows:
            w.writerow([raw(r.get(c.key)) for c in self.columns])
        return out.getvalue()


@dataclass
class Kpi:
    """A key figure at the top of a page; ``href`` is the rows behind it."""

    label: str
    value: Any
    kind: str = "money"
    href: str | None = None
    note: str = ""

    @property
    def text(self) -> str:
        return text(self.value, self.kind) or "n/a"

    @property
    def raw(self) -> str:
        return raw(self.value)


@dataclass
class Chart:
    """A Plotly figure (``data``, ``layout``) as plain JSON; ``links`` per trace point lead to the rows."""

    id: str
    title: str
    figure: dict[str, Any]
    note: str = ""

    def json(self) -> str:
        return json.dumps(self.figure, default=_plain, separators=(",", ":"))


@dataclass
class Note:
    """A paragraph: what a part of the page cannot show and why (no data, a filter that does not apply)."""

    text: str
    title: str = ""


Block = Kpi | Chart | Table | Note


@dataclass
class Section:
    title: str
    blocks: list[Block]
    note: str = ""


@dataclass
class Page:
    name: str
    title: str
    sections: list[Section]
    kpis: list[Kpi] = field(default_factory=list)
    #: what the page's numbers cover (windows of each source, the scope)
    facts: dict[str, str] = field(default_factory=dict)

    def tables(self) -> dict[str, Table]:
        return {b.id: b for s in self.sections for b in s.blocks if isinstance(b, Table)}

    def charts(self) -> list[Chart]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Chart)]


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    raise TypeError(type(v).__name__)
