"""GPU allocation beyond the GPU share: CPU and memory, on-prem TCO, shared namespaces, cost by use, energy
and carbon, Slurm hostlists, node-level telemetry, partial hours. Every number below is computed by hand.

Window 2026-10-01 00:00..01:00 (one hourly bucket) unless a test says otherwise.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifinops.analysis.gpu_allocation import IDLE, SHARE_IDLE, SHARED, aggregate, allocate, fleet_cost
from aifinops.analysis.windows import Window
from aifinops.config import Settings
from aifinops.store.connection import Store

D = Decimal
HOUR = Window(datetime(2026, 10, 1, 0), datetime(2026, 10, 1, 1))


def insert(store: Store, table: str, **cols: object) -> None:
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    store.con.execute(f"INSERT INTO {table} ({names}, _batch_id, _file, _row) VALUES ({marks}, 1, 'test', 0)",
                      list(cols.values()))


def node(store: Store, name: str, gpus: int, price: str | None = None, **cols: object) -> None:
    insert(store, "gpu_nodes", node=name, gpu_count=gpus, hourly_price=price, **cols)


def job(store: Store, wid: str, on: str, gpus: float, start: str = "2026-10-01 00:00",
        end: str | None = "2026-10-01 01:00", **cols: object) -> None:
    insert(store, "workloads", workload_id=wid, name=wid, source="test", node=on, gpu_share=gpus,
           start_ts=start, end_ts=end, **cols)


def sample(store: Store, ts: str, on: str, gpu: str, **cols: object) -> None:
    insert(store, "gpu_samples", ts=ts, node=on, gpu=gpu, **cols)


def by(rows: list[dict], key: str = "workload") -> dict:
    return {r[key]: r for r in rows}


def test_cpu_and_memory_shares_by_requests(store: Store) -> None:
    """n1: $100/h, 8 GPUs, 100 cores, 1000 MiB; cpu_share 0.1 and memory_share 0.1 -> pools 80 / 10 / 10.
    a: 4 GPUs, 50 cores, 200 MiB -> GPU 80x4/8 = 40, CPU 10x50/100 = 5, memory 10x200/1000 = 2 (47 in all).
    b: CPU only, 25 cores -> CPU 2.5. Idle: GPU 40, CPU 2.5, memory 8 (50.5). 47 + 2.5 + 50.5 = 100.
    n2 ($30/h, capacity unknown): c 10 cores, d 20 cores -> CPU pool 3 split over the requests: 1 and 2."""
    node(store, "n1", 8, "100", cpu_cores=100, memory_mib=1000)
    node(store, "n2", 1, "30")
    job(store, "a", "n1", 4, cpu_request=50, memory_request_mib=200)
    job(store, "b", "n1", 0, cpu_request=25)
    job(store, "c", "n2", 0, cpu_request=10)
    job(store, "d", "n2", 0, cpu_request=20)
    s = Settings(allocation={"cpu_share": "0.1", "memory_share": "0.1"})
    rows = {(r["workload"], r["node"]): r for r in aggregate(store.con, HOUR, ["workload", "node"], settings=s)}
    a, b, idle1 = rows[("a", "n1")], rows[("b", "n1")], rows[(IDLE, "n1")]
    assert (a["gpuCost"], a["cpuCost"], a["ramCost"], a["totalCost"]) == (D(40), D(5), D(2), D(47))
    assert (b["gpuCost"], b["cpuCost"], b["totalCost"]) == (D(0), D("2.5"), D("2.5"))
    assert (idle1["gpuCost"], idle1["cpuCost"], idle1["ramCost"], idle1["totalCost"]) == (D(40), D("2.5"), D(8),
                                                                                          D("50.5"))
    assert a["cpuCoreHours"] == 50 and a["ramByteHours"] == 200 * 2**20 and idle1["cpuCoreHours"] == 25
    assert rows[("c", "n2")]["cpuCost"] == D(1) and rows[("d", "n2")]["cpuCost"] == D(2)
    assert rows[(IDLE, "n2")]["cpuCost"] == 0 and rows[(IDLE, "n2")]["gpuCost"] == D(24)  # 30 - 3 - 3
    assert rows[(IDLE, "n2")]["ramCost"] == D(3)  # no memory requests: the memory pool is idle
    assert sum(r["totalCost"] for r in rows.values()) == D(130) == fleet_cost(store.con, HOUR)
    # default: the whole instance is GPU cost; CPU-only workloads are not allocation lines
    plain = by(aggregate(store.con, HOUR, ["workload"]))
    assert plain["a"]["gpuCost"] == D(50) and "b" not in plain and plain["a"]["cpuCost"] == 0
    with pytest.raises(ValueError, match="cpu_share \\+ memory_share"):
        Settings(allocation={"cpu_share": "0.6", "memory_share": "0.5"})


def test_onprem_tco(store: Store) -> None:
    """H100 node, 8 GPUs, no bill or price: (350640 / (4 x 8766 h) = 10.00 + 8 x 700 W = 5.6 kW x $0.10 x PUE 1.5
    = 0.84) x 1.25 overhead = 13.55 $/h. The research pool's own rule (power 4 kW) wins for its node:
    (87660 / (1 x 8766) = 10 + 4 x 0.10 x 1.0 = 0.4) x 1.0 = 10.40. The price table prices what TCO does not."""
    node(store, "dgx-1", 8, gpu_model="NVIDIA H100 80GB HBM3", pricing_category="on-prem")
    node(store, "dgx-2", 8, gpu_model="NVIDIA H100 80GB HBM3", node_pool="research")
    node(store, "t4-1", 2, gpu_model="Tesla T4")
    s = Settings(onprem_tco=[
        {"match": "H100", "node_price": 350640, "years": 4, "kwh_price": "0.10", "pue": 1.5, "overhead_pct": 25},
        {"match": "H100", "node_pool": "research", "node_price": 87660, "years": 1, "power_kw": 4, "kwh_price": "0.1"},
    ], gpu_prices={"T4": "0.35"})
    res = allocate(store.con, HOUR, s)
    cost = {r["node"]: (r["gpuCost"], r["cost_source"]) for r in res.rows}
    assert float(cost["dgx-1"][0]) == pytest.approx(13.55, abs=1e-9) and cost["dgx-1"][1] == "tco"
    assert float(cost["dgx-2"][0]) == pytest.approx(10.40, abs=1e-9)
    assert cost["t4-1"] == (D("0.7"), "price table")
    assert res.node_cost == sum(r["gpuCost"] for r in res.rows)


def test_shared_namespaces_spread_over_the_others(store: Store) -> None:
    """n3 ($10/h, 2 GPUs): mon (namespace monitoring, 0.5 GPU) 2.50, x 5.00, idle 2.50. n4 ($20/h, 1 GPU): y 20.
    Shared 2.50 weighted by cost over x (5) and y (20): x 0.50, y 2.00; even: 1.25 each. The __shared__ line keeps
    its 0.5 GPU-hours at no cost. Total 30 either way."""
    node(store, "n3", 2, "10")
    node(store, "n4", 1, "20")
    job(store, "mon", "n3", 0.5, namespace="monitoring")
    job(store, "x", "n3", 1, namespace="team-a")
    job(store, "y", "n4", 1, namespace="team-b")
    weighted = by(aggregate(store.con, HOUR, ["workload"], share_namespaces=["monitoring"]))
    assert (weighted["x"]["sharedCost"], weighted["y"]["sharedCost"]) == (D("0.5"), D(2))
    assert (weighted["x"]["totalCost"], weighted["y"]["totalCost"]) == (D("5.5"), D(22))
    assert (weighted[SHARED]["gpuHours"], weighted[SHARED]["totalCost"]) == (0.5, 0)
    assert weighted[IDLE]["totalCost"] == D("2.5")
    even = by(aggregate(store.con, HOUR, ["workload"], share_namespaces=["monitoring"], share_split="even"))
    assert even["x"]["sharedCost"] == even["y"]["sharedCost"] == D("1.25")
    by_label = by(aggregate(store.con, HOUR, ["namespace"], share_labels={"app": "none"}), "namespace")
    assert by_label["monitoring"]["totalCost"] == D("2.5")  # no workload matches: nothing is shared
    for split in ("weighted", "even"):
        for policy in SHARE_IDLE:
            rows = aggregate(store.con, HOUR, ["label:team"], share_namespaces=["monitoring"], share_split=split,
                             share_idle=policy)
            assert sum(r["totalCost"] for r in rows) == D(30)


def test_shared_cost_stays_a_line_when_nothing_else_ran(store: Store) -> None:
    node(store, "n3", 2, "10")
    job(store, "mon", "n3", 0.5, namespace="monitoring")
    rows = by(aggregate(store.con, HOUR, ["workload"], share_namespaces=["monitoring"]))
    assert rows[SHARED]["totalCost"] == D("2.5") and rows[IDLE]["totalCost"] == D("7.5")


def test_cost_by_use_and_energy(store: Store) -> None:
    """n5: $8/h, 2 A100s, region us-east-1 (400 g/kWh). p: 1 GPU at SM_ACTIVE 0.9 and 500 W; q: 1 GPU at GPU_UTIL
    0.1, no power. By allocation 4 and 4; by use 8 x 0.9/1.0 = 7.20 and 0.80. Energy: p 1 GPU-h x 500 W = 0.5 kWh
    (0.2 kg CO2e); q estimated 1 x 400 W (A100 TDP) x 0.1 = 0.04 kWh. n6: $6/h, 3 GPUs, r holds 1 GPU without
    telemetry, 2 idle GPUs sampled at 60 W with no pod: idle energy 2 x 0.06 = 0.12 kWh; r by use = by allocation."""
    node(store, "n5", 2, "8", gpu_model="NVIDIA A100-SXM4-40GB", region="us-east-1")
    node(store, "n6", 3, "6", region="eu-north-1")
    job(store, "p", "n5", 1, namespace="ml")
    job(store, "q", "n5", 1, namespace="ml")
    job(store, "r", "n6", 1)
    sample(store, "2026-10-01 00:10", "n5", "g0", pod="p", namespace="ml", sm_active=0.9, power_w=500.0)
    sample(store, "2026-10-01 00:20", "n5", "g1", pod="q", namespace="ml", gpu_util=0.1)
    sample(store, "2026-10-01 00:20", "n6", "g7", pod="r-other", namespace="x", gpu_util=0.5)  # labels: no fallback
    sample(store, "2026-10-01 00:30", "n6", "g8", power_w=60.0)
    s = Settings(carbon={"g_per_kwh": {"us-east-1": 400}})
    rows = by(aggregate(store.con, HOUR, ["workload"], settings=s))
    p, q, r = rows["p"], rows["q"], rows["r"]
    assert (p["gpuCost"], q["gpuCost"], p["gpuCostByUse"], q["gpuCostByUse"]) == (D(4), D(4), D("7.2"), D("0.8"))
    assert p["energyKwh"] == pytest.approx(0.5) and p["energyEstimatedKwh"] == 0 and p["co2eKg"] == pytest.approx(0.2)
    assert q["energyKwh"] == pytest.approx(0.04) and q["energyEstimatedKwh"] == pytest.approx(0.04)
    assert r["gpuCostByUse"] == r["gpuCost"] == D(2) and r["energyKwh"] is None and r["gpuEfficiency"] is None
    assert rows[IDLE]["energyKwh"] == pytest.approx(0.12) and rows[IDLE]["co2eKg"] is None  # no intensity there
    hourly = {x["name"]: x for x in allocate(store.con, HOUR, s).rows if x["node"] == "n5"}
    assert (hourly["p"]["activity_metric"], hourly["q"]["activity_metric"]) == ("sm_active", "gpu_util")
    assert hourly["p"]["activity_scope"] == "pod"


def test_cost_by_use_keeps_the_total_and_absorbs_rounding(store: Store) -> None:
    """n7: $10/h, 3 GPUs, three 1-GPU jobs: by allocation 3.333333333333 each (1e-12 of dust stays idle); by use
    at SM_ACTIVE 0.2, 0.3, 0.4 the shares do not divide evenly either, and the largest user absorbs that dust, so
    by use adds up to exactly what by allocation does (9.999999999999)."""
    node(store, "n7", 3, "10")
    for name, act in (("u1", 0.2), ("u2", 0.3), ("u3", 0.4)):
        job(store, name, "n7", 1)
        sample(store, "2026-10-01 00:05", "n7", name, pod=name, sm_active=act)
    rows = by(aggregate(store.con, HOUR, ["workload"]))
    assert sum(rows[n]["gpuCostByUse"] for n in ("u1", "u2", "u3")) == D("9.999999999999")
    assert sum(rows[n]["gpuCost"] for n in ("u1", "u2", "u3")) == D("9.999999999999")
    assert float(rows["u3"]["gpuCostByUse"]) == pytest.approx(10 * 0.4 / 0.9)
    assert rows["u1"]["gpuCostByUse"] == D("2.222222222222")  # 9.999999999999 x 0.2 / 0.9, rounded down


def test_slurm_hostlist_and_hpc_job_activity(store: Store) -> None:
    """Job 4101 on gpu[01-02] holds 16 GPUs: 8 on each $16/h node -> 16 + 16. dcgm-exporter's hpc_job label
    gives SM_ACTIVE 0.8 on gpu01 and 0.4 on gpu02: efficiency (8 x 0.8 + 8 x 0.4) / 16 = 0.6. Job 4102 on
    gpu[03] (not in the inventory) is unmatched."""
    node(store, "gpu01", 8, "16")
    node(store, "gpu02", 8, "16")
    job(store, "4101", "gpu[01-02]", 16, labels={"account": "research"})
    job(store, "4102", "gpu[03]", 8)
    sample(store, "2026-10-01 00:30", "gpu01", "gpu01/0", job="4101", sm_active=0.8)
    sample(store, "2026-10-01 00:30", "gpu02", "gpu02/0", job="4101", sm_active=0.4)
    res = allocate(store.con, HOUR)
    got = {(r["node"], r["name"]): (r["gpuHours"], r["gpuCost"], r["activity_scope"]) for r in res.rows}
    assert got[("gpu01", "4101")] == (8.0, D(16), "job") and got[("gpu02", "4101")] == (8.0, D(16), "job")
    assert got[("gpu01", IDLE)][1] == 0 and res.unmatched_workloads == 1
    team = by(aggregate(store.con, HOUR, ["label:account"]), "label:account")
    assert team["research"]["totalCost"] == D(32) and team["research"]["gpuEfficiency"] == pytest.approx(0.6)


def test_node_level_activity_when_samples_name_no_workload(store: Store) -> None:
    """nvidia-smi on bare metal: samples carry no pod or job, so a workload on the node gets the node's mean
    (GPU_UTIL 0.5 and 0.7 -> 0.6), marked scope node; the idle energy uses the same samples' power."""
    node(store, "bm1", 2, "4")
    job(store, "bm-train", "bm1", 2)
    sample(store, "2026-10-01 00:01", "bm1", "bm1/0", gpu_util=0.5, power_w=300.0)
    sample(store, "2026-10-01 00:01", "bm1", "bm1/1", gpu_util=0.7, power_w=340.0)
    row = next(r for r in allocate(store.con, HOUR).rows if r["name"] == "bm-train")
    assert (row["activity"], row["activity_scope"], row["activity_metric"]) == (pytest.approx(0.6), "node", "gpu_util")
    assert row["energyKwh"] == pytest.approx(2 * 0.32)


