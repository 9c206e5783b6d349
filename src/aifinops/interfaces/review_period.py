"""The period a review covers, the periods beside it, and how the review's tables and values look.

A review compares a period with the one before it and forecasts the one after it: the calendar month, quarter or
year around a month, quarter or year, and the spans of the same length just before and after any other window
(``START..END``, ``30d``). Tables are plain data (column keys, headers naming the periods, rows), so the Markdown and
HTML templates show the same numbers, formatted once here (``value_text``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..analysis.windows import Window, WindowError, parse_window
from .display import MONEY_HINTS, cell

DAY = timedelta(days=1)
TOP = 10  # rows of the "top" tables (services, findings, anomalies, models)
ZERO = Decimal(0)


# -- the period and its predecessor ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPeriod:
    label: str
    window: Window
    previous_label: str
    previous: Window
    next_label: str
    next: Window
    #: where the ledger ends (exclusive), None for an empty ledger
    data_end: datetime | None

    @property
    def partial(self) -> bool:
        """Whether the ledger ends inside the period (its last days are not in yet)."""
        return self.data_end is not None and self.window.start < self.data_end < self.window.end

    @property
    def ahead(self) -> bool:
        """Whether the period starts where the ledger has ended (or later): no bill covers it yet."""
        return self.data_end is not None and self.data_end <= self.window.start


def _months(d: datetime, n: int) -> datetime:
    y, m = divmod(d.month - 1 + n, 12)
    return datetime(d.year + y, m + 1, 1)


def _span_label(w: Window) -> str:
    whole = not (w.start.hour or w.start.minute or w.end.hour or w.end.minute)
    if whole:
        return f"{w.start:%Y-%m-%d}..{w.end - DAY:%Y-%m-%d}"
    return f"{w.start:%Y-%m-%dT%H:%M}..{w.end:%Y-%m-%dT%H:%M}"


def _label(w: Window, kind: str) -> str:
    if kind == "month":
        return f"{w.start:%Y-%m}"
    if kind == "quarter":
        return f"{w.start.year}-Q{(w.start.month - 1) // 3 + 1}"
    return f"{w.start.year}" if kind == "year" else _span_label(w)


def review_period(text: str, data_end: datetime | None) -> ReviewPeriod:
    """The period ``text`` names (``2026-10``, ``2026-Q3``, ``2026``, ``START..END``, ``30d``) with the period before
    it and the one after it (which the forecast covers)."""
    if text.strip() in ("all", "*"):
        raise WindowError("a review covers one period: use 2026-10, 2026-Q3, 2026 or START..END, not all")
    try:
        w = parse_window(text, data_end)
    except WindowError:
        raise
    except ValueError as exc:  # 2026-13 parses as a month that datetime refuses
        raise WindowError(f"period {text!r}: {exc}") from None
    t = text.strip()
    kind = ("month" if re.fullmatch(r"\d{4}-\d{2}", t) else "quarter" if re.fullmatch(r"\d{4}-?Q[1-4]", t, re.I)
            else "year" if re.fullmatch(r"\d{4}", t) else "span")
    if kind == "span":
        prev, nxt = Window(w.start - (w.end - w.start), w.start), Window(w.end, w.end + (w.end - w.start))
    else:
        n = {"month": 1, "quarter": 3, "year": 12}[kind]
        prev, nxt = Window(_months(w.start, -n), w.start), Window(w.end, _months(w.end, n))
    return ReviewPeriod(_label(w, kind), w, _label(prev, kind), prev, _label(nxt, kind), nxt, data_end)


# -- tables and values ----------------------------------------------------------------------------------------

#: column key -> header; {cur}, {prev} and {next} are the periods' labels
HEADERS = {
    "cost": "{cur}", "previousCost": "{prev}", "change": "change", "changePct": "change %",
    "ProviderName": "provider", "layer": "layer", "team": "team", "ServiceName": "service",
    "BillingCurrency": "currency", "key": "tag key", "share": "coverage {cur}", "previousShare": "coverage {prev}",
    "changePoints": "change", "untaggedCost": "untagged {cur}", "days": "days of the period",
    "model": "model", "feature": "feature", "requests": "requests {cur}", "tokens": "tokens {cur}",
    "llmCost": "cost {cur}", "costPer1kTokens": "per 1K tokens {cur}",
    "previousCostPer1kTokens": "per 1K tokens {prev}",
    "per1kChangePct": "change %", "costPerRequest": "per request {cur}", "previousCostPerRequest": "per request {prev}",
    "perRequestChangePct": "change %", "outcome": "outcome", "outcomes": "outcomes {cur}",
    "costPerOutcome": "per outcome {cur}", "previousCostPerOutcome": "per outcome {prev}",
    "perOutcomeChangePct": "change %", "revenue": "revenue {cur}", "grossMargin": "gross margin {cur}",
    "gpuHours": "GPU-hours {cur}", "gpuCost": "GPU cost {cur}", "costPerGpuHour": "per GPU-hour {cur}",
    "previousCostPerGpuHour": "per GPU-hour {prev}", "perGpuHourChangePct": "change %",
    "gpuEfficiency": "efficiency {cur}", "previousGpuEfficiency": "efficiency {prev}",
    "efficiencyChangePoints": "change", "kind": "idle kind", "fleetShare": "share of GPU cost {cur}",
    "idleCost": "idle {cur}", "inefficiencyCost": "unused part of busy GPUs", "idleShare": "idle share",
    "rule": "rule", "scope": "scope", "owner": "owner", "monthlyWaste": "waste / month",
    "achievableSaving": "saving / month", "confidence": "confidence", "recommendation": "change to make",
    "status": "status", "findings": "findings", "id": "id",
    "metric": "metric", "dimension": "dimension", "series": "series", "start": "start", "end": "end",
    "impactCost": "impact", "impactPct": "impact %", "severity": "severity", "rootCauses": "root causes",
    "budget": "budget", "period": "period", "amount": "amount", "spent": "spent", "spentShare": "spent %",
    "forecastSpend": "forecast at period end", "forecast95": "95% interval", "exhaustion": "runs out",
    "crossed": "thresholds crossed", "forecastThresholds": "forecast thresholds",
    "usageCost": "usage {cur}", "mean": "forecast {next}", "range80": "80% interval", "range95": "95% interval",
    "vsCurrentPct": "vs {cur}",
}
#: keys that hold money though their names do not say so (``display.cell`` reads money from names)
MONEY_KEYS = {"revenue", "amount", "spent", "mean", "change"}
RATIO_KEYS = {"grossMargin", "spentShare", "share", "previousShare", "fleetShare", "idleShare", "gpuEfficiency",
              "previousGpuEfficiency"}
COUNT_KEYS = {"outcomes"}  # decimals that count things


def _money(name: str) -> bool:
    low = name.lower()
    return name in MONEY_KEYS or any(h in low for h in MONEY_HINTS)


def value_text(name: str, v: Any) -> str:
    """A cell as people read it: money with cents (unit costs, ``...Per...``, below 1 with 4 significant digits),
    ratios and changes as percentages with one decimal, percentage-point changes as ``pp``; ``n/a`` for a change
    there is nothing to compare with."""
    if v is None:
        return "n/a" if name.endswith(("Pct", "Points")) else ""
    if name.endswith("Pct"):
        return f"{float(v):+.1%}"
    if name.endswith("Points"):
        return f"{float(v) * 100:+.1f} pp"
    if name in RATIO_KEYS:
        return f"{float(v):.1%}"
    number = isinstance(v, Decimal | float | int) and not isinstance(v, bool)
    if number and name in COUNT_KEYS:
        return f"{v:,.0f}" if v == int(v) else f"{v:,.2f}"
    if number and _money(name):
        if "per" in name.lower():
            return cell("cost", v)
        cents = round(v, 2) + 0  # + 0: a change of -0.000001 is no change, not -0.00
        return f"{cents:+,.2f}" if name == "change" and cents else f"{cents:,.2f}"
    return cell(name, v)


def table(p: ReviewPeriod, columns: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A table as plain data: column keys, their headers for this period, and the rows (which may hold more keys
    than are shown). Comparison columns with no value in any row (nothing recorded in the previous period) are left
    out, and ``note`` says so."""
    names = {"cur": p.label, "prev": p.previous_label, "next": p.next_label}
    empty = [c for c in columns[1:] if c.startswith("previous") or c.endswith(("Pct", "Points"))]
    empty = [c for c in empty if rows and all(r.get(c) is None for r in rows)]
    shown = [c for c in columns if c not in empty]
    missing = [HEADERS.get(c, c).format(cur="", prev="", next="").strip() for c in empty if c.startswith("previous")]
    note = f"nothing in {p.previous_label} to compare {', '.join(missing)} with" if missing else None
    return {"columns": shown, "headers": [HEADERS.get(c, c).format(**names) for c in shown], "rows": rows,
            "note": note}


def delta(cur: Any, prev: Any) -> float | None:
    """The relative change from ``prev`` to ``cur`` (None without both, or from 0)."""
    if cur is None or prev is None or not prev:
        return None
    return float((Decimal(str(cur)) - Decimal(str(prev))) / abs(Decimal(str(prev))))


def points(cur: Any, prev: Any) -> float | None:
    return float(cur) - float(prev) if cur is not None and prev is not None else None
