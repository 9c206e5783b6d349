"""Anomalies kept across scans, and what people said about them.

A scan upserts the anomalies it found (``anomaly_id`` = metric, dimension, series, grain and start), so a growing
anomaly updates its row (end, impact) rather than adding one; anomalies of the same scan (metric, dimension,
grain) that it no longer reports become inactive, never deleted. Feedback is a row of ``anomaly_feedback`` over a
time range of a series: the detector reads it back (``feedback_rows``), and the anomaly's status shows it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import duckdb

KINDS = ("expected", "planned", "wrong")


class AnomalyError(ValueError):
    """No anomaly, or more than one, matches an id; or feedback that cannot be applied."""


def record(con: duckdb.DuckDBPyConnection, found: list[Any], scan: tuple[str, str, str], now: datetime,
           owners: dict[str, str] | None = None) -> list[str]:
    """Upsert the anomalies (``analysis.anomalies.Anomaly``) of one scan (metric, dimension, grain) in one
    transaction; the scan's anomalies not found this time become inactive. Returns the ids of new ones."""
    known = {r[0] for r in con.execute("SELECT anomaly_id FROM anomalies WHERE metric = ? AND dimension = ? AND "
                                       "grain = ?", list(scan)).fetchall()}
    con.execute("BEGIN TRANSACTION")
    try:
        for a in found:
            owner = (owners or {}).get(a.series)
            if owner is None and a.root_causes:
                owner = (owners or {}).get(a.root_causes[0]["value"])
            con.execute(
                "INSERT INTO anomalies (anomaly_id, metric, dimension, series, grain, period_start, period_end, "
                "periods, actual, expected, lower, upper, impact, impact_cost, direction, severity, root_causes, "
                "owner, first_seen, last_seen, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, true) ON CONFLICT (anomaly_id) DO UPDATE SET period_end = excluded.period_end, "
                "periods = excluded.periods, actual = excluded.actual, expected = excluded.expected, "
                "lower = excluded.lower, upper = excluded.upper, impact = excluded.impact, "
                "impact_cost = excluded.impact_cost, severity = excluded.severity, "
                "root_causes = excluded.root_causes, owner = excluded.owner, last_seen = excluded.last_seen, "
                "active = true",
                [a.anomaly_id, a.metric, a.dimension, a.series, a.grain, a.start, a.end, a.periods, a.actual,
                 a.expected, a.lower, a.upper, a.impact, a.impact_cost, a.direction, a.severity,
                 json.dumps(a.root_causes), owner, now, now])
        con.execute("UPDATE anomalies SET active = false WHERE metric = ? AND dimension = ? AND grain = ? "
                    "AND NOT list_contains(?, anomaly_id)", [*scan, [a.anomaly_id for a in found]])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return [a.anomaly_id for a in found if a.anomaly_id not in known]


def statuses(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, str]:
    """anomaly_id -> status of the given recorded anomalies."""
    return dict(con.execute("SELECT anomaly_id, status FROM anomalies WHERE list_contains(?, anomaly_id)",
                            [ids]).fetchall())


def get(con: duckdb.DuckDBPyConnection, prefix: str) -> dict[str, Any]:
    """The anomaly whose id starts with ``prefix`` (a unique prefix is enough, as with git)."""
    cur = con.execute("SELECT * FROM anomalies WHERE starts_with(anomaly_id, ?) ORDER BY anomaly_id", [prefix])
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if not rows:
        raise AnomalyError(f"no anomaly {prefix!r}: see `aifinops anomalies list`")
    if len(rows) > 1:
        raise AnomalyError(f"{prefix!r} matches {len(rows)} anomalies ({', '.join(r['anomaly_id'] for r in rows[:5])}"
                           "); give more of the id")
    row = rows[0]
    row["root_causes"] = json.loads(row["root_causes"] or "[]")
    return row


def listing(con: duckdb.DuckDBPyConnection, everything: bool = False) -> list[dict[str, Any]]:
    """Recorded anomalies, largest dollar impact first: active and open ones, or all with ``everything``."""
    where = "" if everything else "WHERE active AND status = 'open'"
    cur = con.execute(f"SELECT * FROM anomalies {where} ORDER BY abs(impact_cost) DESC, anomaly_id")
    names = [d[0] for d in cur.description]
    out = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in out:
        r["root_causes"] = json.loads(r["root_causes"] or "[]")
    return out


def give_feedback(con: duckdb.DuckDBPyConnection, prefix: str, kind: str, reason: str | None, now: datetime,
                  until: datetime | None = None, step_end: datetime | None = None) -> dict[str, Any]:
    """Mark an anomaly expected, planned or wrong. The feedback covers the anomaly's periods: up to its end, or,
    for one still going on, up to ``until`` (a planned event needs it: how long will it last?) or, for expected
    and wrong, up to the end of the data seen (``step_end``): feedback never blinds a series for good."""
    if kind not in KINDS:
        raise AnomalyError(f"unknown feedback {kind!r}: use {', '.join(KINDS)}")
    a = get(con, prefix)
    end = until or a["period_end"]
    if end is None:
        if kind == "planned":
            raise AnomalyError(f"anomaly {a['anomaly_id']} is still going on: say until when it is planned "
                               "(--until DATE)")
        end = step_end or a["last_seen"]
    fid = hashlib.sha256(f"{a['anomaly_id']}|{kind}|{now.isoformat()}".encode()).hexdigest()[:12]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO anomaly_feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [fid, a["anomaly_id"], a["metric"], a["dimension"], a["series"], a["period_start"], end, kind,
                     reason, now])
        con.execute("UPDATE anomalies SET status = ?, status_reason = ?, status_at = ? WHERE anomaly_id = ?",
                    [kind, reason, now, a["anomaly_id"]])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return get(con, a["anomaly_id"])


def plan(con: duckdb.DuckDBPyConnection, metric: str, dimension: str, series: str, start: datetime, end: datetime,
         reason: str | None, now: datetime) -> str:
    """Declare a planned event before it happens (a launch, a training run): it will not alert."""
    if end <= start:
        raise AnomalyError("a planned event must end after it starts")
    fid = hashlib.sha256(f"plan|{metric}|{dimension}|{series}|{start.isoformat()}|{now.isoformat()}".encode()) \
        .hexdigest()[:12]
    con.execute("INSERT INTO anomaly_feedback VALUES (?, NULL, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                [fid, metric, dimension, series, start, end, reason, now])
    return fid


def feedback_rows(con: duckdb.DuckDBPyConnection, metric: str, dimension: str) -> list[dict[str, Any]]:
    """The feedback of one metric and dimension, for ``analysis.anomalies.anomalies(feedback=...)``."""
    cur = con.execute("SELECT series, period_start, period_end, kind FROM anomaly_feedback WHERE metric = ? AND "
                      "dimension = ? ORDER BY created_at", [metric, dimension])
    return [dict(zip(("series", "period_start", "period_end", "kind"), r, strict=True)) for r in cur.fetchall()]
