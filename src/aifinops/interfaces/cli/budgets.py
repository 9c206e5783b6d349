"""``aifinops budgets``: each budget's spend this period, its forecast at period end with an interval, the day it
runs out and where it stands on every threshold; and the budgets aifinops.yaml defines."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import typer

from ...analysis.layers import load_rules
from ...analysis.windows import WindowError
from ...config import CONFIG_FILE
from ...governance.budgets import ACTUAL, FORECAST, TICK, BudgetStatus, Threshold, scope_text, status
from .common import check_format, friendly, open_store, state
from .output import err_console, render

app = typer.Typer(help="Budgets from aifinops.yaml: spend, forecast at period end, exhaustion date, thresholds.",
                  no_args_is_help=True)

EXAMPLE = f"""no budgets configured: add a `budgets:` list to {CONFIG_FILE} (or the file --config names), e.g.

budgets:
  - name: search-monthly
    scope:                       # all must match; a list matches any of its values
      tag:team: search
      ServiceName: [Amazon Bedrock, Amazon SageMaker]
    amount: 50000
    period: month                # month, quarter, year or 2026-10-01..2026-12-31
    actual_thresholds: [50, 80, 100]
    forecast_thresholds: [100]
    owner: search-leads@example.com
    channels: [finops-slack]     # names under alerts.channels"""


def parse_at(text: str) -> datetime:
    """A date means the end of that day (its spend included), as people mean "as of the 20th"; a date-time is
    taken as given (UTC unless it says otherwise)."""
    text = text.strip()
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"--at: not a date or date-time: {text!r}") from None
    t = t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
    return t + timedelta(days=1) - TICK if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else t


def _money(v: float | Decimal) -> Decimal:
    return Decimal(str(v)).quantize(Decimal("0.01"))


def _short(th: Threshold) -> str:
    """``80% 10-16``: crossed on; ``150% by 10-30``: forecast to cross by; ``200% at risk``: the 95% bound does."""
    if th.state == "crossed":
        return f"{th.pct:g}% {th.on:%m-%d}"
    return f"{th.pct:g}% by {th.on:%m-%d}" if th.state == "forecast to cross" else f"{th.pct:g}% {th.state}"


def _states(s: BudgetStatus, basis: str) -> str:
    """The thresholds of ``basis`` that say something, or ``-``: actual ones crossed; forecast ones forecast to
    cross or at risk (one spend has already reached is in the share column)."""
    says = ("crossed",) if basis == ACTUAL else ("forecast to cross", "at risk")
    return ", ".join(_short(t) for t in s.thresholds if t.basis == basis and t.state in says) or "-"


def _row(s: BudgetStatus, fmt: str) -> dict[str, Any]:
    """Table: one screen line per budget; CSV and JSON: every number, and every threshold one by one."""
    fc = s.forecast
    row: dict[str, Any] = {"budget": s.name, "period": s.label, "amount": _money(s.amount),
                           "spend": _money(s.spent), "share": round(s.percent / 100, 4),
                           "forecastSpend": _money(fc["mean"])}
    if fmt == "table":
        row["forecast95"] = f"{fc['lo95']:,.0f}..{fc['hi95']:,.0f}"
    else:
        row.update(forecastLow80=_money(fc["lo80"]), forecastHigh80=_money(fc["hi80"]),
                   forecastLow95=_money(fc["lo95"]), forecastHigh95=_money(fc["hi95"]))
    row.update(exhaustion=s.exhaustion, actual=_states(s, ACTUAL), forecast=_states(s, FORECAST))
    if fmt == "table":
        return row
    return {**row, "periodStart": s.period.start, "periodEnd": s.period.end, "at": s.at,
            "scope": scope_text(s.budget), "owner": s.budget.owner, "channels": list(s.budget.channels),
            "model": s.model, "historyDays": s.history_days,
            "thresholds": [{"basis": t.basis, "percent": t.pct, "amount": _money(t.amount), "state": t.state,
                            "on": t.on} for t in s.thresholds]}


def _no_budgets(fmt: str) -> None:
    err_console.print(EXAMPLE, highlight=False, markup=False)
    if fmt == "json":
        render([], fmt)


@app.command("status")
@friendly
def status_cmd(
    at: Annotated[str | None, typer.Option(help="As of this date (its spend included) or date-time; default: "
                                                "where the ledger ends.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Spent this period, forecast at period end with its 95% interval, projected exhaustion, threshold states."""
    check_format(fmt)
    s = state.settings
    if not s.budgets:
        _no_budgets(fmt)
        return
    when = parse_at(at) if at else None
    with open_store(read_only=True) as store:
        found = status(store.con, s, when, load_rules(s.layers_file))
    rows = [_row(b, fmt) for b in found]
    if fmt != "table":
        render(rows, fmt)
        return
    models = sorted({b.model for b in found} - {"none"})
    render(rows, fmt, title="budgets",
           caption=f"as of {found[0].at:%Y-%m-%d %H:%M} UTC; forecast = spend + usage-based spend to period end "
                   f"({', '.join(models) or 'nothing left to forecast'}; recurring fees are not forecast); "
                   "thresholds: MM-DD crossed on, by MM-DD forecast to cross, at risk: only the 95% bound crosses")


@app.command("list")
@friendly
def list_cmd(fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table") -> None:
    """The budgets aifinops.yaml defines: scope, amount, period, thresholds, owner and channels."""
    check_format(fmt)
    s = state.settings
    if not s.budgets:
        _no_budgets(fmt)
        return
    rows = [{"budget": b.name, "scope": scope_text(b), "amount": _money(b.amount), "period": b.period,
             "actualThresholds": ", ".join(f"{p:g}%" for p in b.actual_thresholds),
             "forecastThresholds": ", ".join(f"{p:g}%" for p in b.forecast_thresholds),
             "owner": b.owner, "channels": ", ".join(b.channels)} for b in s.budgets]
    render(rows, fmt, title="budgets", caption=f"{len(rows)} budget(s)")


def register(root: typer.Typer) -> None:
    """Add ``budgets`` to the root app (app.py calls this once)."""
    root.add_typer(app, name="budgets")
