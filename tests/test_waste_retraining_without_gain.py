"""``retraining-without-gain`` by hand. Window 2026-10-01 .. 10-29 (672 h); n1: 8 GPUs at $40/h ($5 a GPU-hour).

fraud-detector, weekly retrains judged on val_loss (lower is better), min_improvement 0.5%:

  cycle  runs                 final val_loss  best before  gain                     GPU workload        cost
  w0     Sep 24 (before)      0.36            -            baseline (not judged)    -                   -
  w1     Oct 1  00:00-04:00   0.35            0.36         0.01 / 0.36 = 2.78%      8 GPUs x 4 h x $5   $160
  w2     Oct 8  00:00-04:00   0.349           0.35         0.001 / 0.35 = 0.29%  -> without gain       $160
  w3     Oct 15 00:00-06:00   0.352           0.349        worse                 -> without gain       $120 (4 x 6)
  w4     Oct 22 00:00-02:00   0.33            0.349        0.019 / 0.349 = 5.4%     8 GPUs x 2 h        $80
  w5     Oct 28 20:00-24:00   0.5, FAILED: not a cycle (its $160 is another rule's business)

Waste = $160 + $120 = $280 in the window; saving = waste per month = 280 x 730.5 / 672 = $304.375.
Cost of the model's cycles in the window (the pool) = 160 + 160 + 120 + 80 = $520 -> 520 x 730.5 / 672.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from waste_fixtures import T0, add_node, add_workload, findings, window

from aifinops.store.connection import Store
from aifinops.waste.engine import DATA

D = Decimal
W = window(28 * 24)
M = D("730.5") / D(672)
H = timedelta(hours=1)
DAY = timedelta(days=1)


def add_run(con: duckdb.DuckDBPyConnection, run_id: str, model: str, start: datetime, hours: float,
            metrics: dict[str, list[float]], status: str = "FINISHED", workload_run: str | None = None,
            attributes: dict[str, str] | None = None, source: str = "mlflow", batch: int = 1) -> None:
    """One run's metric history (one value per step, logged an hour apart) as the mlflow source loads it."""
    rows: list[list[Any]] = []
    for metric, values in metrics.items():
        for step, value in enumerate(values):
            rows.append([run_id, source, "exp", run_id, model, workload_run or run_id, status, start,
                         start + timedelta(hours=hours), metric, value, step, start + (step + 1) * H,
                         attributes or {}, batch, len(rows)])
    con.executemany(
        "INSERT INTO run_metrics (run_id, source, experiment, run_name, model, workload_run, status, start_ts, end_ts, "
        "metric, value, step, ts, attributes, _batch_id, _file, _row) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 't', ?)", rows)


def add_cycle(con: duckdb.DuckDBPyConnection, run_id: str, day: int, hours: float, losses: list[float],
              gpus: int | None = 8, status: str = "FINISHED", start_hour: int = 0) -> None:
    """A weekly retrain of fraud-detector: its run, and (with ``gpus``) its GPU workload labelled run=<run_id>."""
    start = T0 + day * DAY + start_hour * H
    add_run(con, run_id, "fraud-detector", start, hours, {"val_loss": losses, "train_loss": [x * 0.9 for x in losses]},
            status=status, attributes={"tags.team": "risk"})
    if gpus:
        add_workload(con, f"job-{run_id}", "n1", gpus, start, start + hours * H, phase="Succeeded",
                     labels={"run": run_id, "team": "risk"}, kind="job")


def scenario(con: duckdb.DuckDBPyConnection, w2: float = 0.349, w3: float = 0.352, priced: bool = True) -> None:
    if priced:
        add_node(con, "n1", 8, "40")
    add_cycle(con, "w0", -7, 4, [0.5, 0.36], gpus=None)
    add_cycle(con, "w1", 0, 4, [0.45, 0.35], gpus=8 if priced else None)
    add_cycle(con, "w2", 7, 4, [0.44, w2], gpus=8 if priced else None)
    add_cycle(con, "w3", 14, 6, [0.43, 0.40, w3], gpus=4 if priced else None)
    add_cycle(con, "w4", 21, 2, [0.40, 0.33], gpus=8 if priced else None)
    add_cycle(con, "w5", 27, 4, [0.5], gpus=8 if priced else None, status="FAILED", start_hour=20)


def test_cycles_without_gain_are_priced_from_their_gpu_workloads(store: Store) -> None:
    scenario(store.con)
    res = findings(store.con, W, "retraining-without-gain")
    assert res.window == W  # the failed run's workload ends at the window's end: nothing clipped
    [f] = res.findings
    assert (f.scope_kind, f.scope, f.owner, f.confidence) == ("model", "fraud-detector", "risk", "high")
    assert abs(f.monthly_saving - D("304.375")) < D("1e-9")
    assert abs(f.monthly_waste - D("304.375")) < D("1e-9")
    assert abs(f.monthly_cost - D(520) * M) < D("1e-9")
    assert (f.pool, f.pool_cost) == ("retraining:fraud-detector", f.monthly_cost)
    assert abs(f.achievable_saving - f.monthly_saving) < D("1e-9")  # the only finding on its pool
    ev = f.evidence
    assert (ev["metric"], ev["direction"], ev["cycles_in_window"], ev["cycles_without_gain"]) == \
        ("val_loss", "lower is better", 4, 2)
    assert ev["best_before_window"] == 0.36
    assert ev["cost_without_gain_in_window"] == D(280)
    assert [(c["run_id"], c["value"], c["best_before"], c["without_gain"], c["cost_in_window"])
            for c in ev["cycles"]] == [("w1", 0.35, 0.36, False, D(160)), ("w2", 0.349, 0.35, True, D(160)),
                                       ("w3", 0.352, 0.349, True, D(120)), ("w4", 0.33, 0.349, False, D(80))]
    assert ev["cycles"][1]["gain"] == pytest.approx(0.001 / 0.35, abs=1e-6)
    assert f.recommendation.startswith(
        "Retrain fraud-detector only when data drift or a metric trigger says so, not on a schedule: 2 of 4 "
        "cycle(s) in the window (w2, w3) did not beat the best val_loss before them (0.35, lower is better) by 0.5%")
    assert f.recommendation.endswith("; they cost $304.38 a month")
    assert f.saving_formula == \
        "cycles without gain: w2 $160.00 + w3 $120.00 = $280.00 in the window, x 1.0871 to a month"
    assert any("data drift" in a for a in f.assumptions)


