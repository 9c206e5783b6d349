"""``GET /api/v1/allocation``: the GPU allocation under OpenCost's parameter names, answered in the shape of
OpenCost's ``/allocation/compute`` (``{"code": 200, "data": [{name: allocation, ...}, ...]}``, one map per
period), so that an OpenCost client reads it.

The hourly rows are ``analysis.gpu_allocation.allocation_sql`` (the rule, its idle and shared lines); this
module only selects and sums them, in one statement: the rows are materialised once, then the token's
visible rows that pass the ``filter`` are grouped by ``aggregate`` (the same keys and sums as
``gpu_allocation.aggregate``, which a test holds it to), and, for a team-scoped token, every other row is
summed into one ``(other teams)`` allocation. That total is taken before the filter and the grouping, so no
filter or aggregate can narrow it down to another team's workload.

A team's rows are the workloads whose team label (the first of ``waste.owner_labels`` a workload carries) is
the token's team; with ``shareIdle=owner`` also the idle line of the node pools that team owns. ``__idle__``
and ``__shared__`` lines are nobody's team: a scoped token sees them only inside the others' total (with
``shareIdle=weighted`` or ``even`` its workloads carry their share of idle anyway).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from ....analysis import gpu_allocation as ga
from ....analysis.costs import DimensionError
from ....analysis.windows import Window, WindowError, parse_window, within
from ....config import Settings
from ....store.tokens import Principal
from ..auth import viewer
from ..filters import Condition, parse_filter
from ..limits import heavy
from ..paging import jsonable
from ..scope import OTHERS

router = APIRouter(tags=["allocation"])

#: the longest window one request may allocate hour by hour (the demo's whole GPU history is 90 days)
MAX_DAYS = 100
#: filter fields -> what they mean (``parse_filter`` names them in its errors)
FIELDS = {"node": "node", "namespace": "namespace", "workload": "workload name", "pod": "workload name",
          "node_pool": "node pool", "owner": "node pool owner", "label": "label[KEY]"}
_FIELD_SQL = {"node": "node", "namespace": "namespace", "workload": "name", "pod": "name", "node_pool": "node_pool",
              "owner": "owner"}
#: OpenCost's shareIdle=true|false, and the policies by name
SHARE_IDLE = {"true": "weighted", "false": "none", **{p: p for p in ga.SHARE_IDLE}}
#: OpenCost's accumulate=true (one set for the window) | false (a set per day), and hour / day by name
ACCUMULATE = {"true": "window", "false": "day", "window": "window", "day": "day", "hour": "hour"}
SUMS = ("gpuHours", "cpuCoreHours", "ramByteHours", *ga.COST_COLUMNS)
ZERO_ADJUSTMENTS = ("gpuCostAdjustment", "cpuCostAdjustment", "ramCostAdjustment", "externalCost")
_KEY = re.compile(r"k\d+")  # the statement's group key columns


class AllocationResponse(BaseModel):
    """OpenCost's envelope (code, status, data: one map name -> allocation per period) plus paging, the query as
    understood (window after clipping to the data), the others' total of a scoped token, and the count of
    workloads on nodes the inventory does not know."""

    code: int
    status: str
    data: list[dict[str, dict[str, Any]]]
    query: dict[str, Any]
    total: int
    limit: int
    offset: int
    next_offset: int | None
    others: dict[str, Any] | None
    unmatchedWorkloads: int


# -- windows -----------------------------------------------------------------------------------------------

def _point(text: str) -> datetime:
    text = text.strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC).replace(tzinfo=None)
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise WindowError(f"not a Unix time or an RFC 3339 time: {text!r}") from None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def api_window(text: str, data_end: datetime | None) -> Window:
    """Our windows (``7d``, ``2026-10``, ``START..END``, ``all``) or OpenCost's ``START,END`` pair of RFC 3339
    times or Unix seconds."""
    if "," in text:
        a, b = text.split(",", 1)
        start, end = _point(a), _point(b)
        if start >= end:
            raise WindowError(f"window {text!r} ends before it starts")
        return Window(start, end)
    return parse_window(text, data_end)


def gpu_window(con: duckdb.DuckDBPyConnection, text: str) -> Window:
    """The window, anchored where the GPU data and the bill end (as ``aifinops allocation``), clipped to the span
    of the GPU data (workloads, samples) so that ``all`` is the data's history, at most ``MAX_DAYS`` long."""
    first, end = con.execute(
        "SELECT least((SELECT min(start_ts) FROM workloads WHERE gpu_share > 0), "
        "(SELECT min(ts) FROM gpu_samples WHERE NOT _superseded)), "
        "greatest((SELECT max(\"ChargePeriodEnd\") FROM focus_charges), "
        "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads), "
        "(SELECT max(ts) FROM gpu_samples WHERE NOT _superseded) + INTERVAL 1 SECOND)").fetchone()
    w = api_window(text, end)
    if first is None and w.end - w.start > timedelta(days=MAX_DAYS):  # no GPU data at all: nothing to allocate
        return Window(w.start, w.start)
    w = within(w, first, end)
    if w.end - w.start > timedelta(days=MAX_DAYS):
        raise WindowError(f"window {text!r} spans {w.days:.0f} days of GPU data: at most {MAX_DAYS} days per "
                          "request (ask for consecutive windows)")
    return w


