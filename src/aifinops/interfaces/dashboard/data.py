"""The analyses as the dashboard reads them: each called once per data version and argument set (``Ctx.cached``),
then filtered and split by scope.

Scope first, then filters (as the REST API's ``scope.py`` does): a team-scoped token gets its team's rows in
detail and everything else as one ``(other teams)`` row per table, computed without the request's team, model
and environment filters, so no filter turns the other side into detail.

How each source meets the filters, without pasting a value into SQL:

- **ledger** (ibis over ``focus_charges``): ``Tags[<team key>]``, ``Tags['model']``, ``Tags['env']`` as
  ibis predicates;
- **GPU allocation** (``gpu_allocation.aggregate``): the filter's label is added to the grouping and the grouped
  rows are kept where it matches. Every added key is fixed to one value, so each kept row is still exactly one
  group of the asked grouping (no re-aggregation, efficiency stays exact);
- **LLM unit costs** (``unit_costs``): the same, with ``team``, ``model`` and ``environment``; outcomes join on
  team (outcome rows carry it), not on model or environment;
- **training** (``training_costs``): a run's (or experiment's) team, model and environment are its workloads'
  labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import ibis

from ...analysis import costs as costs_mod
from ...analysis import gpu_allocation, gpu_utilization
from ...analysis.layers import LayerRule, load_rules
from ...analysis.unit_costs import unit_costs
from ...analysis.windows import Window, parse_window
from ...analysis.workload_costs import serving_costs, training_costs
from ...model.checks import sql_str
from ..api.scope import OTHERS, split_ledger
from .blocks import Row
from .context import ENV_KEY, MODEL_TAG, Ctx

MAX_GPU_DAYS = 400  # a wider GPU window (``all``) is cut to the telemetry's span: one cell per GPU and hour


def rules(ctx: Ctx) -> list[LayerRule]:
    return ctx.cached("rules", None, lambda: load_rules(ctx.settings.layers_file))


def _scalar(ctx: Ctx, name: str, sql: str) -> Any:
    return ctx.cached(name, None, lambda: ctx.con.execute(sql).fetchone()[0])  # type: ignore[index]


# -- windows: each source's relative windows end where its own data ends (as the CLI commands do) ------------

def ledger_window(ctx: Ctx, text: str | None = None) -> Window:
    end = _scalar(ctx, "ledger_end", 'SELECT max("ChargePeriodEnd") FROM focus_charges')
    return parse_window(text or ctx.filters.window, end)


def gpu_span(ctx: Ctx) -> tuple[datetime | None, datetime | None]:
    """First and last (exclusive) hour of GPU samples or GPU workloads (``aifinops gpu utilization``'s rule)."""
    sql = ("SELECT date_trunc('hour', least((SELECT min(ts) FROM gpu_samples WHERE NOT _superseded),"
           " (SELECT min(start_ts) FROM workloads WHERE gpu_share > 0))),"
           " greatest(date_trunc('hour', (SELECT max(ts) FROM gpu_samples WHERE NOT _superseded)) + INTERVAL 1 HOUR,"
           " date_trunc('hour', (SELECT max(coalesce(end_ts, start_ts)) FROM workloads WHERE gpu_share > 0)"
           " - INTERVAL 1 MICROSECOND) + INTERVAL 1 HOUR)")
    return ctx.cached("gpu_span", None, lambda: tuple(ctx.con.execute(sql).fetchone()))  # type: ignore[arg-type]


def gpu_window(ctx: Ctx) -> Window:
    """The GPU views' window: relative to the last GPU hour; ``all`` (or anything wider than MAX_GPU_DAYS) is
    the telemetry's span, since the analyses make one cell per GPU and hour."""
    first, last = gpu_span(ctx)
    w = parse_window(ctx.filters.window, last)
    if w.days > MAX_GPU_DAYS or ctx.filters.window in ("all", "*"):
        w = _clamp(w, first, last)
    return w


def _clamp(w: Window, first: datetime | None, last: datetime | None) -> Window:
    """``w`` cut to the data's [first, last); an empty window when there is no data."""
    if first is None or last is None:
        return Window(w.start, w.start)
    start = max(w.start, first)
    return Window(start, max(start, min(w.end, last)))


def llm_window(ctx: Ctx) -> Window:
    """Relative to the end of the data (``aifinops unit-costs``' rule); ``all`` (or anything wider than
    MAX_GPU_DAYS) starts at the first request's hour, since self-hosted models are priced from the GPU
    allocation, which makes one cell per GPU and hour."""
    sql = ("SELECT greatest((SELECT max(ts) FROM llm_requests WHERE NOT _superseded), "
           "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads), "
           "(SELECT max(\"ChargePeriodEnd\") FROM focus_charges))")
    end = _scalar(ctx, "llm_end", sql)
    w = parse_window(ctx.filters.window, end)
    if w.days > MAX_GPU_DAYS or ctx.filters.window in ("all", "*"):
        first = _scalar(ctx, "llm_start", "SELECT date_trunc('hour', min(ts)) FROM llm_requests WHERE NOT _superseded")
        w = _clamp(w, first, end + timedelta(hours=1) if end is not None else None)
    return w


# -- rows of other teams ---------------------------------------------------------------------------------------

def others_total(rows: list[Row], keys: Iterable[str], sums: Iterable[str]) -> Row:
    """One row standing for ``rows`` (other teams'): every key says so, ``sums`` are added, the rest is blank."""
    out: Row = dict.fromkeys(keys, OTHERS)
    for c in sums:
        vals = [r[c] for r in rows if r.get(c) is not None]
        out[c] = sum(vals[1:], vals[0]) if vals else None
    return out


def split(ctx: Ctx, kept: list[Row], every: list[Row], team_of: Callable[[Row], str | None], keys: Iterable[str],
          sums: Iterable[str]) -> tuple[list[Row], Row | None]:
    """(the ``kept`` rows of the token's team, one total of the other teams' rows among ``every`` or None): what a
    scoped token may see. ``kept`` are the rows left by the request's filters, ``every`` all of them: the others'
    total ignores the filters. Unscoped: (kept, None)."""
    if not ctx.scoped:
        return kept, None
    rest = [r for r in every if team_of(r) != ctx.who.team]
    return [r for r in kept if team_of(r) == ctx.who.team], others_total(rest, keys, list(sums)) if rest else None


def _money_cols(rows: list[Row]) -> list[str]:
    """The columns holding a number in some row (what an others' total can add)."""
    return list(dict.fromkeys(k for r in rows for k, v in r.items()
                              if isinstance(v, Decimal | int | float) and not isinstance(v, bool)))


# -- ledger ----------------------------------------------------------------------------------------------------

def ledger(ctx: Ctx, filtered: bool = True) -> tuple[ibis.Table, ibis.Table | None]:
    """(the charges the token sees in detail, with the request's filters; the others' charges or None)."""
    t = ibis.duckdb.from_connection(ctx.con).table("focus_charges")
    mine, others = split_ledger(t, ctx.who, ctx.settings)
    if filtered:
        f = ctx.filters
        for key, value in ((ctx.team_key, f.team), (MODEL_TAG, f.model), (ENV_KEY, f.env)):
            if value is not None:
                mine = mine.filter(mine.Tags.get(key).fill_null("") == value)
    return mine, others


def costs(ctx: Ctx, by: str, window: Window | None = None, top: int | None = None) -> list[Row]:
    """EffectiveCost by ``by`` (``aifinops costs --by``) over the ledger window, largest first; a scoped token's
    other teams as one row (over the window, no filters)."""
    w = window or ledger_window(ctx)
    f = ctx.filters

    def compute() -> list[Row]:
        mine, others = ledger(ctx)
        dims = costs_mod.parse_by(by)
        expr = costs_mod.cost_by(mine, dims, w, "effective", rules(ctx))
        rows: list[Row] = (expr.limit(top) if top and dims else expr).to_pyarrow().to_pylist()
        if others is not None:
            [total] = costs_mod.cost_by(others, [], w, "effective", rules(ctx)).to_pyarrow().to_pylist()
            if total["charges"]:
                rows.append({**dict.fromkeys([d.label for d in dims], OTHERS), **total})
        return rows

    return ctx.cached("costs", (by, w, top, ctx.who.team, f.team, f.model, f.env), compute)


def total_cost(rows: list[Row]) -> Decimal:
    return sum((r["cost"] for r in rows if r.get("cost") is not None), Decimal(0))


# -- GPU -------------------------------------------------------------------------------------------------------

def _label(key: str) -> str:
    return f"label:{key}"


def alloc(ctx: Ctx, by: list[str], share_idle: str = "none",
          where: dict[str, list[str]] | None = None) -> tuple[list[Row], Row | None]:
    """The GPU allocation by ``by`` (``aifinops allocation --aggregate``) over the GPU window, filtered (and
    ``where``: grouping values, any of a list) and split by scope (see the module docstring)."""
    f = ctx.filters
    team = _label(ctx.team_key)
    want = {team: f.team, _label(ctx.settings.llm.serving_label): f.model, _label(ENV_KEY): f.env}
    keys = list(by)
    for k in [*(k for k, v in want.items() if v is not None), *(where or {})] + ([team] if ctx.scoped else []):
        if k not in keys:
            keys.append(k)
    w = gpu_window(ctx)
    rows: list[Row] = ctx.cached("alloc", (w, tuple(keys), share_idle), lambda: gpu_allocation.aggregate(
        ctx.con, w, keys, share_idle=share_idle, settings=ctx.settings))
    tests = {k: [v] for k, v in want.items() if v is not None} | dict(where or {})
    kept = [r for r in rows if all(str(r.get(k)) in vs for k, vs in tests.items())]
    sums = [c for c in _money_cols(rows) if c.endswith(("Cost", "Hours", "Kwh", "Kg")) or c.startswith("gpuCost")]
    return split(ctx, kept, rows, lambda r: r.get(team), by, sums)


def node_owners(ctx: Ctx) -> dict[str, str | None]:
    return ctx.cached("node_owners", None, lambda: dict(ctx.con.execute(
        "SELECT node, any_value(owner) FROM gpu_nodes GROUP BY node").fetchall()))


def utilization(ctx: Ctx, by: str, accumulate: str) -> list[Row]:
    """``aifinops gpu utilization`` over the GPU window. By node, a team filter (or a scoped token) keeps the
    nodes whose node pool that team owns."""
    w = gpu_window(ctx)
    rows: list[Row] = ctx.cached("util", (w, by, accumulate), lambda: gpu_utilization.utilization(
        ctx.con, w, by, accumulate, ctx.settings.allocation.idle_threshold))
    team = ctx.who.team or ctx.filters.team
    if by == "node" and team is not None:
        owners = node_owners(ctx)
        rows = [r for r in rows if owners.get(str(r["node"])) == team]
    return rows


def has_gpus(ctx: Ctx) -> bool:
    return bool(_scalar(ctx, "gpu_nodes", "SELECT count(*) FROM gpu_nodes WHERE gpu_count > 0"))


# -- LLM -------------------------------------------------------------------------------------------------------

def served(ctx: Ctx) -> Any:
    w = llm_window(ctx)
    return ctx.cached("served", w, lambda: serving_costs(ctx.con, w, ctx.settings))


def units(ctx: Ctx, by: list[str], outcome: str | None = None, revenue: str | None = None,
          where: dict[str, list[str]] | None = None) -> tuple[list[Row], Row | None]:
    """Unit costs by ``by`` (``aifinops unit-costs``) over the LLM window, filtered and split by scope."""
    f = ctx.filters
    want = {"team": f.team, "model": f.model, "environment": f.env}
    keys = list(by)
    for k in [*(k for k, v in want.items() if v is not None), *(where or {})] + (["team"] if ctx.scoped else []):
        if k not in keys:
            keys.append(k)
    w = llm_window(ctx)
    rows: list[Row] = ctx.cached("units", (w, tuple(keys), outcome, revenue), lambda: unit_costs(
        ctx.con, w, keys, ctx.settings, served=served(ctx), outcome=outcome, revenue=revenue))
    tests = {k: [v] for k, v in want.items() if v is not None} | dict(where or {})
    kept = [r for r in rows if all(str(r.get(k)) in vs for k, vs in tests.items())]
    sums = ("requests", "inputTokens", "outputTokens", "cost", "unpricedRequests", "unpricedTokens",
            "selfHostedCost", "outcome", "revenue")
    mine, others = split(ctx, kept, rows, lambda r: r.get("team"), by, sums)
    return mine, unit_ratios(others) if others else None


def unit_ratios(r: Row) -> Row:
    """Cost per request and per 1K tokens of a summed row (the priced volume only, as ``unit_costs``)."""
    cost = r.get("cost")
    priced = (r.get("requests") or 0) - (r.get("unpricedRequests") or 0)
    tokens = (r.get("inputTokens") or 0) + (r.get("outputTokens") or 0) - (r.get("unpricedTokens") or 0)
    r["costPerRequest"] = cost / priced if cost is not None and priced else None
    r["costPer1kTokens"] = cost * 1000 / tokens if cost is not None and tokens else None
    return r


def feature_outcomes(ctx: Ctx) -> tuple[dict[str, str], str | None]:
    """(feature -> the business outcome it is measured by, the revenue metric): from the outcomes recorded, a
    metric in USD is revenue and any other is a feature's outcome."""
    rows = ctx.cached("feature_outcomes", None, lambda: ctx.con.execute(
        "SELECT feature, metric, any_value(unit) FROM outcomes WHERE NOT _superseded GROUP BY ALL "
        "ORDER BY feature, count(*) DESC, metric").fetchall())
    revenue = next((m for _, m, u in rows if (u or "").upper() == "USD" or m == "revenue"), None)
    per: dict[str, str] = {}
    for feature, metric, _ in rows:
        if feature is not None and metric != revenue:
            per.setdefault(feature, metric)
    return per, revenue


# -- training --------------------------------------------------------------------------------------------------

def label_teams(ctx: Ctx, label: str) -> dict[str, str | None]:
    """A workload label's values -> the team label of the workloads carrying it (a model -> who serves it)."""
    sql = (f"SELECT labels[{sql_str(label)}], any_value(labels[{sql_str(ctx.team_key)}]) FROM workloads "
           f"WHERE labels[{sql_str(label)}] IS NOT NULL GROUP BY 1")
    return dict(ctx.cached("label_teams", label, lambda: ctx.con.execute(sql).fetchall()))


def unit_labels(ctx: Ctx, by: str) -> dict[str, dict[str, str | None]]:
    """A training unit (run, experiment) -> its workloads' team, model and environment labels."""
    label = ctx.settings.llm.training_labels.get(by, by)
    keys = {"team": ctx.team_key, "model": ctx.settings.llm.serving_label, "env": ENV_KEY}
    cols = ", ".join(f"any_value(labels[{sql_str(v)}]) AS {k}" for k, v in keys.items())
    sql = f"SELECT labels[{sql_str(label)}] AS unit, {cols} FROM workloads WHERE labels[{sql_str(label)}] " \
          "IS NOT NULL GROUP BY 1"
    rows = ctx.cached("unit_labels", label, lambda: ctx.con.execute(sql).fetchall())
    return {u: {"team": t, "model": m, "env": e} for u, t, m, e in rows}


def training(ctx: Ctx, by: str) -> tuple[list[Row], Row | None]:
    """Cost per run or experiment (``aifinops unit-costs --by run``) over the GPU window, filtered by its
    workloads' labels and split by scope."""
    w = gpu_window(ctx)
    rows: list[Row] = ctx.cached("training", (w, by), lambda: training_costs(ctx.con, w, by, ctx.settings))
    labels = unit_labels(ctx, by)
    f = ctx.filters
    tests = {k: v for k, v in (("team", f.team), ("model", f.model), ("env", f.env)) if v is not None}
    kept = [r for r in rows if all(labels.get(str(r[by]), {}).get(k) == v for k, v in tests.items())]
    sums = ("runs", "succeededRuns", "failedRuns", "workloads", "gpuHours", "cost", "succeededCost", "failedCost",
            "runningCost")
    return split(ctx, kept, rows, lambda r: labels.get(str(r[by]), {}).get("team"), [by], sums)


def run_metrics(ctx: Ctx) -> list[Row]:
    """Each run's last value of each metric it logged (MLflow), keyed by the run label its workloads carry."""
    sql = ("SELECT workload_run AS run, metric, arg_max(value, coalesce(step, 0)) AS value, "
           "any_value(experiment) AS experiment, any_value(model) AS model FROM run_metrics "
           "WHERE NOT _superseded AND workload_run IS NOT NULL GROUP BY ALL ORDER BY metric, run")
    return ctx.cached("run_metrics", None, lambda: [
        dict(zip(("run", "metric", "value", "experiment", "model"), r, strict=True))
        for r in ctx.con.execute(sql).fetchall()])


def previous(w: Window) -> Window:
    """The window of the same length just before ``w`` (the previous period of a comparison)."""
    span = w.end - w.start
    return Window(w.start - span, w.start) if span < timedelta(days=3660) else w
