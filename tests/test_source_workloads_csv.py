"""The workloads-csv source: Alibaba presets against independent DuckDB computations on the raw slices,
custom mappings through options, and bad rows quarantined with their row numbers."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.workloads_csv import WorkloadsCsvSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIXTURES = Path(__file__).parent / "fixtures" / "alibaba"
OPENB = FIXTURES / "openb_pods_slice.csv"
DLRM = FIXTURES / "dlrm_slice.csv"


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def one(store: Store, sql: str, params: list | None = None):
    return store.con.execute(sql, params or []).fetchone()


SHARE_SECONDS = "sum(gpu_share * epoch(end_ts - start_ts))"


def raw_openb(sql_tail: str) -> list[tuple]:
    """Direct computation on the raw slice, independent of the source: DuckDB's own typed CSV reader and
    the upstream README's rule (num_gpu = 1: gpu_milli/1000 of one GPU; otherwise num_gpu whole GPUs)."""
    return duckdb.sql(
        "SELECT qos, sum(CASE WHEN num_gpu = 1 THEN gpu_milli / 1000 ELSE num_gpu END "
        f"* (deletion_time - scheduled_time)) FROM read_csv('{OPENB}') WHERE scheduled_time IS NOT NULL {sql_tail}"
    ).fetchall()


def test_openb_totals_match_the_raw_trace(store):
    res = ingest(store, WorkloadsCsvSource(preset="alibaba-openb"), [OPENB])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 331, 331, 0)
    total = one(store, f"SELECT {SHARE_SECONDS}, count(*) FROM workloads")
    expected = sum(v for _, v in raw_openb("GROUP BY qos"))
    assert total[0] == pytest.approx(expected, rel=1e-12)
    assert total[0] == pytest.approx(129_583_091.04, abs=0.01)
    assert total[1] == 331
    per_qos = dict(store.con.execute(
        f"SELECT labels['qos'], {SHARE_SECONDS} FROM workloads GROUP BY 1").fetchall())
    raw = dict(raw_openb("GROUP BY qos"))
    assert per_qos.keys() == raw.keys() == {"LS", "BE", "Burstable", "Guaranteed"}
    for qos, v in raw.items():
        assert per_qos[qos] == pytest.approx(v, rel=1e-12), qos


def test_openb_pods(store):
    ingest(store, WorkloadsCsvSource(preset="alibaba-openb"), [OPENB])

    def pod(name: str) -> tuple:
        return one(store, "SELECT source, kind, phase, start_ts, end_ts, gpu_resource, gpu_count, gpu_share, "
                          "cpu_request, memory_request_mib, labels FROM workloads WHERE workload_id = ?", [name])

    # scheduled at second 0 of the trace: the time origin itself
    assert pod("openb-pod-0000")[:8] == ("alibaba-openb", "pod", "Running", datetime(2023, 1, 1),
                                         datetime(2023, 1, 1) + timedelta(seconds=12537496),
                                         "nvidia.com/gpu", 1.0, 1.0)
    # fractional: gpu_milli 460 of one GPU, seconds 427061 .. 12902960 after the origin
    p = pod("openb-pod-0001")
    assert p[3:8] == (datetime(2023, 1, 5, 22, 37, 41), datetime(2023, 5, 30, 8, 9, 20), "gpu_milli", 1.0, 0.46)
    assert p[8:] == (6.0, 12288.0, {"qos": "LS"})
    # multi-GPU pods hold whole GPUs (16 + 60 + 30: one of the 16 2-GPU pods was never scheduled)
    assert one(store, "SELECT count(*), sum(gpu_share) FROM workloads WHERE gpu_count > 1") == (33, 106.0)
    assert one(store, "SELECT count(*) FROM workloads WHERE gpu_count > 1 AND gpu_share <> gpu_count") == (1,)
    assert one(store, "SELECT workload_id, gpu_share, start_ts FROM workloads "
                      "WHERE gpu_count > 1 AND gpu_share <> gpu_count")[1:] == (0.0, None)
    # never scheduled: requested a GPU, held none
    unscheduled = one(store, "SELECT count(*), sum(gpu_count), sum(gpu_share), count(start_ts), "
                             "list_distinct(list(phase)) FROM workloads WHERE start_ts IS NULL")
    assert unscheduled == (23, 23.0, 0.0, 0, ["Pending"])  # 1 CPU-only, 21 one-GPU, 1 two-GPU
    # CPU-only pods
    assert one(store, "SELECT count(*), sum(gpu_share), count(gpu_resource) FROM workloads WHERE gpu_count = 0") \
        == (19, 0.0, 0)
    assert pod("openb-pod-0009")[-1] == {"qos": "LS", "gpu_spec": "V100M16|V100M32"}


