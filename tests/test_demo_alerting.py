"""The full demo (90 days) finds the story's three events as anomalies with their root causes, shows its budgets
with a forecast made mid-month beside what the month came to, and writes the aifinops.yaml its printed commands
use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aifinops.demo.fleet import build_scenario
from aifinops.demo.run import run_demo
from aifinops.interfaces.cli.app import app
from aifinops.interfaces.cli.output import console
from aifinops.store import anomalies as recorded
from aifinops.store.connection import Store

SCENARIO = build_scenario(seed=7, days=90)


@dataclass
class Demo:
    out: Path
    html: str
    console: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo90")
    with console.capture() as captured:
        html = run_demo(out).read_text()
    return Demo(out, html, captured.get())


def _recorded(demo: Demo) -> list[dict]:
    with Store(demo.out / "aifinops.duckdb", read_only=True) as s:
        return recorded.listing(s.con)


def _overlaps(a: dict, start: datetime, end: datetime) -> bool:
    return a["period_start"] < end and (a["period_end"] is None or a["period_end"] > start)


def test_the_story_events_are_found_with_their_root_causes(demo: Demo) -> None:
    found = _recorded(demo)
    egress = SCENARIO.spike("egress-export")
    [net] = [a for a in found if a["series"] == "Networking" and _overlaps(a, egress.start, egress.end)]
    assert (net["period_start"], net["period_end"]) == (egress.start, egress.end)  # the three days, exactly
    assert net["impact_cost"] > 30_000 and net["root_causes"][0]["contribution"] == pytest.approx(1.0, abs=0.01)
    sweep = SCENARIO.spike("forgotten-finetune")
    [ft] = [a for a in found if a["dimension"] == "tag:team" and a["series"] == "(untagged)"
            and _overlaps(a, sweep.start, sweep.end)]
    assert ft["root_causes"][0]["value"] == "Amazon Elastic Compute Cloud" and ft["owner"] == "finops@helix.ai"
    launch = SCENARIO.spike("copilot-launch")
    [cop] = [a for a in found if a["series"] == "Azure OpenAI Service" and _overlaps(a, launch.start, launch.end)]
    assert cop["period_start"] == launch.start and cop["impact_cost"] > 10_000


def test_the_summary_shows_anomalies_and_budgets_with_a_checked_forecast(demo: Demo) -> None:
    assert "Largest anomalies (last 60d)" in demo.console and "Budgets as of 2026-10-21" in demo.console
    assert "Largest anomalies" in demo.html and "actualSpend" in demo.html
    assert "Forecast for 2026-11 by cost layer" in demo.html and "forecast 2026-11" in demo.html
    assert "budgets forecast over" in demo.html and "genai-apps" in demo.html


def test_the_printed_commands_work_with_the_written_config(demo: Demo) -> None:
    cfg = demo.out / "aifinops.yaml"
    res = CliRunner().invoke(app, ["--config", str(cfg), "budgets", "status", "--at", "2026-10-21", "--format",
                                   "json"])
    assert res.exit_code == 0, res.output
    rows = {r["budget"]: r for r in json.loads(res.output)}
    assert set(rows) == {"ml-platform", "genai-apps", "recsys", "search", "ai-services"}
    assert rows["genai-apps"]["exhaustion"] is not None  # the copilot launch spends it before the month ends
    res = CliRunner().invoke(app, ["--config", str(cfg), "watch", "--once"])
    assert res.exit_code == 0 and "4 scan(s)" in res.output and "0 new" in res.output, res.output
