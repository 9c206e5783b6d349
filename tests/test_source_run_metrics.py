"""The run-metrics source: a tracker's export read column by column, a re-exported point superseding the earlier
value (never counted twice), re-ingest idempotent, bad rows quarantined with their reason, mappings for other
shapes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.run_metrics_csv import RunMetricsSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIXTURES = Path(__file__).parent / "fixtures" / "run_metrics"
CSV_FILE = FIXTURES / "runs.csv"
COLUMNS = ("run_id, source, experiment, run_name, model, workload_run, status, start_ts, end_ts, metric, value, step, "
           "ts, attributes")
H100 = {"git_commit": "a1b2c3d", "gpu_type": "H100"}


def live(store: Store, columns: str = COLUMNS) -> list[tuple]:
    return store.con.execute(f"SELECT {columns} FROM run_metrics WHERE NOT _superseded ORDER BY _batch_id, _row"
                             ).fetchall()


def reasons(store: Store) -> list[tuple]:
    return store.con.execute('SELECT row_number, "column", reason FROM quarantine_errors ORDER BY 1, 2').fetchall()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_golden_rows(store: Store) -> None:
    res = ingest(store, RunMetricsSource(), [CSV_FILE])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined, res.notes, res.warnings) == \
        ("loaded", 7, 7, 0, [], [])
    d1, d2, d3 = (datetime(2026, 10, d) for d in (1, 2, 3))
    assert live(store) == [
        ("rk-101", "csv", "recsys", "nightly-101", "recsys-ranker", "recsys-train-101", "FINISHED", d1.replace(hour=2),
         d1.replace(hour=5), "val_auc", 0.781, 0, d1.replace(hour=5), H100),
        ("rk-101", "csv", "recsys", "nightly-101", "recsys-ranker", "recsys-train-101", "FINISHED", d1.replace(hour=2),
         d1.replace(hour=5), "eval_loss", 0.412, 0, d1.replace(hour=5), H100),
        ("rk-102", "csv", "recsys", "nightly-102", "recsys-ranker", "recsys-train-102", "FINISHED", d2.replace(hour=2),
         d2.replace(hour=5, minute=10), "val_auc", 0.784, 0, d2.replace(hour=5, minute=10), H100),
        ("rk-102", "csv", "recsys", "nightly-102", "recsys-ranker", "recsys-train-102", "FINISHED", d2.replace(hour=2),
         d2.replace(hour=5, minute=10), "eval_loss", 0.409, 0, d2.replace(hour=5, minute=10), H100),
        # +02:00 times are kept in UTC
        ("rk-103", "csv", "recsys", "nightly-103", "recsys-ranker", "recsys-train-103", "FINISHED", d3,
         d3.replace(hour=3, minute=5), "val_auc", 0.7838, 0, d3.replace(hour=3, minute=5),
         {"git_commit": "e4f5a6b", "gpu_type": "H100"}),
        # no workload_run: the run id is its run label
        ("rk-104", "csv", "recsys", "nightly-104", "recsys-ranker", "rk-104", "FAILED", datetime(2026, 10, 4, 2),
         datetime(2026, 10, 4, 2, 40), "eval_loss", 0.93, 1, datetime(2026, 10, 4, 2, 40),
         {"git_commit": "e4f5a6b", "gpu_type": "H100"}),
        # no model: the experiment names it; empty cells are not attributes
        ("ch-7", "csv", "churn", None, "churn", "ch-7", "FINISHED", d2.replace(hour=9), d2.replace(hour=9, minute=30),
         "f1", 0.66, 0, None, {}),
    ]


def test_a_reexported_table_supersedes_the_earlier_values(store: Store, tmp_path: Path) -> None:
    ingest(store, RunMetricsSource(), [CSV_FILE])
    # the tracker recomputed rk-103's AUC and added rk-105
    newer = _write(tmp_path / "newer.csv", "run_id,model,metric,value,start_time\n"
                   "rk-103,recsys-ranker,val_auc,0.7851,2026-10-03T00:00:00Z\n"
                   "rk-105,recsys-ranker,val_auc,0.79,2026-10-05T02:00:00Z\n")
    res = ingest(store, RunMetricsSource(), [newer])
    assert res.rows_loaded == 2
    assert "1 row(s) of earlier batches observed again: superseded by this batch" in res.notes
    assert live(store, "run_id, value")[-2:] == [("rk-103", 0.7851), ("rk-105", 0.79)]
    assert store.con.execute("SELECT run_id, value, _batch_id FROM run_metrics WHERE _superseded").fetchall() == \
        [("rk-103", 0.7838, 1)]


def test_the_same_point_twice_in_a_file_counts_once(store: Store, tmp_path: Path) -> None:
    f = _write(tmp_path / "dupe.csv", "run_id,metric,value,step\nr1,loss,0.5,3\nr1,loss,0.4,3\nr1,loss,0.3,4\n")
    res = ingest(store, RunMetricsSource(), [f])
    assert any("1 row(s) repeat an observation" in n for n in res.notes)
    assert live(store, "step, value") == [(3, 0.4), (4, 0.3)]


def test_reingest_is_a_no_op(store: Store, tmp_path: Path) -> None:
    ingest(store, RunMetricsSource(), [CSV_FILE])
    res = ingest(store, RunMetricsSource(), [_write(tmp_path / "again.csv", CSV_FILE.read_text())])
    assert (res.status, res.duplicate_of) == ("unchanged", 1)
    assert store.con.execute("SELECT count(*) FROM run_metrics").fetchone() == (7,)


def test_bad_rows_are_quarantined_with_their_reason(store: Store, tmp_path: Path) -> None:
    f = _write(tmp_path / "bad.csv", "run_id,metric,value,step,start_time\n"
               "r1,loss,0.5,0,2026-10-01T00:00:00Z\n"  # good
               ",loss,0.5,0,\n"  # no run id
               "r1,,0.5,1,\n"  # no metric
               "r1,loss,lots,2,\n"  # not a number
               "r1,loss,,3,\n"  # no value
               "r1,loss,0.4,1.5,\n"  # fractional step
               "r1,loss,0.3,4,yesterday\n"  # not a time
               "r1,loss,NaN,5,\n")  # loads, with a warning
    res = ingest(store, RunMetricsSource(), [f])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (8, 2, 6)
    assert reasons(store) == [
        (2, "run_id", "no run_id"),
        (3, "metric", "no metric"),
        (4, "value", "not a number: 'lots'"),
        (5, "value", "no value"),
        (6, "step", "step is not a whole number: '1.5'"),
        (7, "start_ts", "not a time: 'yesterday'"),
    ]
    assert [(w["rule"], w["column"], w["first_row"]) for w in res.warnings] == [("finite", "value", 8)]
    assert store.con.execute("SELECT file FROM quarantine_errors LIMIT 1").fetchone()[0].endswith("bad.csv")


def test_a_wide_export_through_a_mapping_with_epoch_times(store: Store, tmp_path: Path) -> None:
    """One row per run, a metric per column (W&B's runs table): mapped once per metric, times in ms."""
    f = _write(tmp_path / "wandb.csv", "id,display_name,created_ms,best_val_loss,state\n"
                                       "3kq9x,sweep-1,1790812800000,0.41,finished\n")
    src = RunMetricsSource(columns="{run_id: id, run_name: display_name, start_ts: created_ms, "
                                   "metric: \"'val_loss'\", value: best_val_loss}", time_unit="ms")
    res = ingest(store, src, [f])
    assert (res.rows_loaded, res.rows_quarantined) == (1, 0)
    assert live(store, "run_id, run_name, status, start_ts, metric, value, attributes") == [
        ("3kq9x", "sweep-1", "FINISHED", datetime(2026, 10, 1), "val_loss", 0.41, {})]


def test_json_lines_read_the_same_way(store: Store, tmp_path: Path) -> None:
    f = _write(tmp_path / "runs.jsonl", '{"run_id": "r1", "metric": "loss", "value": 0.5, "step": 2, "model": "m"}\n'
                                        '{"run_id": "r1", "metric": "loss", "value": "x"}\n')
    res = ingest(store, RunMetricsSource(), [f])
    assert (res.rows_loaded, res.rows_quarantined) == (1, 1)
    assert live(store, "run_id, model, workload_run, metric, value, step") == [("r1", "m", "r1", "loss", 0.5, 2)]


def test_a_file_without_the_required_columns_is_refused(store: Store, tmp_path: Path) -> None:
    f = _write(tmp_path / "nope.csv", "run,loss\nr1,0.5\n")
    with pytest.raises(IngestError, match=r"not a run-metrics file: no run_id / run_uuid column for run_id \(and "
                                          r"metric, value\) \(columns: run, loss\)"):
        ingest(store, RunMetricsSource(), [f])
    with pytest.raises(IngestError, match="mapping of value"):
        ingest(store, RunMetricsSource(columns={"run_id": "run", "metric": "'loss'", "value": "lossy"}), [f])
    assert store.con.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def test_options_are_checked() -> None:
    with pytest.raises(SourceError, match="runner cannot be mapped"):
        RunMetricsSource(columns={"runner": "x"})
    with pytest.raises(SourceError, match="time_unit"):
        RunMetricsSource(time_unit="days")
