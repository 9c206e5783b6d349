"""GPU allocation, hand-computed (OpenCost style).

Window 2026-10-01 00:00..02:00 UTC, two hourly buckets.

  node    GPUs  cost per hour               workloads (gpu_share, when)
  node-a  8     80.00 from its FOCUS bill   train 4 GPUs 00:00-02:00; notebook MIG 1g.10gb (1/7) 00:30-01:30
  node-b  2     10.00 inventory price       ts time-sliced 1/4 00:00-01:00; big 2 GPUs + small 1 GPU 01:00-02:00
  node-z  -     not in the inventory        orphan 1 GPU (counted as unmatched, no cost to share)

  hour 00  node-a: train 40.00, notebook 80 x (0.5/7)/8 = 0.714285714285 (rounded down), idle 39.285714285715
           node-b: ts 10 x 0.25/2 = 1.25, idle 8.75 (1.75 GPU-hours)
  hour 01  node-a: as hour 00
           node-b: over-committed (3 GPUs held on 2): big 10 x 2/3 = 6.666666666666, small 3.333333333333,
                   idle 0.000000000001 (the rounding dust)
  total 2 x 80 + 2 x 10 = 180.00 = allocated + idle
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from helpers import write_focus_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifinops.analysis.gpu_allocation import IDLE, allocate
from aifinops.analysis.windows import parse_window
from aifinops.sources.base import sources
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

D = Decimal
WINDOW = parse_window("2026-10-01T00:00..2026-10-01T02:00", None)


def add_node(store: Store, node: str, gpus: int, resource_id: str | None, price: str | None) -> None:
    store.con.execute("INSERT INTO gpu_nodes (node, gpu_count, resource_id, hourly_price, _batch_id, _file, _row) "
                      "VALUES (?, ?, ?, ?, 0, 'test', 0)", [node, gpus, resource_id, price])


def add_workload(store: Store, wid: str, node: str, share: float, start: str, end: str | None) -> None:
    store.con.execute("INSERT INTO workloads (workload_id, name, source, node, gpu_share, start_ts, end_ts, "
                      "_batch_id, _file, _row) VALUES (?, ?, 'test', ?, ?, ?, ?, 0, 'test', 0)",
                      [wid, wid, node, share, start, end])


@pytest.fixture
def fleet(store: Store, tmp_path: Path) -> Store:
    bill = [{"ResourceId": "i-a", "EffectiveCost": "80.00", "BilledCost": "80.00",
             "ChargePeriodStart": f"2026-10-01T0{h}:00:00Z", "ChargePeriodEnd": f"2026-10-01T0{h + 1}:00:00Z"}
            for h in range(2)]
    ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "bill.csv", bill)])
    add_node(store, "node-a", 8, "i-a", None)
    add_node(store, "node-b", 2, None, "10.00")
    add_workload(store, "train", "node-a", 4, "2026-10-01 00:00", "2026-10-01 02:00")
    add_workload(store, "notebook", "node-a", 1 / 7, "2026-10-01 00:30", "2026-10-01 01:30")
    add_workload(store, "ts", "node-b", 0.25, "2026-10-01 00:00", "2026-10-01 01:00")
    add_workload(store, "big", "node-b", 2, "2026-10-01 01:00", None)
    add_workload(store, "small", "node-b", 1, "2026-10-01 01:00", "2026-10-01 03:00")
    add_workload(store, "orphan", "node-z", 1, "2026-10-01 00:00", None)
    return store


def test_golden(fleet: Store) -> None:
    res = allocate(fleet.con, WINDOW)
    got = {(r["bucket"].hour, r["node"], r["name"]): r["gpuCost"] for r in res.rows}
    notebook = D("0.714285714285")
    assert got == {
        (0, "node-a", "train"): D("40.000000000000"), (0, "node-a", "notebook"): notebook,
        (0, "node-a", IDLE): D("80") - D("40") - notebook,
        (0, "node-b", "ts"): D("1.25"), (0, "node-b", IDLE): D("8.75"),
        (1, "node-a", "train"): D("40"), (1, "node-a", "notebook"): notebook,
        (1, "node-a", IDLE): D("80") - D("40") - notebook,
        (1, "node-b", "big"): D("6.666666666666"), (1, "node-b", "small"): D("3.333333333333"),
        (1, "node-b", IDLE): D("0.000000000001"),
    }
    hours = {(r["bucket"].hour, r["node"], r["name"]): r["gpuHours"] for r in res.rows}
    assert hours[(0, "node-b", IDLE)] == pytest.approx(1.75)
    assert hours[(1, "node-b", IDLE)] == 0
    assert hours[(0, "node-a", "notebook")] == pytest.approx(0.5 / 7)
    assert res.node_cost == D("180") == sum(r["gpuCost"] for r in res.rows)
    assert res.unmatched_workloads == 1
    assert {r["cost_source"] for r in res.rows if r["node"] == "node-a"} == {"bill"}
    assert {r["cost_source"] for r in res.rows if r["node"] == "node-b"} == {"price"}


def test_a_daily_charge_is_prorated_over_hours(store: Store, tmp_path: Path) -> None:
    bill = [{"ResourceId": "i-d", "EffectiveCost": "240.00", "BilledCost": "240.00",
             "ChargePeriodStart": "2026-10-01T00:00:00Z", "ChargePeriodEnd": "2026-10-02T00:00:00Z"}]
    ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "daily.csv", bill)])
    add_node(store, "node-d", 1, "i-d", None)
    res = allocate(store.con, WINDOW)
    assert [r["gpuCost"] for r in res.rows] == [D("10"), D("10")]  # 240 / 24 per hour, all idle
    assert res.node_cost == D("20")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prices=st.lists(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=4), min_size=1,
                    max_size=3),
    jobs=st.lists(st.tuples(st.integers(0, 2), st.floats(0.01, 9, allow_nan=False), st.integers(0, 110),
                            st.integers(1, 180)), max_size=12),
)
def test_allocated_plus_idle_is_the_fleet_cost(tmp_path_factory, prices, jobs) -> None:
    """For any fleet and any jobs (over-commit included), every bucket's costs add up to the node cost."""
    path = tmp_path_factory.mktemp("alloc") / "s.duckdb"
    with Store(path) as store:
        for i, price in enumerate(prices):
            add_node(store, f"n{i}", 2 + i, None, str(price))
        for j, (node, share, start_min, minutes) in enumerate(jobs):
            start = f"2026-10-01 {start_min // 60:02d}:{start_min % 60:02d}"
            end_min = start_min + minutes
            end = None if end_min >= 180 else f"2026-10-01 {end_min // 60:02d}:{end_min % 60:02d}"
            add_workload(store, f"j{j}", f"n{node % len(prices)}", share, start, end)
        res = allocate(store.con, WINDOW)
        assert res.node_cost == sum(prices) * 2
        assert sum(r["gpuCost"] for r in res.rows) == res.node_cost
        assert all(r["gpuCost"] >= 0 for r in res.rows)
        from aifinops.analysis.gpu_allocation import SHARE_IDLE, aggregate

        for policy in SHARE_IDLE:  # sharing idle moves money between lines, never creates or loses any
            rows = aggregate(store.con, WINDOW, ["workload"], share_idle=policy)
            assert sum(r["totalCost"] for r in rows) == res.node_cost
            assert all(r["totalCost"] >= 0 for r in rows)


