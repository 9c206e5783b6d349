"""Feedback, usage metrics and recorded anomalies, by hand.

The ledger of tests/test_anomalies.py: weekdays $100, weekends $40, 8 weeks from Monday 2026-09-07; the spike is
one Wednesday (day 44) at $400 against an expected $100.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from test_anomalies import DAYS, SPIKE, START, _ledger, _window
from typer.testing import CliRunner
from waste_fixtures import add_requests

from aifinops.analysis.anomalies import FEEDBACK, Settings, anomalies, detect
from aifinops.interfaces.cli.app import app
from aifinops.store import anomalies as recorded
from aifinops.store.connection import Store

NOW = datetime(2026, 11, 2)


def test_wrong_feedback_is_learnt_as_normal_data() -> None:
    """A flat 100, and from week 5 every 7th period at 300 (a weekly batch job nobody told us about). Without
    feedback each one is a spike kept out of the history, so it alerts every week for ever. Marked wrong three
    times, the three go into the history as they were: the median of the last four such periods is 300 and the
    next ones are normal."""
    y = np.full((1, 70), 100.0)
    y[0, 35::7] = 300.0
    _, _, _, flagged0 = detect(y, 7, Settings())
    assert list(flagged0[0, 35::7]) == [1, 1, 1, 1, 1]
    fb = np.zeros_like(y, dtype=int)
    fb[0, [35, 42, 49]] = FEEDBACK["wrong"]
    expected, _, _, flagged = detect(y, 7, Settings(), feedback=fb)
    assert list(flagged[0, 35::7]) == [0, 0, 0, 0, 0]
    assert expected[0, 56] == 300.0 and expected[0, 57] == 100.0


def test_expected_feedback_moves_the_baseline_to_the_new_level_at_once() -> None:
    """From period 35 the series doubles (100 -> 200). Marked expected over 35..41, the history before moves by
    the range's mean change (+100), so period 42 expects 200 and nothing more is flagged."""
    y = np.full((1, 70), 100.0)
    y[0, 35:] = 200.0
    _, _, _, flagged0 = detect(y, 7, Settings())
    assert flagged0[0, 35:42].all() and flagged0[0, 42] == 1  # without feedback: a level shift still flagged
    fb = np.zeros_like(y, dtype=int)
    fb[0, 35:42] = FEEDBACK["expected"]
    expected, _, _, flagged = detect(y, 7, Settings(), feedback=fb)
    assert not flagged.any()
    assert expected[0, 42] == pytest.approx(200.0) and expected[0, 69] == pytest.approx(200.0)


def test_planned_is_silent_and_kept_out_of_the_history() -> None:
    """A planned 3-day burst at 1,000: never flagged, and a week later the expected value is still 100."""
    y = np.full((1, 70), 100.0)
    y[0, 35:38] = 1000.0
    fb = np.zeros_like(y, dtype=int)
    fb[0, 35:38] = FEEDBACK["planned"]
    expected, _, _, flagged = detect(y, 7, Settings(), feedback=fb)
    assert not flagged.any() and expected[0, 42] == 100.0 and expected[0, 44] == 100.0


def test_recorded_feedback_applies_on_the_next_scan(store: Store) -> None:
    _ledger(store, spike=True)
    [a] = anomalies(store.con, _window(), "ServiceName")
    assert recorded.record(store.con, [a], ("cost", "ServiceName", "day"), NOW) == [a.anomaly_id]
    assert recorded.record(store.con, [a], ("cost", "ServiceName", "day"), NOW) == []  # same id: updated, not new
    row = recorded.give_feedback(store.con, a.anomaly_id[:6], "wrong", "a known test load", NOW)
    assert (row["status"], row["status_reason"]) == ("wrong", "a known test load")
    again = anomalies(store.con, _window(), "ServiceName",
                      feedback=recorded.feedback_rows(store.con, "cost", "ServiceName"))
    assert again == []
    recorded.record(store.con, again, ("cost", "ServiceName", "day"), NOW)
    assert recorded.listing(store.con) == []  # inactive and answered
    [kept] = recorded.listing(store.con, everything=True)
    assert kept["anomaly_id"] == a.anomaly_id and kept["active"] is False


def test_a_planned_event_declared_in_advance_does_not_alert(store: Store) -> None:
    _ledger(store, spike=True)
    recorded.plan(store.con, "cost", "ServiceName", "Amazon EC2", SPIKE, SPIKE + timedelta(days=1), "load test", NOW)
    assert anomalies(store.con, _window(), "ServiceName",
                     feedback=recorded.feedback_rows(store.con, "cost", "ServiceName")) == []
    with pytest.raises(recorded.AnomalyError, match="must end after"):
        recorded.plan(store.con, "cost", "ServiceName", "x", SPIKE, SPIKE, None, NOW)


def test_feedback_on_an_ongoing_anomaly_needs_an_end_when_planned(store: Store) -> None:
    for d in range(DAYS):  # doubles for the last 3 days: still anomalous at the end of the data
        t = START + timedelta(days=d)
        from waste_fixtures import add_charge
        add_charge(store.con, t, t + timedelta(days=1), "200" if d >= DAYS - 3 else "100", ServiceName="S3")
    [a] = anomalies(store.con, _window(), "ServiceName")
    assert a.end is None and a.periods == 3
    recorded.record(store.con, [a], ("cost", "ServiceName", "day"), NOW)
    with pytest.raises(recorded.AnomalyError, match="--until"):
        recorded.give_feedback(store.con, a.anomaly_id, "planned", None, NOW)
    recorded.give_feedback(store.con, a.anomaly_id, "planned", None, NOW, until=START + timedelta(days=DAYS + 2))
    [fb] = recorded.feedback_rows(store.con, "cost", "ServiceName")
    assert (fb["kind"], fb["period_start"], fb["period_end"]) == ("planned", a.start, START + timedelta(days=DAYS + 2))
    with pytest.raises(recorded.AnomalyError, match="unknown feedback"):
        recorded.give_feedback(store.con, a.anomaly_id, "fine", None, NOW)