def test_irregular_and_missing_samples(store: Store) -> None:
    """Documented: an hour's activity is the mean of its samples (irregular sampling weighs the dense part more);
    an hour without samples is unknown and left out of the efficiency. Hour 00: 0.9, 0.9, 0.9 (a burst) and 0.1
    -> 0.7; hour 01: none. Efficiency over the window = 0.7 (hour 01 not counted), by use = by allocation."""
    window = Window(datetime(2026, 10, 1, 0), datetime(2026, 10, 1, 2))
    node(store, "n8", 1, "2")
    job(store, "irr", "n8", 1, end="2026-10-01 02:00")
    for ts, act in (("00:00:00", 0.9), ("00:00:15", 0.9), ("00:00:30", 0.9), ("00:50:00", 0.1)):
        sample(store, f"2026-10-01 {ts}", "n8", "n8/0", pod="irr", sm_active=act)
    sample(store, "2026-10-01 00:00:30", "n8", "n8/0", pod="irr", sm_active=0.0)
    store.con.execute("UPDATE gpu_samples SET _superseded = true WHERE sm_active = 0.0")  # an older copy
    rows = by(aggregate(store.con, window, ["workload"]))
    assert rows["irr"]["gpuEfficiency"] == pytest.approx(0.7) and rows["irr"]["gpuCost"] == D(4)
    hourly = [r for r in allocate(store.con, window).rows if r["name"] == "irr"]
    assert [r["activity"] for r in hourly] == [pytest.approx(0.7), None]


