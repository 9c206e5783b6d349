"""Findings kept across runs: the same waste found again updates its row (first seen stays), a status set by
a person (accepted, dismissed with a reason) survives re-detection, and a finding its rule no longer reports
is marked inactive rather than deleted, so the history of what was found and decided stays."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

STATUSES = ("open", "accepted", "dismissed")
_NUMBERS = ("monthly_cost", "monthly_waste", "monthly_saving", "achievable_saving")


class FindingError(ValueError):
    """No finding, or more than one, matches an id; or a status change that is not allowed."""


def _json(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.isoformat()
    raise TypeError(type(v).__name__)


def states(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """finding_id -> status, status_reason, first_seen of every finding seen before."""
    rows = con.execute("SELECT finding_id, status, status_reason, first_seen FROM findings").fetchall()
    return {r[0]: {"status": r[1], "status_reason": r[2], "first_seen": r[3]} for r in rows}


def record(con: duckdb.DuckDBPyConnection, records: list[dict[str, Any]], rules_run: list[str], now: datetime) -> None:
    """Upsert this run's findings (``Finding.record()``) in one transaction; findings of ``rules_run`` that this
    run did not report become inactive."""
    con.execute("BEGIN TRANSACTION")
    try:
        for r in records:
            detail = json.dumps(r["detail"], default=_json, sort_keys=True)
            nums = [r[k] for k in _NUMBERS]
            con.execute(
                "INSERT INTO findings (finding_id, rule, scope_kind, scope, owner, first_seen, last_seen, active, "
                "window_start, window_end, monthly_cost, monthly_waste, monthly_saving, achievable_saving, "
                "confidence, recommendation, detail) VALUES (?, ?, ?, ?, ?, ?, ?, true, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (finding_id) DO UPDATE SET owner = excluded.owner, last_seen = excluded.last_seen, "
                "active = true, window_start = excluded.window_start, window_end = excluded.window_end, "
                "monthly_cost = excluded.monthly_cost, monthly_waste = excluded.monthly_waste, "
                "monthly_saving = excluded.monthly_saving, achievable_saving = excluded.achievable_saving, "
                "confidence = excluded.confidence, recommendation = excluded.recommendation, detail = excluded.detail",
                [r["finding_id"], r["rule"], r["scope_kind"], r["scope"], r["owner"], now, now, r["window_start"],
                 r["window_end"], *nums, r["confidence"], r["recommendation"], detail])
        seen = [r["finding_id"] for r in records]
        if rules_run:
            con.execute("UPDATE findings SET active = false WHERE list_contains(?, rule) "
                        "AND NOT list_contains(?, finding_id)", [rules_run, seen])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def resolve(con: duckdb.DuckDBPyConnection, prefix: str) -> str:
    """The one finding id starting with ``prefix`` (ids are hex; 4+ characters usually suffice, as with git)."""
    text = prefix.strip().lower()
    if not text:
        raise FindingError("give a finding id (see `aifinops recommend`)")
    ids = [r[0] for r in con.execute("SELECT finding_id FROM findings WHERE starts_with(finding_id, ?) "
                                     "ORDER BY finding_id LIMIT 5", [text]).fetchall()]
    if not ids:
        raise FindingError(f"no finding {prefix!r}: run `aifinops recommend` to list them")
    if len(ids) > 1:
        raise FindingError(f"{prefix!r} matches several findings ({', '.join(ids)}): give more of the id")
    return ids[0]


def get(con: duckdb.DuckDBPyConnection, prefix: str) -> dict[str, Any]:
    fid = resolve(con, prefix)
    cur = con.execute("SELECT * FROM findings WHERE finding_id = ?", [fid])
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    row["detail"] = json.loads(row["detail"] or "{}")
    return row


def set_status(con: duckdb.DuckDBPyConnection, prefix: str, status: str, reason: str | None,
               now: datetime) -> str:
    """Accept, dismiss (a reason is required: it is what the next reviewer reads) or reopen a finding."""
    if status not in STATUSES:
        raise FindingError(f"unknown status {status!r}: use {', '.join(STATUSES)}")
    if status == "dismissed" and not (reason or "").strip():
        raise FindingError("dismissing needs --reason: say why this is not waste (it is kept with the finding)")
    fid = resolve(con, prefix)
    con.execute("UPDATE findings SET status = ?, status_reason = ?, status_at = ? WHERE finding_id = ?",
                [status, (reason or "").strip() or None, now, fid])
    return fid
