"""``GET /api/v1/gpu/utilization``: how busy the fleet's GPUs were, idle GPU-hours and fragmentation
(``analysis.gpu_utilization``), by node, GPU model, node pool or a workload label.

A node, model or pool row mixes every team's workloads, so a team-scoped token may only group by its team
label (``label:<the first of waste.owner_labels>``, its default): its team's rows, and one ``(other teams)``
row summing the rest (other teams, ``__unallocated__`` and ``__idle__``) over the whole window. Its GPU-hours
add; its activity and shares below 5/30/50 % are the telemetry-hour-weighted means of the rows it sums (as
each row's own are); fragmentation, a mean count per period, is left empty there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from ....analysis import gpu_utilization as util
from ....analysis.costs import DimensionError
from ....analysis.windows import Window, WindowError
from ....store.tokens import Principal
from ..auth import viewer
from ..limits import heavy
from ..paging import Page, page
from ..scope import OTHERS, team_key
from .allocation import MAX_DAYS, api_window

router = APIRouter(tags=["gpu"])

HOURS = ("gpuHours", "allocatedGpuHours", "unallocatedGpuHours", "telemetryGpuHours", "unknownGpuHours",
         "idleGpuHours")
WEIGHTED = ("meanActivity", "shareBelow5", "shareBelow30", "shareBelow50")


def others_total(rows: list[dict[str, Any]], key: str, w: Window) -> dict[str, Any]:
    """One row of ``rows``: hours summed, activity shares weighted by telemetry GPU-hours."""
    out: dict[str, Any] = {"start": w.start, "end": w.end, key: OTHERS, "gpus": None}
    for c in HOURS:
        out[c] = sum(r[c] or 0 for r in rows)
    tele = out["telemetryGpuHours"]
    for c in WEIGHTED:
        out[c] = sum((r[c] or 0) * (r["telemetryGpuHours"] or 0) for r in rows if r[c] is not None) / tele \
            if tele else None
    metrics = sorted({m for r in rows if r.get("activity_metric") for m in str(r["activity_metric"]).split(",")},
                     key=("sm_active", "gr_engine_active", "gpu_util").index)
    out.update(partlyAllocatedGpus=None, fragmentation_basis=None, activity_metric=",".join(metrics) or None)
    return {k: out.get(k) for k in rows[0]}


@router.get("/gpu/utilization", summary="GPU utilisation, idle GPU-hours and fragmentation")
def utilization(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    by: Annotated[str | None, Query(description="node, gpu_model, node_pool or label:KEY (default node; a "
                                                "team-scoped token: its team label)")] = None,
    window: Annotated[str, Query(description="7d, 48h, 2026-10, START..END, START,END or all (the data's span)")]
    = "7d",
    accumulate: Annotated[Literal["hour", "day", "window"], Query(description="a row per group and hour, day, "
                                                                              "or one for the window")] = "day",
    idle_threshold: Annotated[float, Query(alias="idleThreshold", ge=0, le=1, description=(
        "Activity below which a held GPU counts as idle"))] = 0.05,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page:
    db = request.app.state.db
    label = f"label:{team_key(db.settings)}"
    scoped = who.team is not None
    by = by or (label if scoped else "node")
    if scoped and by != label:
        raise HTTPException(403, f"a team-scoped token sees GPU utilisation by {label} only (its team's rows and "
                                 "one total of the others): node, model and pool rows mix every team's workloads")
    with db.read() as con:
        # relative windows end with the hour of the latest sample or workload end, so cells are clock hours
        first, last = con.execute(
            "SELECT date_trunc('hour', least((SELECT min(ts) FROM gpu_samples WHERE NOT _superseded),"
            " (SELECT min(start_ts) FROM workloads WHERE gpu_share > 0))),"
            " greatest(date_trunc('hour', (SELECT max(ts) FROM gpu_samples WHERE NOT _superseded)) + INTERVAL 1 HOUR,"
            " date_trunc('hour', (SELECT max(coalesce(end_ts, start_ts)) FROM workloads WHERE gpu_share > 0)"
            " - INTERVAL 1 MICROSECOND) + INTERVAL 1 HOUR)").fetchone()
        rows: list[dict[str, Any]] = []
        if last is None:  # no GPU data: nothing to count, whatever the window
            w = api_window(window, None)
        else:
            w = Window(first, last) if window == "all" else api_window(window, last)
            start = max(w.start, first)  # one cell per GPU and hour: only where there is data
            w = Window(start, max(start, min(w.end, last)))
            if w.days > MAX_DAYS:
                raise WindowError(f"window {window!r} spans {w.days:.0f} days of GPU data: at most {MAX_DAYS} days "
                                  "per request")
            try:
                with heavy(request):
                    rows = util.utilization(con, w, by, accumulate=accumulate, idle_threshold=idle_threshold)
            except ValueError as exc:
                raise DimensionError(str(exc)) from None
    if scoped:
        mine = [r for r in rows if r[by] == who.team]
        rest = [r for r in rows if r[by] != who.team]
        rows = [*mine, *([others_total(rest, by, w)] if rest else [])]
    return page(rows, limit, offset, {"window": str(w), "by": by, "accumulate": accumulate,
                                      "idleThreshold": idle_threshold, "team": who.team})
