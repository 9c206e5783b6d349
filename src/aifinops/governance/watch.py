"""One watch cycle: run the configured anomaly scans, keep what they found, check the budgets, and send the alerts
that are due. ``aifinops watch --every 5m`` runs cycles; every ingest runs one (``after_ingest``).

An anomaly alerts once (``anomaly:<id>``) and again as an update when its dollar impact grows (the alerts module
dedups); an anomaly people answered (expected, planned, wrong) or below ``alerts.min_severity`` never alerts.
A cycle never raises for a channel, a budget or a scan that fails: it is reported, so an ingest that triggered it
still succeeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from ..analysis.anomalies import Anomaly, anomalies
from ..analysis.anomalies import Settings as Thresholds
from ..analysis.layers import load_rules
from ..analysis.series import metric
from ..analysis.windows import Window, parse_window
from ..config import AnomalyScan, Settings
from ..store import anomalies as recorded
from .alerts import Alert, DeliveryReport, notify

SEVERITY = {"low": 0, "medium": 1, "high": 2}
UNITS = {"USD": "", "GPU-hours": " GPU-hours", "tokens": " tokens", "requests": " requests"}


@dataclass
class CycleReport:
    scans: int = 0
    anomalies: int = 0
    new: list[str] = field(default_factory=list)
    budgets: list[Any] = field(default_factory=list)
    alerts: int = 0
    delivery: DeliveryReport | None = None
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        """One line for a terminal or a log."""
        d = self.delivery
        sent = f"; alerts sent {d.sent}, updated {d.updated}, failed {d.failed}" if d else ""
        over = sum(1 for b in self.budgets if getattr(b, "over", False))
        return (f"{self.scans} scan(s): {self.anomalies} anomaly(ies), {len(self.new)} new; "
                f"{len(self.budgets)} budget(s){f', {over} over a threshold' if over else ''}{sent}"
                f"{'; ' + str(len(self.errors)) + ' error(s)' if self.errors else ''} ({self.seconds:.1f}s)")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def thresholds(settings: Settings) -> Thresholds:
    a = settings.anomalies
    return Thresholds(a.seasons, a.z, a.min_impact, a.min_change)


def scan(con: duckdb.DuckDBPyConnection, sc: AnomalyScan, settings: Settings, window: str | Window,
         s: Thresholds | None = None, record: bool = True,
         now: datetime | None = None) -> tuple[list[Anomaly], Window, list[str]]:
    """One scan: detect with the feedback given so far and, with ``record``, keep the anomalies; they come back
    with their recorded status, with the window and the ids recorded for the first time."""
    rules = load_rules(settings.layers_file)
    w = window if isinstance(window, Window) else parse_window(window, metric(con, sc.metric, settings, rules).end())
    found = anomalies(con, w, sc.by, sc.grain, sc.child, s or thresholds(settings), rules, metric_name=sc.metric,
                      settings=settings, feedback=recorded.feedback_rows(con, sc.metric, sc.by),
                      direction=sc.direction)
    new: list[str] = []
    if record:
        new = recorded.record(con, found, (sc.metric, sc.by, sc.grain), now or _now(), settings.alerts.owners)
        status = recorded.statuses(con, [a.anomaly_id for a in found])
        for a in found:
            a.status = status.get(a.anomaly_id, "open")
    return found, w, new


def _amount(a: Anomaly) -> str:
    if a.unit == "USD":
        return f"{'+' if a.impact >= 0 else '-'}${abs(a.impact):,.0f}"
    return f"{a.impact:+,.0f}{UNITS.get(a.unit, ' ' + a.unit)} ({'+' if a.impact_cost >= 0 else '-'}" \
           f"${abs(a.impact_cost):,.0f})"


def anomaly_alert(a: Anomaly, settings: Settings, owner: str | None = None) -> Alert:
    """The alert of one anomaly: what, how much, since when, who owns it, what explains it, where to look."""
    base = settings.alerts.link_base
    link = f"{base.rstrip('/')}/anomalies/{a.anomaly_id}" if base else f"aifinops anomalies show {a.anomaly_id}"
    pct = f", {a.percent:+.0%}" if a.percent is not None else ""
    what = "Cost" if a.metric == "cost" else a.metric.replace("_", " ").capitalize()
    since = f"since {a.start:%Y-%m-%d}" + (f" {a.start:%H:%M}" if a.grain == "hour" else "")
    ended = f", ended {a.end:%Y-%m-%d}" if a.end else ""
    causes = [{"value": c["value"], "dimension": c["dimension"], "impact": round(c["impact"], 2),
               "contribution": round(c["contribution"], 4) if c["contribution"] is not None else None}
              for c in a.root_causes]
    top = f"; mostly {causes[0]['dimension']}={causes[0]['value']}" if causes else ""
    return Alert(
        key=f"anomaly:{a.anomaly_id}", kind="anomaly",
        subject=f"{what} anomaly: {a.dimension}={a.series} {_amount(a)}{pct} {since}{ended}{top}",
        owner=owner or settings.alerts.owners.get(a.series)
        or (settings.alerts.owners.get(causes[0]["value"]) if causes else None),
        severity=a.severity, impact_cost=round(a.impact_cost, 2), link=link,
        channels=list(settings.alerts.anomaly_channels),
        details={"metric": a.metric, "dimension": a.dimension, "series": a.series, "grain": a.grain,
                 "start": a.start.isoformat(), "end": a.end.isoformat() if a.end else None, "periods": a.periods,
                 "unit": a.unit, "actual": round(a.actual, 4), "expected": round(a.expected, 4),
                 "bounds": [round(a.lower, 4), round(a.upper, 4)], "impact": round(a.impact, 4),
                 "percent": round(a.percent, 4) if a.percent is not None else None, "direction": a.direction,
                 "root_causes": causes, "anomaly_id": a.anomaly_id})


def cycle(con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime | None = None,
          window: str | None = None, sleep: Any = time.sleep) -> CycleReport:
    """Scans, budgets and alerts once; every failure is a line in the report, none is raised."""
    started = time.perf_counter()
    now = now or _now()
    report = CycleReport()
    alerts: list[Alert] = []
    floor = SEVERITY[settings.alerts.min_severity]
    for sc in settings.anomalies.scans:
        try:
            end = metric(con, sc.metric, settings).end()
            if end is None:
                continue  # no data of this metric yet: nothing to scan, nothing wrong
            found, _, new = scan(con, sc, settings, parse_window(window or settings.anomalies.window, end), now=now)
        except Exception as exc:  # a scan over data that is not there (no GPU telemetry yet) is not fatal
            report.errors.append(f"scan {sc.metric} by {sc.by}: {exc}")
            continue
        report.scans += 1
        report.anomalies += len(found)
        report.new += new
        alerts += [anomaly_alert(a, settings) for a in found
                   if a.status == "open" and SEVERITY.get(a.severity, 0) >= floor and settings.alerts.anomaly_channels]
    if settings.budgets:
        try:
            from . import budgets as budgets_mod  # forecasting imports statsforecast: only when there are budgets

            report.budgets = budgets_mod.status(con, settings)
            alerts += budgets_mod.alerts_for(report.budgets, settings)
        except Exception as exc:
            report.errors.append(f"budgets: {exc}")
    report.alerts = len(alerts)
    if alerts or settings.alerts.channels:
        report.delivery = notify(con, alerts, settings.alerts, now, sleep=sleep)
        report.errors += report.delivery.errors
    report.seconds = time.perf_counter() - started
    return report


def after_ingest(con: duckdb.DuckDBPyConnection, settings: Settings) -> CycleReport:
    """The cycle an ingest runs once its batch is committed: whatever fails is in the report, never raised (the
    batch is already safe, and a failing channel must not fail it)."""
    try:
        return cycle(con, settings)
    except Exception as exc:
        return CycleReport(errors=[f"watch after ingest: {type(exc).__name__}: {exc}"])