def test_a_partial_last_hour_costs_its_part(store: Store) -> None:
    """Window 00:00..01:30 on a $10/h node: 10 + 5; a job that runs to the end holds 1.5 GPU-hours."""
    window = Window(datetime(2026, 10, 1, 0), datetime(2026, 10, 1, 1, 30))
    node(store, "n9", 1, "10")
    job(store, "long", "n9", 1, end=None)
    rows = by(aggregate(store.con, window, ["workload"]))
    assert rows["long"]["gpuCost"] == D(15) and rows["long"]["gpuHours"] == pytest.approx(1.5)
    assert fleet_cost(store.con, window) == D(15)


def test_a_node_listed_twice_counts_once(store: Store) -> None:
    node(store, "dup", 1, "10")
    node(store, "dup", 1, "10")
    assert fleet_cost(store.con, HOUR) == D(10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prices=st.lists(st.decimals(min_value=D("-5"), max_value=D("300"), places=3), min_size=1, max_size=3),
    jobs=st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0, 1 / 7, 0.25, 1, 2, 5]), st.integers(0, 100),
                            st.integers(1, 150), st.integers(0, 40), st.sampled_from(["ml", "kube-system", "web"]),
                            st.sampled_from([None, 0.0, 0.03, 0.5, 1.0])), max_size=10),
    cpu=st.sampled_from(["0", "0.1"]), mem=st.sampled_from(["0", "0.05"]),
    policy=st.sampled_from(SHARE_IDLE), split=st.sampled_from(["weighted", "even"]),
    shared=st.booleans(),
)
def test_money_is_conserved_for_every_policy(tmp_path_factory, prices, jobs, cpu, mem, policy, split, shared) -> None:
    """allocated + idle + shared = the fleet's cost, exactly, whatever the fleet, jobs, telemetry, CPU/memory
    split, idle policy and shared namespaces; by use has the same total as by allocation (nothing shared)."""
    window = Window(datetime(2026, 10, 1, 0), datetime(2026, 10, 1, 2))
    with Store(tmp_path_factory.mktemp("cons") / "s.duckdb") as store:
        for i, price in enumerate(prices):
            node(store, f"n{i}", 2 + i, str(price), cpu_cores=16 * (i + 1) if i else None, memory_mib=1024)
        for j, (n, share, start, minutes, cores, ns, act) in enumerate(jobs):
            end = start + minutes
            job(store, f"j{j}", f"n{n % len(prices)}", share, f"2026-10-01 {start // 60:02d}:{start % 60:02d}",
                None if end >= 120 else f"2026-10-01 {end // 60:02d}:{end % 60:02d}", namespace=ns,
                cpu_request=cores, memory_request_mib=cores * 10, labels={"team": ns})
            if act is not None:
                sample(store, f"2026-10-01 00:{j:02d}", f"n{n % len(prices)}", f"g{j}", pod=f"j{j}", namespace=ns,
                       sm_active=act)
        s = Settings(allocation={"cpu_share": cpu, "memory_share": mem})
        total = fleet_cost(store.con, window)
        assert total == sum(prices) * 2
        ns = ["kube-system"] if shared else None
        for grouping in (["workload"], ["label:team", "node"], ["owner"]):
            rows = aggregate(store.con, window, grouping, settings=s, share_idle=policy, share_split=split,
                             share_namespaces=ns)
            assert sum(r["totalCost"] for r in rows) == total
            if not shared:
                assert sum(r["gpuCostByUse"] for r in rows) == sum(r["gpuCost"] for r in rows)
        if min(prices) >= 0:
            idle = [r for r in allocate(store.con, window, s).rows if r["kind"] == "idle"]
            assert all(r["gpuCost"] >= 0 and r["cpuCost"] >= 0 and r["ramCost"] >= 0 for r in idle)


