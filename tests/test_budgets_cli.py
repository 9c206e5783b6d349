"""`aifinops budgets status` and `budgets list` end to end, from an aifinops.yaml: $100 a day of search's EC2 from
2026-10-01 to 2026-10-20 and $50 a day of ads' Bedrock; a $2,000 monthly budget for search (50% on day 10, 80% on
day 16, exhausted on day 20) and a $10,000 quarterly one for everything ($150 a day)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner
from waste_fixtures import add_charge

from aifinops.interfaces.cli.app import app
from aifinops.interfaces.cli.budgets import register
from aifinops.store.connection import Store

if not any(g.name == "budgets" for g in app.registered_groups):  # until app.py registers it
    register(app)

runner = CliRunner()
CONFIG = """budgets:
  - name: search-monthly
    scope:
      tag:team: search
      ServiceName: [Amazon EC2]
    amount: 2000
    actual_thresholds: [50, 80, 100]
    forecast_thresholds: [100, 150]
    owner: search-leads@example.com
  - name: all-quarterly
    amount: 10000
    period: quarter
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        for d in range(20):
            t = datetime(2026, 10, 1) + timedelta(days=d)
            add_charge(store.con, t, t + timedelta(days=1), "100", ServiceName="Amazon EC2", Tags={"team": "search"})
            add_charge(store.con, t, t + timedelta(days=1), "50", ServiceName="Amazon Bedrock", Tags={"team": "ads"})
    return path


def cli(db: Path, tmp_path: Path, *args: str, config: str = CONFIG) -> tuple[int, str]:
    f = tmp_path / "aifinops.yaml"
    f.write_text(config)
    res = runner.invoke(app, ["--db", str(db), "--config", str(f), "budgets", *args])
    return res.exit_code, res.output


def test_status_as_json(db: Path, tmp_path: Path) -> None:
    code, out = cli(db, tmp_path, "status", "--at", "2026-10-12", "--format", "json")
    assert code == 0, out
    search, everything = json.loads(out)
    # end of Oct 12: 12 x 100 spent; 19 days x 100 to come
    assert {k: search[k] for k in ("budget", "period", "amount", "spend", "share", "forecastSpend", "forecastLow95",
                                   "forecastHigh95", "exhaustion", "actual", "forecast", "at", "scope", "owner")} == {
        "budget": "search-monthly", "period": "2026-10", "amount": "2000", "spend": "1200", "share": 0.6,
        "forecastSpend": "3100", "forecastLow95": "3100", "forecastHigh95": "3100", "exhaustion": "2026-10-20",
        "actual": "50% 10-10", "forecast": "100% by 10-20, 150% by 10-30", "at": "2026-10-12T23:59:59.999999",
        "scope": "tag:team=search; ServiceName=Amazon EC2", "owner": "search-leads@example.com"}
    assert search["thresholds"][0] == {"basis": "actual", "percent": 50.0, "amount": "1000", "state": "crossed",
                                       "on": "2026-10-10"}
    # the quarter: 12 x 150 spent, 80 days x 150 to come = 13,800 >= 10,000, reached on day 67 (Dec 6: 10,050)
    assert (everything["period"], everything["spend"], everything["forecastSpend"], everything["exhaustion"],
            everything["forecast"]) == ("2026-Q4", "1800", "13800", "2026-12-06", "100% by 12-06")


def test_status_as_a_table_defaults_to_the_end_of_the_ledger(db: Path, tmp_path: Path) -> None:
    code, out = cli(db, tmp_path, "status")
    assert code == 0, out
    lines = [line for line in out.splitlines() if "search-monthly" in line or "all-quarterly" in line]
    assert len(lines) == 2
    cells = [c.strip() for c in lines[0].split("│")[1:-1]]
    assert cells == ["search-monthly", "2026-10", "2,000.00", "2,000.00", "100.0%", "3,100.00", "3,100..3,100",
                     "2026-10-20", "50% 10-10, 80% 10-16, 100% 10-20", "150% by 10-30"]
    assert "as of 2026-10-20 23:59 UTC" in out and "recurring fees are not forecast" in out


def test_status_as_csv(db: Path, tmp_path: Path) -> None:
    code, out = cli(db, tmp_path, "status", "--format", "csv")
    assert code == 0, out
    header, first, second = out.strip().splitlines()
    assert header.startswith("budget,period,amount,spend,share,forecastSpend,forecastLow80,")
    assert first.startswith("search-monthly,2026-10,2000,2000,1.0,3100,") and second.startswith("all-quarterly,")


def test_list(db: Path, tmp_path: Path) -> None:
    code, out = cli(db, tmp_path, "list", "--format", "json")
    assert code == 0, out
    assert json.loads(out) == [
        {"budget": "search-monthly", "scope": "tag:team=search; ServiceName=Amazon EC2", "amount": "2000",
         "period": "month", "actualThresholds": "50%, 80%, 100%", "forecastThresholds": "100%, 150%",
         "owner": "search-leads@example.com", "channels": ""},
        {"budget": "all-quarterly", "scope": "all spend", "amount": "10000", "period": "quarter",
         "actualThresholds": "50%, 80%, 100%", "forecastThresholds": "100%", "owner": None, "channels": ""}]


def test_no_budgets_shows_how_to_add_one(db: Path, tmp_path: Path) -> None:
    for cmd in ("status", "list"):
        code, out = cli(db, tmp_path, cmd, config="db: x.duckdb\n")
        assert code == 0, out
        assert "no budgets configured: add a `budgets:` list to aifinops.yaml" in out
        assert "  - name: search-monthly\n    scope:" in out
    # the snippet is a working configuration
    snippet = out[out.index("budgets:\n"):]
    code, out = cli(db, tmp_path, "list", "--format", "json",
                    config="alerts:\n  channels:\n    finops-slack: {type: slack, url: 'http://127.0.0.1:9/'}\n"
                           + snippet)
    assert code == 0, out
    assert json.loads(out)[0]["scope"] == "tag:team=search; ServiceName in (Amazon Bedrock, Amazon SageMaker)"


def test_errors_are_one_line(db: Path, tmp_path: Path) -> None:
    code, out = cli(db, tmp_path, "status", "--at", "the 12th")
    assert code == 1 and "--at: not a date or date-time: 'the 12th'" in out
    code, out = cli(db, tmp_path, "status", config=CONFIG.replace("ServiceName:", "service:"))
    assert code == 1 and "line 5: budgets.0.scope.service: budget 'search-monthly': unknown dimension 'service'" in out