def test_aggregate_by_node_and_workload(fleet: Store) -> None:
    from aifinops.analysis.gpu_allocation import aggregate

    by_node = {r["node"]: r["gpuCost"] for r in aggregate(fleet.con, WINDOW, ["node"])}
    assert by_node == {"node-a": D("160"), "node-b": D("20")}
    by_workload = {r["workload"]: r["gpuCost"] for r in aggregate(fleet.con, WINDOW, ["workload"])}
    assert by_workload["train"] == D("80") and by_workload["notebook"] == D("1.428571428570")
    assert sum(by_workload.values()) == D("180")
    assert by_workload[IDLE] == D("180") - D("80") - D("1.428571428570") - D("1.25") - D("6.666666666666") \
        - D("3.333333333333")


def test_allocation_cli(fleet: Store) -> None:
    import json

    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app

    db = fleet.path
    fleet.close()
    res = CliRunner().invoke(app, ["--db", str(db), "allocation", "--window", "2026-10-01T00:00..2026-10-01T02:00",
                                   "--aggregate", "workload", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: Decimal(r["gpuCost"]) for r in json.loads(res.stdout)}
    assert "1 workload(s) held GPUs on nodes the inventory does not know" in res.stderr
    assert rows["train"] == D("80") and sum(rows.values()) == D("180")
    bad = CliRunner().invoke(app, ["--db", str(db), "allocation", "--aggregate", "colour"])
    assert bad.exit_code == 1 and "unknown aggregate 'colour'" in bad.output


def add_sample(store: Store, batch: int, ts: str, node: str, pod: str, **metrics: float) -> None:
    cols = ", ".join(metrics)
    marks = ", ".join("?" for _ in metrics)
    store.con.execute(f"INSERT INTO gpu_samples (ts, node, gpu, pod, {cols}, _batch_id, _file, _row) "
                      f"VALUES (?, ?, ?, ?, {marks}, ?, 'test', 0)",
                      [ts, node, f"{node}/0", pod, *metrics.values(), batch])


def test_activity_efficiency_and_the_three_idles(fleet: Store) -> None:
    """train: SM_ACTIVE 0.5 and 0.7 in hour 00 (mean 0.6; an older duplicate of the 0.7 sample said 0.1 and
    must not count), only GPU_UTIL 0.9 in hour 01 -> used 4 x 0.6 + 4 x 0.9 = 6 of 8 GPU-hours, efficiency
    0.75, inefficiency 40 x 0.4 + 40 x 0.1 = 20 (ingest marks such an older duplicate superseded; see
    test_source_dcgm::test_a_sample_seen_again_supersedes_the_older_copy). notebook: SM_ACTIVE 0.02 in
    hour 00 (below 5%: its cost that hour is allocated-idle), no telemetry in hour 01 (not counted either way)."""
    from aifinops.analysis.gpu_allocation import aggregate

    add_sample(fleet, 5, "2026-10-01 00:10", "node-a", "train", sm_active=0.5, gpu_util=1.0)
    add_sample(fleet, 4, "2026-10-01 00:40", "node-a", "train", sm_active=0.1)
    fleet.con.execute("UPDATE gpu_samples SET _superseded = true WHERE _batch_id = 4")
    add_sample(fleet, 5, "2026-10-01 00:40", "node-a", "train", sm_active=0.7)
    add_sample(fleet, 5, "2026-10-01 01:20", "node-a", "train", gpu_util=0.9)
    fleet.con.execute("UPDATE gpu_samples SET gpu = 'node-a/1' WHERE pod = 'train' AND ts = '2026-10-01 00:10'")
    add_sample(fleet, 5, "2026-10-01 00:45", "node-a", "notebook", sm_active=0.02)
    rows = {r["workload"]: r for r in aggregate(fleet.con, WINDOW, ["workload"])}
    train, notebook, idle = rows["train"], rows["notebook"], rows[IDLE]
    assert train["gpuEfficiency"] == pytest.approx(0.75)
    assert train["gpuCostAllocatedIdle"] == 0 and train["gpuCostInefficiency"] == D("20")
    assert notebook["gpuEfficiency"] == pytest.approx(0.02)
    assert notebook["gpuCostAllocatedIdle"] == D("0.714285714285")
    assert idle["gpuEfficiency"] is None and idle["gpuCostAllocatedIdle"] == 0
    order = [r["workload"] for r in aggregate(fleet.con, WINDOW, ["workload"])]
    assert order[:2] == [IDLE, "train"]  # by gpuCost: idle 87.32 > train 80
    hourly = {(r["bucket"].hour, r["name"]): r for r in allocate(fleet.con, WINDOW).rows}
    assert hourly[(0, "train")]["activity_metric"] == "sm_active"
    assert hourly[(1, "train")]["activity_metric"] == "gpu_util"


def test_accumulate_by_hour(fleet: Store) -> None:
    from aifinops.analysis.gpu_allocation import aggregate

    rows = aggregate(fleet.con, WINDOW, ["node"], accumulate="hour")
    got = {(r["start"].hour, r["node"]): r["gpuCost"] for r in rows}
    assert got == {(0, "node-a"): D("80"), (0, "node-b"): D("10"), (1, "node-a"): D("80"), (1, "node-b"): D("10")}
    assert [r["start"].hour for r in rows] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="unknown accumulate"):
        aggregate(fleet.con, WINDOW, ["node"], accumulate="week")