def test_allocation_cli_shares_and_settings(store: Store, tmp_path) -> None:
    """The flags override aifinops.yaml; the table leaves out empty columns, csv/json keep every field."""
    import json

    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app

    node(store, "n3", 2, "10")
    node(store, "n4", 1, "20")
    job(store, "mon", "n3", 0.5, namespace="monitoring", labels={"app": "prometheus"})
    job(store, "x", "n3", 1, namespace="team-a")
    job(store, "y", "n4", 1, namespace="team-b")
    db = store.path
    store.close()
    cfg = tmp_path / "aifinops.yaml"
    cfg.write_text("allocation:\n  share_namespaces: [monitoring]\n  share_split: even\n")
    run = CliRunner().invoke
    base = ["--db", str(db), "--config", str(cfg), "allocation", "--window", "2026-10-01T00:00..2026-10-01T01:00",
            "--aggregate", "workload"]
    res = run(app, [*base, "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["workload"]: r for r in json.loads(res.stdout)}
    assert Decimal(rows["x"]["sharedCost"]) == Decimal("1.25") and "energyKwh" in rows["x"]
    res = run(app, [*base, "--format", "json", "--share-split", "weighted", "--share-labels", "app=prometheus"])
    rows = {r["workload"]: r for r in json.loads(res.stdout)}
    assert Decimal(rows["x"]["sharedCost"]) == Decimal("0.5")
    table = run(app, [*base])
    assert table.exit_code == 0 and "sharedCost" in table.stdout and "cpuCost" not in table.stdout
    bad = run(app, [*base, "--share-labels", "app"])
    assert bad.exit_code == 1 and "expected KEY=VALUE" in bad.output
    bad = run(app, [*base, "--share-split", "random"])
    assert bad.exit_code == 1 and "unknown share-split 'random'" in bad.output


def test_a_workload_without_a_start_began_before_the_data(store: Store) -> None:
    """start_ts NULL means it started before the data (model.gpu): it holds its GPUs from the window's start."""
    node(store, "n10", 2, "10")
    job(store, "old", "n10", 1, start=None, end="2026-10-01 00:30")
    rows = by(aggregate(store.con, HOUR, ["workload"]))
    assert rows["old"]["gpuHours"] == pytest.approx(0.5) and rows["old"]["gpuCost"] == D("2.5")


def test_a_stopped_instance_has_no_idle_hours(store: Store, tmp_path) -> None:
    """i-s bills $8 for 00:00-01:00 only; the ledger runs to 02:00 (another resource), so 01:00-02:00 the
    instance was stopped: no cost, no capacity, no idle GPU-hours. After the ledger's end (02:00-03:00) the
    bill has not arrived yet, and the inventory price ($5/h) stands in."""
    from helpers import write_focus_csv

    from aifinops.sources.base import sources
    from aifinops.store.ingest import ingest

    bill = [{"ResourceId": "i-s", "EffectiveCost": "8", "BilledCost": "8", "ChargePeriodStart": "2026-10-01T00:00:00Z",
             "ChargePeriodEnd": "2026-10-01T01:00:00Z"},
            {"ResourceId": "bucket", "EffectiveCost": "1", "BilledCost": "1",
             "ChargePeriodStart": "2026-10-01T01:00:00Z", "ChargePeriodEnd": "2026-10-01T02:00:00Z"}]
    ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "bill.csv", bill)])
    node(store, "ns", 2, "5", resource_id="i-s")
    window = Window(datetime(2026, 10, 1, 0), datetime(2026, 10, 1, 3))
    hourly = {r["bucket"].hour: r for r in allocate(store.con, window).rows if r["kind"] == "idle"}
    assert [(hourly[h]["gpuCost"], hourly[h]["gpuHours"], hourly[h]["cost_source"]) for h in (0, 1, 2)] == [
        (D(8), 2.0, "bill"), (D(0), 0.0, "stopped"), (D(5), 2.0, "price")]
    assert fleet_cost(store.con, window) == D(13)
