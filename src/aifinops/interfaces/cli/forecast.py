"""``aifinops forecast``: cost and usage per series to the end of the month or quarter, with 80/95% intervals and
the seasonal naive baseline beside the model; ``--scenario`` shows what-if scenarios side by side;
``aifinops forecast backtest`` scores the model against seasonal naive on the store's own history."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ...analysis.backtest import backtest
from ...analysis.costs import DimensionError
from ...analysis.forecast import MODELS, ForecastError
from ...analysis.layers import load_rules
from ...analysis.projection import Projection, data_end_of, describe, history_window, load_history, project
from ...analysis.scenarios import BASE, Outcome, apply, load_scenarios
from ...analysis.series import GRAINS, align, metric, metrics
from ...analysis.windows import Window
from .common import check_format, friendly, open_store, state
from .output import _plain, console, render

app = typer.Typer(help="Forecasts to the end of the month or quarter, what-if scenarios, and backtests.",
                  invoke_without_command=True, no_args_is_help=False)

OTHER, TOTAL = "(other)", "(total)"
NAMES = {"auto": "MSTL", "mstl": "MSTL", "ets": "AutoETS", "theta": "AutoTheta", "naive": "seasonal naive"}
BOUNDS = ("mean", "lo80", "hi80", "lo95", "hi95")
FIELDS = {"mean": "total", "lo80": "totalLo80", "hi80": "totalHi80", "lo95": "totalLo95", "hi95": "totalHi95"}

ByOpt = Annotated[str, typer.Option(help="The series: a dimension of the metric (ServiceName, tag:team, model...).")]
HistoryOpt = Annotated[str, typer.Option(help="History the model reads, ending where the data ends (120d, 16w).")]
GrainOpt = Annotated[str, typer.Option(help="day (weekly season) or hour (daily and weekly seasons).")]
ModelOpt = Annotated[str, typer.Option(help=f"{', '.join(MODELS)}: auto = MSTL, seasonal naive where it cannot fit.")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv or json")]


def _amount(v: float, unit: str) -> Decimal | float:
    """Money as Decimal cents; usage rounded to hundredths."""
    return Decimal(repr(float(v))).quantize(Decimal("0.01")) if unit == "USD" else round(float(v), 2)


def _text(v: float) -> str:
    """A bound in a table cell: whole units (the interval's width is what matters, not its cents)."""
    for size, suffix in ((1e9, "B"), (1e7, "M")):
        if abs(v) >= size:
            return f"{v / size:,.2f}{suffix}"
    return f"{v:,.0f}" if abs(v) >= 100 or v == 0 else f"{v:,.2f}"


def _label(p: Projection, to: str) -> str:
    if to == "month":
        return f"{p.period.start:%Y-%m}"
    if to == "quarter":
        return f"{p.period.start.year}-Q{(p.period.start.month - 1) // 3 + 1}"
    return f"{p.period.start:%Y-%m-%d}..{to}"


def _groups(order: np.ndarray, top: int) -> list[tuple[str | None, np.ndarray]]:
    """(name or None: the series itself, rows) of what the table shows: the first ``top`` series, the rest as
    one (other) row."""
    shown = order if top <= 0 else order[:top]
    out: list[tuple[str | None, np.ndarray]] = [(None, np.array([i])) for i in shown]
    if top > 0 and len(order) > top:
        out.append((OTHER, order[top:]))
    return out


def _sum(t: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    """Totals over ``rows``: means and bounds add (interval half-widths added)."""
    return {k: float(v[rows].sum()) for k, v in t.items()}


def _model_of(p: Projection, rows: np.ndarray) -> str:
    """The model that forecast these series: the model's name, seasonal naive, or how many of each."""
    fell = int(np.isin(rows, list(p.fallback)).sum())
    if fell == len(rows):
        return NAMES["naive"]
    return NAMES[p.model] + (f", {fell} {NAMES['naive']}" if fell else "")


def _row(name: str, s: dict[str, float], unit: str, model: str) -> dict[str, Any]:
    a = {k: _amount(v, unit) for k, v in s.items()}
    return {"series": name, "actual": a["actual"], "forecastRest": a["rest_mean"], "restLo80": a["rest_lo80"],
            "restHi80": a["rest_hi80"], "restLo95": a["rest_lo95"], "restHi95": a["rest_hi95"],
            "total": a["total_mean"], "totalLo80": a["total_lo80"], "totalHi80": a["total_hi80"],
            "totalLo95": a["total_lo95"], "totalHi95": a["total_hi95"], "naiveTotal": a["naive"], "model": model}


def _caption(p: Projection, info: dict[str, Any]) -> str:
    fell = info["fallbackCount"]
    why = ", ".join(f"{n} {r}" for r, n in info["fallbackReasons"].items())
    return (f"model {p.model}: {info['modelText']}; history {p.history.start:%Y-%m-%d %H:%M}.."
            f"{p.history.end:%Y-%m-%d %H:%M} ({info['historyPeriods']} {p.grain}s); data to "
            f"{p.data_end:%Y-%m-%d %H:%M} UTC; {fell} of {len(p.keys)} series fell back to seasonal naive"
            f"{f' ({why})' if fell else ''}; intervals add the periods' half-widths")


@app.callback()
@friendly
def forecast_cmd(
    ctx: typer.Context,
    metric_name: Annotated[str, typer.Option("--metric", help=f"What to forecast: {', '.join(metrics.names())}.")]
    = "cost",
    by: ByOpt = "ServiceName",
    to: Annotated[str, typer.Option(help="month, quarter (holding the data's end) or a date YYYY-MM-DD.")] = "month",
    history: HistoryOpt = "120d",
    grain: GrainOpt = "day",
    model: ModelOpt = "auto",
    top: Annotated[int, typer.Option(help="Series shown; the rest are summed as (other). 0 = all.")] = 20,
    scenario: Annotated[Path | None, typer.Option(help="A scenarios YAML file (see examples/scenarios.yaml).")]
    = None,
    fmt: FormatOpt = "table",
) -> None:
    """Actual so far and forecast of the rest of the period per series, 80/95% intervals, seasonal naive beside."""
    if ctx.invoked_subcommand:
        return
    check_format(fmt)
    scenarios = load_scenarios(scenario) if scenario else []  # a bad file fails before any forecast
    s = state.settings
    with open_store(read_only=True) as store:
        m = metric(store.con, metric_name, s, load_rules(s.layers_file))
        p = project(m, by, to, history, grain, model)
        outcomes = [apply(sc, p, store.con, s) for sc in scenarios]
    info = describe(p)
    t = p.totals()
    order = np.argsort(-t["total_mean"], kind="stable")
    groups = _groups(order, top)
    rows = [_row(name or p.keys[int(r[0])], _sum(t, r), p.unit, _model_of(p, r)) for name, r in groups]
    everything = np.arange(len(p.keys))
    total = _row(TOTAL, _sum(t, everything), p.unit, _model_of(p, everything))
    title = f"{p.metric} ({p.unit}) forecast by {by or 'total'} for {_label(p, to)}"
    if outcomes:
        _scenarios(p, to, info, groups, outcomes, fmt, title)
        return
    if fmt == "json":
        doc = {**_meta(p, info), "series": rows, "total": total}
        sys.stdout.write(json.dumps(_plain(doc), indent=1) + "\n")
        return
    if fmt == "csv":
        render([*rows, total], fmt)
        return
    c = " cost" if p.unit == "USD" else ""  # the column name makes a table cell money (display.cell)
    f, unit = _table_unit(p, float(total["totalHi95"]))
    table = [{"series": r["series"], f"actual{c}": _in(r["actual"], f), f"forecast{c}": _in(r["forecastRest"], f),
              f"total{c}": _in(r["total"], f), "80%": _range(r, "totalLo80", "totalHi80", f),
              "95%": _range(r, "totalLo95", "totalHi95", f), f"naive{c}": _in(r["naiveTotal"], f),
              "model": r["model"]} for r in [*rows, total]]
    render(table, title=title.replace(f"({p.unit})", f"({unit})"), caption=_caption(p, info))
    for f in info["fallback"][:10]:
        console.print(f"  [dim]seasonal naive for {f['series']}: {f['reason']}[/]", highlight=False)
    if len(info["fallback"]) > 10:
        console.print(f"  [dim]... and {len(info['fallback']) - 10} more (--format json lists them)[/]")


def _range(r: dict[str, Any], lo: str, hi: str, f: float = 1.0) -> str:
    return f"{_text(float(r[lo]) / f)}..{_text(float(r[hi]) / f)}"


def _table_unit(p: Projection, biggest: float) -> tuple[float, str]:
    """Usage in a table in thousands, millions or billions when it is large (a token count of 12 digits does not
    fit); csv and json keep the unit."""
    if p.unit == "USD":
        return 1.0, p.unit
    for f, word in ((1e9, "billions"), (1e6, "millions"), (1e3, "thousands")):
        if abs(biggest) / f >= 1000:
            return f, f"{p.unit}, in {word}"
    return 1.0, p.unit


def _in(v: Any, f: float) -> Any:
    return v if f == 1 else round(float(v) / f, 2)


def _meta(p: Projection, info: dict[str, Any]) -> dict[str, Any]:
    return {"metric": p.metric, "dimension": p.dimension, "unit": p.unit, "grain": p.grain,
            "period": {"start": p.period.start, "end": p.period.end}, "dataEnd": p.data_end,
            "model": p.model, "modelText": info["modelText"],
            "history": {"start": p.history.start, "end": p.history.end, "periods": info["historyPeriods"]},
            "fallback": info["fallback"]}


def _compare(p: Projection, outcomes: list[Outcome],
             groups: list[tuple[str | None, np.ndarray]]) -> dict[str, list[dict[str, Any]]]:
    """Per scenario (base first): the total at period end (mean and bounds) and the difference to base of the
    shown groups, then of the series the scenarios add, then of all series."""
    added = list(dict.fromkeys(k for o in outcomes for k in o.keys[len(p.keys):]))
    union = [*p.keys, *added]
    where = {k: i for i, k in enumerate(union)}
    rows = [(name or p.keys[int(r[0])], r) for name, r in groups]
    rows += [(k, np.array([where[k]])) for k in added] + [(TOTAL, np.arange(len(union)))]
    base = p.totals()
    totals = {BASE: {k: base[f"total_{k}"] for k in BOUNDS}}
    totals |= {o.name: {k[6:]: v for k, v in o.totals().items()} for o in outcomes}
    keys = {BASE: p.keys} | {o.name: o.keys for o in outcomes}
    aligned: dict[str, dict[str, np.ndarray]] = {}
    for name, t in totals.items():
        at = [where[k] for k in keys[name]]
        aligned[name] = {k: np.zeros(len(union)) for k in BOUNDS}
        for k in BOUNDS:
            aligned[name][k][at] = t[k]
    out: dict[str, list[dict[str, Any]]] = {}
    for name, t in aligned.items():
        out[name] = []
        for label, r in rows:
            s = {k: float(t[k][r].sum()) for k in BOUNDS}
            b = float(aligned[BASE]["mean"][r].sum())
            out[name].append({"series": label, **{FIELDS[k]: _amount(v, p.unit) for k, v in s.items()},
                              "vsBase": _amount(s["mean"] - b, p.unit),
                              "vsBasePct": round((s["mean"] - b) / b, 4) if b else None})
    return out


def _scenarios(p: Projection, to: str, info: dict[str, Any], groups: list[tuple[str | None, np.ndarray]],
               outcomes: list[Outcome], fmt: str, title: str) -> None:
    every = _compare(p, outcomes, groups)
    notes = {o.name: o.notes for o in outcomes}
    if fmt == "json":
        doc = {**_meta(p, info), "scenarios": [
            {"name": name, "description": next((o.description for o in outcomes if o.name == name), None),
             "notes": notes.get(name, []), "series": rows[:-1], "total": rows[-1]} for name, rows in every.items()]}
        sys.stdout.write(json.dumps(_plain(doc), indent=1) + "\n")
        return
    if fmt == "csv":
        render([{"scenario": name, **r} for name, rows in every.items() for r in rows], fmt)
        return
    names = list(every)
    c = " cost" if p.unit == "USD" else ""
    f, unit = _table_unit(p, max(float(every[n][-1]["totalHi95"]) for n in names))
    side: list[dict[str, Any]] = [{"series": r["series"], f"{BASE}{c}": _in(r["total"], f),
                                   f"{BASE} 95%": _range(r, "totalLo95", "totalHi95", f)} for r in every[BASE]]
    for n in names[1:]:  # a scenario's column: its total and, where it differs, the difference to base
        cells = [f"{float(x['total']) / f:,.2f}" + (f" ({float(x['vsBase']) / f:+,.2f})" if x["vsBase"] else "")
                 for x in every[n]]
        width = max(len(x) for x in cells)
        for row, cell in zip(side, cells, strict=True):
            row[f"{n} (vs base)"] = cell.rjust(width)
    title = title.replace(f"({p.unit})", f"({unit})")
    render(side, title=f"{title}: base and scenarios, total at period end", caption=_caption(p, info))
    render([{"scenario": n, f"total{c}": _in(t["total"], f), "80%": _range(t, "totalLo80", "totalHi80", f),
             "95%": _range(t, "totalLo95", "totalHi95", f), f"vs base{c}": _in(t["vsBase"], f),
             "vs base %": f"{t['vsBasePct']:+.1%}" if t["vsBasePct"] is not None else ""}
            for n in names for t in [every[n][-1]]], title=f"total for {_label(p, to)} by scenario")
    for o in outcomes:
        console.print(f"[bold]{o.name}[/]{': ' + o.description if o.description else ''}", highlight=False)
        for note in o.notes:
            console.print(f"  - {note}", highlight=False)


@app.command("backtest")
@friendly
def backtest_cmd(
    metric_name: Annotated[str, typer.Option("--metric", help=f"What to forecast: {', '.join(metrics.names())}.")]
    = "cost",
    by: ByOpt = "ServiceName",
    history: HistoryOpt = "120d",
    grain: GrainOpt = "day",
    model: ModelOpt = "auto",
    horizon: Annotated[int, typer.Option(help="Periods each fold forecasts.")] = 14,
    folds: Annotated[int, typer.Option(help="Forecast origins.")] = 4,
    step: Annotated[int, typer.Option(help="Periods between origins, back from the end.")] = 7,
    top: Annotated[int, typer.Option(help="Series shown (largest first); the summary counts all. 0 = all.")] = 20,
    fmt: FormatOpt = "table",
) -> None:
    """Rolling-origin backtest: sMAPE and MASE of the model and of seasonal naive per series, and where it wins."""
    check_format(fmt)
    if model not in MODELS:
        raise ForecastError(f"unknown model {model!r}: use {', '.join(MODELS)}")
    if grain not in GRAINS:
        raise DimensionError(f"unknown grain {grain!r}: use {', '.join(GRAINS)}")
    s = state.settings
    with open_store(read_only=True) as store:
        m = metric(store.con, metric_name, s, load_rules(s.layers_file))
        end = data_end_of(m)
        cut = align(Window(end, end), grain).start
        series, first = load_history(m, by, history_window(history, cut), grain)
    y = series.values[:, first:]
    bt = backtest(y, GRAINS[grain][1], horizon, folds, step, model, series.keys)
    order = np.argsort(-np.abs(series.cost[:, first:]).sum(axis=1), kind="stable")
    times = series.times[first:]

    def num(v: float, digits: int) -> float | None:
        return round(float(v), digits) if np.isfinite(v) else None

    rows = [{"series": bt.keys[i], "smapeModel": num(bt.smape_model[i], 2), "smapeNaive": num(bt.smape_naive[i], 2),
             "maseModel": num(bt.mase_model[i], 3), "maseNaive": num(bt.mase_naive[i], 3), "verdict": bt.verdict[i],
             "fallbackFolds": bt.fallback.get(int(i), 0)} for i in order]
    summary = bt.summary()
    origins = [times[o] for o in bt.origins]
    if fmt == "json":
        doc = {"metric": series.metric, "dimension": series.dimension, "grain": grain, "model": model,
               "history": {"start": times[0], "end": cut, "periods": y.shape[1]}, "horizon": horizon,
               "step": step, "origins": origins, "summary": summary, "series": rows}
        sys.stdout.write(json.dumps(_plain(doc), indent=1) + "\n")
        return
    if fmt == "csv":
        render(rows, fmt)
        return
    shown = rows[:top] if top > 0 else rows
    render([{"series": r["series"], "sMAPE model %": r["smapeModel"], "sMAPE naive %": r["smapeNaive"],
             "MASE model": r["maseModel"], "MASE naive": r["maseNaive"], "verdict": r["verdict"],
             "fallback folds": r["fallbackFolds"]} for r in shown],
           title=f"backtest of {model} vs seasonal naive: {series.metric} by {by or 'total'}",
           caption=f"{len(shown)} of {len(rows)} series (largest first); {folds} fold(s) of {horizon} {grain}s, "
                   f"origins every {step}: {', '.join(f'{o:%Y-%m-%d %H:%M}' for o in origins)}; history "
                   f"{times[0]:%Y-%m-%d}..{cut:%Y-%m-%d} ({y.shape[1]} {grain}s)")

    def med(v: float | None) -> str:
        return f"{v:.3f}" if v is not None else "n/a"

    console.print(f"{model} beats seasonal naive on {summary['beats']} of {summary['series']} series "
                  f"({summary['ties']} tie(s), {summary['doesNotBeat']} where it does not); median MASE: {model} "
                  f"{med(summary['medianMaseModel'])}, seasonal naive {med(summary['medianMaseNaive'])}; "
                  f"{summary['fallbackSeries']} series fell back in some fold; {summary['seconds']:.2f} s",
                  highlight=False)


def register(root: typer.Typer) -> None:
    """Add ``forecast`` (and ``forecast backtest``) to the root app (app.py calls this once)."""
    root.add_typer(app, name="forecast")
