"""The demo's GPU fleet: real-format files the product's sources read, tied to the bill, money conserved."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from decimal import Decimal
from pathlib import Path

import pytest

from aifinops.analysis import gpu_allocation
from aifinops.analysis.windows import parse_window
from aifinops.demo.fleet import Scenario, build_scenario
from aifinops.demo.gpu_fleet import AZUREML_MAPPING, FleetFiles, plan_workloads, write_gpu_fleet
from aifinops.demo.run import run_demo
from aifinops.demo.synthetic import write_bill
from aifinops.model.gpu import hostlist_sql
from aifinops.sources.base import sources
from aifinops.store.connection import Store
from aifinops.store.ingest import BatchResult, ingest

DAYS = 14  # a short company history keeps the module at a few seconds


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(seed=7, days=DAYS)


@pytest.fixture(scope="module")
def fleet(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> FleetFiles:
    return write_gpu_fleet(scenario, tmp_path_factory.mktemp("gpu"), step_s=600)


@pytest.fixture(scope="module")
def loaded(scenario: Scenario, fleet: FleetFiles, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("store")
    store = Store(tmp / "store.duckdb")
    ingest(store, sources.get("focus")(), write_bill(scenario, tmp / "bill"))
    results = {kind: ingest(store, sources.get(kind)(**options), list(paths)) for kind, options, paths in (
        ("inventory", {}, [fleet.inventory]), ("kubernetes", {}, fleet.pods), ("slurm", {}, fleet.sacct),
        ("workloads-csv", AZUREML_MAPPING, [fleet.azureml]), ("nvml", {}, fleet.nvml), ("dcgm", {}, fleet.dcgm))}
    yield store, results
    store.close()


def test_the_sources_read_every_file_with_nothing_quarantined(loaded: tuple[Store, dict[str, BatchResult]]) -> None:
    _, results = loaded
    for kind, res in results.items():
        assert res.status == "loaded", kind
        assert res.rows_read == res.rows_loaded > 0, kind
        assert res.rows_quarantined == 0 and not res.warnings, (kind, res.warnings)


def test_every_node_is_a_gpu_instance_of_the_bill(loaded: tuple[Store, dict[str, BatchResult]],
                                                  scenario: Scenario) -> None:
    store, _ = loaded
    nodes = dict(store.con.execute("SELECT node, resource_id FROM gpu_nodes").fetchall())
    assert nodes == {i.node_name: i.resource_id for i in scenario.gpu_instances}
    billed = {r for (r,) in store.con.execute('SELECT DISTINCT "ResourceId" FROM focus_charges').fetchall()}
    assert set(nodes.values()) <= billed
    used = store.con.execute(f"SELECT DISTINCT unnest({hostlist_sql('node')}) FROM workloads").fetchall()
    assert {n for (n,) in used} <= set(nodes)
    assert {n for (n,) in store.con.execute("SELECT DISTINCT node FROM gpu_samples").fetchall()} <= set(nodes)
    assert store.con.execute("SELECT count(*) FROM workloads WHERE gpu_share > 0").fetchone()[0] > 300


def test_workloads_and_samples_only_while_their_instance_runs(loaded: tuple[Store, dict[str, BatchResult]],
                                                              scenario: Scenario) -> None:
    store, _ = loaded
    by_node = {i.node_name: i for i in scenario.gpu_instances}
    running = {i.node_name: scenario.running(i) for i in scenario.gpu_instances}
    end = scenario.start + dt.timedelta(days=scenario.days)
    rows = store.con.execute(f"SELECT {hostlist_sql('node')}, start_ts, coalesce(end_ts, $end) FROM workloads",
                             {"end": end}).fetchall()
    for nodes, start, stop in rows:
        assert start < stop
        first, last = scenario.hour_index(start), scenario.hour_index(stop - dt.timedelta(microseconds=1))
        for n in nodes:
            assert running[n][first:last + 1].all(), (n, start, stop, by_node[n].active)
    hours = store.con.execute("SELECT DISTINCT node, date_trunc('hour', ts) FROM gpu_samples").fetchall()
    assert hours and all(running[n][scenario.hour_index(h)] for n, h in hours)


def test_no_gpu_is_held_by_two_workloads_at_once(scenario: Scenario) -> None:
    end = scenario.start + dt.timedelta(days=scenario.days)
    held: dict[tuple[str, int], list[tuple[dt.datetime, dt.datetime]]] = {}
    for w in plan_workloads(scenario):
        for n in w.nodes:
            for g in w.gpus:
                held.setdefault((n.name, g), []).append((w.start, w.end or end))
    for spans in held.values():
        spans.sort()
        assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(spans))


@pytest.mark.parametrize("share_idle", ["none", "owner"])
def test_allocation_conserves_the_gpu_nodes_bill_exactly(loaded: tuple[Store, dict[str, BatchResult]],
                                                         share_idle: str) -> None:
    store, _ = loaded
    end = store.con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges').fetchone()[0]
    window = parse_window("7d", end)
    rows = gpu_allocation.aggregate(store.con, window, ["label:team", "label:account"], share_idle=share_idle)
    allocated = sum((r["totalCost"] for r in rows), Decimal(0))
    bill = store.con.execute(
        'SELECT sum("EffectiveCost") FROM focus_charges WHERE "ResourceId" IN (SELECT resource_id FROM gpu_nodes) '
        'AND "ChargePeriodStart" >= $s AND "ChargePeriodStart" < $e', {"s": window.start, "e": window.end},
    ).fetchone()[0]
    assert isinstance(allocated, Decimal) and allocated == bill == gpu_allocation.fleet_cost(store.con, window) > 0
    idle = [r for r in rows if r["label:team"] == gpu_allocation.IDLE]
    assert (len(idle) == 1) == (share_idle == "none")  # owner: every node has an owner, idle goes to teams
    assert gpu_allocation.unmatched_workloads(store.con, window) == 0


def test_the_story_shows_in_the_allocation(loaded: tuple[Store, dict[str, BatchResult]]) -> None:
    store, _ = loaded
    end = store.con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges').fetchone()[0]
    rows = gpu_allocation.aggregate(store.con, parse_window("7d", end), ["label:app"])
    app = {r["label:app"]: r for r in rows}
    assert app["jupyterhub"]["gpuEfficiency"] < 0.05  # notebooks held for hours, next to nothing computed
    assert app["jupyterhub"]["gpuCostAllocatedIdle"] > 0
    assert app["embed-backfill"]["gpuEfficiency"] > 0.8  # batch near full activity
    assert 0.05 < app["embed-small-triton"]["gpuEfficiency"] < 0.3  # inference: low and diurnal
    assert app[gpu_allocation.IDLE]["gpuCost"] > 0
    slurm = gpu_allocation.aggregate(store.con, parse_window("7d", end), ["label:account"])
    assert any(r["gpuEfficiency"] and r["gpuEfficiency"] > 0.4 for r in slurm)  # hpc_job ties samples to jobs
    phases = dict(store.con.execute("SELECT phase, count(*) FROM workloads GROUP BY 1").fetchall())
    assert phases.get("Failed", 0) + phases.get("FAILED", 0) > 0 and phases["Running"] > 0
    mig = store.con.execute("SELECT gpu_resource, gpu_share FROM workloads WHERE gpu_resource LIKE '%mig%' "
                            "GROUP BY ALL ORDER BY 1").fetchall()
    assert mig == [("nvidia.com/mig-1g.10gb", pytest.approx(1 / 7)), ("nvidia.com/mig-3g.40gb", pytest.approx(3 / 7))]
    assert store.con.execute("SELECT count(*) FROM gpu_samples WHERE gpu_instance_id IS NOT NULL AND pod IS NOT NULL "
                             "AND gr_engine_active IS NOT NULL").fetchone()[0] > 0


def _digest(files: FleetFiles) -> str:
    paths = [files.inventory, files.azureml, *files.pods, *files.sacct, *files.nvml, *files.dcgm]
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in paths)).hexdigest()


def test_same_seed_same_files(tmp_path: Path) -> None:
    def digest(seed: int, where: str) -> str:
        return _digest(write_gpu_fleet(build_scenario(seed=seed, days=7), tmp_path / where, telemetry_days=1))

    assert digest(3, "a") == digest(3, "b") != digest(4, "c")


def test_demo_summary_shows_idle_gpu_cost_by_team(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = run_demo(tmp_path / "demo", days=7).read_text()
    section = html[html.index("Idle GPU cost by team"):]
    section = section[:section.index("</section>")]
    for team in ("ml-platform", "recsys", "genai-apps", "search"):
        row = section[section.index(f"<td>{team}</td>"):]
        assert re.match(r"<td>[\w-]+</td><td class=\"n\">[1-9][\d,]*\.\d\d</td>", row), row[:80]
    assert "unallocatedIdleCost" in section and "%</td>" in section
    assert "GPU cost by team" in html and "idle GPU share" in html
    out = capsys.readouterr().out
    assert "Idle GPU cost by team" in out and "allocation --window 30d" in out
