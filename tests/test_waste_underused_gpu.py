"""``underused-gpu`` by hand. Window 48 h; n1: 8 x H100 80GB at $8/h ($1 per GPU-hour); n2: 1 x T4 at $0.5/h.

  w1  1 H100 at SM 0.10, 5,000 MiB peak: needs 0.10 / 0.7 = 0.143 GPU = 1.0 of 7 slices; memory 1 of 8
      -> MIG 1g.10gb (1/7): saving $48 x (1 - 1/7) = $41.142857
  w2  4 H100 at SM 0.20: needs 4 x 0.2 / 0.7 = 1.14 -> 2 GPUs: saving $192 x (1 - 2/4) = $96
  w3  1 T4 at SM 0.10: not MIG-capable -> time-slice floor(0.7 / 0.1) = 7, at most 4 -> 1/4: $24 x 3/4 = $18
  w4  1 H100 at SM 0.50: busy enough, silent
  w5  1 H100 at SM 0.10 for 10 h: too few GPU-hours to judge (min 24), silent
Per month: x 730.5 / 48.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from waste_fixtures import T0, add_activity, add_node, add_workload, findings, window

from aifinops.store.connection import Store

D = Decimal
W = window(48)
M = D("730.5") / D(48)


@pytest.fixture
def fleet(store: Store) -> Store:
    con = store.con
    add_node(con, "n1", 8, "8")
    add_node(con, "n2", 1, "0.5", gpu_model="Tesla T4", node_pool="t4")
    add_workload(con, "w1", "n1", 1, T0, None, labels={"team": "search"})
    add_activity(con, "n1", 0, T0, 48, 0.10, pod="w1", every_s=600, fb_used_mib=5000)
    add_workload(con, "w2", "n1", 4, T0, None, labels={"team": "recsys"}, owner_kind="ReplicaSet",
                 owner_name="ranker-7f9", name="ranker-7f9-abcde")
    for i in range(1, 5):
        add_activity(con, "n1", i, T0, 48, 0.20, pod="ranker-7f9-abcde", every_s=600)
    add_workload(con, "w3", "n2", 1, T0, None, labels={"team": "search"})
    add_activity(con, "n2", 0, T0, 48, 0.10, pod="w3", every_s=600, gpu_model="Tesla T4", fb_total_mib=15360)
    add_workload(con, "w4", "n1", 1, T0, None)
    add_activity(con, "n1", 5, T0, 48, 0.50, pod="w4", every_s=600)
    add_workload(con, "w5", "n1", 1, T0, T0 + timedelta(hours=10))
    add_activity(con, "n1", 6, T0, 10, 0.10, pod="w5", every_s=600)
    return store


def test_right_sizing_per_workload(fleet: Store) -> None:
    got = {f.scope: f for f in findings(fleet.con, W, "underused-gpu").findings}
    assert set(got) == {"default/w1", "default/ranker-7f9", "default/w3"}
    w1, w2, w3 = got["default/w1"], got["default/ranker-7f9"], got["default/w3"]
    assert w1.recommendation == "Use a MIG 1g.10gb slice (1/7 of the GPU) instead of a whole NVIDIA H100 80GB HBM3"
    assert w1.monthly_saving == pytest.approx(D(48) * (1 - D(1) / 7) * M, abs=D("1e-6"))
    assert (w1.owner, w1.confidence, w1.evidence["activity"]) == ("search", "high", 0.1)
    assert w2.recommendation == "Request 2 GPU(s) instead of 4"
    assert w2.monthly_saving == pytest.approx(D(96) * M, abs=D("1e-6"))
    assert w3.recommendation == "Time-slice the GPU between 4 workloads (each holds 1/4)"
    assert w3.monthly_saving == pytest.approx(D(18) * M, abs=D("1e-6"))
    assert w1.monthly_waste == pytest.approx(D(48) * D("0.9") * M, abs=D("1e-6"))


def test_memory_decides_the_slice(store: Store) -> None:
    """Compute fits 1 slice, but 30,000 MiB of 81,920 needs ceil(8 x 0.366) = 3 of 8 memory slices = 2.625 of
    7 compute slices -> MIG 3g.30gb: saving $48 x 4/7."""
    add_node(store.con, "n1", 8, "8")
    add_workload(store.con, "w1", "n1", 1, T0, None)
    add_activity(store.con, "n1", 0, T0, 48, 0.10, pod="w1", every_s=600, fb_used_mib=30000)
    [f] = findings(store.con, W, "underused-gpu").findings
    assert f.recommendation.startswith("Use a MIG 3g.30gb slice (3/7")
    assert f.monthly_saving == pytest.approx(D(48) * 4 / 7 * M, abs=D("1e-6"))


def test_memory_bound_workloads_keep_their_gpus(store: Store) -> None:
    """4 H100 at SM 0.10 would need 1 GPU of compute, but 70,000 of 81,920 MiB are in use on each: 4 x 0.854 =
    3.42 -> 4 GPUs, so there is nothing to give back. A T4 at SM 0.05 with 9,000 of 15,360 MiB in use: time-slicing
    is bounded by memory to floor(1 / 0.586) = 1 workload, so it is silent too."""
    add_node(store.con, "n1", 8, "8")
    add_workload(store.con, "llm", "n1", 4, T0, None)
    for i in range(4):
        add_activity(store.con, "n1", i, T0, 48, 0.10, pod="llm", every_s=600, fb_used_mib=70000)
    add_node(store.con, "n2", 1, "0.5", gpu_model="Tesla T4", node_pool="t4")
    add_workload(store.con, "t4", "n2", 1, T0, None)
    add_activity(store.con, "n2", 0, T0, 48, 0.05, pod="t4", every_s=600, gpu_model="Tesla T4", fb_used_mib=9000,
                 fb_total_mib=15360)
    assert findings(store.con, W, "underused-gpu").findings == []


def test_thresholds_are_options(fleet: Store) -> None:
    scopes = {f.scope for f in findings(fleet.con, W, "underused-gpu", max_activity=0.15).findings}
    assert scopes == {"default/w1", "default/w3"}
    scopes = {f.scope for f in findings(fleet.con, W, "underused-gpu", min_gpu_hours=5).findings}
    assert "default/w5" in scopes


def test_skipped_without_telemetry(store: Store) -> None:
    add_node(store.con, "n1", 8, "8")
    add_workload(store.con, "w1", "n1", 1, T0, None)
    res = findings(store.con, W, "underused-gpu")
    assert res.findings == [] and res.skipped[0].reason.startswith("no GPU telemetry")
