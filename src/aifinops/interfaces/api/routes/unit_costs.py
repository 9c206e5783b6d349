"""``GET /api/v1/unit-costs``: inference unit economics (``analysis.unit_costs``): cost per request, per 1K tokens,
per active user, per conversation and per outcome, by model, feature, team, user, ...

Team scoping goes by the request's ``team``. A scoped token's answer is grouped by its team as well as by
``by`` (then the team column is dropped unless asked for), so each of its rows is exactly its team's requests,
priced by the same rule as everyone's (a self-hosted model's GPU cost is spread over all the tokens it served,
not only the team's). Everything else is one ``(other teams)`` row: its additive columns summed over the
other teams (requests, tokens, cost, unpriced counts, outcome and revenue) and its ratios computed from those
sums. Distinct users and conversations and token percentiles do not add across groups, so that row leaves
them empty rather than give a wrong number. Outcomes join on the grouping, so for a scoped token they join
on its team too: an outcome recorded without a team is nobody's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from ....analysis.costs import DimensionError
from ....analysis.unit_costs import UnitCostError, unit_costs
from ....analysis.windows import Window, WindowError, parse_window
from ....analysis.workload_costs import serving_costs
from ....store.tokens import Principal
from ..auth import viewer
from ..limits import heavy
from ..paging import Page, page
from ..scope import OTHERS, others_row

router = APIRouter(tags=["unit costs"])

#: the longest window: self-hosted models are priced by the hourly GPU allocation of the window
MAX_DAYS = 400

#: columns that add across groups; the ratios are recomputed from them for the others' row
ADDITIVE = ("requests", "inputTokens", "outputTokens", "cachedTokens", "reasoningTokens", "cost", "unpricedRequests",
            "unpricedTokens", "selfHostedCost", "sourceCost", "drift", "outcome", "revenue")


def _ratio(a: Any, b: Any) -> Any:
    return a / b if a is not None and b else None


def others_total(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """One row of the given groups' sums, ratios from the sums, non-additive columns empty."""
    sums: dict[str, Any] = {}
    for col in ADDITIVE:
        vals = [r[col] for r in rows if r.get(col) is not None]
        if col in rows[0]:
            sums[col] = sum(vals) if vals else None
    cost, requests, tokens = sums.get("cost"), sums.get("requests") or 0, \
        (sums.get("inputTokens") or 0) + (sums.get("outputTokens") or 0)
    out = others_row(keys, {
        **sums,
        "costPerRequest": _ratio(cost, requests - (sums.get("unpricedRequests") or 0)),
        "costPer1kTokens": _ratio(cost * 1000 if cost is not None else None,
                                  tokens - (sums.get("unpricedTokens") or 0)),
        "activeUsers": None, "costPerActiveUser": None, "conversations": None, "costPerConversation": None,
        "p50TokensPerRequest": None, "p95TokensPerRequest": None})
    if "outcome" in sums:
        out["costPerOutcome"] = _ratio(cost, sums["outcome"])
    if "revenue" in sums:
        rev = sums["revenue"]
        out["grossMargin"] = _ratio(rev - cost if rev is not None and cost is not None else None, rev)
    return {k: out.get(k) for k in rows[0]} | {k: out[k] for k in keys}


@router.get("/unit-costs", summary="Cost per request, per 1K tokens, per active user, per outcome")
def unit_costs_route(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    by: Annotated[str, Query(description="Comma-separated: model, feature, team, user, provider, tenant, service, "
                                         "environment, operation, tier, api_key, conversation, attribute:KEY")]
    = "model",
    window: Annotated[str, Query(description="30d, 7d, 2026-10, START..END or all")] = "30d",
    accumulate: Annotated[Literal["window", "day", "week", "month"], Query(
        description="window: one row per group; day, week or month: a row per group and period")] = "window",
    outcome: Annotated[str | None, Query(description="Outcome metric to divide by (tickets_resolved, ...)")] = None,
    revenue: Annotated[str | None, Query(description="Outcome metric that is revenue: gives grossMargin")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page:
    db = request.app.state.db
    s = db.settings
    dims = [d.strip() for d in by.split(",") if d.strip()]
    scoped = who.team is not None
    with db.read() as con:
        first, end = con.execute(
            "SELECT least((SELECT min(ts) FROM llm_requests WHERE NOT _superseded), "
            "(SELECT min(start_ts) FROM workloads WHERE gpu_share > 0)), "
            "greatest((SELECT max(ts) FROM llm_requests WHERE NOT _superseded), "
            "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads), "
            "(SELECT max(\"ChargePeriodEnd\") FROM focus_charges))").fetchall()[0]
        w = parse_window(window, end)
        # self-hosted models are priced by an hourly GPU allocation of the window: clipped to where requests or
        # workloads begin (before that nothing is served), so that `all` is the data's span
        start = max(w.start, first.replace(minute=0, second=0, microsecond=0)) if first else w.start
        stop = min(w.end, end + timedelta(seconds=1)) if end else w.end  # max(ts) is a request's own time
        w = Window(start, max(start, stop))
        if w.days > MAX_DAYS:
            raise WindowError(f"window {window!r} spans {w.days:.0f} days of requests: at most {MAX_DAYS} days per "
                              "request")
        grouping = ["team", *(d for d in dims if d != "team")] if scoped else dims
        try:
            with heavy(request):
                rows = unit_costs(con, w, grouping, s, accumulate=accumulate, served=serving_costs(con, w, s),
                                  outcome=outcome, revenue=revenue)
        except (UnitCostError, ValueError) as exc:
            raise DimensionError(str(exc)) from None
    if scoped:
        mine = [r for r in rows if r["team"] == who.team]
        rest = [r for r in rows if r["team"] != who.team]
        if "team" not in dims:
            for r in mine:
                del r["team"]
        keys = [*(["start"] if accumulate != "window" else []), *dims]
        rows = [{k: r[k] for k in [*keys, *(c for c in r if c not in keys)]} for r in mine]
        if rest:
            shaped = [{k: r.get(k) for k in [*keys, *(c for c in r if c not in (*keys, "team"))]} for r in rest]
            rows.append(others_total(shaped, keys))
    return page(rows, limit, offset, {"window": str(w), "by": dims, "accumulate": accumulate, "outcome": outcome,
                                      "revenue": revenue, "team": who.team, "others": OTHERS if scoped else None})
