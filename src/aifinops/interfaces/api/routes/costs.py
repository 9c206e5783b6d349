"""``GET /api/v1/costs``: spend grouped by FOCUS columns, tags, cost layer or time grain, over a window (the
``aifinops costs`` command as JSON)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ....analysis import costs as costs_mod
from ....analysis.layers import load_rules
from ....analysis.windows import parse_window
from ....store.tokens import Principal
from ..auth import viewer
from ..paging import Page, page
from ..scope import others_row, split_ledger

router = APIRouter(tags=["costs"])


@router.get("/costs", summary="Spend by dimension over a window")
def costs(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    window: Annotated[str, Query(description="30d, 7d, 2026-10, 2026-Q3, START..END or all")] = "30d",
    by: Annotated[str, Query(description="Comma-separated: FOCUS columns, tag:KEY, layer, hour|day|week|month")]
    = "ServiceName",
    cost: Annotated[str, Query(description="effective, billed, list or contracted")] = "effective",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page:
    db = request.app.state.db
    settings = db.settings
    rules = load_rules(settings.layers_file)
    with db.read() as con:
        import ibis

        t = ibis.duckdb.from_connection(con).table("focus_charges")
        w = parse_window(window, costs_mod.data_end(t))
        dims = costs_mod.parse_by(by)
        mine, others = split_ledger(t, who, settings)
        rows: list[dict[str, Any]] = costs_mod.cost_by(mine, dims, w, cost, rules).to_pyarrow().to_pylist()
        if others is not None:
            [total] = costs_mod.cost_by(others, [], w, cost, rules).to_pyarrow().to_pylist()
            if total["charges"]:
                rows.append(others_row([d.label for d in dims], total))
    return page(rows, limit, offset, {"window": str(w), "by": [d.label for d in dims], "cost": cost})
