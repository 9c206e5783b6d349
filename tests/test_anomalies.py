"""Cost anomalies by hand: a weekly pattern (weekdays $100, weekends $40) over 8 weeks from Monday 2026-09-07.

- a spike: one Wednesday at $400 -> expected $100 (the median of the 4 Wednesdays before), impact +$300, and
  the SKU that spiked explains all of it;
- a level shift: from week 6 every day doubles -> one anomaly from the shift that ends once the baseline (the
  median of the last 4 weeks) has learnt the new level;
- noise on a tiny series ($2 a day jumping to $30) never alerts: below the $50 minimum impact.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from waste_fixtures import add_charge

from aifinops.analysis.anomalies import Settings, anomalies, detect
from aifinops.analysis.windows import Window
from aifinops.store.connection import Store

START = datetime(2026, 9, 7)  # a Monday
DAYS = 56
SPIKE = START + timedelta(days=44)  # the Wednesday of week 7


def _day(d: int) -> float:
    return 40.0 if (START + timedelta(days=d)).weekday() >= 5 else 100.0


def _ledger(store: Store, spike: bool = False, shift: bool = False, tiny: bool = False) -> None:
    for d in range(DAYS):
        t = START + timedelta(days=d)
        base = _day(d) * (2 if shift and d >= 35 else 1)
        add_charge(store.con, t, t + timedelta(days=1), str(base * 0.6), ServiceName="Amazon EC2", SkuId="a")
        extra = 300.0 if spike and t == SPIKE else 0.0
        add_charge(store.con, t, t + timedelta(days=1), str(base * 0.4 + extra), ServiceName="Amazon EC2", SkuId="b")
        if tiny:
            add_charge(store.con, t, t + timedelta(days=1), "30" if d == 44 else "2", ServiceName="AWS KMS", SkuId="k")


def _window() -> Window:
    return Window(START + timedelta(days=28), START + timedelta(days=DAYS))  # 4 weeks of history before it


def test_a_spike_with_its_root_cause(store: Store) -> None:
    _ledger(store, spike=True, tiny=True)
    [a] = anomalies(store.con, _window(), "ServiceName", child="SkuId")
    assert (a.series, a.start, a.end, a.periods, a.direction) == ("Amazon EC2", SPIKE, SPIKE + timedelta(days=1), 1,
                                                                  "up")
    assert (a.actual, a.expected, a.impact) == pytest.approx((400.0, 100.0, 300.0))
    assert a.percent == pytest.approx(3.0) and a.severity == "high"
    [cause] = a.root_causes
    assert (cause["value"], cause["impact"], cause["contribution"]) == ("b", pytest.approx(300.0), pytest.approx(1.0))


def test_a_clean_series_and_tiny_noise_never_alert(store: Store) -> None:
    _ledger(store, tiny=True)
    assert anomalies(store.con, _window(), "ServiceName") == []


def test_a_level_shift_is_one_anomaly_that_ends(store: Store) -> None:
    _ledger(store, shift=True)
    found = anomalies(store.con, _window(), "ServiceName")
    assert len(found) == 1
    [a] = found
    assert a.start == START + timedelta(days=35) and a.direction == "up"
    assert a.end is not None and a.end <= START + timedelta(days=35 + 21)


def test_a_past_spike_does_not_raise_the_baseline() -> None:
    """The same weekday spikes to 1,000 once; four weeks later the expected value is still 100, not the mean."""
    y = [[100.0] * 70]
    y[0][35] = 1000.0
    expected, _, _, flagged = detect(__import__("numpy").array(y), 7, Settings())
    assert flagged[0, 35] == 1
    assert expected[0, 42] == 100.0 and expected[0, 63] == 100.0


def test_the_cli_lists_the_spike_with_its_root_cause(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        _ledger(store, spike=True)
    res = CliRunner().invoke(app, ["--db", str(db), "anomalies", "--window", "2026-10-05..2026-11-01", "--child",
                                   "SkuId", "--format", "json"])
    assert res.exit_code == 0, res.output
    [a] = json.loads(res.output)
    assert (a["series"], a["impactCost"], a["severity"], a["status"]) == ("Amazon EC2", "300", "high", "open")
    assert a["rootCauses"] == [{"dimension": "SkuId", "value": "b", "impact": 300.0, "contribution": 1.0}]
    res = CliRunner().invoke(app, ["--db", str(db), "anomalies", "--by", "colour"])
    assert res.exit_code == 1 and "unknown dimension 'colour'" in res.output
