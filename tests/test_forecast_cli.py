"""`aifinops forecast`, `forecast backtest` and `--scenario` end to end, over a ledger built here: 13 weeks to
2026-11-01 00:00 (from Sunday 2026-08-02) of

- ``Flat``: $100 a day (team search): constant, so seasonal naive forecasts it (and says so): November = 3,000;
- ``Weekly``: $200 on weekdays, $50 at weekends (team recsys): November 2026 has 21 weekdays and 9 weekend
  days, so its seasonal naive total is 21 x 200 + 9 x 50 = 4,650, and the model's is within a dollar of it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from forecast_fixtures import END, charges
from typer.testing import CliRunner

from aifinops.interfaces.cli import forecast as forecast_cli
from aifinops.interfaces.cli.app import app
from aifinops.store.connection import Store

if not any(g.name == "forecast" for g in app.registered_groups):  # until app.py registers it
    forecast_cli.register(app)

START = END - timedelta(weeks=13)
runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    days = [START + timedelta(days=i) for i in range(91)]
    with Store(path) as store:
        charges(store.con, START, [100.0] * 91, "Flat", tags={"team": "search"})
        charges(store.con, START, [200.0 if d.weekday() < 5 else 50.0 for d in days], "Weekly",
                tags={"team": "recsys"})
    return path


def cli(db: Path, *args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["--db", str(db), "forecast", *args])
    return res.exit_code, res.output


def as_json(db: Path, *args: str) -> dict:
    code, out = cli(db, *args, "--format", "json")
    assert code == 0, out
    return json.loads(out)


def test_the_month_ahead_per_series_with_the_baseline_and_the_fallback(db: Path) -> None:
    doc = as_json(db)
    assert (doc["metric"], doc["dimension"], doc["unit"], doc["model"]) == ("cost", "ServiceName", "USD", "auto")
    assert doc["period"] == {"start": "2026-11-01T00:00:00", "end": "2026-12-01T00:00:00"}
    assert doc["dataEnd"] == "2026-11-01T00:00:00"
    assert doc["history"] == {"start": "2026-08-02T00:00:00", "end": "2026-11-01T00:00:00", "periods": 91}
    assert doc["fallback"] == [{"series": "Flat", "reason": "constant history"}]
    weekly, flat = doc["series"]
    assert (weekly["series"], weekly["model"], weekly["actual"], weekly["naiveTotal"]) == ("Weekly", "MSTL", "0",
                                                                                           "4650")
    assert abs(float(weekly["total"]) - 4650) < 1
    assert float(weekly["totalLo95"]) <= float(weekly["totalLo80"]) <= float(weekly["total"]) \
        <= float(weekly["totalHi80"]) <= float(weekly["totalHi95"])
    assert {k: flat[k] for k in ("series", "total", "totalLo95", "totalHi95", "naiveTotal", "model")} == {
        "series": "Flat", "total": "3000", "totalLo95": "3000", "totalHi95": "3000", "naiveTotal": "3000",
        "model": "seasonal naive"}
    total = doc["total"]
    assert total["series"] == "(total)" and total["naiveTotal"] == "7650"
    assert float(total["total"]) == pytest.approx(float(weekly["total"]) + 3000, abs=0.01)
    assert float(total["totalHi95"]) == pytest.approx(float(weekly["totalHi95"]) + 3000, abs=0.01)  # widths add
    assert total["model"] == "MSTL, 1 seasonal naive"


def test_top_sums_the_rest_as_other_and_the_table_says_what_it_did(db: Path) -> None:
    doc = as_json(db, "--top", "1", "--by", "tag:team")
    assert [r["series"] for r in doc["series"]] == ["recsys", "(other)"]
    assert (doc["series"][1]["total"], doc["series"][1]["model"]) == ("3000", "seasonal naive")
    code, out = cli(db, "--top", "1")
    assert code == 0, out
    flat = " ".join(out.split())
    assert "cost (USD) forecast by ServiceName for 2026-11" in flat and "(other)" in flat
    assert "1 of 2 series fell back to seasonal naive (1 constant history)" in flat
    assert "seasonal naive for Flat: constant history" in flat
    code, out = cli(db, "--format", "csv")
    assert out.splitlines()[0].startswith("series,actual,forecastRest,restLo80")
    assert out.splitlines()[-1].startswith("(total),0,")


def test_a_quarter_counts_the_months_already_in_the_data(db: Path) -> None:
    """Q4 from data ending 2026-11-01: October is actual (22 weekdays + 9 weekend days for Weekly: 4,850),
    November and December are forecast; Flat: 3,100 actual + 61 x 100."""
    doc = as_json(db, "--to", "quarter", "--by", "tag:team")
    search = next(r for r in doc["series"] if r["series"] == "search")
    assert (search["actual"], search["forecastRest"], search["total"]) == ("3100", "6100", "9200")
    recsys = next(r for r in doc["series"] if r["series"] == "recsys")
    assert recsys["actual"] == "4850"


def test_errors_are_one_clear_line(db: Path, tmp_path: Path) -> None:
    for args, message in [
        (["--metric", "colour"], "unknown metric 'colour'"),
        (["--by", "Colour"], "unknown dimension 'Colour'"),
        (["--model", "arima"], "unknown model 'arima'"),
        (["--to", "someday"], "--to 'someday': use month, quarter or a date"),
        (["--history", "2026-10"], "--history '2026-10': use a span such as 120d"),
        (["--grain", "week"], "unknown grain 'week'"),
        (["--scenario", str(tmp_path / "none.yaml")], "scenario file not found"),
    ]:
        code, out = cli(db, *args)
        assert code == 1 and message in out, (args, out)
        assert "Traceback" not in out
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    code, out = cli(empty)
    assert code == 1 and "no data for metric cost" in out
    code, out = cli(empty, "--metric", "tokens", "--by", "model")
    assert code == 1 and "no data for metric tokens" in out


def test_backtest_scores_both_against_the_history(db: Path) -> None:
    code, out = cli(db, "backtest", "--format", "json")
    assert code == 0, out
    doc = json.loads(out)
    # 91 days: origins 91 - 14 - 21 .. 91 - 14, i.e. from 2026-08-02 + 56 days
    assert doc["origins"] == ["2026-09-27T00:00:00", "2026-10-04T00:00:00", "2026-10-11T00:00:00",
                              "2026-10-18T00:00:00"]
    rows = {r["series"]: r for r in doc["series"]}
    assert [r["series"] for r in doc["series"]] == ["Weekly", "Flat"]  # the larger spend first
    assert (rows["Weekly"]["smapeNaive"], rows["Weekly"]["maseNaive"]) == (0.0, 0.0)  # periodic: naive is perfect
    assert rows["Flat"] == {"series": "Flat", "smapeModel": 0.0, "smapeNaive": 0.0, "maseModel": 0.0,
                            "maseNaive": 0.0, "verdict": "tie", "fallbackFolds": 4}
    assert doc["summary"]["series"] == 2 and doc["summary"]["folds"] == 4
    code, out = cli(db, "backtest")
    assert code == 0, out
    assert "beats seasonal naive on" in out and "of 2 series" in out
    code, out = cli(db, "backtest", "--folds", "12")
    assert code == 1 and "12 fold(s) of 14 periods every 7 need 105 periods" in out


def test_scenarios_side_by_side(db: Path, tmp_path: Path) -> None:
    """growth +20% ramped over November on Flat: 3,000 + 0.2 x 100 x 15 = 3,300; a training run of 2 GPUs x
    24 h x $2 for 3 days from the 29th: 2 days in November = $192, on a series of its own."""
    path = tmp_path / "scenarios.yaml"
    path.write_text("""
