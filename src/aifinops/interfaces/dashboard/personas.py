"""The same numbers through three lenses.

- **Engineering**: GPU-hours and utilisation by node pool and team, and the workloads behind them.
- **Product**: cost per feature, per active user, per outcome and the gross margin; the costliest users.
- **Finance**: actuals against budgets and the forecast, spend by cost centre (a tag, or the BillingAccount /
  SubAccount: ``centre=``), and the LLM usage reconciled to the bill.
"""

from __future__ import annotations

from ...analysis import costs as costs_mod
from ..api.scope import OTHERS
from . import data, gpu, models, parts, plots, records
from .blocks import Block, Column, Page, Row, Table
from .context import Ctx, FilterError

#: cost centres offered on the finance page (any ledger dimension works: ``centre=tag:CostCenter``)
CENTRES = ("SubAccountName", "BillingAccountName", "tag:CostCenter", "tag:business_unit")
DEFAULT_CENTRE = "SubAccountName"


def engineering(ctx: Ctx) -> Page:
    w = data.gpu_window(ctx)
    sections = [
        parts.guard("GPU-hours and utilisation by node pool", lambda: _pools(ctx)),
        parts.guard("GPU-hours and efficiency by team", lambda: gpu._teams(ctx)),
        parts.guard("Per-workload detail", lambda: _workloads(ctx)),
    ]
    return Page("engineering", "Engineering view", sections, facts={"GPU window": parts.window_text(w)})


def _pools(ctx: Ctx) -> list[Block]:
    rows = data.utilization(ctx, "node_pool", "window")
    if ctx.who.team or ctx.filters.team:  # a pool is its owner's
        team = ctx.who.team or ctx.filters.team
        pools = ctx.cached("pool_owners", None, lambda: dict(ctx.con.execute(
            "SELECT node_pool, any_value(owner) FROM gpu_nodes GROUP BY 1").fetchall()))
        rows = [r for r in rows if pools.get(r["node_pool"]) == team]
    link = parts.rows_link(ctx, "workloads", {"node_pool": "node_pool"})
    chart = plots.bars("pools-chart", "GPU-hours by node pool: held and idle", rows, "node_pool",
                       [("allocatedGpuHours", "allocated"), ("unallocatedGpuHours", "unallocated")], stacked=True,
                       horizontal=True, money=False, link=link)
    table = Table.of("pools", "Utilisation by node pool", rows,
                     ["node_pool", "gpus", "gpuHours", "allocatedGpuHours", "unallocatedGpuHours", "idleGpuHours",
                      Column("meanActivity", "activity", "ratio"), Column("shareBelow5", "below 5%", "ratio"),
                      Column("shareBelow30", "below 30%", "ratio"), Column("partlyAllocatedGpus", "partly held",
                                                                          "plain")],
                     links={"allocatedGpuHours": link, "node_pool": link},
                     note="aifinops gpu utilization --by node_pool --accumulate window")
    return [chart, table]


def _workloads(ctx: Ctx) -> list[Block]:
    team = f"label:{ctx.team_key}"
    mine, others = data.alloc(ctx, ["workload", "namespace", team])
    top = sorted(mine, key=lambda r: -(r["totalCost"] or 0))
    link = parts.rows_link(ctx, "workloads", {"workload": "workload", "namespace": "namespace"})
    return [Table.of("workloads", "Workloads by GPU cost", parts.with_others(top, others),
                     ["workload", "namespace", Column(team, "team"), "gpuHours", "totalCost",
                      Column("gpuEfficiency", "efficiency", "ratio"),
                      Column("gpuCostAllocatedIdle", "allocated idle", "money")],
                     links={"totalCost": link, "workload": link, team: parts.team_link(ctx, team)}, show=25)]


# -- product ---------------------------------------------------------------------------------------------------

def product(ctx: Ctx) -> Page:
    w = data.llm_window(ctx)
    sections = [
        parts.guard("Per feature", lambda: _features(ctx)),
        parts.guard("Per user", lambda: _users(ctx)),
    ]
    return Page("product", "Product view", sections, facts={"LLM window": parts.window_text(w)})


