"""Alert persistence and delivery against real servers on loopback: one send per alert and channel, an update
only when the impact grew by update_growth, retries with doubling backoff (sleeps recorded, capped per call),
a failed send retried by a later run at its next_attempt_at, a dead channel deferring the other alerts of the
same run, every attempt in the delivery log, notify() never raising; and the ``alerts`` commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from alert_servers import HttpRecorder, Smtp, closed_port
from typer.testing import CliRunner

from aifinops.config import AlertSettings, load_settings
from aifinops.governance.alerts import Alert, DeliveryReport, deliver, notify, upsert
from aifinops.interfaces.cli.alerts import register
from aifinops.interfaces.cli.common import state
from aifinops.store.connection import Store

T0 = datetime(2026, 10, 5, 12, 0)
S = timedelta(seconds=1)


def alert(key: str = "anomaly:a1", impact: float = 100.0, channels: tuple[str, ...] = ("hook",),
          **kw: Any) -> Alert:
    return Alert(key=key, kind="anomaly", subject=f"Cost anomaly {key}: +${impact:,.0f}", owner="@search",
                 severity="high", impact_cost=impact, link="aifinops anomalies --by tag:team", channels=list(channels),
                 details={"series": "search", "impact_cost": impact}, **kw)


def settings(url: str, **kw: Any) -> AlertSettings:
    return AlertSettings(channels={"hook": {"type": "webhook", "url": url}}, **{"backoff": 1.0, **kw})


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def log(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return rows(con, "SELECT alert_key, channel, event, attempt, attempted_at, ok, status FROM alert_deliveries "
                     "ORDER BY attempted_at, alert_key, attempt")


def send_state(con: duckdb.DuckDBPyConnection, key: str = "anomaly:a1") -> tuple[Any, ...]:
    return con.execute("SELECT state, sent_impact, sent_at, attempts, next_attempt_at FROM alert_sends "
                       "WHERE alert_key = ?", [key]).fetchone()


def test_upsert_keeps_one_row_per_key_and_moves_updated_at_only_on_change(store: Store) -> None:
    con = store.con
    upsert(con, [alert()], T0)
    upsert(con, [alert()], T0 + timedelta(hours=1))
    q = "SELECT alert_key, subject, impact_cost, created_at, updated_at, resolved_at, payload FROM alerts"
    assert rows(con, q) == [("anomaly:a1", "Cost anomaly anomaly:a1: +$100", 100.0, T0, T0, None,
                             '{"channels": ["hook"], "details": {"impact_cost": 100.0, "series": "search"}}')]
    upsert(con, [alert(impact=90.0), alert(impact=150.0)], T0 + timedelta(hours=2))  # the last of a key wins
    assert rows(con, q)[0][1:5] == ("Cost anomaly anomaly:a1: +$150", 150.0, T0, T0 + timedelta(hours=2))
    upsert(con, [alert(impact=150.0, resolved=True)], T0 + timedelta(hours=3))
    upsert(con, [alert(impact=150.0, resolved=True)], T0 + timedelta(hours=4))  # resolved when first resolved
    assert rows(con, "SELECT resolved_at FROM alerts") == [(T0 + timedelta(hours=3),)]
    upsert(con, [alert(impact=150.0, channels=("hook", "mail", "hook"))], T0 + timedelta(hours=5))
    assert rows(con, "SELECT resolved_at FROM alerts") == [(None,)]
    assert rows(con, "SELECT alert_key, channel, state, attempts FROM alert_sends ORDER BY channel") == [
        ("anomaly:a1", "hook", "pending", 0), ("anomaly:a1", "mail", "pending", 0)]
    assert json.loads(rows(con, "SELECT payload FROM alerts")[0][0])["channels"] == ["hook", "mail"]
    with pytest.raises(ValueError, match="anomaly:a2: severity 'urgent'"):
        upsert(con, [Alert("anomaly:a2", "anomaly", "x", None, "urgent", 1.0, "", [], {})], T0)
    assert rows(con, "SELECT count(*) FROM alerts") == [(1,)]


def test_one_send_per_alert_and_an_update_only_when_the_impact_grew_enough(store: Store,
                                                                          http: HttpRecorder) -> None:
    con, s = store.con, settings(http.url, update_growth=0.25)
    for i in range(2):
        upsert(con, [alert()], T0 + i * S)
        assert deliver(con, s, T0 + i * S) == (DeliveryReport(sent=1) if i == 0 else DeliveryReport(skipped=1))
    assert len(http.requests) == 1 and http.requests[0].json["event"] == "new"
    upsert(con, [alert(impact=124.99)], T0 + 2 * S)  # +24.99% < 25%: no update
    assert deliver(con, s, T0 + 2 * S) == DeliveryReport(skipped=1)
    upsert(con, [alert(impact=125.0)], T0 + 3 * S)  # +25% over what the channel heard of (100): one update
    assert deliver(con, s, T0 + 3 * S) == DeliveryReport(updated=1)
    assert deliver(con, s, T0 + 4 * S) == DeliveryReport(skipped=1)
    upsert(con, [alert(impact=150.0)], T0 + 5 * S)  # +20% over 125
    assert deliver(con, s, T0 + 5 * S) == DeliveryReport(skipped=1)
    assert [(r.json["event"], r.json["impact_cost"]) for r in http.requests] == [("new", 100.0), ("update", 125.0)]
    assert send_state(con) == ("sent", 125.0, T0 + 3 * S, 1, None)
    assert log(con) == [("anomaly:a1", "hook", "new", 1, T0, True, "200"),
                        ("anomaly:a1", "hook", "update", 1, T0 + 3 * S, True, "200")]
    upsert(con, [alert("anomaly:down", impact=-100.0)], T0 + 6 * S)  # a drop grows in absolute value
    deliver(con, s, T0 + 6 * S)
    upsert(con, [alert("anomaly:down", impact=-130.0)], T0 + 7 * S)
    assert deliver(con, s, T0 + 7 * S) == DeliveryReport(updated=1, skipped=1)


def test_retries_back_off_doubling_until_the_channel_answers(store: Store, http: HttpRecorder) -> None:
    http.fail(3)
    slept: list[float] = []
    upsert(store.con, [alert()], T0)
    assert deliver(store.con, settings(http.url, max_attempts=5), T0, sleep=slept.append) == DeliveryReport(sent=1)
    assert slept == [1.0, 2.0, 4.0]
    assert len(http.requests) == 4
    assert log(store.con) == [("anomaly:a1", "hook", "new", 1, T0, False, "500"),
                              ("anomaly:a1", "hook", "new", 2, T0 + S, False, "500"),
                              ("anomaly:a1", "hook", "new", 3, T0 + 3 * S, False, "500"),
                              ("anomaly:a1", "hook", "new", 4, T0 + 7 * S, True, "200")]
    assert rows(store.con, "SELECT error FROM alert_deliveries WHERE NOT ok LIMIT 1")[0][0].endswith(
        "answered HTTP 500 Internal Server Error: upstream unavailable")
    assert send_state(store.con) == ("sent", 100.0, T0 + 7 * S, 4, None)


def test_after_max_attempts_the_send_fails_and_a_later_run_retries_it(store: Store, http: HttpRecorder) -> None:
    http.fail(5)
    con, s, slept = store.con, settings(http.url, max_attempts=3), []
    upsert(con, [alert()], T0)
    report = deliver(con, s, T0, sleep=slept.append)
    port = http.server.server_address[1]
    assert report == DeliveryReport(failed=1, errors=[
        f"anomaly:a1: channel hook: POST http://127.0.0.1:{port}/hooks/… answered HTTP 500 Internal Server Error: "
        "upstream unavailable (3 attempt(s); next at 2026-10-05 12:00:07)"])
    assert slept == [1.0, 2.0]
    # the last attempt at T0+3s, then one more backoff step (1 x 2^2 = 4 s)
    assert send_state(con) == ("failed", None, None, 3, T0 + 7 * S)
    assert deliver(con, s, T0 + 6 * S, sleep=slept.append) == DeliveryReport(skipped=1)  # not due yet
    assert len(http.requests) == 3
    assert deliver(con, s, T0 + 7 * S, sleep=slept.append) == DeliveryReport(sent=1)
    assert slept == [1.0, 2.0, 1.0, 2.0]
    assert [(a, at, ok) for _, _, _, a, at, ok, _ in log(con)] == [
        (1, T0, False), (2, T0 + S, False), (3, T0 + 3 * S, False),
        (4, T0 + 7 * S, False), (5, T0 + 8 * S, False), (6, T0 + 10 * S, True)]
    assert send_state(con) == ("sent", 100.0, T0 + 10 * S, 6, None)


def test_one_call_sleeps_at_most_thirty_seconds(store: Store, http: HttpRecorder) -> None:
    http.default = (503, "busy")
    slept: list[float] = []
    upsert(store.con, [alert()], T0)
    assert deliver(store.con, settings(http.url, backoff=10.0), T0, sleep=slept.append).failed == 1
    assert slept == [10.0, 20.0]  # a third pause (40 s) would pass 30 s: stop, a later run goes on
    assert send_state(store.con) == ("failed", None, None, 3, T0 + 30 * S + 40 * S)


def test_a_refused_request_is_not_retried_in_the_same_run(store: Store, http: HttpRecorder) -> None:
    http.script = [(400, "invalid_payload")]
    slept: list[float] = []
    upsert(store.con, [alert()], T0)
    assert deliver(store.con, settings(http.url), T0, sleep=slept.append).failed == 1
    assert (slept, len(http.requests)) == ([], 1)
    assert send_state(store.con) == ("failed", None, None, 1, T0 + S)


def test_connection_refused_is_recorded_not_raised(store: Store) -> None:
    port = closed_port()
    upsert(store.con, [alert()], T0)
    report = deliver(store.con, settings(f"http://127.0.0.1:{port}/hook", max_attempts=2), T0, sleep=lambda _: None)
    assert (report.sent, report.failed, len(report.errors)) == (0, 1, 1)
    assert f"POST http://127.0.0.1:{port}/hook: ConnectError: " in report.errors[0]
    assert rows(store.con, "SELECT attempt, ok, status, error LIKE '%ConnectError%' FROM alert_deliveries "
                           "ORDER BY attempt") == [(1, False, None, True), (2, False, None, True)]


def test_a_dead_channel_defers_the_rest_of_the_run_and_other_channels_still_send(store: Store,
                                                                                 http: HttpRecorder) -> None:
    port = closed_port()
    s = AlertSettings(channels={"hook": {"type": "webhook", "url": http.url},
                                "down": {"type": "slack", "url": f"http://127.0.0.1:{port}/x"}},
                      backoff=1.0, max_attempts=2)
    upsert(store.con, [alert("anomaly:big", 200.0, ("down",)), alert("anomaly:small", 100.0, ("down", "hook"))], T0)
    report = deliver(store.con, s, T0, sleep=lambda _: None)
    assert (report.sent, report.failed, report.skipped) == (1, 2, 0)
    assert report.errors[1] == "channel down: 1 more alert(s) not tried after it failed; next at 2026-10-05 12:00:03"
    assert [(k, c, a) for k, c, _, a, *_ in log(store.con)] == [
        ("anomaly:big", "down", 1), ("anomaly:big", "down", 2), ("anomaly:small", "hook", 1)]
    assert rows(store.con, "SELECT channel, state, next_attempt_at FROM alert_sends ORDER BY alert_key, channel") == [
        ("down", "failed", T0 + 3 * S), ("down", "pending", T0 + 3 * S), ("hook", "sent", None)]


def test_an_unknown_channel_and_a_resolved_alert(store: Store, http: HttpRecorder) -> None:
    upsert(store.con, [alert("anomaly:lost", channels=("pager",)), alert("anomaly:done", resolved=True)], T0)
    report = deliver(store.con, settings(http.url), T0, sleep=lambda _: None)
    assert (report.sent, report.failed, report.skipped, http.requests) == (0, 1, 1, [])
    assert rows(store.con, "SELECT alert_key, channel, attempt, ok, error FROM alert_deliveries") == [
        ("anomaly:lost", "pager", 1, False, "no channel 'pager' in alerts.channels (defined: hook)")]


def test_notify_never_raises(store: Store, tmp_path: Path) -> None:
    port = closed_port()
    s = settings(f"http://127.0.0.1:{port}/hook", max_attempts=1)
    report = notify(store.con, [alert()], s, T0)
    assert (report.sent, report.failed, len(report.errors)) == (0, 1, 1)
    assert rows(store.con, "SELECT count(*) FROM alert_deliveries") == [(1,)]
    closed = duckdb.connect(str(tmp_path / "other.duckdb"))
    closed.close()
    report = notify(closed, [alert()], s, T0)
    assert (report.sent, report.failed) == (0, 0) and report.errors[0].startswith("alerts not delivered: ")


# -- the CLI ---------------------------------------------------------------------------------------------------

runner = CliRunner()


def cli_app() -> typer.Typer:
    """A root with ``aifinops``'s --config and the ``alerts`` group, wired as app.py wires it (app.py itself is not
    imported: these tests need only this group)."""
    root = typer.Typer()

    @root.callback()
    def options(config: Path = typer.Option(...)) -> None:  # noqa: B008  (typer's declaration)
        state.settings = load_settings(config)

    register(root)
    return root


@pytest.fixture
def config(tmp_path: Path, http: HttpRecorder, smtp: Smtp) -> Path:
    path = tmp_path / "aifinops.yaml"
    path.write_text(f"""
