"""The Slurm source: recorded ``sacct --parsable2 --allocations`` output, ``--noheader``, local times, bad
lines to quarantine, and a newer export replacing the jobs it holds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aifinops.sources.base import Source, SourceError
from aifinops.sources.slurm import FORMAT, SlurmSource
from aifinops.store.connection import Store
from aifinops.store.ingest import BatchResult, IngestError, ingest

SACCT = Path(__file__).parent / "fixtures" / "slurm" / "sacct.txt"
COLS = ("workload_id", "name", "node", "start_ts", "end_ts", "phase", "gpu_resource", "gpu_count", "gpu_share",
        "cpu_request", "memory_request_mib", "exit_code")
D = datetime

EXPECTED = [
    ("4101", "llm-pretrain", "gpu[01-02]", D(2026, 11, 20, 10), D(2026, 11, 20, 22, 30), "COMPLETED", "gres/gpu:a100",
     16.0, 16.0, 128.0, 1000 * 1024.0, 0),
    ("4102", "finetune-7b", "gpu03", D(2026, 11, 20, 11), D(2026, 11, 20, 11, 45, 12), "FAILED", "gres/gpu:a100",
     8.0, 8.0, 32.0, 500 * 1024.0, 1),
    ("4103", "sweep-lr", "gpu04", D(2026, 11, 20, 12), D(2026, 11, 20, 13, 10), "PREEMPTED", "gres/gpu",
     2.0, 2.0, 8.0, 64 * 1024.0, 128 + 15),
    ("4104", "notebook", "gpu05", D(2026, 11, 20, 13), D(2026, 11, 20, 14), "CANCELLED", "gres/gpu:1g.10gb",
     1.0, 1 / 7, 4.0, 16 * 1024.0, 128 + 15),
    ("4105_1", "hpo", "gpu06", D(2026, 11, 20, 14), D(2026, 11, 20, 15), "COMPLETED", "gres/gpu:h100",
     1.0, 1.0, 8.0, 32 * 1024.0, 0),
    ("4105_2", "hpo", "gpu06", D(2026, 11, 20, 14), D(2026, 11, 20, 16, 0, 1), "TIMEOUT", "gres/gpu:h100",
     1.0, 1.0, 8.0, 32 * 1024.0, 0),
    ("4105_[3-4]", "hpo", None, None, None, "PENDING", None, 0.0, 0.0, None, None, 0),
    ("4106", "serve-eval", "gpu07", D(2026, 11, 21, 9), None, "RUNNING", "gres/gpu:h100", 4.0, 4.0, 16.0, 256000.0, 0),
    ("4107", "preprocess", "cpu[01-04]", D(2026, 11, 21, 1), D(2026, 11, 21, 2), "COMPLETED", None,
     0.0, 0.0, 256.0, 1024 * 1024.0, 0),
    ("4108", "train-moe", "gpu[08-09]", D(2026, 11, 21, 4), D(2026, 11, 21, 5), "NODE_FAIL", "gres/gpu",
     16.0, 16.0, 64.0, 2000 * 1024.0, 0),
    ("4109", "killed-job", "gpu03", D(2026, 11, 21, 6), D(2026, 11, 21, 6, 5), "FAILED", "gres/gpu",
     1.0, 1.0, 4.0, 8 * 1024.0, 137),
]


def load(store: Store, source: Source, paths: list[Any]) -> BatchResult:
    """Ingest as the CLI does: the engine asks the source which files the paths name (``Source.files``)."""
    return ingest(store, source, paths)


def rows(store: Store) -> list[tuple[Any, ...]]:
    return store.con.execute(f"SELECT {', '.join(COLS)} FROM workloads ORDER BY _batch_id, _row").fetchall()


def lines() -> list[str]:
    return SACCT.read_text().splitlines()


def test_recorded_sacct_parses_exactly(store):
    result = load(store, SlurmSource(), [SACCT])
    assert (result.status, result.rows_read, result.rows_loaded, result.rows_quarantined) == ("loaded", 11, 11, 0)
    assert rows(store) == EXPECTED
    labels, state, tres, kinds = store.con.execute(
        "SELECT labels, annotations['slurm.state'], annotations['slurm.alloc_tres'], source || '/' || kind "
        "FROM workloads WHERE workload_id = '4104'").fetchone()
    assert labels == {"user": "dave", "account": "vision", "partition": "interactive", "job_name": "notebook",
                      "team": "vision"}
    assert (state, kinds) == ("CANCELLED by 1042", "slurm/slurm-job")
    assert tres == "billing=4,cpu=4,gres/gpu:1g.10gb=1,mem=16G,node=1"
    assert store.con.execute("SELECT _row FROM workloads ORDER BY _row").fetchall() == [(i,) for i in range(1, 12)]


def test_noheader_and_local_time(store, tmp_path):
    path = tmp_path / "noheader.txt"
    path.write_text("\n".join(lines()[1:3]) + "\n")
    load(store, SlurmSource(header=False, timezone="Europe/Berlin"), [path])
    got = store.con.execute("SELECT workload_id, start_ts, end_ts FROM workloads ORDER BY _row").fetchall()
    assert got == [("4101", D(2026, 11, 20, 9), D(2026, 11, 20, 21, 30)),  # CET = UTC+1 in November
                   ("4102", D(2026, 11, 20, 10), D(2026, 11, 20, 10, 45, 12))]


def test_the_team_label_comes_from_the_account_or_another_field(store, tmp_path):
    load(store, SlurmSource(team_from="user"), [SACCT])
    teams = dict(store.con.execute("SELECT workload_id, labels['team'] FROM workloads").fetchall())
    assert teams["4104"] == "dave"
    with pytest.raises(SourceError, match="team_from"):
        SlurmSource(team_from="colour")


def test_a_header_in_another_order_with_fewer_fields(store, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("State|AllocTRES|End|Start|JobID\nCOMPLETED|cpu=2,gres/gpu=1|Unknown|None|77\n")
    load(store, SlurmSource(), [path])
    assert store.con.execute("SELECT workload_id, name, start_ts, gpu_count, labels FROM workloads").fetchall() == [
        ("77", None, None, 1.0, {})]


def test_bad_lines_are_quarantined_with_row_and_reason(store, tmp_path):
    head, *body = lines()
    body[1] = body[1].replace("2026-11-20T11:45:12", "2026-11-19T11:45:12")  # ends before it starts
    body[2] = body[2].replace("2026-11-20T12:00:00", "20/11/2026 12:00")  # not a sacct time
    body[4] = "|" + body[4].split("|", 1)[1]  # no JobID
    body[8] = body[8].replace("preprocess", "pre|process")  # a job name holding the delimiter
    body.insert(6, "4105_2.batch|batch||search||gpu06|2026-11-20T14:00:00|2026-11-20T16:00:01|CANCELLED|0:15|"
                   "cpu=8,gres/gpu:h100=1,mem=32G,node=1|02:00:01")  # a step: sacct without --allocations
    path = tmp_path / "bad.txt"
    path.write_text("\n".join([head, *body]) + "\n")
    result = load(store, SlurmSource(), [path])
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (12, 7, 5)
    got = store.con.execute(
        "SELECT row_number, list_transform(errors, lambda e: coalesce(e.\"column\", 'line') || ': ' || e.reason) "
        "FROM quarantine ORDER BY row_number").fetchall()
    assert got[:4] == [
        (2, ["end_ts: ends 2026-11-19T11:45:12 before it starts 2026-11-20T11:00:00"]),
        (3, ["start_ts: not a sacct time: 20/11/2026 12:00"]),
        (5, ["workload_id: a job without JobID"]),
        (7, ["workload_id: a job step, not an allocation (run sacct with --allocations): 4105_2.batch"]),
    ]
    assert got[4] == (10, ["line: TOO MANY COLUMNS: Expected Number of Columns: 12 Found: 13"])
    loaded = [r[0] for r in store.con.execute("SELECT workload_id, _row FROM workloads ORDER BY _row").fetchall()]
    assert loaded == ["4101", "4104", "4105_2", "4105_[3-4]", "4106", "4108", "4109"]
    assert store.con.execute("SELECT _row FROM workloads ORDER BY _row").fetchall() == [
        (1,), (4,), (6,), (8,), (9,), (11,), (12,)]


def test_a_newer_export_replaces_the_jobs_it_holds(store, tmp_path):
    source = SlurmSource()
    load(store, source, [SACCT])
    later = tmp_path / "later.txt"
    later.write_text("\n".join([
        lines()[0],
        "4106|serve-eval|frank|search|gpu|gpu07|2026-11-21T09:00:00|2026-11-21T12:00:00|COMPLETED|0:0|"
        "billing=32,cpu=16,gres/gpu:h100=4,mem=256000M,node=1|03:00:00",
        "4105_3|hpo|erin|search|gpu|gpu06|2026-11-21T10:00:00|Unknown|RUNNING|0:0|"
        "billing=8,cpu=8,gres/gpu:h100=1,gres/gpu=1,mem=32G,node=1|00:10:00",
    ]) + "\n")
    second = load(store, source, [later])
    assert (second.rows_loaded, second.rows_replaced, second.replaced_batches) == (2, 1, [1])
    assert store.con.execute("SELECT batch_id, status FROM batches ORDER BY 1").fetchall() == [
        (1, "partly replaced"), (2, "loaded")]
    assert store.con.execute("SELECT count(*) FROM workloads WHERE workload_id = '4106'").fetchone() == (1,)
    assert store.con.execute("SELECT end_ts, phase FROM workloads WHERE workload_id = '4106'").fetchone() == (
        D(2026, 11, 21, 12), "COMPLETED")
    assert store.con.execute("SELECT count(*) FROM workloads").fetchone() == (12,)

    again = tmp_path / "all.txt"
    again.write_text(SACCT.read_text() + "\n")  # same jobs, different bytes: a new delivery
    third = load(store, source, [again])
    assert (third.rows_replaced, third.replaced_batches) == (11, [1, 2])
    assert store.con.execute("SELECT batch_id, status FROM batches ORDER BY 1").fetchall() == [
        (1, "replaced"), (2, "partly replaced"), (3, "loaded")]
    assert rows(store)[1:] == EXPECTED  # after 4105_3, which only batch 2 holds


def test_a_folder_of_exports(store, tmp_path):
    """Folders: sacct exports are read, a README beside them is not (named explicitly, it would be refused)."""
    (tmp_path / "exports" / "2026-11").mkdir(parents=True)
    (tmp_path / "exports" / "2026-11" / "jobs.txt").write_text(SACCT.read_text())
    (tmp_path / "exports" / "README.txt").write_text("sacct exports, one file per month\n")
    result = load(store, SlurmSource(), [tmp_path / "exports"])
    assert [f.path.name for f in result.files] == ["jobs.txt"] and result.rows_loaded == 11


def test_not_sacct_output_is_refused(store, tmp_path):
    path = tmp_path / "jobs.txt"
    path.write_text("JobID,State,Start\n1,COMPLETED,2026-11-20T10:00:00\n")
    with pytest.raises(IngestError, match=r"not sacct output: missing field\(s\) JobID, Start, End, State"):
        load(store, SlurmSource(), [path])
    assert len(FORMAT) == 12
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(IngestError, match="the file is empty"):
        load(store, SlurmSource(header=False), [tmp_path / "empty.txt"])
