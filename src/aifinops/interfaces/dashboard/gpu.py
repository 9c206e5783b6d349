"""GPU fleet: utilisation by node over time, idle cost by kind, efficiency by team, allocation by model.

Idle has three kinds (``gpu_allocation.aggregate`` with ``share_idle=owner``): *unallocated* (no workload held
the GPUs; charged to the node pool's owner), *allocated idle* (held at under the idle threshold) and
*inefficiency* (the unused part of GPUs held above it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ...analysis.gpu_allocation import IDLE
from . import data, parts, plots
from .blocks import Block, Column, Kpi, Note, Page, Row, Table
from .context import Ctx

HOURLY_DAYS = 7  # windows up to a week draw the heat map by hour, longer ones by day


def team_col(ctx: Ctx) -> str:
    return f"label:{ctx.team_key}"


def build(ctx: Ctx) -> Page:
    w = data.gpu_window(ctx)
    if not data.has_gpus(ctx):
        return Page("gpu", "GPU fleet", [parts.Section("No GPU fleet", [Note(
            "no GPU nodes in the inventory: `aifinops ingest inventory nodes.csv`, then workloads and samples")])],
            facts={"GPU window": parts.window_text(w)})
    sections = [
        parts.guard("Utilisation by node over time", lambda: _heatmap(ctx)),
        parts.guard("Idle GPU cost by kind", lambda: _idle(ctx)),
        parts.guard("Efficiency by team", lambda: _teams(ctx)),
        parts.guard("Allocation by model", lambda: _models(ctx)),
    ]
    return Page("gpu", "GPU fleet", sections, _kpis(ctx), {"GPU window": parts.window_text(w)})


def _kpis(ctx: Ctx) -> list[Kpi]:
    try:
        mine, others = data.alloc(ctx, [team_col(ctx)], "owner")
    except parts.EXPECTED:
        return []
    rows = parts.with_others(mine, others)
    cost = sum((r["totalCost"] or 0 for r in rows), Decimal(0))
    idle = sum((_idle_of(r) for r in mine), Decimal(0))
    hours = sum(float(r["gpuHours"] or 0) for r in rows)
    nodes = data.utilization(ctx, "node", "window")
    tele = sum(float(r["telemetryGpuHours"] or 0) for r in nodes)
    act = sum(float(r["meanActivity"] or 0) * float(r["telemetryGpuHours"] or 0) for r in nodes)
    return [Kpi("GPU cost", cost, href=ctx.rows("workloads", {})),
            Kpi("idle cost (all kinds)", idle, note=f"{float(idle / cost):.0%} of the cost" if cost else ""),
            Kpi("GPU-hours", hours, kind="plain"),
            Kpi("mean activity", act / tele if tele else None, kind="ratio", note="over the hours with telemetry")]


def _idle_of(r: Row) -> Decimal:
    return sum((r.get(k) or Decimal(0) for k in ("gpuCostUnallocated", "gpuCostAllocatedIdle",
                                                 "gpuCostInefficiency")), Decimal(0))


def _heatmap(ctx: Ctx) -> list[Block]:
    w = data.gpu_window(ctx)
    grain = "hour" if w.days <= HOURLY_DAYS else "day"
    rows = data.utilization(ctx, "node", grain)
    periods = sorted({r["start"] for r in rows})
    nodes = sorted({str(r["node"]) for r in rows})
    col = {p: i for i, p in enumerate(periods)}
    row = {n: i for i, n in enumerate(nodes)}
    z: list[list[Any]] = [[None] * len(periods) for _ in nodes]
    for r in rows:
        z[row[str(r["node"])]][col[r["start"]]] = r["meanActivity"]
    note = (f"mean activity (SM active, else GR engine, else GPU util) per node and {grain}; blank: no telemetry. "
            + ("Nodes of the node pools this team owns. " if ctx.who.team or ctx.filters.team else "")
            + "Model and environment filters do not apply to nodes.")
    by_node = data.utilization(ctx, "node", "window")
    table = Table.of("nodes", "Utilisation by node over the window", by_node,
                     ["node", "gpus", "gpuHours", "allocatedGpuHours", "idleGpuHours",
                      Column("meanActivity", "activity", "ratio"), Column("shareBelow5", "below 5%", "ratio"),
                      Column("partlyAllocatedGpus", "partly held GPUs", "plain"), "activity_metric"],
                     links={"node": parts.rows_link(ctx, "workloads", {"node": "node"}),
                            "allocatedGpuHours": parts.rows_link(ctx, "workloads", {"node": "node"})},
                     note="gpuHours: capacity; idle: unallocated + held below the idle threshold (aifinops gpu "
                          "utilization --by node --accumulate window).")
    if not rows:
        return [Note("no GPU-hours in the window"), table]
    return [plots.heatmap("heatmap", f"Activity by node and {grain}", periods, nodes, z, note=note), table]


def _idle(ctx: Ctx) -> list[Block]:
    team = team_col(ctx)
    mine, others = data.alloc(ctx, [team], "owner")
    rows = [{**r, "idleCost": _idle_of(r), "idleShare": float(_idle_of(r) / r["gpuCost"]) if r["gpuCost"] else None}
            for r in mine]
    rows.sort(key=lambda r: -r["idleCost"])
    link = parts.rows_link(ctx, "workloads", {team: team})
    chart = plots.bars("idle-kinds", "Idle GPU cost by team and kind", rows, team,
                       [("gpuCostUnallocated", "unallocated"), ("gpuCostAllocatedIdle", "allocated idle"),
                        ("gpuCostInefficiency", "inefficiency")], link=link, stacked=True)
    table = Table.of("idle", "Idle GPU cost by team", parts.with_others(rows, others),
                     [Column(team, "team"), "gpuCost", Column("gpuCostUnallocated", "unallocated", "money"),
                      Column("gpuCostAllocatedIdle", "allocated idle", "money"),
                      Column("gpuCostInefficiency", "inefficiency", "money"), Column("idleCost", "idle", "money"),
                      Column("idleShare", "idle share", "ratio")],
                     links={team: parts.team_link(ctx, team), "gpuCostAllocatedIdle": link},
                     note="share-idle owner: a node pool's unallocated GPUs are its owner's idle (__idle__: pools "
                          "without an owner). aifinops allocation --aggregate label:team --share-idle owner")
    return [chart, table]


def _teams(ctx: Ctx) -> list[Block]:
    team = team_col(ctx)
    mine, others = data.alloc(ctx, [team])
    link = parts.rows_link(ctx, "workloads", {team: team})
    chart = plots.bars("efficiency", "GPU efficiency by team (used / allocated GPU-hours)",
                       [r for r in mine if r[team] != IDLE and r.get("gpuEfficiency") is not None], team,
                       [("gpuEfficiency", "efficiency")], link=link, money=False)
    chart.figure["layout"]["yaxis"] = {"tickformat": ".0%", "range": [0, 1]}
    table = Table.of("teams", "GPU cost and efficiency by team", parts.with_others(mine, others),
                     [Column(team, "team"), "gpuHours", "gpuCost", "sharedCost", "totalCost",
                      Column("gpuEfficiency", "efficiency", "ratio"),
                      Column("gpuCostAllocatedIdle", "allocated idle", "money"),
                      Column("gpuCostInefficiency", "inefficiency", "money"), Column("energyKwh", "kWh", "plain")],
                     links={team: parts.team_link(ctx, team), "totalCost": link, "gpuHours": link},
                     note="__idle__: GPUs no workload held (aifinops allocation --aggregate label:team).")
    return [chart, table]


def _models(ctx: Ctx) -> list[Block]:
    model = f"label:{ctx.settings.llm.serving_label}"
    mine, others = data.alloc(ctx, [model])
    link = parts.rows_link(ctx, "workloads", {model: model})
    chart = plots.bars("models", "GPU cost by model label", [r for r in mine if r[model] != IDLE][:15], model,
                       [("totalCost", "cost")], link=link, horizontal=True)
    table = Table.of("by-model", "GPU allocation by model", parts.with_others(mine, others),
                     [Column(model, "model"), "gpuHours", "gpuCost", "totalCost",
                      Column("gpuEfficiency", "efficiency", "ratio")],
                     links={"totalCost": link, "gpuHours": link},
                     note=f"the workloads' {ctx.settings.llm.serving_label} label; __unallocated__: workloads "
                          "without one.")
    return [chart, table]
