"""Alerts and their delivery: one alert per anomaly or budget threshold crossing, sent once to each of its
channels, sent again (an update) only when its dollar impact has grown, retried with backoff when a channel
fails, and every attempt recorded.

- ``upsert`` keeps the alerts the anomaly and budget modules build (``Alert``) by key: the same key again updates
  the alert (subject, severity, impact, details), never duplicates it.
- ``deliver`` works out in SQL which (alert, channel) pairs are due: never sent; sent, but the impact grew by
  ``update_growth`` or more (an update); failed or deferred, and their retry time has come. Each due pair gets
  up to ``max_attempts`` attempts with exponential backoff (``backoff``, 2x, 4x ... seconds), the sleeps of one
  call capped at ``MAX_SLEEP`` so a dead channel cannot stall an ingest. Still failing: the pair is ``failed``
  with ``next_attempt_at`` one more backoff step later (growing across runs, capped at ``MAX_DELAY``), so the
  next ``watch`` cycle or ``alerts send`` retries it. A channel that failed with an error worth retrying (no
  answer, 429, 5xx) is not tried again for the other alerts of the same call: they are deferred to its retry
  time, so one unreachable server costs one round of timeouts, not one per alert.
- Every attempt is a row of ``alert_deliveries`` (the event, the attempt number, ok, the HTTP status or SMTP
  reply, the error text, seconds); ``alert_sends`` holds where each pair stands.
- ``notify`` = upsert + deliver with every failure caught: callers run it after an ingest, which a failing
  channel must never fail.

A channel failure never raises out of ``deliver``: it is recorded and counted in the ``DeliveryReport``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from ..config import AlertSettings
from .channels import Channel, ChannelError, channels, to_json

KINDS = ("anomaly", "budget")
SEVERITIES = ("low", "medium", "high")
EVENTS = ("new", "update")
MAX_SLEEP = 30.0  # seconds one deliver() call sleeps between attempts, at most
MAX_DELAY = 3600.0  # seconds: the longest a failed send waits for its next run


@dataclass
class Alert:
    """What a channel says: one line, whose it is, how much it costs, how sure, where the evidence is."""

    key: str  # dedup key: "anomaly:<anomaly_id>" or "budget:<name>:<period start>:<actual|forecast>:<pct>"
    kind: str  # anomaly | budget
    subject: str  # one line
    owner: str | None  # a contact (email / @handle / team)
    severity: str  # low | medium | high
    impact_cost: float  # dollars; growth of this drives updates
    link: str  # evidence: dashboard URL if alerts.link_base is set, else the CLI command to run
    channels: list[str]  # channel names (keys of settings.alerts.channels)
    details: dict[str, Any]  # JSON-able: what the channels render (root causes, actual/expected, budget numbers)
    resolved: bool = False


@dataclass
class DeliveryReport:
    """What one ``deliver`` call did, per (alert, channel) pair: ``sent`` new alerts, ``updated`` (grown ones
    sent again), ``failed`` (tried and still failing, or deferred behind a failing channel), ``skipped`` (not
    due: already sent and not grown enough, waiting for their retry time, or resolved); one error line per
    failure."""

    sent: int = 0
    updated: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _naive(now: datetime | None) -> datetime:
    """Timestamps in the store are naive UTC."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def upsert(con: duckdb.DuckDBPyConnection, alerts: list[Alert], now: datetime) -> None:
    """Keep ``alerts`` in one transaction: a new key is inserted (and pending on each of its channels); an
    existing key gets the new subject, owner, severity, impact, link, channels and details (``updated_at`` moves
    when any of them changed). The last alert of a key wins within one call."""
    if not alerts:
        return
    now = _naive(now)
    bad = [f"{a.key}: {what}" for a in alerts for what, ok in
           (("kind " + repr(a.kind), a.kind in KINDS), ("severity " + repr(a.severity), a.severity in SEVERITIES))
           if not ok]
    if bad:
        raise ValueError(f"alerts need a kind in {KINDS} and a severity in {SEVERITIES}: {'; '.join(bad)}")
    latest = list({a.key: a for a in alerts}.values())
    names = [list(dict.fromkeys(a.channels)) for a in latest]  # a channel named twice is still one send
    rows = pa.table({
        "alert_key": [a.key for a in latest], "kind": [a.kind for a in latest],
        "subject": [a.subject for a in latest], "owner": [a.owner for a in latest],
        "severity": [a.severity for a in latest],
        "impact_cost": pa.array([float(a.impact_cost) for a in latest], pa.float64()),
        "link": [a.link for a in latest],
        "payload": [json.dumps({"channels": n, "details": a.details}, default=to_json, sort_keys=True)
                    for a, n in zip(latest, names, strict=True)],
        "channels": pa.array(names, pa.list_(pa.string())),
        "resolved": [bool(a.resolved) for a in latest],
    })
    con.register("_alerts_in", rows)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO alerts (alert_key, kind, subject, owner, severity, impact_cost, link, payload, created_at, "
            "updated_at, resolved_at) SELECT alert_key, kind, subject, owner, severity, impact_cost, link, payload, "
            "$now, $now, CASE WHEN resolved THEN $now::TIMESTAMP END FROM _alerts_in "
            "ON CONFLICT (alert_key) DO UPDATE SET kind = excluded.kind, subject = excluded.subject, "
            "owner = excluded.owner, severity = excluded.severity, impact_cost = excluded.impact_cost, "
            "link = excluded.link, payload = excluded.payload, "
            "updated_at = CASE WHEN row(subject, owner, severity, impact_cost, link, payload) IS DISTINCT FROM "
            "row(excluded.subject, excluded.owner, excluded.severity, excluded.impact_cost, excluded.link, "
            "excluded.payload) THEN excluded.updated_at ELSE updated_at END, "
            "resolved_at = CASE WHEN excluded.resolved_at IS NULL THEN NULL "
            "ELSE coalesce(resolved_at, excluded.resolved_at) END",
            {"now": now})
        con.execute("INSERT INTO alert_sends (alert_key, channel, state) "
                    "SELECT alert_key, unnest(channels), 'pending' FROM _alerts_in ON CONFLICT DO NOTHING")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_alerts_in")


