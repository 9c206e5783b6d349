"""Overview: what was spent and on what (cost layer x provider), the daily trend, the forecast to the end of the
month, budgets, the largest findings and the open anomalies."""

from __future__ import annotations

from decimal import Decimal

from . import data, parts, plots, records
from .blocks import Block, Column, Kpi, Page, Table
from .context import Ctx


def build(ctx: Ctx) -> Page:
    w = data.ledger_window(ctx)
    prev = data.previous(w)
    sections = [
        parts.guard("Spend by cost layer and provider", lambda: _spend(ctx)),
        parts.guard("Daily trend", lambda: _trend(ctx)),
        parts.guard("Forecast to the end of the month", lambda: parts.forecast_blocks(ctx, "layer", "forecast")),
        parts.guard("Budgets", lambda: parts.budget_blocks(ctx)),
        parts.guard("Top findings", lambda: _findings(ctx)),
        parts.guard("Open anomalies", lambda: _anomalies(ctx)),
    ]
    total = data.total_cost(data.costs(ctx, "layer"))
    kpis = [Kpi("spend in the window", total, href=ctx.rows("charges", {}))]
    if prev != w:  # ``all`` has no window before it
        before = data.total_cost(data.costs(ctx, "layer", prev))
        kpis.append(Kpi("the window before", before, href=ctx.rows("charges", {}, _text(prev)),
                        note=_change(total, before)))
    p = records.forecast(ctx, "layer")
    if not isinstance(p, str):
        _, t = records.forecast_rows(p)
        kpis.append(Kpi(f"forecast {p.period.start:%Y-%m}", t["total"],
                        note=f"95%: {t['totalLow95']:,.0f}..{t['totalHigh95']:,.0f}"))
    fmine, fothers = records.findings(ctx)
    saving = sum((r["achievable_saving"] for r in parts.with_others(fmine, fothers)), Decimal(0))
    kpis += [Kpi("achievable saving / month", saving, href=ctx.url("/recommendations")),
             Kpi("open anomalies", len(records.anomalies(ctx)[0]), kind="plain", href=ctx.url("/anomalies"))]
    return Page("overview", "Overview", sections, kpis, {"ledger window": parts.window_text(w), "scope": _scope(ctx)})


def _scope(ctx: Ctx) -> str:
    return f"team {ctx.who.team} in detail, other teams as one total" if ctx.scoped else "every team"


def _text(w: data.Window) -> str:
    return f"{w.start.isoformat(sep=' ')}..{w.end.isoformat(sep=' ')}"


def _change(now: Decimal, before: Decimal) -> str:
    return f"now {(now - before) / before:+.1%} against it" if before else ""


def _spend(ctx: Ctx) -> list[Block]:
    rows = data.costs(ctx, "layer,ProviderName")
    link = parts.rows_link(ctx, "charges", {"layer": "layer", "ProviderName": "ProviderName"})
    by_layer = data.costs(ctx, "layer")
    by_provider = data.costs(ctx, "ProviderName")
    return [
        plots.grouped("spend-layer-provider", "EffectiveCost by layer, one colour per provider", rows, "layer",
                      "ProviderName", "cost", link=link),
        Table.of("by-layer", "By cost layer", by_layer, ["layer", "cost", "charges"],
                 links={"cost": parts.rows_link(ctx, "charges", {"layer": "layer"})}),
        Table.of("by-provider", "By provider", by_provider, ["ProviderName", "cost", "charges"],
                 links={"cost": parts.rows_link(ctx, "charges", {"ProviderName": "ProviderName"})}),
        Table.of("by-layer-provider", "By layer and provider", rows, ["layer", "ProviderName", "cost", "charges"],
                 links={"cost": link}),
    ]


def _trend(ctx: Ctx) -> list[Block]:
    every = data.costs(ctx, "day")
    days = sorted((r for r in every if r["day"] != data.OTHERS), key=lambda r: r["day"], reverse=True)
    rows = days + [r for r in every if r["day"] == data.OTHERS]
    link = parts.rows_link(ctx, "charges", {"day": "day"})
    by_layer = data.costs(ctx, "day,layer")
    chart = plots.grouped("trend", "Daily EffectiveCost by layer",
                          sorted([r for r in by_layer if r["day"] != data.OTHERS], key=lambda r: str(r["day"])),
                          "day", "layer", "cost",
                          link=parts.rows_link(ctx, "charges", {"day": "day", "layer": "layer"}))
    return [chart, Table.of("daily", "Daily spend, latest first", rows, [Column("day"), "cost", "charges"],
                            links={"cost": link}, show=7)]


def _findings(ctx: Ctx) -> list[Block]:
    mine, others = records.findings(ctx)
    return [parts.findings_table(ctx, "findings", parts.with_others(mine, others), show=5)]


def _anomalies(ctx: Ctx) -> list[Block]:
    mine, others = records.anomalies(ctx)
    return [parts.anomalies_table(ctx, "anomalies", parts.with_others(mine, others), show=5)]
