"""bench/gpu_allocation.py at a tiny size: the benchmark runs, aifinops and the plain pandas version agree, and the
generated fleet is what the benchmark says it is (so the CI catches a broken benchmark before a long run does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_allocation.py"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench_gpu")
    # 6 nodes (every role: training, notebooks, MIG, batch, time-sliced), 1 day of 60 s samples; pandas on 5 nodes
    cmd = [sys.executable, str(SCRIPT), "--gpus", "48", "--days", "1", "--step", "60", "--workloads", "300",
           "--pandas-gpus", "40", "--out", str(out), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_aifinops_and_pandas_agree(result: dict) -> None:
    assert {"fleet", "subset", "generation", "aifinops", "subset_aifinops", "pandas", "ratio", "ratio_compute",
            "check", "conserved", "targets"} <= result.keys()
    check = result["check"]
    assert check["ok"] and result["conserved"]
    assert check["max_team_diff"] <= 1e-6 and check["pandas_total_diff"] <= 1e-6
    assert check["team"]["__idle__"]["aifinops"] > 0  # the fleet has unallocated time
    assert check["team"]["__unallocated__"]["aifinops"] > 0  # and workloads without a team label
    for call in ("team-hour", "workload"):
        assert check[call]["missing"] == 0 and check[call]["rows"][0] > 10
        r = result["aifinops"][call]
        assert r["calls"][call]["rows"] > 0 and r["seconds"] > 0 and r["peak_mb"] > 0
    assert result["pandas"]["samples"] == result["subset_aifinops"]["samples"] > 0
    assert result["ratio"] > 0 and result["ratio_compute"] > 0
    gen = result["generation"]
    assert gen["gpus"] == 48 and gen["samples"] >= 48 * 1440 and 200 <= gen["workloads"] <= 400


@pytest.mark.slow
def test_samples_name_the_workload_holding_the_gpu(result: dict) -> None:
    """Every sample's pod is a workload on that node and namespace running at that time, every workload-minute
    has its samples, and the subset store is the first nodes of the full fleet, workload for workload."""
    with duckdb.connect(result["store"], read_only=True) as con:
        stray = con.execute("""
            SELECT count(*) FROM gpu_samples s WHERE pod IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM workloads w WHERE w.name = s.pod AND w.node = s.node AND w.namespace = s.namespace
              AND s.ts >= w.start_ts AND s.ts < coalesce(w.end_ts, TIMESTAMP '2026-09-02'))""").fetchone()[0]
        assert stray == 0
        missing = con.execute("""
            SELECT count(*) FROM workloads w, range(0, 1440) m(i)
            WHERE TIMESTAMP '2026-09-01' + to_minutes(i) >= w.start_ts
              AND TIMESTAMP '2026-09-01' + to_minutes(i) < coalesce(w.end_ts, TIMESTAMP '2026-09-02')
              AND len(w.gpu_uuids) <> (SELECT count(*) FROM gpu_samples s WHERE s.pod = w.name
                                       AND s.ts = TIMESTAMP '2026-09-01' + to_minutes(i))""").fetchone()[0]
        assert missing == 0
        kinds = dict(con.execute("SELECT gpu_resource, count(*) FROM workloads GROUP BY 1").fetchall())
        assert set(kinds) == {"nvidia.com/gpu", "nvidia.com/mig-1g.10gb", "nvidia.com/gpu.shared"}
        nodes = [r[0] for r in con.execute("SELECT node FROM gpu_nodes ORDER BY node LIMIT 5").fetchall()]
        full = con.execute("SELECT workload_id, name, node, start_ts, end_ts, gpu_share FROM workloads "
                           "WHERE list_contains(?, node) ORDER BY 1", [nodes]).fetchall()
    with duckdb.connect(result["subset_store"], read_only=True) as con:
        sub = con.execute("SELECT workload_id, name, node, start_ts, end_ts, gpu_share FROM workloads "
                          "ORDER BY 1").fetchall()
    assert sub == full and len(sub) > 0
