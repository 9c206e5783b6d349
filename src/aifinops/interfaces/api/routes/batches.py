"""``GET /api/v1/batches``: the ingest history, newest first: what each batch read, loaded, quarantined and
replaced, and (for a token that sees every team) the money it read and loaded and its files.

A batch's money is a total over every team's rows in its files, and its file names (in its files and its
notes) may name teams, so a team-scoped token gets the batches' counts and times only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ....store.tokens import Principal
from ..auth import viewer
from ..paging import Page, page

router = APIRouter(tags=["batches"])

_COUNTS = ("b.batch_id, b.source_kind, b.status, b.started_at, b.seconds, b.focus_version, b.rows_read, "
           "b.rows_loaded, b.rows_quarantined, b.rows_replaced")
_MONEY = ("b.note, b.billed_read, b.billed_loaded, b.billed_quarantined, b.effective_read, b.effective_loaded, "
          "b.effective_quarantined, (SELECT list(struct_pack(path := f.path, format := f.format, bytes := f.bytes, "
          "rows_read := f.rows_read) ORDER BY f.path) FROM batch_files f WHERE f.batch_id = b.batch_id) AS files")


@router.get("/batches", summary="Ingest batches, newest first")
def batches(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    source_kind: Annotated[str | None, Query(description="Only batches of this source (focus, dcgm, otel, ...)")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page:
    cols = _COUNTS if who.team is not None else f"{_COUNTS}, {_MONEY}"
    where, params = ("WHERE b.source_kind = $kind", {"kind": source_kind}) if source_kind else ("", {})
    with request.app.state.db.read() as con:
        cur = con.execute(f"SELECT {cols} FROM batches b {where} ORDER BY b.batch_id DESC", params)
        names = [d[0] for d in cur.description]
        rows: list[dict[str, Any]] = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return page(rows, limit, offset, {"source_kind": source_kind, "scope": who.team})
