"""Models & inference: cost per 1K tokens and per request by model, self-hosted models beside API prices, cost
per business outcome and gross margin by feature."""

from __future__ import annotations

from decimal import Decimal

from ...analysis.llm_costs import self_hosted_report
from ...analysis.llm_reconcile import ledger_by_provider, reconcile
from . import data, parts, plots
from .blocks import Block, Column, Kpi, Note, Page, Table
from .context import Ctx


def build(ctx: Ctx) -> Page:
    w = data.llm_window(ctx)
    sections = [
        parts.guard("Cost per model", lambda: _models(ctx)),
        parts.guard("Self-hosted vs API", lambda: _self_hosted(ctx)),
        parts.guard("Cost per outcome and margin", lambda: parts.feature_table(ctx)),
    ]
    kpis: list[Kpi] = []
    try:
        mine, others = data.units(ctx, ["model"])
        rows = parts.with_others(mine, others)
        volumes = ("requests", "inputTokens", "outputTokens", "unpricedRequests", "unpricedTokens")
        total = data.unit_ratios({"cost": sum((r["cost"] for r in rows), Decimal(0)),
                                  **{k: sum(r[k] or 0 for r in rows) for k in volumes}})
        kpis = [Kpi("LLM cost", total["cost"], href=ctx.rows("requests", {})),
                Kpi("requests", total["requests"], kind="plain"),
                Kpi("cost per 1K tokens", total["costPer1kTokens"]),
                Kpi("unpriced requests", total["unpricedRequests"], kind="plain",
                    note="no price for their model: set llm.prices or llm.aliases")]
    except parts.EXPECTED:
        pass
    return Page("models", "Models & inference", sections, kpis, {"LLM window": parts.window_text(w)})


def _models(ctx: Ctx) -> list[Block]:
    mine, others = data.units(ctx, ["model"])
    if not mine and not others:
        return [Note("no LLM requests in the window: ingest otel, litellm or llm-usage data")]
    link = parts.rows_link(ctx, "requests", {"model": "model"})
    priced = [r for r in mine if r.get("costPer1kTokens") is not None]
    return [
        plots.bars("per-1k", "Cost per 1K tokens by model", priced, "model", [("costPer1kTokens", "per 1K tokens")],
                   link=link, horizontal=True),
        Table.of("models", "Unit costs by model", parts.with_others(mine, others),
                 ["model", "requests", "inputTokens", "outputTokens", "cost",
                  Column("costPerRequest", "per request", "money"), Column("costPer1kTokens", "per 1K tokens", "money"),
                  Column("selfHostedCost", "self-hosted", "money"), "unpricedRequests"],
                 links={"cost": link, "requests": link},
                 note="cost: each request at the price in force at its time (override > contract > catalog); "
                      "self-hosted: its serving GPUs' cost spread over the tokens served (aifinops unit-costs)."),
    ]


def _self_hosted(ctx: Ctx) -> list[Block]:
    w = data.llm_window(ctx)
    served = data.served(ctx)
    rows = ctx.cached("self_hosted", w, lambda: self_hosted_report(ctx.con, w, served, ctx.settings))
    team = ctx.who.team or ctx.filters.team
    if team is not None or ctx.filters.model is not None:  # a model is its serving workloads' team's
        teams = data.label_teams(ctx, ctx.settings.llm.serving_label)
        rows = [r for r in rows if (team is None or teams.get(r["model"]) == team)
                and (ctx.filters.model is None or r["model"] == ctx.filters.model)]
    blocks: list[Block] = []
    compared = [r for r in rows if r.get("apiCostPer1MTokens") is not None and r.get("costPer1MTokens") is not None]
    if compared:
        chart_rows = [{"pair": f"{r['model']} vs {r['comparedWith']}", **r} for r in compared]
        blocks.append(plots.bars("self-hosted-chart", "USD per 1M tokens: own GPUs vs API price", chart_rows, "pair",
                                 [("costPer1MTokens", "self-hosted"), ("apiCostPer1MTokens", "API")],
                                 horizontal=True))
    blocks.append(Table.of("self-hosted", "Self-hosted models beside API models", rows,
                           ["model", "requests", "gpuHours", "gpuCost", Column("costPer1MTokens", "per 1M tokens",
                                                                             "money"),
                            "comparedWith", "apiCost", Column("apiCostPer1MTokens", "API per 1M", "money"),
                            Column("apiCostMinusGpuCost", "API minus GPU cost", "money")],
                           links={"gpuCost": parts.rows_link(ctx, "workloads",
                                                             {f"label:{ctx.settings.llm.serving_label}": "model"})},
                           note="GPU cost of the serving workloads over the tokens they served, at the utilisation "
                                "they had; API: the same tokens at each llm.compare_with model's standard price."))
    if not rows:
        blocks = [Note("no self-hosted model served requests in the window (a serving workload's model label names "
                       "the model)")]
    return blocks


def reconciliation(ctx: Ctx) -> list[Block]:
    """LLM spend from usage beside the ledger's AI-services charges, by provider (``unit-costs --reconcile``)."""
    w = data.llm_window(ctx)
    usage, _ = data.units(ctx, ["provider"])
    mine, _ = data.ledger(ctx)
    ledger = ctx.cached("ledger_by_provider", (w, ctx.who.team, ctx.filters.key()),
                        lambda: ledger_by_provider(mine, w, data.rules(ctx)))
    rows = reconcile(usage, ledger)
    if not rows:
        return [Note("no LLM usage and no AI-services charges in the window")]
    link = parts.rows_link(ctx, "requests", {"provider": "provider"}, data_window(w))
    return [Table.of("reconcile", "LLM usage vs the bill, by provider", rows,
                     ["provider", "requests", "usageCost", "ledgerCost", Column("coverage", kind="ratio"),
                      Column("unexplained", kind="money"), "unpricedRequests"],
                     links={"usageCost": link,
                            "ledgerCost": parts.rows_link(ctx, "charges", {"aiprovider": "provider"}, data_window(w))},
                     note="usageCost: the requests priced by aifinops; ledgerCost: the ledger's ai-services charges "
                          "of the provider (EffectiveCost); coverage = usage / ledger.")]


def data_window(w: data.Window) -> str:
    return f"{w.start.isoformat(sep=' ')}..{w.end.isoformat(sep=' ')}"