def _iso(t: datetime) -> str:
    return t.isoformat() + "Z"


# -- the statement -----------------------------------------------------------------------------------------

def _aggregates() -> str:
    """The sums of ``gpu_allocation.aggregate``, over rows of ``allocation_sql``."""
    held = "kind <> 'idle' AND activity IS NOT NULL"
    total = " + ".join(f'"{c}"' for c in ga.COST_COLUMNS)
    return ", ".join([
        *(f'sum("{c}") AS "{c}"' for c in SUMS), f'sum({total}) AS "totalCost"',
        'sum("gpuCostByUse") AS "gpuCostByUse"',
        f'sum("gpuHours" * activity) FILTER (WHERE {held}) / sum("gpuHours") FILTER (WHERE {held}) '
        'AS "gpuEfficiency"',
        f'coalesce(sum("gpuCost") FILTER (WHERE {held} AND activity < $threshold), 0) AS "gpuCostAllocatedIdle"',
        f'coalesce(sum(CAST("gpuCost" * (1 - activity) AS {ga.MONEY})) FILTER (WHERE {held} '
        'AND activity >= $threshold), 0) AS "gpuCostInefficiency"',
        """coalesce(sum("gpuCost") FILTER (WHERE kind = 'idle'), 0) AS "gpuCostUnallocated\"""",
        'sum("energyKwh") AS "energyKwh"',
        'coalesce(sum("energyKwh") FILTER (WHERE energy_estimated), 0) AS "energyEstimatedKwh"',
        'sum("co2eKg") AS "co2eKg"', "count(*) AS _rows"])


def _conditions(conds: list[Condition], params: dict[str, Any]) -> str:
    out = []
    for i, c in enumerate(conds):
        if c.field == "label":
            params[f"fk{i}"] = c.key
            expr = f"labels[$fk{i}]"
        else:
            expr = _FIELD_SQL[c.field]
        params[f"fv{i}"] = list(c.values)
        test = f"list_contains($fv{i}, coalesce(CAST({expr} AS VARCHAR), ''))"
        out.append(f"NOT {test}" if c.negate else test)
    return " AND ".join(out) or "true"


def _mine(who: Principal, settings: Settings, policy: str, params: dict[str, Any]) -> str:
    """SQL: whether an hourly row is the token's team's (always, for an unscoped token)."""
    if who.team is None:
        return "true"
    params["team"] = who.team
    keys = settings.waste.owner_labels or ["team"]
    for i, k in enumerate(keys):
        params[f"tk{i}"] = k
    team = f"coalesce({', '.join(f'labels[$tk{i}]' for i in range(len(keys)))})"
    own_idle = " OR (kind = 'idle' AND owner = $team)" if policy == "owner" else ""
    return f"((kind <> 'idle' AND {team} IS NOT DISTINCT FROM $team){own_idle})"


def allocation_statement(settings: Settings, opts: Any, by: list[str], accumulate: str, conds: list[Condition],
                         who: Principal) -> tuple[str, dict[str, Any]]:
    """One statement: the visible groups (``_others`` false) and, for a scoped token, the others' total."""
    try:
        keys = ga._group_keys(by, opts.share_idle) if by else ["'total' AS k0"]
    except ValueError as exc:
        raise DimensionError(str(exc)) from None
    if accumulate != "window":
        keys.insert(0, f"date_trunc('{accumulate}', bucket) AS period")
    params: dict[str, Any] = {"threshold": opts.idle_threshold}
    mine = _mine(who, settings, opts.share_idle, params)
    where = _conditions(conds, params)
    aggs = _aggregates()
    hourly = ga.allocation_sql(ga.Costing.from_settings(settings), opts)
    others = "" if who.team is None else \
        f"UNION ALL BY NAME SELECT true AS _others, {aggs} FROM h WHERE NOT _mine HAVING count(*) > 0"
    order = ["_others", *(["period"] if accumulate != "window" else []), '"totalCost" DESC',
             *(f"k{i}" for i in range(len(by) or 1))]
    sql = f"""WITH h AS MATERIALIZED (SELECT *, {mine} AS _mine FROM ({hourly}))
SELECT false AS _others, {", ".join(keys)}, {aggs} FROM h WHERE _mine AND {where} GROUP BY ALL
{others}
ORDER BY {", ".join(order)} NULLS LAST"""
    return sql, params


