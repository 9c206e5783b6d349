"""nvidia-smi --query-gpu CSV -> gpu_samples: units, missing values, quarantine, time zone, node."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.nvidia_smi import NvidiaSmiSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia-smi"
GPU0 = "GPU-8a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
GPU1 = "GPU-f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f"
COLS = "ts, node, gpu, gpu_index, gpu_model, gpu_util, fb_used_mib, fb_free_mib, power_w, energy_j, source, _row"


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.duckdb")
    yield store
    store.close()


def rows(store: Store, where: str = "true") -> list[tuple]:
    return store.con.execute(f"SELECT {COLS} FROM gpu_samples WHERE {where} ORDER BY _file, _row").fetchall()


def test_recorded_output_loads_with_exact_values(s: Store) -> None:
    res = ingest(s, NvidiaSmiSource(node="gpu-node-1"), [FIXTURES / "gpu-node-1.csv"])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 8, 8, 0)
    got = rows(s)
    assert got[0] == (datetime(2026, 11, 20, 14, 3, 7, 123000), "gpu-node-1", GPU0, None, "NVIDIA H100 80GB HBM3",
                      0.87, 40321.0, 81559.0 - 40321.0, 512.34, None, "nvidia-smi", 1)
    assert got[1][2:10] == (GPU1, None, "NVIDIA H100 80GB HBM3", 0.0, 4.0, 81555.0, 71.02, None)
    # [N/A] power and [Not Supported] utilization are NULL, and the rows load.
    assert got[2][2] == GPU0 and got[2][8] is None and got[2][5] == 0.91
    assert got[5][2] == GPU1 and got[5][5] is None and got[5][8] == 70.95
    assert got[4][5] == 1.0 and got[4][7] == 2454.0
    assert [r[-1] for r in got] == list(range(1, 9))
    assert s.con.execute("SELECT count(DISTINCT ts), count(DISTINCT gpu) FROM gpu_samples").fetchone() == (8, 2)


def test_node_defaults_to_file_stem(s: Store) -> None:
    ingest(s, NvidiaSmiSource(), [FIXTURES / "gpu-node-1.csv"])
    assert s.con.execute("SELECT DISTINCT node FROM gpu_samples").fetchall() == [("gpu-node-1",)]


def test_timezone_option_converts_local_time_to_utc(s: Store) -> None:
    res = ingest(s, NvidiaSmiSource(timezone="Europe/Paris"), [FIXTURES / "gpu-node-2-noheader.csv"])
    assert res.rows_loaded == 2
    got = rows(s)
    # 09:03 in Paris in November (UTC+1) is 08:03 UTC; noheader,nounits values read in the default order.
    assert got[0] == (datetime(2026, 11, 20, 8, 3, 7, 10000), "gpu-node-2-noheader",
                      "GPU-11111111-2222-3333-4444-555555555555", None, "NVIDIA A100-SXM4-40GB", 0.55, 20480.0,
                      20480.0, 250.5, None, "nvidia-smi", 1)
    assert got[1][5:9] == (None, 0.0, 40960.0, None)
    assert any("no header" in n for n in res.notes)


def test_summer_time_offset(tmp_path: Path, s: Store) -> None:
    f = tmp_path / "n.csv"
    f.write_text("timestamp, uuid, utilization.gpu [%]\n2026/07/01 12:00:00.000, GPU-x, 50 %\n")
    ingest(s, NvidiaSmiSource(timezone="America/New_York"), [f])
    assert s.con.execute("SELECT ts, gpu_util, fb_free_mib FROM gpu_samples").fetchone() == (
        datetime(2026, 7, 1, 16, 0), 0.5, None)


def test_bad_values_are_quarantined_with_row_and_reason(s: Store) -> None:
    path = FIXTURES / "gpu-node-bad.csv"
    res = ingest(s, NvidiaSmiSource(), [path])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (6, 2, 4)
    assert [r[-1] for r in rows(s)] == [1, 7]  # the repeated header (line 7) is not a row
    q = s.con.execute("SELECT file, row_number, \"column\", reason FROM quarantine_errors ORDER BY row_number") \
        .fetchall()
    assert q == [
        (str(path), 2, "utilization.gpu", "not a number in %: '1O3 %'"),
        (str(path), 3, "utilization.gpu", "utilization outside 0..100 %: 103 %"),
        (str(path), 4, "power.draw", "not a number in W: '[Unknown Error]'"),
        (str(path), 5, "_line", "expected 7 fields (timestamp, uuid, name, utilization.gpu, memory.used, "
                                "memory.total, power.draw), found 4: 2026/11/20 14:03:37.140, " + GPU0
         + ", NVIDIA H100 80GB HBM3, 100 %"),
    ]
    raw = s.con.execute("SELECT raw FROM quarantine WHERE row_number = 2").fetchone()[0]
    assert raw["gpu_util"] == "1O3 %" and raw["ts"] == "2026/11/20 14:03:07.125"


def test_gzip_index_and_unparseable_timestamp(tmp_path: Path, s: Store) -> None:
    f = tmp_path / "node-9.csv.gz"
    f.write_bytes(gzip.compress(
        b"timestamp, index, name, utilization.gpu [%], memory.used [MiB], memory.free [MiB]\n"
        b"2026/11/20 10:00:00.000, 0, Tesla T4, 5 %, 100 MiB, 15000 MiB\n"
        b"yesterday, 1, Tesla T4, 5 %, 100 MiB, 15000 MiB\n"))
    res = ingest(s, NvidiaSmiSource(), [f])
    assert (res.rows_loaded, res.rows_quarantined) == (1, 1)
    assert s.con.execute("SELECT node, gpu, gpu_index, fb_free_mib FROM gpu_samples").fetchone() == (
        "node-9", "node-9/0", 0, 15000.0)
    assert s.con.execute("SELECT row_number, \"column\" FROM quarantine_errors").fetchall() == [(2, "timestamp")]


def test_noheader_with_other_columns_option(tmp_path: Path, s: Store) -> None:
    f = tmp_path / "n.csv"
    f.write_text("GPU-a, 2026/11/20 10:00:00.000, 300.5\n")
    ingest(s, NvidiaSmiSource(columns="uuid,timestamp,power.draw"), [f])
    assert s.con.execute("SELECT gpu, ts, power_w FROM gpu_samples").fetchone() == (
        "GPU-a", datetime(2026, 11, 20, 10), 300.5)


def test_header_problems_fail_before_loading(tmp_path: Path, s: Store) -> None:
    f = tmp_path / "n.csv"
    f.write_text("a, b\n")
    with pytest.raises(IngestError, match="option columns names 7"):
        ingest(s, NvidiaSmiSource(), [f])
    f.write_text("uuid, name\nGPU-a, T4\n")
    with pytest.raises(IngestError, match="no timestamp field"):
        ingest(s, NvidiaSmiSource(), [f])
    with pytest.raises(SourceError, match="unknown time zone"):
        NvidiaSmiSource(timezone="Mars/Olympus")
    assert s.con.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def test_corrupt_tail_of_a_log_is_quarantined_not_fatal(tmp_path: Path, s: Store) -> None:
    f = tmp_path / "n.csv"
    f.write_bytes(b"timestamp, uuid, utilization.gpu [%]\n2026/11/20 10:00:00.000, GPU-a, 5 %\n"
                  b"2026/11/20 10:00:15.000, GPU-\xff\xfe, 5 %\n\x00\x00\x00\n")
    res = ingest(s, NvidiaSmiSource(), [f])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (3, 1, 2)
    q = s.con.execute("SELECT row_number, reason FROM quarantine_errors ORDER BY 1").fetchall()
    assert q[0][0] == 2 and q[0][1].startswith("not UTF-8 text")
    assert q[1][0] == 3 and q[1][1].startswith("expected 3 fields")


def test_header_only_file_is_empty(tmp_path: Path, s: Store) -> None:
    f = tmp_path / "n.csv"
    f.write_text("timestamp, uuid, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB], power.draw [W]\n")
    assert ingest(s, NvidiaSmiSource(), [f]).status == "empty"


def test_log_and_txt_files_and_folders(tmp_path: Path, s: Store) -> None:
    body = (FIXTURES / "gpu-node-1.csv").read_bytes()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "node-a.log").write_bytes(body)
    (tmp_path / "logs" / "node-b.txt.gz").write_bytes(gzip.compress(body))
    (tmp_path / "logs" / "README.md").write_text("not read")
    res = ingest(s, NvidiaSmiSource(), [tmp_path / "logs"])
    assert res.rows_loaded == 16
    assert s.con.execute("SELECT node, count(*) FROM gpu_samples GROUP BY 1 ORDER BY 1").fetchall() == [
        ("node-a", 8), ("node-b", 8)]
    with pytest.raises(IngestError, match=r"not a \.csv, \.log or \.txt"):
        ingest(s, NvidiaSmiSource(), [tmp_path / "logs" / "README.md"])
