"""Teams: each team's spend seen three ways (the ledger's team tag, the GPU allocation's team label, the LLM
requests' team), tag coverage and the largest untagged resources, and the team budgets.

The three views overlap, they do not add: GPU nodes and model APIs are on the bill too. ``ledger`` is what the
bill attributes by tag; ``gpu`` what the allocation attributes from who held the GPUs; ``llm`` the priced
requests.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from ...analysis import tags as tags_mod
from ...analysis.costs import UNTAGGED
from ..api.scope import OTHERS
from . import data, parts, plots
from .blocks import Block, Column, Page, Row, Table
from .context import Ctx


def build(ctx: Ctx) -> Page:
    w = data.ledger_window(ctx)
    sections = [
        parts.guard("Attribution", lambda: _attribution(ctx)),
        parts.guard("Tag coverage", lambda: _coverage(ctx)),
        parts.guard("Budgets", lambda: parts.budget_blocks(ctx, "team-budgets")),
    ]
    return Page("teams", f"Team {ctx.filters.team}" if ctx.filters.team else "Teams", sections,
                facts={"ledger window": parts.window_text(w), "GPU window": parts.window_text(data.gpu_window(ctx)),
                       "LLM window": parts.window_text(data.llm_window(ctx)), "team key": ctx.team_key})


def _attribution(ctx: Ctx) -> list[Block]:
    key = f"tag:{ctx.team_key}"
    label = f"label:{ctx.team_key}"
    ledger = data.costs(ctx, key)
    out: dict[str, Row] = {}
    for r in ledger:
        out.setdefault(str(r[key]), {"team": str(r[key])})["ledgerCost"] = r["cost"]
    for name, (rows, others) in (("gpu", _safe(lambda: data.alloc(ctx, [label]))),
                                 ("llm", _safe(lambda: data.units(ctx, ["team"])))):
        col = label if name == "gpu" else "team"
        for r in parts.with_others(rows, others):
            team = str(r[col]) if r[col] is not None else UNTAGGED
            out.setdefault(team, {"team": team})[f"{name}Cost"] = r["totalCost" if name == "gpu" else "cost"]
    total = sum((r.get("ledgerCost") or Decimal(0) for r in out.values()), Decimal(0))
    rows = sorted(out.values(), key=lambda r: (r["team"] == OTHERS, -(r.get("ledgerCost") or Decimal(0))))
    for r in rows:
        r["ledgerShare"] = float(r["ledgerCost"] / total) if r.get("ledgerCost") is not None and total else None
    table = Table.of("attribution", "Spend by team", rows,
                     ["team", "ledgerCost", Column("ledgerShare", "share of the ledger", "ratio"),
                      Column("gpuCost", "GPU (allocated)", "money"), Column("llmCost", "LLM (priced)", "money")],
                     links={"team": parts.team_link(ctx, "team"),
                            "ledgerCost": _team_rows(ctx, "charges", key),
                            "gpuCost": _team_rows(ctx, "workloads", label),
                            "llmCost": _team_rows(ctx, "requests", "team")},
                     note="ledger: EffectiveCost by the team tag; GPU: the allocation by the workloads' team label "
                          "(__idle__: GPUs no one held); LLM: requests priced by aifinops. The views overlap.")
    chart = plots.bars("attribution-chart", "Spend by team", [r for r in rows if r["team"] != OTHERS], "team",
                       [("ledgerCost", "ledger"), ("gpuCost", "GPU"), ("llmCost", "LLM")],
                       link=_team_rows(ctx, "charges", key))
    return [chart, table]


def _safe(fn: Callable[[], tuple[list[Row], Row | None]]) -> tuple[list[Row], Row | None]:
    try:
        return fn()
    except parts.EXPECTED:
        return [], None


def _team_rows(ctx: Ctx, kind: str, dim: str) -> parts.Link:
    def link(r: Row) -> str | None:
        team = r["team"]
        if team == OTHERS:
            return None
        if kind == "requests" and team == UNTAGGED:
            return None  # requests without a team have no value to filter on
        return ctx.rows(kind, {dim: team})
    return link


def _coverage(ctx: Ctx) -> list[Block]:
    w = data.ledger_window(ctx)
    keys = ctx.settings.tag_keys
    mine, _ = data.ledger(ctx)
    f = ctx.filters
    scope = (ctx.who.team, f.team, f.model, f.env)
    cov = ctx.cached("coverage", (w, tuple(keys), scope),
                     lambda: tags_mod.coverage(mine, keys, w).to_pyarrow().to_pylist())
    untagged = ctx.cached("untagged", (w, tuple(keys), scope),
                          lambda: tags_mod.untagged_resources(mine, keys, w, 25).to_pyarrow().to_pylist())
    return [
        plots.bars("coverage-chart", "Share of spend carrying each tag key", cov, "key", [("share", "share")],
                   money=False),
        Table.of("coverage", "Tag coverage (share of positive EffectiveCost)", cov,
                 ["key", "tagged_cost", "total_cost", Column("share", kind="ratio")]),
        Table.of("untagged", f"Largest resources missing a key of {', '.join(keys)}", untagged,
                 ["ResourceId", "ServiceName", "SubAccountId", "missing_keys", "cost"],
                 links={"cost": parts.rows_link(ctx, "charges", {"ResourceId": "ResourceId"}),
                        "ResourceId": parts.rows_link(ctx, "charges", {"ResourceId": "ResourceId"})}),
    ]
