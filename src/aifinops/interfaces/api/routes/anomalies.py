"""``/api/v1/anomalies``: the anomalies the scans recorded (``store.anomalies``), one by id with its root causes,
and feedback on one (expected, planned, wrong: the next scan learns from it; analyst role).

Whose an anomaly is: its ``owner`` (the scan names a series' owner, or its contact from ``alerts.owners``),
or, for a series of a team dimension (``tag:<team label>`` of the ledger, ``team`` of GPU and LLM metrics),
the series itself. A team-scoped token lists only its team's anomalies, plus the count and the summed dollar
impact of everyone else's open ones (taken before any filter), and cannot read or answer another team's by
id (404). Root causes of its own anomalies that name another team are left out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from ....analysis.windows import parse_until
from ....config import Settings
from ....store import anomalies as store
from ....store.tokens import Principal
from ..auth import analyst, viewer
from ..paging import Page, jsonable, page
from ..scope import team_key

router = APIRouter(tags=["anomalies"])

AnomalyId = Annotated[str, Path(min_length=4, max_length=64, pattern=r"^[0-9a-fA-F]+$",
                                description="An anomaly id, or a unique prefix of it (4+ hex characters)")]


class AnomaliesPage(Page):
    """A page of anomalies; ``others``: a scoped token's view of every other team's open anomalies."""

    others: dict[str, Any] | None = None


class Feedback(BaseModel):
    kind: Literal["expected", "planned", "wrong"] = Field(description="expected: a new normal; planned: a one-off; "
                                                                      "wrong: not an anomaly")
    reason: str | None = Field(None, max_length=2000, description="Why: kept with the anomaly")
    until: str | None = Field(None, max_length=40, description="End of a planned event still going on (date or "
                                                               "date-time, UTC)")


def team_dimensions(settings: Settings) -> list[str]:
    return [f"tag:{team_key(settings)}", "team"]


def ownership(who: Principal, settings: Settings, params: dict[str, Any]) -> str:
    """SQL over ``anomalies``: whether a row is the token's team's (always for an unscoped token)."""
    if who.team is None:
        return "true"
    contact = settings.alerts.owners.get(who.team)
    params.update(team=who.team, names=[who.team, *([contact] if contact else [])], dims=team_dimensions(settings))
    return "(list_contains($names, owner) OR (list_contains($dims, dimension) AND series = $team))"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    cur = con.execute(sql, used)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _shape(a: dict[str, Any], who: Principal, settings: Settings) -> dict[str, Any]:
    causes = a["root_causes"]
    if isinstance(causes, str):
        causes = json.loads(causes or "[]")
    if who.team is not None:  # a root cause naming another team is that team's detail
        dims = team_dimensions(settings)
        causes = [c for c in causes if c.get("dimension") not in dims or c.get("value") == who.team]
    return jsonable({**a, "root_causes": causes})


def visible_id(con: duckdb.DuckDBPyConnection, prefix: str, who: Principal, settings: Settings) -> str:
    params: dict[str, Any] = {"p": prefix.lower()}
    mine = ownership(who, settings, params)
    ids = [r["anomaly_id"] for r in _rows(con, f"SELECT anomaly_id FROM anomalies WHERE starts_with(anomaly_id, $p) "
                                               f"AND {mine} ORDER BY anomaly_id LIMIT 5", params)]
    if not ids:
        raise HTTPException(404, f"no anomaly {prefix!r}")
    if len(ids) > 1:
        raise HTTPException(400, f"{prefix!r} matches several anomalies ({', '.join(ids)}): give more of the id")
    return ids[0]


@router.get("/anomalies", summary="Recorded anomalies, largest dollar impact first", response_model=AnomaliesPage)
def list_anomalies(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    metric: Annotated[str | None, Query(description="Only this metric (cost, gpu_cost, tokens, ...)")] = None,
    dimension: Annotated[str | None, Query(description="Only this dimension (ServiceName, tag:team, ...)")] = None,
    status: Annotated[Literal["open", "expected", "planned", "wrong", "all"], Query(
        description="open (default): not answered yet")] = "open",
    include_inactive: Annotated[bool, Query(description="Also anomalies the latest scan no longer reports")]
    = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AnomaliesPage:
    db = request.app.state.db
    settings: Settings = db.settings
    params: dict[str, Any] = {}
    where = [ownership(who, settings, params)]
    if not include_inactive:
        where.append("active")
    if status != "all":
        where.append("status = $status")
        params["status"] = status
    for col, value in (("metric", metric), ("dimension", dimension)):
        if value is not None:
            where.append(f"{col} = ${col}")
            params[col] = value
    with db.read() as con:
        rows = _rows(con, f"SELECT * FROM anomalies WHERE {' AND '.join(where)} "
                          "ORDER BY abs(impact_cost) DESC NULLS LAST, anomaly_id", params)
        others = None
        if who.team is not None:
            p2: dict[str, Any] = {}
            mine = ownership(who, settings, p2)
            [others] = _rows(con, "SELECT count(*) AS count, coalesce(sum(impact_cost), 0) AS impact_cost "
                                  f"FROM anomalies WHERE active AND status = 'open' AND NOT coalesce({mine}, false)",
                             p2)
    p = page(rows, limit, offset, {"metric": metric, "dimension": dimension, "status": status,
                                   "include_inactive": include_inactive, "scope": who.team})
    p.rows = [_shape(r, who, settings) for r in p.rows]  # the page's root causes only
    return AnomaliesPage(**p.model_dump(), others=jsonable(others))


@router.get("/anomalies/{anomaly_id}", summary="One anomaly: expected band, impact, root causes")
def get_anomaly(anomaly_id: AnomalyId, request: Request, who: Annotated[Principal, Depends(viewer)]) -> dict[str, Any]:
    db = request.app.state.db
    with db.read() as con:
        return _shape(store.get(con, visible_id(con, anomaly_id, who, db.settings)), who, db.settings)


@router.post("/anomalies/{anomaly_id}/feedback", summary="Say what an anomaly was (analyst)")
def feedback(anomaly_id: AnomalyId, body: Feedback, request: Request,
             who: Annotated[Principal, Depends(analyst)]) -> dict[str, Any]:
    """expected (a new normal, learnt at once), planned (a one-off: give ``until`` if it still goes on) or wrong
    (not an anomaly); the feedback covers the anomaly's periods and the next scan reads it."""
    db = request.app.state.db
    until = parse_until(body.until) if body.until else None
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.write() as con:
        fid = visible_id(con, anomaly_id, who, db.settings)
        return _shape(store.give_feedback(con, fid, body.kind, body.reason, now, until), who, db.settings)
