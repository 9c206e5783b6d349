"""The watch cycle: scans, alerts through real loopback channels, dedup, feedback; ingest runs one and survives a
dead channel; `aifinops watch` picks up spans that arrived through the OTLP receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from alert_servers import HttpRecorder, closed_port
from test_anomalies import SPIKE, _ledger
from typer.testing import CliRunner

from aifinops.config import load_settings
from aifinops.governance.watch import cycle
from aifinops.interfaces.cli.app import app
from aifinops.store import anomalies as recorded
from aifinops.store.connection import Store

NOW = datetime(2026, 11, 2)


def _claim_batch_1(store: Store) -> None:
    """Rows the test fixtures insert carry batch 1: a batch row for it keeps a later real ingest off that id."""
    store.con.execute("INSERT INTO batches (batch_id, source_kind, status, fingerprint, started_at, seconds, "
                      "rows_read, rows_loaded, rows_quarantined) VALUES (1, 'test', 'loaded', 'x', now(), 0, 0, 0, 0)")


def _config(tmp_path: Path, url: str, **extra: object) -> Path:
    cfg = {"anomalies": {"scans": [{"metric": "cost", "by": "ServiceName", "child": "SkuId"}], "window": "28d"},
           "alerts": {"channels": {"hook": {"type": "webhook", "url": url}}, "anomaly_channels": ["hook"],
                      "owners": {"Amazon EC2": "compute-team@example.com"}, "max_attempts": 1, "backoff": 0},
           **extra}
    path = tmp_path / "aifinops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_cycle_alerts_once_with_owner_impact_root_cause_and_link(store: Store, http: HttpRecorder,
                                                                    tmp_path: Path) -> None:
    _ledger(store, spike=True)
    settings = load_settings(_config(tmp_path, http.url))
    report = cycle(store.con, settings, NOW, sleep=lambda s: None)
    assert (report.scans, report.anomalies, len(report.new), report.alerts) == (1, 1, 1, 1), report.errors
    assert report.delivery is not None and report.delivery.sent == 1
    [req] = http.requests
    body = req.json
    [a] = recorded.listing(store.con)
    assert body["key"] == f"anomaly:{a['anomaly_id']}" and body["event"] == "new"
    assert body["owner"] == "compute-team@example.com" and body["impact_cost"] == 300.0
    assert body["subject"] == ("Cost anomaly: ServiceName=Amazon EC2 +$300, +300% since 2026-10-21, ended "
                               "2026-10-22; mostly SkuId=b")
    assert body["link"] == f"aifinops anomalies show {a['anomaly_id']}"
    assert body["details"]["root_causes"][0]["value"] == "b"
    # the next cycle finds the same anomaly: no second alert
    again = cycle(store.con, settings, NOW + timedelta(minutes=5), sleep=lambda s: None)
    assert again.new == [] and len(http.requests) == 1
    assert SPIKE.date().isoformat() in body["details"]["start"]


def test_answered_and_minor_anomalies_do_not_alert(store: Store, http: HttpRecorder, tmp_path: Path) -> None:
    _ledger(store, spike=True)
    settings = load_settings(_config(tmp_path, http.url))
    first = cycle(store.con, settings.model_copy(update={"alerts": settings.alerts.model_copy(
        update={"anomaly_channels": []})}), NOW)
    assert first.alerts == 0 and http.requests == []
    recorded.give_feedback(store.con, first.new[0], "expected", "migration to the new SKU", NOW)
    assert cycle(store.con, settings, NOW).alerts == 0 and http.requests == []
    high_only = load_settings(_config(tmp_path, http.url, budgets=[]))
    assert high_only.alerts.min_severity == "medium"


def test_ingest_runs_a_cycle_and_a_dead_channel_never_fails_it(tmp_path: Path, sample_path: Path) -> None:
    """The spike ledger is in the store (as batch 1); ingesting the FOCUS sample (2024) runs a cycle that finds
    the spike and cannot reach the channel: the ingest still succeeds and the failure is recorded."""
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        _ledger(store, spike=True)
        _claim_batch_1(store)
    port = closed_port()
    cfg = _config(tmp_path, f"http://127.0.0.1:{port}/hook")
    res = CliRunner().invoke(app, ["--db", str(db), "--config", str(cfg), "ingest", "focus", str(sample_path)])
    assert res.exit_code == 0, res.output
    assert "watch: 1 scan(s)" in res.output and "failed 1" in res.output
    with Store(db, read_only=True) as s:
        [d] = s.rows("SELECT channel, ok, error FROM alert_deliveries")
    assert d["channel"] == "hook" and d["ok"] is False and f"127.0.0.1:{port}" in d["error"]
    res = CliRunner().invoke(app, ["--db", str(db), "--config", str(cfg), "watch", "--once"])
    assert res.exit_code == 0 and "1 scan(s): 1 anomaly(ies), 0 new" in res.output


def test_watch_sees_spans_that_came_through_the_otlp_receiver(tmp_path: Path, http: HttpRecorder) -> None:
    """Five days of quiet chat traffic (10 requests of 110 tokens an hour) are in the store; then 300 spans arrive
    through the real OTLP receiver in the current hour. The next `watch` cycle finds the token anomaly of the
    service and alerts it."""
    from test_receiver_otlp import Receiver, export, sdk_spans
    from waste_fixtures import add_requests

    receiver = Receiver(tmp_path)
    now = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    with Store(receiver.db) as store:
        add_requests(store.con, [{"request_id": f"h{h}", "ts": now - timedelta(hours=h) + timedelta(minutes=1),
                                  "requests": 10, "provider": "openai", "request_model": "gpt-4o-mini",
                                  "input_tokens": 1000, "output_tokens": 100, "service": "chat-api"}
                                 for h in range(1, 24 * 5)])
        _claim_batch_1(store)
    receiver.start()
    try:
        assert export(receiver.url, sdk_spans(300)).name == "SUCCESS"
        receiver.wait_for("flushed")
        receiver.wait_spool_empty()
    finally:
        receiver.stop()
    cfg = tmp_path / "watch.yaml"
    cfg.write_text(yaml.safe_dump({
        "anomalies": {"scans": [{"metric": "tokens", "by": "service", "grain": "hour"}], "window": "24h",
                      "min_impact": 0.01},  # the spans are priced at gpt-4o-mini: cents
        "alerts": {"channels": {"hook": {"type": "webhook", "url": http.url}}, "anomaly_channels": ["hook"]}}))
    res = CliRunner().invoke(app, ["--db", str(receiver.db), "--config", str(cfg), "watch", "--once"])
    assert res.exit_code == 0 and "1 anomaly(ies), 1 new" in res.output, res.output
    [req] = http.requests
    assert req.json["subject"].startswith("Tokens anomaly: service=chat-api +")
    assert json.loads(req.body)["details"]["unit"] == "tokens"


def test_a_budget_crossing_alerts_once_while_an_anomaly_updates_as_it_grows(store: Store, http: HttpRecorder) -> None:
    from aifinops.config import AlertSettings
    from aifinops.governance.alerts import Alert, notify

    settings = AlertSettings.model_validate({"channels": {"hook": {"type": "webhook", "url": http.url}}})

    def alert(kind: str, impact: float) -> Alert:
        return Alert(f"{kind}:x", kind, f"{kind} x", None, "high", impact, "aifinops", ["hook"], {})

    assert notify(store.con, [alert("budget", 100.0), alert("anomaly", 100.0)], settings, NOW).sent == 2
    later = notify(store.con, [alert("budget", 1000.0), alert("anomaly", 1000.0)], settings, NOW)
    assert (later.sent, later.updated) == (0, 1)
    assert [r.json["event"] for r in http.requests] == ["new", "new", "update"]
    assert http.requests[-1].json["key"] == "anomaly:x"