def test_silent_when_every_cycle_beats_the_best_by_the_threshold(store: Store) -> None:
    """w2 0.348: 0.002 / 0.35 = 0.57% >= 0.5%; w3 0.3462: 0.0018 / 0.348 = 0.52% >= 0.5%."""
    scenario(store.con, w2=0.348, w3=0.3462)
    res = findings(store.con, W, "retraining-without-gain")
    assert (res.ran, res.findings, res.skipped) == (["retraining-without-gain"], [], [])


def test_skipped_without_run_metrics(store: Store) -> None:
    add_node(store.con, "n1", 8, "40")
    res = findings(store.con, W, "retraining-without-gain")
    assert [(s.rule, s.reason) for s in res.skipped] == [("retraining-without-gain", DATA["run_metrics"][1])]
    assert "aifinops ingest mlflow / run-metrics" in res.skipped[0].reason
    assert res.findings == []


def test_thresholds_and_metric_are_options(store: Store) -> None:
    scenario(store.con, w2=0.348, w3=0.3462)
    # 1% asked: w2 (0.57%) and w3 (0.52%) no longer count as gains
    [f] = findings(store.con, W, "retraining-without-gain", min_improvement=0.01).findings
    assert [c["run_id"] for c in f.evidence["cycles"] if c["without_gain"]] == ["w2", "w3"]
    assert abs(f.monthly_saving - D(280) * M) < D("1e-9")
    # judged on train_loss read as higher-is-better (a deliberately wrong direction): every drop is a loss
    [f] = findings(store.con, W, "retraining-without-gain", metric="train_loss",
                   higher_is_better={"train_loss": True}).findings
    assert (f.evidence["metric"], f.evidence["direction"], f.evidence["cycles_without_gain"]) == \
        ("train_loss", "higher is better", 4)
    # an expensive threshold hides the finding
    assert findings(store.con, W, "retraining-without-gain", min_improvement=0.01,
                    min_monthly_waste=400).findings == []


def test_without_gpu_workloads_the_cycles_are_reported_at_unknown_cost(store: Store) -> None:
    """Only run metrics: the same two cycles without gain, $0 saving, and the label to add said."""
    scenario(store.con, priced=False)
    [f] = findings(store.con, W, "retraining-without-gain").findings
    assert (f.monthly_saving, f.monthly_cost, f.confidence) == (D(0), D(0), "low")
    assert f.evidence["cycles_with_unknown_cost"] == ["w1", "w2", "w3", "w4"]
    assert "the GPU cost of 2 of them is unknown (no GPU workloads are loaded): label their workloads " \
           "run=<workload_run> to price them" in f.recommendation
    assert any("cost unknown, counted as $0" in a for a in f.assumptions)


def test_nested_trials_and_higher_is_better_metrics(store: Store) -> None:
    """ranker logs val_auc (higher is better): r1 0.80, r2 0.801 (+0.125% < 0.5%: without gain). A nested trial
    (a search inside r2) with a worse AUC is not a cycle; a run of another model is judged apart."""
    con = store.con
    add_run(con, "r1", "ranker", T0, 3, {"val_auc": [0.78, 0.80]})
    add_run(con, "r2", "ranker", T0 + 2 * DAY, 3, {"val_auc": [0.79, 0.801]})
    add_run(con, "r2-trial", "ranker", T0 + 2 * DAY, 1, {"val_auc": [0.6]},
            attributes={"tags.mlflow.parentRunId": "r2"})
    add_run(con, "c1", "churn", T0, 1, {"accuracy": [0.7]})
    [f] = findings(con, W, "retraining-without-gain").findings
    assert (f.scope, f.evidence["metric"], f.evidence["direction"]) == ("ranker", "val_auc", "higher is better")
    assert [(c["run_id"], c["without_gain"]) for c in f.evidence["cycles"]] == [("r1", False), ("r2", True)]
    [f] = findings(con, W, "retraining-without-gain", skip_nested=False).findings
    assert [c["run_id"] for c in f.evidence["cycles"] if c["without_gain"]] == ["r2", "r2-trial"]


def test_a_point_seen_again_counts_once(store: Store) -> None:
    """A later sync superseded w2's last point (0.349 -> 0.340, now a 2.9% gain): only the live row counts."""
    scenario(store.con)
    store.con.execute("UPDATE run_metrics SET _superseded = true WHERE run_id = 'w2' AND metric = 'val_loss'")
    add_run(store.con, "w2", "fraud-detector", T0 + 7 * DAY, 4, {"val_loss": [0.44, 0.340]}, batch=2)
    [f] = findings(store.con, W, "retraining-without-gain").findings
    # w3 (0.352) is now judged against 0.340
    assert [(c["run_id"], c["best_before"]) for c in f.evidence["cycles"] if c["without_gain"]] == [("w3", 0.34)]
    assert abs(f.monthly_saving - D(120) * M) < D("1e-9")
