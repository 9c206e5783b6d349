"""The demo's planted waste: every anti-pattern is planted with a known size, each plant is found with its
planted saving, the story's own waste is found, and nothing else is reported above a small threshold."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aifinops import waste
from aifinops.analysis.windows import parse_window
from aifinops.demo.fleet import Scenario, build_scenario
from aifinops.demo.run import WASTE_WINDOW, run_demo
from aifinops.demo.waste_plants import STORY, Plant, plants, unplanned, write_plants
from aifinops.interfaces.cli.output import console
from aifinops.waste import RunResult
from aifinops.waste.engine import data_extent, rules  # not aifinops.waste.rules: once loaded, that is the package

DAYS = 30  # the plants' window: a shorter history plants nothing (and a commitment needs every hour)
#: an unplanted finding may save at most this a month (after reconciling overlaps): nothing else is reported
THRESHOLD = Decimal(50)
PLANTS = plants(build_scenario(seed=7, days=DAYS))


@dataclass
class Demo:
    out: Path
    html: str
    console: str
    result: RunResult
    seconds: float


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo built once (30 days of history), and the waste rules run again over its store, timed."""
    out = tmp_path_factory.mktemp("demo")
    with console.capture() as captured:
        html = run_demo(out, days=DAYS).read_text()
    con = duckdb.connect(str(out / "aifinops.duckdb"), read_only=True)
    try:
        window = parse_window(WASTE_WINDOW, data_extent(con)[1])
        started = time.perf_counter()
        result = waste.run(con, window)
        seconds = time.perf_counter() - started
    finally:
        con.close()
    return Demo(out, html, captured.get(), result, seconds)


def _found(demo: Demo, rule: str, scope: str) -> waste.Finding | None:
    return next((f for f in demo.result.findings if f.rule == rule and f.scope == scope), None)


def test_every_rule_has_a_plant() -> None:
    assert {p.rule for p in PLANTS} == set(rules.names())


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: f"{p.rule}:{p.scope}")
def test_each_plant_is_found_with_its_planted_saving(demo: Demo, plant: Plant) -> None:
    """The expected amounts are computed in waste_plants.plants from the plants' own parameters (hours, GPUs,
    $/hour, token counts, catalog prices); untagged-spend saves nothing by design, so its plant is the monthly
    untagged cost."""
    f = _found(demo, plant.rule, plant.scope)
    assert f is not None, f"{plant.rule} did not find the plant on {plant.scope} ({plant.story})"
    got = f.monthly_cost if plant.rule == "untagged-spend" else f.monthly_saving
    assert abs(got - plant.monthly_saving) <= Decimal(repr(plant.tolerance)) * plant.monthly_saving, (got, plant)
    assert f.recommendation and f.saving_formula and f.evidence
    if plant.rule == "untagged-spend":
        assert f.monthly_saving == 0 and f.owner is None
    else:
        assert f.pool and f.pool_cost and f.pool_cost >= f.monthly_saving > 0


def test_each_story_entry_is_found(demo: Demo) -> None:
    missing = [e for e in STORY if not any(e.matches(f.rule, f.scope) for f in demo.result.findings)]
    assert missing == []


def test_nothing_unplanted_is_reported_above_the_threshold(demo: Demo, scenario: Scenario) -> None:
    others = {(r, s) for r, s in unplanned([(f.rule, f.scope) for f in demo.result.findings], scenario)}
    loud = [(f.rule, f.scope, f.achievable_saving) for f in demo.result.findings
            if (f.rule, f.scope) in others and f.achievable_saving >= THRESHOLD]
    assert loud == []
    assert others  # the rules report more than the plants and the story (zero-saving findings): the check bites


def test_every_rule_ran_on_the_demo_store(demo: Demo) -> None:
    assert demo.result.skipped == []
    assert sorted(demo.result.ran) == sorted(rules.names())
    print(f"\nwaste.run over the {DAYS}-day demo store: {demo.seconds:.2f} s; per rule: "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(demo.result.seconds.items())))


def test_the_demo_keeps_the_findings_in_the_store(demo: Demo) -> None:
    con = duckdb.connect(str(demo.out / "aifinops.duckdb"), read_only=True)
    try:
        kept = dict(con.execute("SELECT finding_id, achievable_saving FROM findings WHERE active").fetchall())
    finally:
        con.close()
    assert {f.id for f in demo.result.findings} == set(kept)
    top = demo.result.findings[0]
    assert kept[top.id] == top.achievable_saving


def test_the_summary_lists_the_top_findings(demo: Demo) -> None:
    html = demo.html
    section = html[html.index("Top waste findings (last 30d)"):]
    section = section[:section.index("</section>")]
    shown = [f for f in demo.result.findings if f.status != "dismissed"][:10]
    for f in shown:
        assert f"<td>{f.id}</td>" in section
    assert demo.result.findings[10].id not in section
    for column in ("rule", "scope", "owner", "monthlyWaste", "achievableSaving", "recommendation"):
        assert f"<th>{column}</th>" in section
    assert "achievable saving / month" in html
    total = sum((f.achievable_saving for f in demo.result.findings), Decimal(0))
    assert f"${total:,.0f}" in html
    out = demo.console
    assert "Top waste findings" in out and "achievable saving / month" in out
    assert "6a. planted waste" in out and "6h. planted waste" in out
    assert f"recommend --window {WASTE_WINDOW}" in out


def test_a_short_history_plants_nothing(tmp_path: Path) -> None:
    short = build_scenario(seed=7, days=7)
    assert plants(short) == []
    files = write_plants(short, tmp_path)
    assert not (files.bill or files.pods or files.nvml or files.otel) and not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(seed=7, days=DAYS)