def _properties(by: list[str], values: list[Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for dim, v in zip(by, values, strict=True):
        if dim.startswith("label:"):
            props.setdefault("labels", {})[dim[6:]] = v
        else:
            props[dim] = v
    return props


def _entry(row: dict[str, Any], name: str, props: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    """One allocation with OpenCost's keys (adjustments and external cost are 0: nothing adjusts them yet)."""
    body = {k: v for k, v in row.items() if k not in ("_others", "_rows", "period") and not _KEY.fullmatch(k)}
    return jsonable({"name": name, "properties": props, "window": {"start": _iso(start), "end": _iso(end)},
                     "start": _iso(start), "end": _iso(end), "minutes": (end - start).total_seconds() / 60,
                     **body, **dict.fromkeys(ZERO_ADJUSTMENTS, 0)})


def _period_end(start: datetime, accumulate: str, w: Window) -> datetime:
    return min(start + (timedelta(hours=1) if accumulate == "hour" else timedelta(days=1)), w.end)


@router.get("/allocation", summary="GPU cost allocation (OpenCost's /allocation/compute parameters and shape)",
            response_model=AllocationResponse)
def allocation(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    window: Annotated[str, Query(description="7d, 30d, 2026-10, START..END, all, or OpenCost's START,END "
                                             "(RFC 3339 or Unix seconds)")] = "7d",
    aggregate: Annotated[str, Query(description="Comma-separated: node, namespace, workload, node_pool, owner, "
                                                "label:KEY")] = "node",
    accumulate: Annotated[Literal["true", "false", "window", "day", "hour"], Query(
        description="true or window: one set for the window; false or day: a set per day; hour")] = "true",
    share_idle: Annotated[Literal["true", "false", "none", "weighted", "even", "owner"] | None, Query(
        alias="shareIdle", description="true (weighted) or false (none), or a policy: none, weighted, even, "
                                       "owner; default allocation.share_idle")] = None,
    filter_: Annotated[str, Query(alias="filter", description='OpenCost v2 filter subset: namespace:"a","b"'
                                                              '+label[team]:"x" (: and !:, joined by +)')] = "",
    idle_threshold: Annotated[float | None, Query(alias="idleThreshold", ge=0, le=1, description=(
        "Activity below which a held GPU counts as idle (default allocation.idle_threshold)"))] = None,
    share_namespaces: Annotated[str | None, Query(alias="shareNamespaces", description=(
        "Comma-separated namespaces whose cost is spread over the other workloads"))] = None,
    share_labels: Annotated[str | None, Query(alias="shareLabels", description=(
        "Comma-separated KEY:VALUE labels whose workloads' cost is spread over the others"))] = None,
    share_split: Annotated[Literal["weighted", "even"] | None, Query(alias="shareSplit")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    db = request.app.state.db
    settings: Settings = db.settings
    by = [d.strip() for d in aggregate.split(",") if d.strip()]
    conds = parse_filter(filter_, FIELDS)
    labels = None
    if share_labels:
        pairs = [item.replace("=", ":", 1).partition(":") for item in share_labels.split(",") if item.strip()]
        if any(not sep or not k.strip() for k, sep, _ in pairs):
            raise DimensionError(f"shareLabels {share_labels!r}: expected KEY:VALUE[,KEY:VALUE]")
        labels = {k.strip(): v.strip() for k, _, v in pairs}
    namespaces = [n.strip() for n in share_namespaces.split(",") if n.strip()] if share_namespaces else None
    try:
        opts = ga.options_for(settings, idle_threshold=idle_threshold,
                              share_idle=SHARE_IDLE[share_idle] if share_idle else None,
                              share_namespaces=namespaces, share_labels=labels, share_split=share_split)
    except ValueError as exc:
        raise DimensionError(str(exc)) from None
    acc = ACCUMULATE[accumulate]
    with db.read() as con:
        w = gpu_window(con, window)
        sql, params = allocation_statement(settings, opts, by, acc, conds, who)
        with heavy(request):
            cur = con.execute(sql, {**params, "start": w.start, "end": w.end})
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        unmatched = ga.unmatched_workloads(con, w)
    others_rows = [r for r in rows if r["_others"]]
    mine = [r for r in rows if not r["_others"]]
    n = len(by) or 1
    dims = by or ["total"]
    part = mine[offset:offset + limit]
    sets: dict[Any, dict[str, dict[str, Any]]] = {}
    for r in part:
        values = [r[f"k{i}"] for i in range(n)]
        start = r["period"] if acc != "window" else w.start
        start = max(start, w.start)
        end = _period_end(r["period"], acc, w) if acc != "window" else w.end
        name = "/".join(str(v) for v in values)
        sets.setdefault(start, {})[name] = _entry(r, name, _properties(dims, values), start, end)
    others = _entry(others_rows[0], OTHERS, {d: OTHERS for d in dims}, w.start, w.end) if others_rows else None
    data = list(sets.values())
    if others is not None and acc == "window":
        if not data:
            data.append({})
        data[-1][OTHERS] = others
    nxt = offset + limit if offset + limit < len(mine) else None
    return {"code": 200, "status": "success", "data": data,
            "query": jsonable({"window": {"start": _iso(w.start), "end": _iso(w.end)}, "aggregate": dims,
                               "accumulate": acc, "shareIdle": opts.share_idle, "idleThreshold": opts.idle_threshold,
                               "filter": [c.__dict__ | {"values": list(c.values)} for c in conds],
                               "team": who.team}),
            "total": len(mine), "limit": limit, "offset": offset, "next_offset": nxt, "others": others,
            "unmatchedWorkloads": unmatched}