# Every (alert, channel) pair with the event it is due for (NULL: not due). A pair waits for its retry time
# whatever its state; a pair never delivered is new; a pair delivered is due again (an update) when the impact
# grew by the share $growth over what the channel last heard of.
_PAIRS = """
WITH targets AS (
  SELECT alert_key, kind, subject, owner, severity, impact_cost, link, payload, resolved_at,
         unnest(from_json(json_extract(payload, '$.channels'), '["VARCHAR"]')) AS channel
  FROM alerts
)
SELECT t.alert_key, t.channel, t.kind, t.subject, t.owner, t.severity, t.impact_cost, t.link, t.payload,
       coalesce(s.state, 'pending') AS state, coalesce(s.attempts, 0) AS attempts,
       CASE
         WHEN t.resolved_at IS NOT NULL THEN NULL
         WHEN s.next_attempt_at > $now THEN NULL
         WHEN coalesce(s.state, 'pending') <> 'sent' THEN CASE WHEN s.sent_at IS NULL THEN 'new' ELSE 'update' END
         -- a budget crossing is news once: its spend grows every day after it, which is not
         WHEN t.kind = 'anomaly' AND abs(t.impact_cost) > abs(s.sent_impact)
              AND abs(t.impact_cost) - abs(s.sent_impact) >= $growth * abs(s.sent_impact) THEN 'update'
       END AS event
FROM targets t LEFT JOIN alert_sends s USING (alert_key, channel)
"""


def _delay(settings: AlertSettings, attempts: int) -> float:
    """The backoff after ``attempts`` attempts: backoff x 2^(attempts - 1), at most MAX_DELAY."""
    return min(settings.backoff * 2.0 ** max(attempts - 1, 0), MAX_DELAY)


