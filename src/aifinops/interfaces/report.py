"""A self-contained HTML summary (no scripts, no network): tables with inline bar charts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from .display import cell


@dataclass
class Section:
    title: str
    rows: list[dict[str, Any]]
    #: (label column, value column) to draw as horizontal bars beside the table
    bars: tuple[str, str] | None = None
    note: str = ""
    columns: list[str] = field(default_factory=list)


def _fmt(name: str, v: Any) -> str:
    return cell(name, v)


def _bars(section: Section) -> list[dict[str, Any]]:
    if not section.bars:
        return []
    label, value = section.bars
    vals = [float(r[value] or 0) for r in section.rows]
    top = max((abs(v) for v in vals), default=0) or 1
    return [{"label": _fmt(label, r[label]), "value": _fmt(value, r[value]), "pct": abs(v) / top * 100,
             "negative": v < 0} for r, v in zip(section.rows, vals, strict=True)]


def write_summary(path: Path, title: str, sections: list[Section], facts: dict[str, str]) -> Path:
    # the template is .html.j2: select_autoescape() alone would not escape it, and tag values are anyone's text
    env = Environment(loader=PackageLoader("aifinops.interfaces"),
                      autoescape=select_autoescape(enabled_extensions=("html.j2",)))
    env.filters["fmt"] = lambda v, name="": _fmt(name, v)
    for s in sections:
        if not s.columns and s.rows:
            s.columns = list(s.rows[0])
    html = env.get_template("summary.html.j2").render(
        title=title, sections=[(s, _bars(s)) for s in sections], facts=facts,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    path.write_text(html)
    return path
