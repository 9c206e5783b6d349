"""Anomalies: what the scans recorded (``aifinops anomalies`` / ``watch``), by dollar impact, with their root
causes and the feedback people gave; each anomaly's page links to the charges, workloads or requests behind it."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..api.scope import OTHERS
from . import parts, plots, records
from .blocks import Block, Column, Kpi, Note, Page, Row, Section, Table
from .context import Ctx, Missing

#: a GPU metric's dimension -> the workloads rows page's dimension
GPU_DIMS = {"namespace": "namespace", "workload": "workload", "node": "node", "node_pool": "node_pool"}


def build(ctx: Ctx) -> Page:
    everything = ctx.extra.get("all") == "1"
    mine, others = records.anomalies(ctx, everything)
    rows = parts.with_others(mine, others)
    blocks: list[Block] = []
    if mine:
        by_series: dict[str, Any] = defaultdict(float)
        for r in mine:
            by_series[f"{r['metric']} {r['series']}"] += float(r["impact_cost"] or 0)
        chart_rows = sorted(({"series": k, "impact": v} for k, v in by_series.items()), key=lambda r: -r["impact"])
        blocks.append(plots.bars("impact", "Dollar impact by series", chart_rows[:15], "series",
                                 [("impact", "impact")], horizontal=True))
    blocks.append(parts.anomalies_table(ctx, "anomalies", rows, show=50))
    if not rows:
        blocks = [Note("no anomalies recorded: run `aifinops anomalies --configured` or `aifinops watch`")]
    states: dict[str, int] = defaultdict(int)
    for r in mine:
        states[r["status"]] += 1
    kpis = [Kpi("dollar impact", sum((Decimal(repr(r["impact_cost"] or 0)) for r in rows), Decimal(0))),
            Kpi("anomalies", len(mine), kind="plain"),
            *(Kpi(f"status {k}", v, kind="plain") for k, v in sorted(states.items()))]
    note = ("active anomalies, any feedback" if everything else "active anomalies nobody has answered yet") + \
        "; model and environment filters do not apply (an anomaly is of one series)."
    return Page("anomalies", "Anomalies", [Section("Recorded anomalies", blocks, note)], kpis,
                {"showing": "all" if everything else "open", "show": "all=1 for every recorded anomaly"})


def behind(ctx: Ctx, a: Row, child: tuple[str, str] | None = None) -> str | None:
    """The rows page behind an anomaly (or one of its root causes): its series' charges, workloads or requests
    over its periods."""
    end: datetime = a["period_end"] or a["last_seen"]
    window = f"{a['period_start'].isoformat(sep=' ')}..{end.isoformat(sep=' ')}"
    pairs = [(a["dimension"], str(a["series"]))] + ([child] if child else [])
    if a["metric"] == "cost":
        return ctx.rows("charges", dict(pairs), window, {"frequency": "usage"}, keep=False)
    if a["metric"].startswith("gpu_"):
        team = f"label:{ctx.team_key}"
        model = f"label:{ctx.settings.llm.serving_label}"
        dims = {GPU_DIMS.get(d, team if d == "team" else model if d == "model" else d): v for d, v in pairs}
        if any(not (k in GPU_DIMS.values() or k.startswith("label:")) for k in dims):
            return None
        return ctx.rows("workloads", dims, window, keep=False)
    return ctx.rows("requests", dict(pairs), window, keep=False)


def detail(ctx: Ctx, anomaly_id: str) -> Page:
    mine, _ = records.anomalies(ctx, everything=True)
    hit = [r for r in mine if r["anomaly_id"] == anomaly_id]
    if not hit or anomaly_id == OTHERS:
        raise Missing(f"no anomaly {anomaly_id!r} that this token may see")
    a = hit[0]
    unit = "money" if a["metric"] in ("cost", "gpu_cost", "llm_cost") else "plain"
    causes = [{**c, "dimension": c["dimension"]} for c in a["root_causes"] or []]
    child = Table.of("causes", "Root causes", causes,
                     ["dimension", "value", Column("actual", kind=unit), Column("expected", kind=unit),
                      Column("impact", kind=unit), Column("contribution", kind="ratio")],
                     links={"value": lambda c: behind(ctx, a, (c["dimension"], str(c["value"]))),
                            "impact": lambda c: behind(ctx, a, (c["dimension"], str(c["value"])))},
                     note="each child value's impact over the anomaly's periods against its own baseline; "
                          "contribution = its impact / the anomaly's.")
    fb = records.feedback(ctx, a["anomaly_id"])
    facts = Table.of("anomaly", "The anomaly", [{"field": k, "value": a[k]} for k in (
        "metric", "dimension", "series", "grain", "period_start", "period_end", "periods", "direction", "severity",
        "status", "status_reason", "owner", "first_seen", "last_seen")], ["field", Column("value", kind="plain")])
    numbers = Table.of("numbers", "Actual against expected", [
        {"measure": "actual", "amount": a["actual"]}, {"measure": "expected", "amount": a["expected"]},
        {"measure": "lower bound", "amount": a["lower"]}, {"measure": "upper bound", "amount": a["upper"]},
        {"measure": "impact", "amount": a["impact"]}, {"measure": "dollar impact", "amount": a["impact_cost"]}],
        ["measure", Column("amount", kind=unit)], links={"amount": lambda r: behind(ctx, a)})
    blocks: list[Block] = [numbers, child, facts,
                           Table.of("feedback", "Feedback", fb, ["kind", "reason", "from", "until", "given"]) if fb
                           else Note("no feedback yet: aifinops anomalies feedback ID expected|planned|wrong",
                                     "Feedback")]
    link = behind(ctx, a)
    return Page("anomaly", f"Anomaly {anomaly_id}: {a['metric']} of {a['series']}",
                [Section(f"{a['dimension']} = {a['series']}", blocks)],
                [Kpi("dollar impact", a["impact_cost"], href=link)],
                {"status": a["status"], "window": f"{a['period_start']:%Y-%m-%d}..{a['period_end'] or 'ongoing'}",
                 "rows behind": "the impact links to them" if link else "n/a"})
