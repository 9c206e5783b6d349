"""Pieces several pages share: links to the rows behind a number, sections that cannot fail the page, and the
tables more than one page shows (budgets, findings, anomalies, unit costs by feature, the forecast)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...analysis.costs import DimensionError
from ...analysis.forecast import ForecastError
from ...analysis.layers import LayerRuleError
from ...analysis.projection import Projection
from ...analysis.windows import WindowError
from ..api.scope import OTHERS
from . import data, plots, records
from .blocks import Block, Column, Link, Note, Row, Section, Table
from .context import Ctx

#: what a section may fail with and still leave the page standing (an empty store, a window without data)
EXPECTED: tuple[type[Exception], ...] = (WindowError, DimensionError, ForecastError, LayerRuleError, ValueError)
SPECIAL = (OTHERS, "__idle__", "__shared__")


def guard(title: str, build: Callable[[], list[Block]], note: str = "") -> Section:
    """A section whose failure (no data of its kind) is one line on the page instead of an error page."""
    try:
        return Section(title, build(), note)
    except EXPECTED as exc:
        return Section(title, [Note(str(exc))], note)


def with_others(rows: list[Row], others: Row | None) -> list[Row]:
    return [*rows, others] if others else rows


def rows_link(ctx: Ctx, kind: str, dims: dict[str, str], window: str | None = None,
              params: dict[str, Any] | None = None) -> Link:
    """A link from a row to the rows behind it: ``dims`` maps the rows page's dimension to the row's column."""
    def link(r: Row) -> str | None:
        values = {d: r.get(col) for d, col in dims.items()}
        if any(v == OTHERS for v in values.values()):
            return None  # the other teams' total has no rows to show
        return ctx.rows(kind, {d: str(v) for d, v in values.items() if v is not None}, window, params)
    return link


def team_link(ctx: Ctx, col: str) -> Link:
    """A team's name links to the Teams page filtered to it."""
    def link(r: Row) -> str | None:
        v = r.get(col)
        return None if v in SPECIAL or v is None else ctx.url("/teams", {"team": str(v)})
    return link


def window_text(w: Any) -> str:
    return f"{w.start:%Y-%m-%d %H:%M}..{w.end:%Y-%m-%d %H:%M}"


# -- shared tables --------------------------------------------------------------------------------------------

def budget_blocks(ctx: Ctx, id: str = "budgets") -> list[Block]:
    mine, others = records.budgets(ctx)
    rows = with_others(mine, others)
    if not rows:
        return [Note("no budgets: add a `budgets:` list to aifinops.yaml (see `aifinops budgets status`)")]

    def spent_link(r: Row) -> str | None:
        if r["budget"] == OTHERS:
            return None
        return ctx.rows("charges", dict(r["_scope"]), r["_window"], keep=False)

    table = Table.of(id, "Budgets: actual vs budget vs forecast at period end", rows,
                     ["budget", "period", "scope", "amount", Column("spent", kind="money"),
                      Column("share", kind="ratio"), Column("forecast", kind="money"),
                      Column("forecastLow95", "forecast low 95%", "money"),
                      Column("forecastHigh95", "forecast high 95%", "money"), "exhaustion", "state", "owner"],
                     links={"spent": spent_link},
                     note="spent: EffectiveCost from the period start to the end of the ledger; forecast: spent + the "
                          "usage forecast of the rest of the period, with its 95% interval (aifinops budgets status).")
    chart = plots.bars(f"{id}-chart", "Budget, spent and forecast", [r for r in rows if r["budget"] != OTHERS],
                       "budget", [("amount", "budget"), ("spent", "spent"), ("forecast", "forecast")],
                       link=spent_link)
    return [chart, table]


def finding_link(ctx: Ctx) -> Link:
    return lambda r: None if r["finding_id"] == OTHERS else ctx.url(f"/recommendations/{r['finding_id']}")


def findings_table(ctx: Ctx, id: str, rows: list[Row], show: int = 12) -> Table:
    return Table.of(id, "Findings by achievable saving (per month)", rows,
                    [Column("finding_id", "id"), "rule", "scope", "owner", Column("monthly_waste", kind="money"),
                     Column("achievable_saving", kind="money"), "confidence", "status", "recommendation"],
                    links={"finding_id": finding_link(ctx), "achievable_saving": finding_link(ctx),
                           "owner": team_link(ctx, "owner")}, show=show,
                    note="achievable_saving: what the change saves once findings sharing the same dollars are "
                         "reconciled (aifinops recommend); open a finding for its evidence and formula.")


def anomaly_link(ctx: Ctx) -> Link:
    return lambda r: None if r["anomaly_id"] == OTHERS else ctx.url(f"/anomalies/{r['anomaly_id']}")


def anomaly_rows(rows: list[Row]) -> list[Row]:
    """Recorded anomalies with their top root causes as text."""
    out = []
    for r in rows:
        causes = r.get("root_causes") or []
        out.append({**r, "causes": ", ".join(f"{c['value']} {c['contribution']:.0%}" for c in causes[:3]
                                             if c.get("contribution") is not None)})
    return out