def _tokens(store: Store, spike_day: int | None = None) -> None:
    """A chat feature: 1,000 requests of 1,000 in + 500 out tokens a day at $1 / $2 per 1M tokens = $2/day; the
    search feature 20x that ($40/day); on the spike day search sends 5x its requests."""
    store.con.execute(
        "INSERT INTO llm_prices (catalog, provider, model, model_key, mode, tier, above_tokens, input_per_mtok, "
        "output_per_mtok, currency, snapshot, _batch_id, _file, _row) VALUES ('litellm', 'openai', 'gpt-x', "
        "'gpt-x', 'chat', 'standard', 0, 1, 2, 'USD', 't', 1, 't', 0)")
    rows = []
    for d in range(DAYS):
        for feature, n in (("chat", 1000), ("search", 20000)):
            n *= 5 if feature == "search" and d == spike_day else 1
            rows.append({"request_id": f"{feature}{d}", "ts": START + timedelta(days=d, hours=12), "requests": n,
                         "provider": "openai", "request_model": "gpt-x", "input_tokens": 1000 * n,
                         "output_tokens": 500 * n, "feature": feature, "team": "search"})
    add_requests(store.con, rows)


def test_a_token_anomaly_has_its_dollar_impact(store: Store) -> None:
    """search on day 44: 100,000 requests x 1,500 tokens = 150M tokens against 30M expected: +120M tokens; at
    $40 / 30M tokens = $1.333.. per 1M, the impact is $160 (the 4 x $40 extra requests' price)."""
    _tokens(store, spike_day=44)
    [a] = anomalies(store.con, _window(), "feature", metric_name="tokens", child="model")
    assert (a.metric, a.series, a.unit, a.start, a.periods) == ("tokens", "search", "tokens", SPIKE, 1)
    assert a.impact == pytest.approx(120e6) and a.impact_cost == pytest.approx(160.0, rel=1e-3)
    assert a.root_causes[0]["value"] == "gpt-x" and a.root_causes[0]["contribution"] == pytest.approx(1.0)
    [r] = anomalies(store.con, _window(), "feature", metric_name="requests")
    assert (r.impact, r.impact_cost) == (pytest.approx(80000), pytest.approx(160.0, rel=1e-3))
    # the chat feature's $2/day never alerts: its changes are far below the $50 minimum impact
    assert anomalies(store.con, _window(), "feature", metric_name="llm_cost", s=Settings(min_impact=200)) == []


def test_the_cli_scans_records_shows_and_takes_feedback(tmp_path) -> None:
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        _ledger(store, spike=True)
    run = CliRunner().invoke
    res = run(app, ["--db", str(db), "anomalies", "--window", "2026-10-05..2026-11-01", "--format", "json"])
    assert res.exit_code == 0, res.output
    [a] = json.loads(res.output)
    res = run(app, ["--db", str(db), "anomalies", "list", "--format", "json"])
    assert [r["id"] for r in json.loads(res.output)] == [a["id"]]
    res = run(app, ["--db", str(db), "anomalies", "show", a["id"][:5]])
    assert res.exit_code == 0 and "expected 100.00" in res.output and "impact $300.00" in res.output
    res = run(app, ["--db", str(db), "anomalies", "feedback", a["id"], "planned", "--reason", "load test"])
    assert res.exit_code == 0, res.output
    res = run(app, ["--db", str(db), "anomalies", "--window", "2026-10-05..2026-11-01", "--format", "json"])
    assert json.loads(res.output) == []
    res = run(app, ["--db", str(db), "anomalies", "show", "zzz"])
    assert res.exit_code == 1 and "no anomaly 'zzz'" in res.output
    res = run(app, ["--db", str(db), "anomalies", "--metric", "watts"])
    assert res.exit_code == 1 and "unknown metric 'watts'" in res.output


def test_an_expected_one_off_leaves_the_baseline_where_it_was() -> None:
    """One period at 400 marked expected: not flagged; the next period is back at 100 (nearer the old level than
    the new), so the history does not move and nothing after it is flagged."""
    y = np.full((1, 70), 100.0)
    y[0, 44] = 400.0
    fb = np.zeros_like(y, dtype=int)
    fb[0, 44] = FEEDBACK["expected"]
    expected, _, _, flagged = detect(y, 7, Settings(), feedback=fb)
    assert not flagged.any() and expected[0, 45] == 100.0 and expected[0, 51] == 100.0


def test_despike_removes_one_off_spikes_and_keeps_level_shifts_and_a_change_at_the_end() -> None:
    from aifinops.analysis.anomalies import despike

    y = np.full((3, 70), 100.0)
    y[0, 40] = 3000.0  # a one-off: replaced by its expected value
    y[1, 35:] = 200.0  # a level shift: kept
    y[2, 68:] = 500.0  # still going at the end: kept (it may be a new level)
    out = despike(y, 7)
    assert out[0, 40] == 100.0 and (out[0, :40] == 100.0).all()
    assert (out[1, 35:] == 200.0).all()
    assert (out[2, 68:] == 500.0).all()