- name: growth
  drivers:
    - growth: {pct: 20}
      scope: {ServiceName: Flat}
- name: training
  description: a short fine-tune
  drivers:
    - training_run: {gpus: 2, days: 3, gpu_type: H100, price_per_gpu_hour: 2}
      start: 2026-11-29
""")
    doc = as_json(db, "--scenario", str(path))
    base, growth, training = doc["scenarios"]
    assert [s["name"] for s in doc["scenarios"]] == ["base", "growth", "training"]
    flat = {s["name"]: next(r for r in s["series"] if r["series"] == "Flat") for s in doc["scenarios"]}
    assert (flat["base"]["total"], flat["growth"]["total"], flat["growth"]["vsBase"]) == ("3000", "3300", "300")
    assert flat["growth"]["vsBasePct"] == 0.1 and flat["training"]["vsBase"] == "0"
    run = next(r for r in training["series"] if r["series"] == "(scenario) training_run: 2 x H100")
    assert {k: run[k] for k in ("total", "totalLo95", "totalHi95", "vsBase")} == {
        "total": "192", "totalLo95": "192", "totalHi95": "192", "vsBase": "192"}
    assert training["total"]["vsBase"] == "192" and growth["total"]["vsBase"] == "300"
    assert float(training["total"]["totalHi95"]) == pytest.approx(float(base["total"]["totalHi95"]) + 192, abs=0.01)
    assert training["notes"] == ["training_run: 2 x H100: 24 h x 3 days at $2.00/GPU-hour (the scenario's price) = "
                                 "$288.00; $192.00 in the period from 2026-11-29 00:00, on (scenario) training_run: "
                                 "2 x H100"]
    code, out = cli(db, "--scenario", str(path))
    assert code == 0, out
    flat_text = " ".join(out.split())
    assert "3,300.00 (+300.00)" in flat_text and "training: a short fine-tune" in flat_text
    code, out = cli(db, "--scenario", str(path), "--format", "csv")
    assert out.splitlines()[0] == "scenario,series,total,totalLo80,totalHi80,totalLo95,totalHi95,vsBase,vsBasePct"


def test_a_bad_scenario_file_names_its_line(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("- name: a\n  drivers:\n    - training_run: {gpus: -1, days: 1, gpu_type: H100}\n")
    code, out = cli(db, "--scenario", str(path))
    assert code == 1 and "line 3: 0.drivers.0.training_run.gpus: Input should be greater than 0" in out


def test_a_month_by_the_hour(db: Path) -> None:
    """Daily charges read by the hour: each day's $100 lands on its first hour, a daily pattern seasonal naive
    repeats: November is still 3,000 for Flat."""
    doc = as_json(db, "--grain", "hour", "--history", "14d", "--by", "tag:team")
    search = next(r for r in doc["series"] if r["series"] == "search")
    assert search["naiveTotal"] == "3000" and doc["history"]["periods"] == 14 * 24
    assert doc["period"]["start"] == datetime(2026, 11, 1).isoformat()
