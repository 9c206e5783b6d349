"""Training: cost per experiment and per run, the money of failed attempts, and cost against the metric each run
logged (MLflow run metrics, matched to the workloads' run label)."""

from __future__ import annotations

from decimal import Decimal

from . import data, parts, plots
from .blocks import Block, Column, Kpi, Note, Page, Row, Table
from .context import Ctx


def build(ctx: Ctx) -> Page:
    w = data.gpu_window(ctx)
    labels = ctx.settings.llm.training_labels
    sections = [
        parts.guard("Cost per experiment and failed-run waste", lambda: _experiments(ctx)),
        parts.guard("Cost per run", lambda: _runs(ctx)),
        parts.guard("Cost against the run's metric", lambda: _versus(ctx)),
    ]
    kpis: list[Kpi] = []
    try:
        mine, others = data.training(ctx, "run")
        rows = parts.with_others(mine, others)
        cost = sum((r["cost"] or Decimal(0) for r in rows), Decimal(0))
        failed = sum((r["failedCost"] or Decimal(0) for r in rows), Decimal(0))
        kpis = [Kpi("training cost", cost), Kpi("failed attempts", failed,
                                                 note=f"{float(failed / cost):.0%} of it" if cost else ""),
                Kpi("runs", sum(r["runs"] or 0 for r in rows), kind="plain"),
                Kpi("failed runs", sum(r["failedRuns"] or 0 for r in rows), kind="plain")]
    except parts.EXPECTED:
        pass
    return Page("training", "Training", sections, kpis,
                {"GPU window": parts.window_text(w), "labels": ", ".join(f"{k}={v}" for k, v in labels.items())})


def _link(ctx: Ctx, by: str) -> parts.Link:
    return parts.rows_link(ctx, "workloads", {f"label:{ctx.settings.llm.training_labels.get(by, by)}": by})


def _experiments(ctx: Ctx) -> list[Block]:
    mine, others = data.training(ctx, "experiment")
    if not mine and not others:
        return [Note("no workload in the window carries an experiment label (llm.training_labels)")]
    link = _link(ctx, "experiment")
    chart = plots.bars("experiments-chart", "Cost per experiment: succeeded, failed and running attempts", mine[:15],
                       "experiment", [("succeededCost", "succeeded"), ("failedCost", "failed"),
                                      ("runningCost", "running")], link=link, stacked=True, horizontal=True)
    table = Table.of("experiments", "Cost per experiment", parts.with_others(mine, others), _columns("experiment"),
                     links={"cost": link, "failedCost": link, "runs": link},
                     note="failedCost: the GPU money of attempts that ended failed (OOMKilled, NODE_FAIL, "
                          "preempted...), even in a run a retry finished: what checkpoints would have saved.")
    return [chart, table]


def _columns(by: str) -> list[str | Column]:
    return [by, "runs", "succeededRuns", "failedRuns", "workloads", "gpuHours",
            Column("gpuEfficiency", "efficiency", "ratio"), "cost", Column("costPerRun", "per run", "money"),
            "succeededCost", "failedCost", "runningCost"]


def _runs(ctx: Ctx) -> list[Block]:
    mine, others = data.training(ctx, "run")
    if not mine and not others:
        return [Note("no workload in the window carries a run label (llm.training_labels)")]
    link = _link(ctx, "run")
    return [Table.of("runs", "Cost per run", parts.with_others(mine, others), _columns("run"),
                     links={"cost": link, "failedCost": link, "workloads": link})]


def _versus(ctx: Ctx) -> list[Block]:
    mine, _ = data.training(ctx, "run")
    cost = {str(r["run"]): r for r in mine}
    joined: dict[str, list[Row]] = {}
    for m in data.run_metrics(ctx):
        r = cost.get(str(m["run"]))
        if r is not None:
            joined.setdefault(m["metric"], []).append({"run": m["run"], "cost": r["cost"], "value": m["value"],
                                                       "experiment": m["experiment"], "metric": m["metric"]})
    if not joined:
        return [Note("no run metrics (aifinops ingest mlflow) match a run of the window by its run label")]
    rows = [r for group in joined.values() for r in group]
    link = _link(ctx, "run")
    chart = plots.scatter("cost-vs-metric", "Run cost against its last logged metric value", list(joined.items()),
                          "cost", "value", "run", "run cost", "metric value", link=link)
    table = Table.of("cost-vs-metric-table", "Run cost and metric", rows, ["run", "experiment", "metric",
                                                                          Column("value", kind="plain"), "cost"],
                     links={"cost": link})
    return [chart, table]
