"""Large answers page: ``limit`` and ``offset`` in, ``total`` and the next offset out; values as JSON."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel


class Page(BaseModel):
    """One page of rows, with what was asked."""

    query: dict[str, Any]
    rows: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def jsonable(v: Any) -> Any:
    """Money stays exact to the cent: a Decimal becomes a number with at most 6 decimals."""
    if isinstance(v, Decimal):
        return float(round(v, 6))
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def page(rows: list[dict[str, Any]], limit: int, offset: int, query: dict[str, Any]) -> Page:
    part = rows[offset:offset + limit]
    nxt = offset + limit if offset + limit < len(rows) else None
    return Page(query=jsonable(query), rows=[jsonable(r) for r in part], total=len(rows), limit=limit,
                offset=offset, next_offset=nxt)
