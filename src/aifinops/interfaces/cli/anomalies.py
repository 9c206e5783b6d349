"""``aifinops anomalies``: cost anomalies per dimension with their dollar impact and root causes."""

from __future__ import annotations

from typing import Annotated

import typer

from ...analysis import costs as costs_mod
from ...analysis.anomalies import Settings, anomalies, money
from ...analysis.layers import load_rules
from ...analysis.windows import parse_window
from .common import check_format, friendly, open_store, state
from .output import render


@friendly
def anomalies_cmd(
    by: Annotated[str, typer.Option(help="The series: a FOCUS column, tag:KEY or layer.")] = "ServiceName",
    child: Annotated[str | None, typer.Option(help="Root causes by this finer dimension (e.g. SkuId).")] = None,
    window: Annotated[str, typer.Option(help="Where anomalies are reported: 30d, 2026-10, START..END.")] = "30d",
    grain: Annotated[str, typer.Option(help="day (weekly seasonality) or hour (daily seasonality).")] = "day",
    min_impact: Annotated[float, typer.Option(help="Smallest $ impact that alerts.")] = 50.0,
    min_change: Annotated[float, typer.Option(help="Smallest relative change that alerts (0.2 = 20%).")] = 0.2,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Anomalies of ledger cost per series: start, end, actual vs expected, impact, severity, root causes."""
    check_format(fmt)
    with open_store(read_only=True) as store:
        t = store.ibis().table("focus_charges")
        w = parse_window(window, costs_mod.data_end(t))
        found = anomalies(t, w, by, grain, child, Settings(min_impact=min_impact, min_change=min_change),
                          load_rules(state.settings.layers_file))
    rows = [{"series": a.series, "start": a.start, "end": a.end, "actualCost": money(a.actual),
             "expectedCost": money(a.expected), "bounds": f"{a.lower:,.2f}..{a.upper:,.2f}",
             "impactCost": money(a.impact), "percent": round(a.percent, 4) if a.percent is not None else None,
             "severity": a.severity,
             "rootCauses": [{"value": c["value"], "impact": money(c["impact"]),
                             "contribution": round(c["contribution"], 4) if c["contribution"] is not None else None}
                            for c in a.root_causes] if fmt == "json" else
             ", ".join(f"{c['value']} {c['contribution']:.0%}" for c in a.root_causes[:3]
                       if c["contribution"] is not None)}
            for a in found]
    render(rows, fmt, title=f"cost anomalies by {by}", caption=f"{len(rows)} anomaly(ies); window {w}; grain {grain}")


def register(app: typer.Typer) -> None:
    """Add ``anomalies`` to ``app`` (app.py calls this once)."""
    app.command("anomalies")(anomalies_cmd)
