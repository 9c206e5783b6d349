"""``/api/v1/findings``: the waste findings the store keeps (``aifinops recommend`` records them), their
explanations, and what a person decided (accept, dismiss with a reason; admin only).

Reading never runs the rules: a GET answers what was recorded, so it is cheap and changes nothing.

A team-scoped token lists only the findings its team owns, plus the count and the achievable and raw monthly
savings of everyone else's open findings (active, not dismissed: taken before any filter of the request, so a
filter cannot single one out). Another team's finding does not exist for it: reading, accepting or
dismissing it by id answers 404, and an id prefix is resolved among its own findings only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from ....store import findings as store
from ....store.tokens import Principal
from ..auth import admin, viewer
from ..paging import Page, jsonable, page

router = APIRouter(tags=["findings"])

_COLUMNS = ("finding_id AS id, rule, scope_kind AS \"scopeKind\", scope, owner, monthly_cost AS \"monthlyCost\", "
            "monthly_waste AS \"monthlyWaste\", monthly_saving AS \"monthlySaving\", achievable_saving AS "
            "\"achievableSaving\", confidence, status, status_reason AS \"statusReason\", status_at AS \"statusAt\", "
            "recommendation, active, first_seen AS \"firstSeen\", last_seen AS \"lastSeen\", window_start AS "
            "\"windowStart\", window_end AS \"windowEnd\"")
FindingId = Annotated[str, Path(min_length=4, max_length=64, pattern=r"^[0-9a-fA-F]+$",
                                description="A finding id, or a unique prefix of it (4+ hex characters)")]


class FindingsPage(Page):
    """A page of findings; ``others``: a scoped token's view of every other team's open findings."""

    others: dict[str, Any] | None = None


class Dismissal(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Why this is not waste: the next reviewer "
                                                                   "reads it")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def visible_id(con: duckdb.DuckDBPyConnection, prefix: str, who: Principal) -> str:
    """The one finding id starting with ``prefix`` that the token may see: 404 when none, 400 when several."""
    mine = "" if who.team is None else " AND owner IS NOT DISTINCT FROM $team"
    params: dict[str, Any] = {"p": prefix.lower(), **({"team": who.team} if who.team else {})}
    ids = [r[0] for r in con.execute(f"SELECT finding_id FROM findings WHERE starts_with(finding_id, $p){mine} "
                                     "ORDER BY finding_id LIMIT 5", params).fetchall()]
    if not ids:
        raise HTTPException(404, f"no finding {prefix!r}")
    if len(ids) > 1:
        raise HTTPException(400, f"{prefix!r} matches several findings ({', '.join(ids)}): give more of the id")
    return ids[0]


def explain(con: duckdb.DuckDBPyConnection, fid: str) -> dict[str, Any]:
    """A finding with its evidence, assumptions and how its saving was computed (``recommend explain``)."""
    f = store.get(con, fid)
    d = f["detail"]
    money = {k: Decimal(f[k] or 0) for k in ("monthly_cost", "monthly_waste", "monthly_saving", "achievable_saving")}
    overlaps = bool(d.get("pool")) and round(money["achievable_saving"], 2) != round(money["monthly_saving"], 2)
    return jsonable({
        "id": f["finding_id"], "rule": f["rule"], "scopeKind": f["scope_kind"], "scope": f["scope"],
        "owner": f["owner"], "status": f["status"], "statusReason": f["status_reason"], "statusAt": f["status_at"],
        "recommendation": f["recommendation"], "confidence": f["confidence"],
        "monthlyCost": money["monthly_cost"], "monthlyWaste": money["monthly_waste"],
        "monthlySaving": money["monthly_saving"], "achievableSaving": money["achievable_saving"],
        "savingFormula": d.get("saving_formula"), "assumptions": d.get("assumptions", []),
        "evidence": d.get("evidence", {}), "pool": d.get("pool"), "poolCost": d.get("pool_cost"),
        "covers": d.get("covers", []),
        "overlap": ("shares the dollars of its pool with other findings; achievable is what is left after the "
                    "larger ones") if overlaps else None,
        "windowStart": f["window_start"], "windowEnd": f["window_end"], "firstSeen": f["first_seen"],
        "lastSeen": f["last_seen"], "active": f["active"]})


@router.get("/findings", summary="Waste findings by achievable monthly saving", response_model=FindingsPage)
def list_findings(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    rule: Annotated[str | None, Query(description="Only these rules (comma-separated)")] = None,
    team: Annotated[str | None, Query(description="Only findings this team owns")] = None,
    status: Annotated[Literal["open", "accepted", "dismissed", "undismissed", "all"], Query(
        description="undismissed (default): open and accepted")] = "undismissed",
    min_saving: Annotated[float, Query(ge=0, le=1e15, description="Only findings saving at least this "
                                                                  "($ per month, achievable)")] = 0.0,
    include_inactive: Annotated[bool, Query(description="Also findings the latest run of their rule no longer "
                                                        "reports")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FindingsPage:
    rules = [r.strip() for r in (rule or "").split(",") if r.strip()]
    where = ["achievable_saving >= $min"]
    params: dict[str, Any] = {"min": Decimal(repr(min_saving))}
    if not include_inactive:
        where.append("active")
    if status == "undismissed":
        where.append("status <> 'dismissed'")
    elif status != "all":
        where.append("status = $status")
        params["status"] = status
    if rules:
        where.append("list_contains($rules, rule)")
        params["rules"] = rules
    if team is not None:
        where.append("owner IS NOT DISTINCT FROM $team")
        params["team"] = team
    if who.team is not None:
        where.append("owner IS NOT DISTINCT FROM $mine")
        params["mine"] = who.team
    with request.app.state.db.read() as con:
        rows = _rows(con, f"SELECT {_COLUMNS} FROM findings WHERE {' AND '.join(where)} "
                          "ORDER BY achievable_saving DESC, finding_id", params)
        others = None
        if who.team is not None:
            [others] = _rows(con, "SELECT count(*) AS count, coalesce(sum(achievable_saving), 0) AS "
                                  "\"achievableSaving\", coalesce(sum(monthly_saving), 0) AS \"monthlySaving\" "
                                  "FROM findings WHERE active AND status <> 'dismissed' "
                                  "AND owner IS DISTINCT FROM $mine", {"mine": who.team})
    p = page(rows, limit, offset, {"rule": rules, "team": team, "status": status, "min_saving": min_saving,
                                   "include_inactive": include_inactive, "scope": who.team})
    return FindingsPage(**p.model_dump(), others=jsonable(others))


@router.get("/findings/{finding_id}", summary="Explain a finding: evidence, assumptions, saving formula")
def get_finding(finding_id: FindingId, request: Request, who: Annotated[Principal, Depends(viewer)]) -> dict[str, Any]:
    with request.app.state.db.read() as con:
        return explain(con, visible_id(con, finding_id, who))


def _decide(request: Request, who: Principal, finding_id: str, status: str, reason: str | None) -> dict[str, Any]:
    db = request.app.state.db
    with db.write() as con:
        fid = visible_id(con, finding_id, who)
        store.set_status(con, fid, status, reason, _now())
        return explain(con, fid)


@router.post("/findings/{finding_id}/dismiss", summary="Dismiss a finding as not waste (admin)")
def dismiss(finding_id: FindingId, body: Dismissal, request: Request,
            who: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
    """It stays dismissed when found again; the reason is kept with it."""
    return _decide(request, who, finding_id, "dismissed", body.reason)


@router.post("/findings/{finding_id}/accept", summary="Accept a finding: the change is planned or done (admin)")
def accept(finding_id: FindingId, request: Request, who: Annotated[Principal, Depends(admin)]) -> dict[str, Any]:
    return _decide(request, who, finding_id, "accepted", None)
