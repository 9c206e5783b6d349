"""``aifinops anomalies``: anomalies of cost and usage per dimension with their dollar impact and root causes;
``anomalies list``, ``show``, ``feedback`` and ``plan`` for the recorded ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ...analysis.anomalies import Anomaly, Settings, money
from ...analysis.costs import DimensionError
from ...analysis.series import metrics
from ...analysis.windows import parse_until, parse_window
from ...config import AnomalyScan
from ...governance.watch import scan
from ...store import anomalies as recorded
from .common import check_format, friendly, open_store, state
from .output import console, render

app = typer.Typer(help="Anomalies of cost and usage: scan, list, explain, and say what they were.")


def register(parent: typer.Typer) -> None:
    """Add the ``anomalies`` group to ``parent`` (app.py calls this once)."""
    parent.add_typer(app, name="anomalies")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _pct(v: float | None) -> float | None:
    return round(v, 4) if v is not None else None


def _causes(causes: list[dict[str, Any]], fmt: str) -> Any:
    if fmt == "json":
        return [{"dimension": c["dimension"], "value": c["value"], "impact": round(c["impact"], 4),
                 "contribution": _pct(c["contribution"])} for c in causes]
    return ", ".join(f"{c['value']} {c['contribution']:.0%}" for c in causes[:3] if c["contribution"] is not None)


def _row(a: Anomaly, fmt: str) -> dict[str, Any]:
    usd = a.unit == "USD"
    return {"id": a.anomaly_id, "metric": a.metric, "series": a.series, "start": a.start, "end": a.end,
            "actual": money(a.actual) if usd else round(a.actual, 3),
            "expected": money(a.expected) if usd else round(a.expected, 3),
            "bounds": f"{a.lower:,.2f}..{a.upper:,.2f}", "impactCost": money(a.impact_cost),
            "percent": _pct(a.percent), "severity": a.severity, "status": a.status,
            "rootCauses": _causes(a.root_causes, fmt)}


@app.callback(invoke_without_command=True)
@friendly
def anomalies_cmd(
    ctx: typer.Context,
    metric_name: Annotated[str, typer.Option("--metric", help=f"What is measured: {', '.join(metrics.names())}.")]
    = "cost",
    by: Annotated[str, typer.Option(help="The series: a dimension of the metric (cost: a FOCUS column, tag:KEY or "
                                         "layer; gpu_*: team, model, node_pool, label:KEY ...; tokens, requests, "
                                         "llm_cost: model, feature, team, endpoint, tag:KEY ...).")] = "ServiceName",
    child: Annotated[str | None, typer.Option(help="Root causes by this finer dimension (e.g. SkuId).")] = None,
    window: Annotated[str, typer.Option(help="Where anomalies are reported: 30d, 2026-10, START..END.")] = "30d",
    grain: Annotated[str, typer.Option(help="day (weekly seasonality) or hour (daily seasonality).")] = "day",
    direction: Annotated[str, typer.Option(help="up (increases, as AWS Cost Anomaly Detection), down or both.")]
    = "up",
    min_impact: Annotated[float | None, typer.Option(help="Smallest $ impact that alerts.")] = None,
    min_change: Annotated[float | None, typer.Option(help="Smallest relative change that alerts (0.2 = 20%).")]
    = None,
    configured: Annotated[bool, typer.Option("--configured", help="Run the scans of aifinops.yaml "
                                                                  "(anomalies.scans) instead of --metric/--by.")]
    = False,
    no_record: Annotated[bool, typer.Option("--no-record", help="Do not keep the anomalies (read-only).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Anomalies per series: start, end, actual vs expected with bounds, dollar impact, severity, root causes."""
    if ctx.invoked_subcommand:
        return
    check_format(fmt)
    cfg = state.settings.anomalies
    s = Settings(cfg.seasons, cfg.z, cfg.min_impact if min_impact is None else min_impact,
                 cfg.min_change if min_change is None else min_change)
    try:
        scans = cfg.scans if configured else [AnomalyScan.model_validate(
            {"metric": metric_name, "by": by, "child": child, "grain": grain, "direction": direction})]
    except ValidationError as exc:
        raise DimensionError("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    rows: list[dict[str, Any]] = []
    with open_store(read_only=no_record) as store:
        for sc in scans:
            found, w, _ = scan(store.con, sc, state.settings, window, s, not no_record)
            rows += [_row(a, fmt) for a in found]
    rows.sort(key=lambda r: -abs(r["impactCost"]))
    what = "configured scans" if configured else f"{metric_name} by {by}"
    render(rows, fmt, title=f"anomalies: {what}",
           caption=f"{len(rows)} anomaly(ies); window {w}; grain {scans[0].grain}; "
                   "`aifinops anomalies show ID` for the evidence")


@app.command("list")
@friendly
def list_cmd(
    show_all: Annotated[bool, typer.Option("--all", help="Also ended scans' and answered anomalies.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Recorded anomalies: open and still reported ones, largest dollar impact first."""
    check_format(fmt)
    with open_store(read_only=True) as store:
        rows = recorded.listing(store.con, show_all)
    out = [{"id": r["anomaly_id"], "metric": r["metric"], "dimension": r["dimension"], "series": r["series"],
            "start": r["period_start"], "end": r["period_end"], "impactCost": money(r["impact_cost"] or 0),
            "severity": r["severity"], "owner": r["owner"], "status": r["status"], "active": r["active"],
            "rootCauses": _causes(r["root_causes"], fmt)} for r in rows]
    render(out, fmt, title="recorded anomalies", caption=f"{len(out)} anomaly(ies)")


@app.command("show")
@friendly
def show(anomaly: Annotated[str, typer.Argument(help="Anomaly id (or a unique prefix of it).")],
         fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """One anomaly with its evidence: actual vs expected with bounds, impact, root causes, status."""
    with open_store(read_only=True) as store:
        r = recorded.get(store.con, anomaly)
    if fmt == "json":
        render([r], "json")
        return
    end = r["period_end"] or "ongoing"
    console.print(f"[bold]{r['anomaly_id']}[/]  {r['metric']} {r['dimension']}={r['series']} ({r['grain']})  "
                  f"{r['period_start']} .. {end}")
    console.print(f"actual {r['actual']:,.2f} vs expected {r['expected']:,.2f} (bounds {r['lower']:,.2f}.."
                  f"{r['upper']:,.2f}) over {r['periods']} period(s); impact ${r['impact_cost']:,.2f}, "
                  f"{r['direction']}, severity {r['severity']}; owner {r['owner'] or '-'}; status {r['status']}"
                  + (f" ({r['status_reason']})" if r["status_reason"] else ""))
    if r["root_causes"]:
        render([{"dimension": c["dimension"], "value": c["value"], "actual": round(c["actual"], 2),
                 "expected": round(c["expected"], 2), "impact": round(c["impact"], 2),
                 "contribution": _pct(c["contribution"])} for c in r["root_causes"]], "table", title="root causes")


@app.command("feedback")
@friendly
def feedback(
    anomaly: Annotated[str, typer.Argument(help="Anomaly id (or a unique prefix of it).")],
    kind: Annotated[str, typer.Argument(help="expected (a new normal), planned (a one-off) or wrong (not an "
                                             "anomaly).")],
    reason: Annotated[str | None, typer.Option(help="Why: kept with the anomaly.")] = None,
    until: Annotated[str | None, typer.Option(help="End of a planned event still going on (date or date-time).")]
    = None,
) -> None:
    """Say what an anomaly was; the baseline learns from it (see ``aifinops anomalies --help``)."""
    end = parse_until(until) if until else None
    with open_store() as store:
        r = recorded.give_feedback(store.con, anomaly, kind, reason, _now(), end)
    console.print(f"anomaly {r['anomaly_id']} ({r['metric']} {r['dimension']}={r['series']}) marked {kind}; "
                  "the next scan learns from it")


@app.command("plan")
@friendly
def plan(
    series: Annotated[str, typer.Argument(help="The series value, e.g. search (with --by tag:team).")],
    start: Annotated[str, typer.Option("--from", help="Start (date or date-time, UTC).")],
    until: Annotated[str, typer.Option(help="End (exclusive).")],
    metric_name: Annotated[str, typer.Option("--metric", help="The metric.")] = "cost",
    by: Annotated[str, typer.Option(help="The dimension of the series.")] = "ServiceName",
    reason: Annotated[str | None, typer.Option(help="Why: e.g. the launch or the training run.")] = None,
) -> None:
    """Declare a planned event before it happens: no alert for it, and it does not raise the baseline."""
    w = parse_window(f"{start}..{until}", None)
    a, b = w.start, w.end
    with open_store() as store:
        fid = recorded.plan(store.con, metric_name, by, series, a, b, reason, _now())
    console.print(f"planned {metric_name} {by}={series} {a} .. {b} ({fid}): it will not alert")
