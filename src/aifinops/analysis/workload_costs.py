"""What GPU workloads cost as units the ML side counts in: training runs, experiments, model versions, and
the serving cost of self-hosted models (to price their tokens).

Both start from the GPU allocation (``gpu_allocation``): a workload's total cost in the window is its GPU
(and CPU, memory) cost plus the idle and shared cost the policy moves onto it, so a run's cost here adds up
with the allocation's. Labels name the units: a workload's ``run``, ``experiment`` or ``model_version``
label (the keys are settings: ``llm.training_labels``); a run is all workloads that carry the same run
label (the pods of a distributed job, its restarts).

A workload (one attempt) **succeeded** when it ended Succeeded / COMPLETED, **failed** when it ended Failed,
OOMKilled, NODE_FAIL, TIMEOUT, PREEMPTED, CANCELLED, ..., and is **running** otherwise; a run's outcome is
its last attempt's, and each attempt's cost stays with its own outcome: ``failedCost`` is the GPU money of
failed attempts (what a checkpoint would have saved; the waste rule ``failed-runs-without-checkpoints``
builds on it), even in a run that a retry finished.

Serving workloads of a self-hosted model are the long-running ones (owner ReplicaSet, Deployment,
StatefulSet, DaemonSet, LeaderWorkerSet, or no owner) whose ``model`` label (``llm.serving_label``) names
the model; batch Jobs and Slurm jobs of the same model are training or evaluation, not serving.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from ..config import Settings
from ..model.checks import sql_str
from .gpu_allocation import Costing, allocation_sql, options_for
from .llm_costs import SelfHosted
from .windows import Window

TRAINING = ("run", "experiment", "model_version")
SUCCEEDED = ("succeeded", "completed")
FAILED = ("failed", "oomkilled", "node_fail", "timeout", "preempted", "cancelled", "boot_fail", "deadline",
          "out_of_memory", "error")
SERVING_OWNERS = ("replicaset", "deployment", "statefulset", "daemonset", "leaderworkerset")
COSTS = '"gpuCost" + "cpuCost" + "ramCost" + "gpuCostIdle" + "cpuCostIdle" + "ramCostIdle" + "sharedCost"'


def _per_workload(settings: Settings | None) -> str:
    """SQL: each workload's cost, GPU-hours and used GPU-hours in the window (``$start``, ``$end``), with its
    labels, phase and owner from the newest row of the workload."""
    sql = allocation_sql(Costing.from_settings(settings), options_for(settings))
    return f"""
SELECT a.workload_id, sum({COSTS}) AS cost, sum("gpuHours") AS gpu_hours,
       sum("gpuHours" * activity) FILTER (WHERE activity IS NOT NULL) AS used_hours,
       sum("gpuHours") FILTER (WHERE activity IS NOT NULL) AS seen_hours,
       any_value(w.labels) AS labels, any_value(lower(w.phase)) AS phase, any_value(lower(w.owner_kind)) AS owner,
       any_value(w.source) AS source, any_value(w.end_ts) AS last_end
FROM ({sql}) a
JOIN (SELECT * FROM workloads QUALIFY row_number() OVER (PARTITION BY workload_id ORDER BY _batch_id DESC) = 1) w
  ON w.workload_id = a.workload_id
WHERE a.kind <> 'idle'
GROUP BY a.workload_id"""


def training_costs(con: duckdb.DuckDBPyConnection, window: Window, by: str,
                   settings: Settings | None = None) -> list[dict[str, object]]:
    """Cost per training run, experiment or model version: runs, workloads, GPU-hours, efficiency, and cost
    split into succeeded, failed and running."""
    s = settings or Settings()
    keys = dict(getattr(s.llm, "training_labels", {}) or {}) if hasattr(s, "llm") else {}
    if by not in TRAINING:
        raise ValueError(f"unknown training grouping {by!r}: use {', '.join(TRAINING)}")
    label = keys.get(by, by)
    run_label = keys.get("run", "run")
    ok, bad = (", ".join(sql_str(x) for x in group) for group in (SUCCEEDED, FAILED))
    cur = con.execute(f"""
WITH w AS ({_per_workload(settings)}),
per AS (
  SELECT *, CASE WHEN phase IN ({bad}) THEN 'failed' WHEN phase IN ({ok}) THEN 'succeeded' ELSE 'running' END
         AS outcome, coalesce(labels[{sql_str(run_label)}], workload_id) AS run
  FROM w WHERE labels[{sql_str(label)}] IS NOT NULL
), runs AS (
  -- one run: the workloads sharing a run label (or the workload itself without one); its outcome is its
  -- last attempt's, while each attempt's cost stays with that attempt's outcome (a failed attempt before a
  -- successful retry is failed money in a succeeded run)
  SELECT labels[{sql_str(label)}] AS grp, run, sum(cost) AS cost, sum(gpu_hours) AS gpu_hours,
         sum(used_hours) AS used_hours, sum(seen_hours) AS seen_hours, count(*) AS workloads,
         arg_max(outcome, coalesce(last_end, 'infinity'::TIMESTAMP)) AS outcome,
         coalesce(sum(cost) FILTER (WHERE outcome = 'succeeded'), 0) AS ok_cost,
         coalesce(sum(cost) FILTER (WHERE outcome = 'failed'), 0) AS bad_cost,
         coalesce(sum(cost) FILTER (WHERE outcome = 'running'), 0) AS run_cost
  FROM per GROUP BY ALL
)
SELECT grp, count(*) AS runs, sum(workloads) AS workloads, sum(gpu_hours) AS gpu_hours,
       sum(used_hours) / nullif(sum(seen_hours), 0) AS efficiency, sum(cost) AS cost,
       sum(ok_cost) AS succeeded_cost, sum(bad_cost) AS failed_cost, sum(run_cost) AS running_cost,
       count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded_runs,
       count(*) FILTER (WHERE outcome = 'failed') AS failed_runs
FROM runs GROUP BY grp ORDER BY cost DESC, grp""", {"start": window.start, "end": window.end})
    out = []
    for grp, runs, workloads, hours, eff, cost, ok_cost, bad_cost, run_cost, ok_runs, bad_runs in cur.fetchall():
        out.append({by: grp, "runs": runs, "succeededRuns": ok_runs, "failedRuns": bad_runs, "workloads": workloads,
                    "gpuHours": hours, "gpuEfficiency": eff, "cost": cost, "costPerRun": cost / runs if runs else None,
                    "succeededCost": ok_cost, "failedCost": bad_cost, "runningCost": run_cost,
                    "costPerSucceededRun": cost / ok_runs if ok_runs else None})
    return out


def serving_costs(con: duckdb.DuckDBPyConnection, window: Window,
                  settings: Settings | None = None) -> list[SelfHosted]:
    """The GPU cost of each self-hosted model's serving workloads in the window (see the module docstring)."""
    s = settings or Settings()
    label = getattr(s.llm, "serving_label", "model") if hasattr(s, "llm") else "model"
    owners = ", ".join(sql_str(o) for o in SERVING_OWNERS)
    rows = con.execute(f"""
WITH w AS ({_per_workload(settings)})
SELECT labels[{sql_str(label)}], sum(cost), sum(gpu_hours), count(*) FROM w
WHERE labels[{sql_str(label)}] IS NOT NULL AND coalesce(source, '') <> 'slurm'
  AND (owner IS NULL OR owner IN ({owners}))
GROUP BY 1 ORDER BY 1""", {"start": window.start, "end": window.end}).fetchall()
    return [SelfHosted(m, Decimal(c or 0), float(h or 0), n) for m, c, h, n in rows]
