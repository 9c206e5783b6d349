"""``idle-gpu-capacity`` by hand, in both modes.

Placement: pool-a has three 4-GPU nodes at $4/h ($1 per GPU-hour); window 10 h.
  w1 holds 4 GPUs of n1 all 10 h; w2 holds 1 GPU of n2 for the first 5 h; n3 runs empty.
  idle GPU-hours: n2 3 x 5 + 4 x 5 = 35, n3 40 -> 75, $75. Fewest idle in an hour: 3 + 4 = 7 -> one whole
  4-GPU node removable -> saving 4 x 10 h x $1 = $40. Per month (x 730.5 / 10): waste $5,478.75, saving
  $2,922, pool cost $120 -> $8,766.
Capacity (workloads name no node): four 2-GPU nodes priced at $2 per GPU-hour by gpu_prices; one workload
  holds 2 GPUs for 10 h: idle 8 x 10 - 20 = 60 GPU-hours, $120; fewest idle 6 -> 3 nodes -> saving $120.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from waste_fixtures import T0, add_node, add_workload, findings, window

from aifinops.config import Settings
from aifinops.store.connection import Store

D = Decimal
W = window(10)
M = D("73.05")  # 730.5 / 10


def _pool(store: Store) -> None:
    for node in ("n1", "n2", "n3"):
        add_node(store.con, node, 4, "4", owner="ml-platform")
    add_workload(store.con, "w1", "n1", 4, T0, None, labels={"team": "search"})
    add_workload(store.con, "w2", "n2", 1, T0, T0.replace(hour=5), labels={"team": "search"})


def test_an_idle_node_is_found_and_priced(store: Store) -> None:
    _pool(store)
    [f] = findings(store.con, W, "idle-gpu-capacity").findings
    assert (f.scope_kind, f.scope, f.owner, f.confidence) == ("node_pool", "pool-a", "ml-platform", "high")
    assert f.evidence["mode"] == "placement"
    assert (f.evidence["idle_gpu_hours"], f.evidence["min_idle_gpus_in_an_hour"]) == (75.0, 7.0)
    assert f.monthly_waste == pytest.approx(D(75) * M, abs=D("1e-6"))
    assert f.monthly_saving == pytest.approx(D(40) * M, abs=D("1e-6"))
    assert f.monthly_cost == pytest.approx(D(120) * M, abs=D("1e-6"))
    assert f.recommendation.startswith("Remove 1 node(s) (4 GPUs) from pool-a")
    assert (f.pool, f.achievable_saving) == ("node_pool:pool-a", f.monthly_saving)


def test_headroom_and_autoscaling_options(store: Store) -> None:
    _pool(store)
    [kept] = findings(store.con, W, "idle-gpu-capacity", headroom_gpus=4).findings
    assert kept.monthly_saving == 0 and kept.recommendation.startswith("Consolidate pool-a")
    [auto] = findings(store.con, W, "idle-gpu-capacity", autoscale_capture=0.5).findings
    assert auto.monthly_saving == pytest.approx((D(40) + D("0.5") * D(35)) * M, abs=D("1e-6"))


def test_a_busy_pool_and_a_tiny_one_stay_silent(store: Store) -> None:
    add_node(store.con, "n1", 4, "4")
    add_workload(store.con, "w1", "n1", 4, T0, None)
    assert findings(store.con, W, "idle-gpu-capacity").findings == []
    add_node(store.con, "n2", 1, "0.01", node_pool="tiny")  # idle, but $0.10 in 10 h = $7.31 a month
    assert findings(store.con, W, "idle-gpu-capacity").findings == []
    assert len(findings(store.con, W, "idle-gpu-capacity", min_monthly_waste=1).findings) == 1


def test_capacity_mode_for_a_trace_without_placement(store: Store) -> None:
    for i in range(4):
        add_node(store.con, f"c{i}", 2, None, gpu_model="Tesla V100-SXM2-16GB", node_pool=None)
    add_workload(store.con, "p1", None, 2, T0, None)
    s = Settings(gpu_prices={"V100": D(2)})
    [f] = findings(store.con, W, "idle-gpu-capacity", s).findings
    assert (f.scope, f.evidence["mode"], f.evidence["idle_gpu_hours"]) == ("fleet", "capacity", 60.0)
    assert f.monthly_waste == pytest.approx(D(120) * M, abs=D("1e-6"))
    assert f.monthly_saving == pytest.approx(D(120) * M, abs=D("1e-6"))
    assert f.recommendation.startswith("Remove 3 node(s) (6 GPUs) from fleet")


def test_skipped_without_an_inventory(store: Store) -> None:
    res = findings(store.con, W, "idle-gpu-capacity")
    assert res.findings == [] and [(s.rule, s.reason) for s in res.skipped] == [
        ("idle-gpu-capacity", "no GPU node inventory (aifinops ingest inventory / kubernetes)")]
