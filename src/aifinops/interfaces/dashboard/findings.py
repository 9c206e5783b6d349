"""Recommendations: the waste findings of the last ``aifinops recommend`` run by achievable saving, and each
finding's explanation (its evidence, assumptions and how the saving was computed)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ..api.scope import OTHERS
from . import parts, plots, records
from .blocks import Block, Column, Kpi, Note, Page, Section, Table
from .context import Ctx, Missing


def build(ctx: Ctx) -> Page:
    everything = ctx.extra.get("status") == "all"
    mine, others = records.findings(ctx, everything)
    rows = parts.with_others(mine, others)
    total = sum((r["achievable_saving"] for r in rows if r.get("status") != "dismissed"), Decimal(0))
    by_rule: dict[str, dict[str, Any]] = {}
    for r in mine:
        agg = by_rule.setdefault(r["rule"], {"rule": r["rule"], "findings": 0, "achievable_saving": Decimal(0)})
        agg["findings"] += 1
        agg["achievable_saving"] += r["achievable_saving"]
    rules = sorted(by_rule.values(), key=lambda r: -r["achievable_saving"])
    blocks: list[Block] = [parts.findings_table(ctx, "findings", rows, show=50)]
    if rules:
        blocks.insert(0, plots.bars("by-rule", "Achievable saving by rule (per month)", rules, "rule",
                                    [("achievable_saving", "saving")], horizontal=True))
        blocks.append(Table.of("rules", "By rule", rules, ["rule", Column("findings", kind="plain"),
                                                          Column("achievable_saving", kind="money")]))
    if not rows:
        blocks = [Note("no findings: run `aifinops recommend` (it keeps what it finds in the store)")]
    note = ("open and accepted findings" + (", and dismissed ones" if everything else "")
            + "; model and environment filters do not apply to findings.")
    kpis = [Kpi("achievable saving / month", total), Kpi("findings", len(rows) - (1 if others else 0), kind="plain")]
    return Page("recommendations", "Recommendations", [Section("Findings", blocks, note)], kpis,
                {"status": "all" if everything else "open and accepted", "show": "status=all for dismissed too"})


def explain(ctx: Ctx, finding_id: str) -> Page:
    mine, _ = records.findings(ctx, everything=True)
    hit = [r for r in mine if r["finding_id"] == finding_id]
    if not hit or finding_id == OTHERS:
        raise Missing(f"no finding {finding_id!r} that this token may see")
    f = hit[0]
    d = f["detail"]
    facts = Table.of("finding", "The finding", [
        {"field": k, "value": f[k]} for k in ("rule", "scope_kind", "scope", "owner", "status", "status_reason",
                                              "confidence", "window_start", "window_end", "first_seen", "last_seen")],
        ["field", Column("value", kind="plain")])
    money = Table.of("money", "Per month", [{"measure": k, "cost": f[k]} for k in
                                            ("monthly_cost", "monthly_waste", "monthly_saving", "achievable_saving")],
                     ["measure", Column("cost", "amount", "money")])
    evidence = Table.of("evidence", "Evidence", [{"evidence": k, "value": json.dumps(v) if isinstance(v, list | dict)
                                                  else v} for k, v in (d.get("evidence") or {}).items()],
                        ["evidence", Column("value", kind="plain")])
    blocks: list[Block] = [money, facts, evidence,
                           Note(d.get("saving_formula") or "no formula recorded", "How the saving was computed"),
                           Note("; ".join(d.get("assumptions") or []) or "none recorded", "Assumptions")]
    if d.get("pool"):
        blocks.append(Note(f"shares the dollars of {d['pool']} (${float(d.get('pool_cost') or 0):,.2f}/month) with "
                           "other findings; achievable is what is left after the larger ones", "Overlap"))
    return Page("finding", f"Finding {finding_id}: {f['rule']} on {f['scope']}",
                [Section(f["recommendation"] or "Recommendation", blocks)],
                [Kpi("achievable saving / month", f["achievable_saving"])],
                {"owner": f["owner"] or "unknown", "status": f["status"]})