db: {tmp_path / 's.duckdb'}
alerts:
  max_attempts: 1
  channels:
    hook: {{type: webhook, url: "{http.url}"}}
    mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, sender: aifinops@example.com, to: [finops@example.com]}}
    down: {{type: slack, url: "http://127.0.0.1:{closed_port()}/x"}}
""")
    return path


def cli(config: Path, *args: str) -> tuple[int, str]:
    res = runner.invoke(cli_app(), ["--config", str(config), *args])
    return res.exit_code, res.output


def test_alerts_test_sends_one_message_and_says_what_came_back(config: Path, http: HttpRecorder, smtp: Smtp) -> None:
    port = http.server.server_address[1]
    code, out = cli(config, "alerts", "test", "hook")
    assert code == 0, out
    assert f"ok: hook (webhook, http://127.0.0.1:{port}/hooks/…) answered 200 in " in out
    [req] = http.requests
    assert (req.json["subject"], req.json["event"]) == ("Test alert from aifinops to channel hook", "new")
    code, out = cli(config, "alerts", "test", "mail")
    assert code == 0 and f"ok: mail (email, smtp://127.0.0.1:{smtp.port}) answered 250 in " in out
    assert smtp.box.mails[0].message["Subject"] == "[aifinops] Test alert from aifinops to channel mail"
    code, out = cli(config, "alerts", "test", "down")
    assert code == 1 and "failed: channel down: POST http://127.0.0.1:" in out and "ConnectError" in out
    code, out = cli(config, "alerts", "test", "pager")
    assert code == 1 and "no channel 'pager' in alerts.channels (defined: hook, mail, down)" in out


def test_alerts_send_list_and_deliveries(config: Path, http: HttpRecorder, smtp: Smtp, tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        upsert(store.con, [alert("anomaly:a1", 300.0, ("hook", "mail")), alert("anomaly:a2", 100.0, ("down",)),
                           alert("budget:gpu:2026-10-01:actual:80", 50.0, ("hook",), resolved=True)], T0)
    code, out = cli(config, "alerts", "send")
    assert code == 1  # a send failed; it stays due
    assert "sent 2, updated 0, failed 1, not due 1" in out and "anomaly:a2: channel down: POST" in out
    assert (len(http.requests), len(smtp.box.mails)) == (1, 1)
    code, out = cli(config, "alerts", "list", "--format", "json")
    assert code == 0, out
    listed = json.loads(out)
    assert [(a["key"], a["impactCost"], [(c["channel"], c["state"], c["attempts"]) for c in a["channels"]])
            for a in listed] == [("anomaly:a1", 300.0, [("hook", "sent", 1), ("mail", "sent", 1)]),
                                 ("anomaly:a2", 100.0, [("down", "failed", 1)])]
    assert listed[0]["details"] == {"series": "search", "impact_cost": 300.0}
    code, out = cli(config, "alerts", "list", "--all", "--format", "json")
    assert [a["key"] for a in json.loads(out)] == ["anomaly:a1", "anomaly:a2", "budget:gpu:2026-10-01:actual:80"]
    code, out = cli(config, "alerts", "list")
    assert code == 0 and "down: failed x1, next" in out and "1 failed send(s); retry now: aifinops alerts send" in out
    code, out = cli(config, "alerts", "deliveries", "--format", "json")
    assert [(d["key"], d["channel"], d["event"], d["attempt"], d["ok"], d["status"]) for d in json.loads(out)] == [
        ("anomaly:a1", "hook", "new", 1, True, "200"), ("anomaly:a1", "mail", "new", 1, True, "250"),
        ("anomaly:a2", "down", "new", 1, False, None)]
    code, out = cli(config, "alerts", "deliveries", "--key", "anomaly:a2", "--format", "json")
    assert [(d["key"], d["ok"]) for d in json.loads(out)] == [("anomaly:a2", False)]
    code, out = cli(config, "alerts", "deliveries")
    assert code == 0 and "3 attempt(s), 1 failed" in out