def _features(ctx: Ctx) -> list[Block]:
    blocks = parts.feature_table(ctx, "product-features")
    rows, _ = parts.feature_units(ctx)
    margin = [r for r in rows if r.get("grossMargin") is not None]
    if margin:
        chart = plots.bars("margin", "Gross margin by feature", margin, "feature", [("grossMargin", "margin")],
                           money=False, link=parts.rows_link(ctx, "requests", {"feature": "feature"}))
        chart.figure["layout"]["yaxis"] = {"tickformat": ".0%"}
        blocks.append(chart)
    return blocks


def _users(ctx: Ctx) -> list[Block]:
    mine, others = data.units(ctx, ["user"])
    top = [r for r in mine if r.get("user") is not None][:50]
    link = parts.rows_link(ctx, "requests", {"user": "user"})
    return [Table.of("users", "Costliest users", parts.with_others(top, others),
                     ["user", "requests", "cost", Column("costPerRequest", "per request", "money"),
                      Column("costPer1kTokens", "per 1K tokens", "money")], links={"cost": link, "requests": link},
                     note="requests that name a user; the window's 50 costliest.")]


# -- finance ---------------------------------------------------------------------------------------------------

def finance(ctx: Ctx) -> Page:
    centre = ctx.extra.get("centre", DEFAULT_CENTRE)
    if centre.lower() in costs_mod.TIME_GRAINS:
        raise FilterError(f"centre {centre!r} is a time grain, not a cost centre")
    w = data.ledger_window(ctx)
    sections = [
        parts.guard("Actuals, budgets and forecast", lambda: parts.budget_blocks(ctx, "finance-budgets")),
        parts.guard(f"By cost centre ({centre})", lambda: _centres(ctx, centre)),
        parts.guard("Reconciliation to the bill", lambda: models.reconciliation(ctx)),
    ]
    return Page("finance", "Finance view", sections,
                facts={"ledger window": parts.window_text(w), "cost centre": centre,
                       "other centres": ", ".join(c for c in CENTRES if c != centre)})


def _centres(ctx: Ctx, centre: str) -> list[Block]:
    rows = data.costs(ctx, centre)
    link = parts.rows_link(ctx, "charges", {centre: centre})
    blocks: list[Block] = [
        Table.of("centres", f"Spend by {centre} over the window", rows, [centre, "cost", "charges"],
                 links={"cost": link}),
    ]
    p = records.forecast(ctx, centre)
    if not isinstance(p, str):
        fc, total = records.forecast_rows(p)
        label = f"{p.period.start:%Y-%m}"
        window = f"{p.period.start.isoformat(sep=' ')}..{p.data_end.isoformat(sep=' ')}"
        flink = _forecast_link(ctx, centre, window, p.data_end > p.period.start)
        blocks.insert(0, plots.bars("centres-chart", f"{label}: actual so far and forecast of the rest", fc[:15],
                                    "series", [("actual", "actual"), ("forecastRest", "forecast rest")],
                                    stacked=True, horizontal=True, link=flink))
        blocks.append(Table.of("centre-forecast", f"{label} by {centre}: actual and forecast", [*fc, total],
                               parts.forecast_columns(),
                               links={"actual": _forecast_link(ctx, centre, window, p.data_end > p.period.start)},
                               note="usage-based spend (a forecast reads no fees); intervals add half-widths."))
    else:
        blocks.append(parts.Note(p, "Forecast"))
    return blocks


def _forecast_link(ctx: Ctx, centre: str, window: str, started: bool) -> parts.Link:
    """The usage-based charges behind a centre's actual so far (none before the period has begun)."""
    def link(r: Row) -> str | None:
        if r["series"] == OTHERS or not started:
            return None
        dims = {} if r["series"] == "(total)" else {centre: r["series"]}
        return ctx.rows("charges", dims, window, {"frequency": "usage"})
    return link