def anomalies_table(ctx: Ctx, id: str, rows: list[Row], show: int = 12) -> Table:
    return Table.of(id, "Anomalies by dollar impact", anomaly_rows(rows),
                    [Column("anomaly_id", "id"), "metric", "dimension", "series", "period_start", "period_end",
                     Column("actual", kind="plain"), Column("expected", kind="plain"),
                     Column("impact_cost", "impact", kind="money"), "severity", "status", "causes", "owner"],
                    links={"anomaly_id": anomaly_link(ctx), "impact_cost": anomaly_link(ctx)}, show=show,
                    note="status is the feedback given (open, expected, planned, wrong); causes: the child values "
                         "that explain the impact, with their contribution (aifinops anomalies list).")


def feature_units(ctx: Ctx) -> tuple[list[Row], Row | None]:
    """Unit costs by feature, each per its own business outcome, with the gross margin where revenue is
    recorded (the demo summary's table)."""
    per, revenue = data.feature_outcomes(ctx)
    base, others = data.units(ctx, ["feature"], revenue=revenue)
    by_metric = {m: {r["feature"]: r for r in data.units(ctx, ["feature"], outcome=m, revenue=revenue)[0]}
                 for m in dict.fromkeys(per.values())}
    rows = []
    for r in base:
        metric = per.get(r["feature"])
        u = by_metric[metric].get(r["feature"], r) if metric else r
        rows.append({**u, "outcomeMetric": metric, "outcome": u.get("outcome") if metric else None,
                     "costPerOutcome": u.get("costPerOutcome") if metric else None})
    return rows, others


def feature_table(ctx: Ctx, id: str = "features") -> list[Block]:
    rows, others = feature_units(ctx)
    if not rows and not others:
        return [Note("no LLM requests in the window")]
    link = rows_link(ctx, "requests", {"feature": "feature"})
    note = ("cost: the requests priced at the catalog in force (self-hosted models at their serving GPUs' cost); "
            "per outcome: cost / the feature's business outcome; grossMargin: (revenue - cost) / revenue.")
    if ctx.filters.model or ctx.filters.env:
        note += " Outcomes are recorded per feature and team, not per model or environment: with those filters " \
                "cost per outcome is blank."
    table = Table.of(id, "Cost per feature, per user and per outcome", with_others(rows, others),
                     ["feature", "requests", "cost", Column("costPerRequest", "per request", "money"),
                      Column("costPer1kTokens", "per 1K tokens", "money"), "activeUsers",
                      Column("costPerActiveUser", "per active user", "money"), "outcomeMetric",
                      Column("outcome", kind="plain"), Column("costPerOutcome", "per outcome", "money"),
                      Column("revenue", kind="money"), Column("grossMargin", "gross margin", "ratio")],
                     links={"cost": link, "requests": link}, note=note)
    chart = plots.bars(f"{id}-per-outcome", "Cost per outcome by feature",
                       [r for r in rows if r.get("costPerOutcome") is not None], "feature",
                       [("costPerOutcome", "cost per outcome")], link=link)
    return [table, chart]


def forecast_blocks(ctx: Ctx, dim: str, id: str) -> list[Block]:
    """The period forecast by ``dim``: a table of actual + forecast per series and a chart of the daily path."""
    p = records.forecast(ctx, dim)
    if isinstance(p, str):
        return [Note(p)]
    rows, total = records.forecast_rows(p)
    label = f"{p.period.start:%Y-%m}"
    table = Table.of(id, f"Forecast of {label} by {dim}", [*rows, total],
                     forecast_columns(),
                     links={"actual": _series_link(ctx, dim, p)},
                     note=f"actual to {p.data_end:%Y-%m-%d %H:%M} UTC plus the forecast of the rest of the period "
                          f"(model {p.model}, history {p.history.start:%Y-%m-%d}..{p.history.end:%Y-%m-%d}); "
                          "intervals add the series' half-widths.")
    path = records.forecast_path(p)
    steps = [s.strftime("%Y-%m-%d") for s in p.steps]
    chart = plots.lines(f"{id}-path", f"Daily spend forecast to the end of {label}", steps,
                        [("forecast", path["mean"])],
                        bands=[("95%", steps, path["lo95"], path["hi95"]), ("80%", steps, path["lo80"], path["hi80"])])
    return [table, chart]


def forecast_columns() -> list[str | Column]:
    return ["series", *(Column(c, kind="money") for c in ("actual", "forecastRest", "total", "totalLow80",
                                                            "totalHigh80", "totalLow95", "totalHigh95"))]


def _series_link(ctx: Ctx, dim: str, p: Projection) -> Link:
    """The usage-based charges behind a series' actual (a forecast reads only those: fees are dates on a
    contract, not a trend)."""
    window = f"{p.period.start.isoformat(sep=' ')}..{p.data_end.isoformat(sep=' ')}"

    def link(r: Row) -> str | None:
        if p.data_end <= p.period.start or r["series"] == OTHERS:
            return None  # nothing of the period is actual yet: no rows behind the 0
        dims = {} if r["series"] == "(total)" else {dim: r["series"]}
        return ctx.rows("charges", dims, window, {"frequency": "usage"})
    return link


