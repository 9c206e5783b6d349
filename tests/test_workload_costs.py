"""Training runs, experiments and model versions, and self-hosted serving cost, by hand.

Window 00:00..02:00. n1: 8 GPUs at $8/h ($1 per GPU-hour); n2: 2 GPUs at $2/h ($1 per GPU-hour).

  workload  node  GPUs  hours  labels                                  phase      cost
  a-0       n1    2     2      run A, experiment E1, version v1        Succeeded  4
  a-1       n1    2     2      run A, experiment E1, version v1        Succeeded  4
  b-0       n1    2     1      run B, experiment E1, version v2        Failed     2
  c-0       n1    1     2      run C, experiment E2                    Running    2
  srv-0     n2    1     2      model llama-ft, owner ReplicaSet        Running    2   (serving)
  eval-0    n2    1     1      model llama-ft, owner Job               Succeeded  1   (not serving)

  by run: A 8 (2 workloads, succeeded), B 2 (failed), C 2 (running)
  by experiment: E1 = A + B: 2 runs, 10 (8 succeeded, 2 failed); E2 = C: 2 running
  serving: llama-ft $2 over 2 GPU-hours, 1 workload
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from aifinops.analysis.windows import Window
from aifinops.analysis.workload_costs import serving_costs, training_costs
from aifinops.store.connection import Store

D = Decimal
WINDOW = Window(datetime(2026, 10, 1, 0), datetime(2026, 10, 1, 2))


@pytest.fixture
def runs(store: Store) -> Store:
    for node, gpus, price in (("n1", 8, "8"), ("n2", 2, "2")):
        store.con.execute("INSERT INTO gpu_nodes (node, gpu_count, hourly_price, _batch_id, _file, _row) "
                          "VALUES (?, ?, ?, 1, 't', 0)", [node, gpus, price])
    for wid, node, gpus, end, labels, phase, owner in (
        ("a-0", "n1", 2, "02:00", {"run": "A", "experiment": "E1", "model_version": "v1"}, "Succeeded", "Job"),
        ("a-1", "n1", 2, "02:00", {"run": "A", "experiment": "E1", "model_version": "v1"}, "Succeeded", "Job"),
        ("b-0", "n1", 2, "01:00", {"run": "B", "experiment": "E1", "model_version": "v2"}, "Failed", "Job"),
        ("c-0", "n1", 1, None, {"run": "C", "experiment": "E2"}, "Running", "Job"),
        ("srv-0", "n2", 1, None, {"model": "llama-ft"}, "Running", "ReplicaSet"),
        ("eval-0", "n2", 1, "01:00", {"model": "llama-ft"}, "Succeeded", "Job"),
    ):
        store.con.execute(
            "INSERT INTO workloads (workload_id, name, source, node, gpu_share, start_ts, end_ts, labels, phase, "
            "owner_kind, _batch_id, _file, _row) VALUES (?, ?, 'kubernetes', ?, ?, '2026-10-01 00:00', ?, ?, ?, ?, "
            "1, 't', 0)", [wid, wid, node, gpus, f"2026-10-01 {end}" if end else None, labels, phase, owner])
    return store


def test_cost_per_run_experiment_and_version(runs: Store) -> None:
    by_run = {r["run"]: r for r in training_costs(runs.con, WINDOW, "run")}
    assert {k: (r["cost"], r["workloads"], r["succeededCost"], r["failedCost"], r["runningCost"])
            for k, r in by_run.items()} == {"A": (D(8), 2, D(8), 0, 0), "B": (D(2), 1, 0, D(2), 0),
                                            "C": (D(2), 1, 0, 0, D(2))}
    exp = {r["experiment"]: r for r in training_costs(runs.con, WINDOW, "experiment")}
    assert (exp["E1"]["runs"], exp["E1"]["cost"], exp["E1"]["failedRuns"], exp["E1"]["costPerSucceededRun"]) == (
        2, D(10), 1, D(10))
    assert exp["E2"]["runningCost"] == D(2) and exp["E2"]["succeededRuns"] == 0
    versions = {r["model_version"]: r["cost"] for r in training_costs(runs.con, WINDOW, "model_version")}
    assert versions == {"v1": D(8), "v2": D(2)}
    with pytest.raises(ValueError, match="unknown training grouping"):
        training_costs(runs.con, WINDOW, "colour")


def test_serving_cost_of_a_self_hosted_model(runs: Store) -> None:
    [served] = serving_costs(runs.con, WINDOW)
    assert (served.model, served.gpu_cost, served.gpu_hours, served.workloads) == ("llama-ft", D(2), 2.0, 1)


def test_a_failed_attempt_before_a_successful_retry(runs: Store) -> None:
    """Run D: d-0 fails after 1 h on 1 GPU ($1), d-1 retries and succeeds (1 h, $1): the run succeeded, and its
    failed attempt's $1 is failed money in it."""
    for wid, start, end, phase in (("d-0", "00:00", "01:00", "Failed"), ("d-1", "01:00", "02:00", "Succeeded")):
        runs.con.execute(
            "INSERT INTO workloads (workload_id, name, source, node, gpu_share, start_ts, end_ts, labels, phase, "
            "owner_kind, _batch_id, _file, _row) VALUES (?, ?, 'kubernetes', 'n1', 1, ?, ?, ?, ?, 'Job', 1, 't', 0)",
            [wid, wid, f"2026-10-01 {start}", f"2026-10-01 {end}", {"run": "D", "experiment": "E3"}, phase])
    d = next(r for r in training_costs(runs.con, WINDOW, "run") if r["run"] == "D")
    assert (d["succeededRuns"], d["failedRuns"], d["workloads"]) == (1, 0, 2)
    assert (d["cost"], d["succeededCost"], d["failedCost"]) == (D(2), D(1), D(1))