def test_time_origin_option_moves_every_timestamp(store):
    ingest(store, WorkloadsCsvSource(preset="alibaba-openb", time_origin="2024-02-29T12:00:00+02:00",
                                     source_name="openb-2024"), [OPENB])
    assert one(store, "SELECT min(start_ts), max(end_ts), any_value(source) FROM workloads") == (
        datetime(2024, 2, 29, 10, 0), datetime(2024, 2, 29, 10) + timedelta(seconds=12902960), "openb-2024")


def test_dlrm_matches_the_raw_trace(store):
    res = ingest(store, WorkloadsCsvSource(preset="alibaba-dlrm"), [DLRM])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (299, 299, 0)
    raw = duckdb.sql(
        f"SELECT sum(gpu_request * (deletion_time - scheduled_time)), sum(gpu_request), "
        f"count(*) FILTER (WHERE scheduled_time IS NULL), count(*) FILTER (WHERE deletion_time IS NULL), "
        f"sum(memory_request) * 1024 FROM read_csv('{DLRM}')").fetchall()[0]
    got = one(store, f"SELECT {SHARE_SECONDS}, sum(gpu_share), count(*) FILTER (WHERE start_ts IS NULL), "
                     "count(*) FILTER (WHERE end_ts IS NULL), sum(memory_request_mib) FROM workloads")
    assert got == pytest.approx(raw)
    assert got[1:4] == (97.0, 91, 117)
    by_role = dict(store.con.execute("SELECT labels['role'], sum(gpu_share) FROM workloads GROUP BY 1").fetchall())
    assert by_role == {"HN": 97.0, "CN": 0.0}
    # known start and end: seconds from the DLRM origin; unknown ones stay NULL (before / after the trace)
    first = one(store, "SELECT start_ts, end_ts, phase, owner_kind, owner_name, gpu_resource FROM workloads "
                       "WHERE workload_id = 'instance_0'")
    assert first == (None, None, "Running", "app", "app_0", "nvidia.com/gpu")
    assert one(store, "SELECT min(start_ts) >= TIMESTAMP '2025-01-01', count(*) FILTER (WHERE phase = 'Deleted') "
                      "FROM workloads") == (True, 182)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CUSTOM = {
    "columns": {"workload_id": "job", "name": "job", "kind": "'slurm-job'", "start_ts": "began",
                "end_ts": "ended", "gpu_count": "gpus", "gpu_share": "gpus * frac", "exit_code": "rc"},
    "numeric": ["gpus", "FRAC"],
    "time_unit": "ms",
    "labels": ["user"],
    "annotations": {"note": "upper(user)"},
    "source_name": "lab",
}


def test_custom_mapping_through_options(tmp_path, store):
    f = _write(tmp_path / "jobs.csv", "job,user,gpus,frac,began,ended,rc\n"
                                      "j1,ann,2,0.5,1700000000000,1700003600000,0\n"
                                      "j2,bob,4,1,1700000000500,,\n")
    res = ingest(store, WorkloadsCsvSource(**CUSTOM), [f])
    assert (res.rows_loaded, res.rows_quarantined) == (2, 0)
    rows = store.con.execute("SELECT workload_id, source, kind, start_ts, end_ts, gpu_count, gpu_share, exit_code, "
                             "labels, annotations FROM workloads ORDER BY 1").fetchall()
    assert rows == [
        ("j1", "lab", "slurm-job", datetime(2023, 11, 14, 22, 13, 20), datetime(2023, 11, 14, 23, 13, 20), 2.0, 1.0,
         0, {"user": "ann"}, {"note": "ANN"}),
        ("j2", "lab", "slurm-job", datetime(2023, 11, 14, 22, 13, 20, 500000), None, 4.0, 4.0, None,
         {"user": "bob"}, {"note": "BOB"}),
    ]


def test_iso_times_and_parquet(tmp_path, store):
    f = tmp_path / "w.parquet"
    duckdb.sql("SELECT 'w1' AS id, '2026-03-01T10:00:00+01:00' AS t0, '2026-03-01T10:30:00Z' AS t1, 0.25 AS g") \
        .write_parquet(str(f))
    src = WorkloadsCsvSource(columns={"workload_id": "id", "start_ts": "t0", "end_ts": "t1", "gpu_share": "g"},
                             time_unit="iso")
    assert ingest(store, src, [f]).rows_loaded == 1
    assert one(store, "SELECT source, start_ts, end_ts, gpu_share FROM workloads") == \
        ("csv", datetime(2026, 3, 1, 9), datetime(2026, 3, 1, 10, 30), 0.25)