@pytest.mark.parametrize("policy", ["none", "weighted", "even", "owner"])
def test_share_idle_conserves_money(fleet: Store, policy: str) -> None:
    from aifinops.analysis.gpu_allocation import aggregate

    rows = aggregate(fleet.con, WINDOW, ["workload"], share_idle=policy)
    assert sum(r["totalCost"] for r in rows) == D("180")
    assert all(r["totalCost"] == r["gpuCost"] + r["gpuCostIdle"] for r in rows)


def test_share_idle_even_by_hand(fleet: Store) -> None:
    """Even: node-a's idle 39.285714285715 an hour splits in two, rounded down (19.642857142857 each, 1e-12 left);
    node-b hour 00 gives ts all 8.75; hour 01's 1e-12 cannot be split in two and stays idle."""
    from aifinops.analysis.gpu_allocation import aggregate

    rows = {r["workload"]: r for r in aggregate(fleet.con, WINDOW, ["workload"], share_idle="even")}
    assert rows["train"]["gpuCostIdle"] == rows["notebook"]["gpuCostIdle"] == D("39.285714285714")
    assert rows["ts"]["gpuCostIdle"] == D("8.75") and rows["big"]["gpuCostIdle"] == 0
    assert rows[IDLE]["totalCost"] == D("0.000000000003")
    weighted = {r["workload"]: r for r in aggregate(fleet.con, WINDOW, ["workload"], share_idle="weighted")}
    assert float(weighted["train"]["gpuCostIdle"]) == pytest.approx(2 * 39.285714285715 * 40 / 40.714285714285)
    assert weighted["ts"]["gpuCostIdle"] == D("8.75")


def test_share_idle_to_the_owner(fleet: Store) -> None:
    from aifinops.analysis.gpu_allocation import aggregate

    fleet.con.execute("UPDATE gpu_nodes SET owner = 'research' WHERE node = 'node-b'")
    owners = {r["owner"]: r for r in aggregate(fleet.con, WINDOW, ["owner"], share_idle="owner")}
    by_owner = {k: r["totalCost"] for k, r in owners.items()}
    assert by_owner["research"] == D("20")  # node-b's workloads and its idle
    assert owners["research"]["gpuCostUnallocated"] == D("8.75") + D("0.000000000001")  # that idle, on its own
    assert by_owner[IDLE] == D("160") - D("80") - D("1.428571428570")  # node-a has no owner: idle stays idle
    with pytest.raises(ValueError, match="unknown share-idle"):
        aggregate(fleet.con, WINDOW, ["owner"], share_idle="split")