def _save(con: duckdb.DuckDBPyConnection, key: str, name: str, tries: list[tuple[Any, ...]],
          send: dict[str, Any]) -> None:
    """The attempts of one pair and where it stands now, together: a crash between pairs loses nothing."""
    con.execute("BEGIN TRANSACTION")
    try:
        if tries:
            con.executemany("INSERT INTO alert_deliveries (alert_key, channel, event, attempt, attempted_at, ok, "
                            "status, error, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tries)
        con.execute(
            "INSERT INTO alert_sends (alert_key, channel, state, sent_impact, sent_at, attempts, next_attempt_at, "
            "last_error) VALUES ($key, $channel, $state, $sent_impact, $sent_at, $attempts, $next, $error) "
            "ON CONFLICT (alert_key, channel) DO UPDATE SET state = excluded.state, "
            "sent_impact = coalesce(excluded.sent_impact, sent_impact), "
            "sent_at = coalesce(excluded.sent_at, sent_at), attempts = excluded.attempts, "
            "next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error",
            {"key": key, "channel": name, **send})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _open(name: str, settings: AlertSettings, cache: dict[str, Channel]) -> Channel:
    if name not in cache:
        cfg = settings.channels.get(name)
        if cfg is None:
            raise ChannelError(f"no channel {name!r} in alerts.channels (defined: "
                               f"{', '.join(settings.channels) or 'none'})", retry=False)
        try:
            cache[name] = channels.get(cfg.type)(name, cfg)
        except KeyError as exc:
            raise ChannelError(f"channel {name}: {exc.args[0]}", retry=False) from None
    return cache[name]


def deliver(con: duckdb.DuckDBPyConnection, settings: AlertSettings, now: datetime | None = None, *,
            sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Send every due (alert, channel) pair; record every attempt. Never raises for a channel's failure.

    ``now`` is the time of the first attempt; later attempts are stamped ``now`` + the time slept before them,
    so runs with an injected ``sleep`` (tests) keep a consistent clock."""
    now = _naive(now)
    report = DeliveryReport()
    params = {"now": now, "growth": settings.update_growth}
    (report.skipped,) = con.execute(f"SELECT count(*) FROM ({_PAIRS}) WHERE event IS NULL", params).fetchone() or (0,)
    due = con.execute(f"SELECT * FROM ({_PAIRS}) WHERE event IS NOT NULL "
                      "ORDER BY abs(impact_cost) DESC NULLS LAST, alert_key, channel", params).fetchall()
    opened: dict[str, Channel] = {}
    broken: dict[str, tuple[datetime, str, list[str]]] = {}  # channel -> its retry time, the failure, deferred keys
    slept = 0.0
    for key, name, kind, subject, owner, severity, impact, link, payload, state, attempts, event in due:
        base = attempts if state != "sent" else 0  # a new event counts its attempts from one
        if name in broken:
            retry_at, _, deferred = broken[name]
            deferred.append(key)
            _save(con, key, name, [], {"state": state, "sent_impact": None, "sent_at": None, "attempts": attempts,
                                       "next": retry_at, "error": f"not tried: channel {name} failed for another "
                                                                  "alert in the same run"})
            report.failed += 1
            continue
        body = json.loads(payload)
        alert = Alert(key, kind, subject, owner, severity, impact if impact is not None else 0.0, link or "",
                      body.get("channels", []), body.get("details", {}))
        tries: list[tuple[Any, ...]] = []
        ok, error, retry = False, "", True
        for i in range(settings.max_attempts):
            if i:
                pause = settings.backoff * 2.0 ** (i - 1)
                if slept + pause > MAX_SLEEP:  # this call's sleeping is spent: a later run goes on
                    break
                sleep(pause)
                slept += pause
            at = now + timedelta(seconds=slept)
            started = time.perf_counter()
            status: str | None = None
            try:
                status = _open(name, settings, opened).send(alert, event)
                ok = True
            except ChannelError as exc:
                status, error, retry = exc.status, str(exc), exc.retry
            except Exception as exc:  # a channel's bug must not stop the other deliveries
                error, retry = f"channel {name}: {type(exc).__name__}: {exc}", False
            tries.append((key, name, event, base + i + 1, at, ok, status, None if ok else error,
                          time.perf_counter() - started))
            if ok or not retry:
                break
        n = base + len(tries)
        last = tries[-1][4]
        if ok:
            _save(con, key, name, tries, {"state": "sent", "sent_impact": alert.impact_cost, "sent_at": last,
                                          "attempts": n, "next": None, "error": None})
            if event == "new":
                report.sent += 1
            else:
                report.updated += 1
            continue
        retry_at = last + timedelta(seconds=_delay(settings, n))
        _save(con, key, name, tries, {"state": "failed", "sent_impact": None, "sent_at": None, "attempts": n,
                                      "next": retry_at, "error": error})
        report.failed += 1
        report.errors.append(f"{key}: {error} ({len(tries)} attempt(s); next at {retry_at:%Y-%m-%d %H:%M:%S})")
        if retry:
            broken[name] = (retry_at, error, [])
    for name, (retry_at, _, deferred) in broken.items():
        if deferred:
            report.errors.append(f"channel {name}: {len(deferred)} more alert(s) not tried after it failed; "
                                 f"next at {retry_at:%Y-%m-%d %H:%M:%S}")
    return report


def notify(con: duckdb.DuckDBPyConnection, alerts: list[Alert], settings: AlertSettings,
           now: datetime | None = None, **kw: Any) -> DeliveryReport:
    """``upsert`` then ``deliver``, for callers that run after an ingest: whatever goes wrong (a channel, the
    store, a bad alert) comes back in the report and is never raised. Prints and logs nothing. Only an
    interrupt (Ctrl-C) passes through: a person stopping the run must be able to."""
    try:
        now = _naive(now)
        upsert(con, alerts, now)
        return deliver(con, settings, now, **kw)
    except Exception as exc:
        return DeliveryReport(errors=[f"alerts not delivered: {type(exc).__name__}: {exc}"])


# -- reading back, for the CLI ---------------------------------------------------------------------------------


def listing(con: duckdb.DuckDBPyConnection, include_resolved: bool = False) -> list[dict[str, Any]]:
    """Every alert (resolved ones only with ``include_resolved``), largest impact first, with where it stands on
    each of its channels (state, attempts, sent at, next attempt, last error)."""
    cur = con.execute(f"""
WITH per AS (
  SELECT t.alert_key, list({{'channel': t.channel, 'state': coalesce(s.state, 'pending'),
                             'attempts': coalesce(s.attempts, 0), 'sent_at': s.sent_at,
                             'sent_impact': s.sent_impact, 'next_attempt_at': s.next_attempt_at,
                             'last_error': s.last_error}} ORDER BY t.channel) AS channels
  FROM (SELECT alert_key, unnest(from_json(json_extract(payload, '$.channels'), '["VARCHAR"]')) AS channel
        FROM alerts) t
  LEFT JOIN alert_sends s USING (alert_key, channel)
  GROUP BY t.alert_key
)
SELECT a.alert_key AS key, a.kind, a.subject, a.owner, a.severity, a.impact_cost, a.link,
       coalesce(p.channels, []) AS channels, json_extract(a.payload, '$.details')::VARCHAR AS details,
       a.created_at, a.updated_at, a.resolved_at
FROM alerts a LEFT JOIN per p USING (alert_key)
WHERE {'true' if include_resolved else 'a.resolved_at IS NULL'}
ORDER BY abs(a.impact_cost) DESC NULLS LAST, a.alert_key""")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["details"] = json.loads(r["details"] or "{}")
    return rows


def deliveries(con: duckdb.DuckDBPyConnection, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The delivery log, oldest first: the last ``limit`` attempts (of the alerts whose key starts with ``key``)."""
    cur = con.execute(
        "SELECT * FROM (SELECT alert_key AS key, channel, event, attempt, attempted_at, ok, status, error, seconds "
        "FROM alert_deliveries WHERE $key IS NULL OR starts_with(alert_key, $key) "
        "ORDER BY attempted_at DESC, alert_key DESC, channel DESC, attempt DESC LIMIT $limit) "
        "ORDER BY attempted_at, key, channel, attempt", {"key": key, "limit": limit})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def sample(name: str, settings: AlertSettings, now: datetime | None = None) -> Alert:
    """The alert ``alerts test`` sends: plainly a test, with every part a real alert has."""
    stamp = _naive(now)
    link = f"{settings.link_base.rstrip('/')}/alerts" if settings.link_base else "aifinops alerts list"
    return Alert(key=f"test:{name}:{stamp:%Y%m%dT%H%M%S}", kind="anomaly",
                 subject=f"Test alert from aifinops to channel {name}", owner=None, severity="low", impact_cost=0.0,
                 link=link, channels=[name],
                 details={"purpose": "checks that this channel delivers; no action needed",
                          "sent_at": f"{stamp:%Y-%m-%d %H:%M:%S} UTC"})


def try_channel(name: str, settings: AlertSettings, now: datetime | None = None) -> tuple[Channel, str, float]:
    """Send ``sample`` once to channel ``name``: (the channel, what it answered, seconds). Raises ChannelError
    (the channel failed, or there is no such channel); nothing is recorded."""
    ch = _open(name, settings, {})
    started = time.perf_counter()
    status = ch.send(sample(name, settings, now), "new")
    return ch, status, time.perf_counter() - started