def test_bad_rows_are_quarantined_with_row_numbers(tmp_path, store):
    f = _write(tmp_path / "bad.csv", "job,user,gpus,frac,began,ended,rc\n"
                                     "ok,ann,1,1,0,1000,0\n"          # row 1
                                     ",ann,1,1,0,1000,0\n"            # 2: no id
                                     "late,ann,1,1,5000,1000,0\n"     # 3: ends before it starts
                                     "neg,ann,1,-0.5,0,1000,0\n"      # 4: negative share
                                     "nan,ann,one,1,0,1000,0\n"       # 5: not a number (declared numeric)
                                     "rc,ann,1,1,0,1000,oops\n"       # 6: not a number (exit code)
                                     "t,ann,1,1,soon,1000,0\n"        # 7: not a time
                                     "ok2,bob,1,1,0,,0\n")            # 8
    res = ingest(store, WorkloadsCsvSource(**CUSTOM), [f])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (8, 2, 6)
    assert [r[0] for r in store.con.execute("SELECT workload_id FROM workloads ORDER BY _row").fetchall()] == \
        ["ok", "ok2"]
    errors = store.con.execute("SELECT row_number, \"column\", reason FROM quarantine_errors ORDER BY 1").fetchall()
    assert [(r[0], r[1]) for r in errors] == [(2, "workload_id"), (3, "end_ts"), (4, "gpu_share"), (5, "gpus"),
                                              (6, "exit_code"), (7, "start_ts")]
    reasons = {r[0]: r[2] for r in errors}
    assert reasons[2] == "workload_id must not be empty"
    assert reasons[3] == "end '1970-01-01 00:00:01' is before start '1970-01-01 00:00:05'"
    assert reasons[4] == "gpu_share must not be negative: '-0.5'"
    assert reasons[5].startswith("CAST: ") and 'Could not convert string "one"' in reasons[5]
    assert reasons[6] == "not a number: 'oops'"
    assert reasons[7] == "not a time: 'soon'"


def test_restatement_replaces_a_workload(tmp_path, store):
    src = WorkloadsCsvSource(preset="alibaba-openb")
    ingest(store, src, [OPENB])
    lines = OPENB.read_text().splitlines()
    assert lines[2].startswith("openb-pod-0001,6000,12288,1,460,")
    newer = _write(tmp_path / "newer.csv", "\n".join([lines[0], lines[2].replace(",460,", ",500,")]) + "\n")
    res = ingest(store, src, [newer])
    assert (res.rows_loaded, res.rows_replaced, res.replaced_batches) == (1, 1, [1])
    assert one(store, "SELECT count(*), sum(gpu_share) FILTER (WHERE workload_id = 'openb-pod-0001') "
                      "FROM workloads") == (331, 0.5)


@pytest.mark.parametrize(("options", "message"), [
    ({"preset": "nope"}, "unknown preset 'nope' (known: alibaba-dlrm, alibaba-openb)"),
    ({"columns": {"name": "x"}}, "map at least columns.workload_id"),
    ({"columns": {"workload_id": "x", "gpu": "y"}}, "columns gpu cannot be mapped"),
    ({"columns": {"workload_id": "x", "labels": "y"}}, "columns labels cannot be mapped"),
    ({"preset": "alibaba-openb", "time_origin": "yesterday"}, "time_origin 'yesterday' is not an ISO 8601"),
    ({"preset": "alibaba-openb", "time_unit": "h"}, "time_unit"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(SourceError) as err:
        WorkloadsCsvSource(**options)
    assert message in str(err.value)


def test_a_mapping_the_file_cannot_satisfy_is_refused_before_loading(tmp_path, store):
    # like openb_pod_list_multigpu50.csv upstream: a resample without the time columns
    f = _write(tmp_path / "multigpu.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\nopenb-pod-0000,1,1,1,1000\n")
    with pytest.raises(IngestError) as err:
        ingest(store, WorkloadsCsvSource(preset="alibaba-openb"), [f])
    assert "mapping of phase (pod_phase) does not apply to this file" in str(err.value)
    assert one(store, "SELECT count(*) FROM batches") == (0,)


def test_gzipped_csv(tmp_path, store):
    f = tmp_path / "pods.csv.gz"
    f.write_bytes(gzip.compress(OPENB.read_bytes()))
    res = ingest(store, WorkloadsCsvSource(preset="alibaba-openb"), [f])
    assert (res.rows_loaded, res.rows_quarantined) == (331, 0)
    assert one(store, f"SELECT round({SHARE_SECONDS}, 2) FROM workloads") == (129_583_091.04,)


def test_options_given_as_text_like_the_cli_does(tmp_path, store):
    f = _write(tmp_path / "jobs.csv", "job,user,gpus,frac,began,ended,rc\nj1,ann,2,0.5,0,3600,0\n")
    src = WorkloadsCsvSource(columns='{workload_id: job, start_ts: began, end_ts: ended, gpu_share: "gpus * frac"}',
                             numeric="gpus, frac", labels="user,rc", time_origin="2026-01-01")
    ingest(store, src, [f])
    assert one(store, "SELECT gpu_share * epoch(end_ts - start_ts), labels, start_ts FROM workloads") == \
        (3600.0, {"user": "ann", "rc": "0"}, datetime(2026, 1, 1))
