"""failed-runs-without-checkpoints by hand.

Window 00:00..10:00 (month factor 730.5 / 10 = 73.05).

  n1: 8 GPUs at $32/h ($4 per GPU-hour). Run llama-ft (team research, no checkpoint label), 8 GPUs:
      a1 00..04 PREEMPTED ($128), a2 04..05 OOMKilled ($32), a3 05..10 Succeeded ($160).
      waste = failed $160; with a checkpoint every 1 h each failure loses min(h, 0.5 h):
      a1 128 x 0.5 / 4 = 16, a2 32 x 0.5 / 1 = 16 -> saving 160 - 32 = $128 in the window.
  n2: 8 GPUs at $16/h ($2 per GPU-hour).
      Run bert (annotation checkpoint-interval=4h), 4 GPUs: b1 00..06 Failed ($48), b2 06..10 Succeeded.
      waste = 48 x min(6, 2) / 6 = $16; saving = 48 x (2 - 0.5) / 6 = $12.
      Run vit (label checkpoint=30m), 4 GPUs: c1 00..03 Failed, c2 03..10 Succeeded: it checkpoints more
      often than every hour, so nothing to save.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from waste_fixtures import T0, add_node, add_workload, findings, window

from aifinops.store.connection import Store
from aifinops.waste.engine import DATA
from aifinops.waste.rules.failed_runs_without_checkpoints import checkpointing, interval_hours

D = Decimal
RULE = "failed-runs-without-checkpoints"
W = window(10)
M = D("73.05")


def h(x: float):
    return T0 + timedelta(hours=x)


def _llama(store: Store, labels: dict[str, str] | None = None) -> None:
    add_node(store.con, "n1", 8, "32")
    lab = {"run": "llama-ft", "team": "research", **(labels or {})}
    add_workload(store.con, "a1", "n1", 8, h(0), h(4), labels=lab, phase="PREEMPTED", source="slurm", kind="slurm-job")
    add_workload(store.con, "a2", "n1", 8, h(4), h(5), labels=lab, phase="OOMKilled")
    add_workload(store.con, "a3", "n1", 8, h(5), h(10), labels=lab, phase="Succeeded")


def _others(store: Store) -> None:
    add_node(store.con, "n2", 8, "16")
    add_workload(store.con, "b1", "n2", 4, h(0), h(6), labels={"run": "bert", "team": "nlp"}, phase="Failed",
                 annotations={"checkpoint-interval": "4h"})
    add_workload(store.con, "b2", "n2", 4, h(6), h(10), labels={"run": "bert", "team": "nlp"}, phase="Succeeded",
                 annotations={"checkpoint-interval": "4h"})
    add_workload(store.con, "c1", "n2", 4, h(0), h(3), labels={"run": "vit", "checkpoint": "30m"}, phase="Failed")
    add_workload(store.con, "c2", "n2", 4, h(3), h(10), labels={"run": "vit", "checkpoint": "30m"},
                 phase="Succeeded")


def test_failed_attempts_priced_against_hourly_checkpoints(store: Store) -> None:
    _llama(store)
    _others(store)
    by = {f.scope: f for f in findings(store.con, W, RULE).findings}
    assert set(by) == {"llama-ft", "bert"}

    llama = by["llama-ft"]
    assert llama.monthly_waste == D(160) * M
    assert llama.monthly_saving == D(128) * M
    assert llama.monthly_cost == D(320) * M
    assert llama.pool == "run:llama-ft" and llama.pool_cost == D(320) * M
    assert llama.owner == "research" and llama.confidence == "medium"
    ev = llama.evidence
    assert (ev["attempts"], ev["failed_attempts"], ev["failed_gpu_hours"]) == (3, 2, 40.0)
    assert ev["failed_cost_in_window"] == D(160) and ev["run_outcome"] == "succeeded"
    assert ev["failure_phases"] == ["OOMKilled", "PREEMPTED"] and ev["checkpointing"] == "unknown"
    assert "Checkpoint run llama-ft every 1 h" in llama.recommendation
    assert "2 of its 3 attempts failed" in llama.recommendation
    assert "the retries restarted from zero" in llama.recommendation

    bert = by["bert"]
    assert bert.monthly_waste == D(16) * M
    assert bert.monthly_saving == D(12) * M
    assert bert.evidence["checkpoint_interval_hours"] == 4.0 and bert.confidence == "high"
    assert "every 1 h instead of every 4 h" in bert.recommendation


def test_checkpointed_and_clean_runs_are_silent(store: Store) -> None:
    """llama-ft says it checkpoints every 30 minutes; vit every 30m; a run that never failed has nothing lost."""
    _llama(store, {"checkpoint-interval": "1800"})
    _others(store)
    add_node(store.con, "n3", 1, "2")
    add_workload(store.con, "ok", "n3", 1, h(0), h(10), labels={"run": "fine"}, phase="Succeeded")
    found = findings(store.con, W, RULE).findings
    assert [f.scope for f in found] == ["bert"]


def test_skipped_without_data(store: Store) -> None:
    result = findings(store.con, W, RULE)
    assert result.findings == [] and [s.reason for s in result.skipped] == [DATA["gpu_nodes"][1]]


def test_thresholds_change_the_outcome(store: Store) -> None:
    """Checkpoints every 4 h as the target: bert already does that (silent); llama-ft's failures would lose
    min(h, 2 h): a1 128 x 2 / 4 = 64, a2 all 32 -> saving 160 - 96 = $64. A label set without the interval key
    makes vit's 30m invisible: it is taken not to checkpoint, saving c1's $24 - 24 x 0.5 / 3 = $20."""
    _llama(store)
    _others(store)
    by = {f.scope: f for f in findings(store.con, W, RULE, assumed_interval_hours=4).findings}
    assert set(by) == {"llama-ft"} and by["llama-ft"].monthly_saving == D(64) * M
    by = {f.scope: f for f in findings(store.con, W, RULE, checkpoint_labels=["checkpoint-interval"]).findings}
    assert set(by) == {"llama-ft", "bert", "vit"} and by["vit"].monthly_saving == D(20) * M
    assert findings(store.con, W, RULE, min_monthly_saving=10_000).findings == []


@pytest.mark.parametrize(("text", "hours"), [
    ("30m", 0.5), ("1h", 1.0), ("3600", 1.0), ("1h30m", 1.5), ("PT2H", 2.0), ("90 min", 1.5), ("1.5h", 1.5),
    ("2d", 48.0), ("s3://bucket/ckpt", None), ("", None),
])
def test_interval_parsing(text: str, hours: float | None) -> None:
    assert interval_hours(text) == hours


def test_checkpoint_states() -> None:
    assert checkpointing(None, 1.0) == ("unknown", None)
    assert checkpointing("false", 1.0) == ("none", None)
    assert checkpointing("true", 1.0) == ("assumed", 1.0)
    assert checkpointing("gs://ckpt/run-1", 2.0) == ("assumed", 2.0)
    assert checkpointing("15m", 1.0) == ("interval", 0.25)
