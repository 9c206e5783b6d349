"""How an alert reads on any channel: its fixed fields (owner, impact, severity, the evidence), then whatever its
details hold, generically: scalars (nested mappings flattened) as a key/value table, lists of mappings (root
causes, budget thresholds) as small tables. The anomaly and budget modules decide what goes in the details; the
channels decide only how it looks, so a new detail needs no change here."""

from __future__ import annotations

import html as html_mod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..alerts import Alert

MONEY_HINTS = ("cost", "amount", "spend", "spent", "budget", "impact", "dollar")
RATIO_HINTS = ("contribution", "share", "percent", "ratio")  # ratios (0.62), shown as percentages
MAX_ROWS = 10  # rows of a detail table shown; the rest are counted


def money(v: float) -> str:
    return f"{'-' if v < 0 else ''}${abs(v):,.2f}"


def label(key: str) -> str:
    """``root_causes`` -> ``Root causes``; a column name such as ``ServiceName`` stays as it is."""
    if "_" in key or key.islower():
        text = key.replace("_", " ").strip()
        return text[:1].upper() + text[1:]
    return key


def value(key: str, v: Any) -> str:
    """``v`` as text; the key's last word says whether a number is money or a ratio."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    low = key.lower().rsplit(" ", 1)[-1]
    if isinstance(v, int | float):
        if any(h in low for h in RATIO_HINTS):
            return f"{v:+.0%}" if "percent" in low else f"{v:.0%}"
        if any(h in low for h in MONEY_HINTS):
            return money(float(v))
        if isinstance(v, int):
            return f"{v:,}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"
    if isinstance(v, list):
        return ", ".join(value(key, x) for x in v)
    return str(v)


Table = tuple[str, list[str], list[list[str]], int]  # title, columns, rows shown, rows left out


def split(details: dict[str, Any]) -> tuple[list[tuple[str, str]], list[Table]]:
    """The details as (label, text) fields and tables (lists of mappings)."""
    fields: list[tuple[str, str]] = []
    tables: list[Table] = []

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for k, v in node.items():
            key = f"{prefix} {k}" if prefix else str(k)
            if isinstance(v, dict):
                walk(key, v)
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                cols = list(dict.fromkeys(c for row in v for c in row))
                rows = [[value(c, row.get(c)) for c in cols] for row in v[:MAX_ROWS]]
                tables.append((label(key), [label(c) for c in cols], rows, max(len(v) - MAX_ROWS, 0)))
            else:
                fields.append((label(key), value(key, v)))

    walk("", details)
    return fields, tables


def fixed(alert: Alert) -> list[tuple[str, str]]:
    return [("Owner", alert.owner or "unknown"), ("Impact", money(alert.impact_cost)),
            ("Severity", alert.severity)]


def subject(alert: Alert, event: str) -> str:
    return alert.subject + (" (update)" if event == "update" else "") + (" (resolved)" if alert.resolved else "")


def text_table(cols: list[str], rows: list[list[str]], more: int = 0) -> str:
    """A fixed-width table; columns whose cells look numeric are right-aligned."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    numeric = [all(r[i][:1] in "-+$0123456789–" for r in rows) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True))

    out = [line(cols), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    if more:
        out.append(f"… {more} more")
    return "\n".join(s.rstrip() for s in out)


def text(alert: Alert, event: str) -> str:
    """The plain-text body (e-mail's text/plain part)."""
    fields, tables = split(alert.details)
    pairs = [*fixed(alert), *fields]
    width = max(len(k) for k, _ in pairs)
    out = [subject(alert, event), "", *(f"{k.ljust(width)}  {v}" for k, v in pairs)]
    for title, cols, rows, more in tables:
        out += ["", f"{title}:", text_table(cols, rows, more)]
    out += ["", f"Evidence: {alert.link}", "", f"alert {alert.key}"]
    return "\n".join(out) + "\n"


def _link(link: str) -> str:
    e = html_mod.escape(link)
    return f'<a href="{e}">{e}</a>' if link.startswith(("http://", "https://")) else f"<code>{e}</code>"


def html(alert: Alert, event: str) -> str:
    """The HTML body (e-mail's text/html part): the same content as ``text``, as tables."""
    esc = html_mod.escape
    fields, tables = split(alert.details)
    cell = 'style="padding:2px 8px;text-align:left;border-bottom:1px solid #ddd"'
    kv = "".join(f"<tr><th {cell}>{esc(k)}</th><td {cell}>{esc(v)}</td></tr>" for k, v in [*fixed(alert), *fields])
    parts = [f"<h2>{esc(subject(alert, event))}</h2>", f"<table>{kv}</table>"]
    for title, cols, rows, more in tables:
        head = "".join(f"<th {cell}>{esc(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td {cell}>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts += [f"<h3>{esc(title)}</h3>", f"<table><tr>{head}</tr>{body}</table>"]
        if more:
            parts.append(f"<p>… {more} more</p>")
    parts += [f"<p>Evidence: {_link(alert.link)}</p>", f"<p style=\"color:#888\">alert {esc(alert.key)}</p>"]
    return "<html><body>" + "".join(parts) + "</body></html>"
