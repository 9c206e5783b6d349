"""The dcgm source: saved dcgm-exporter scrapes and Prometheus query_range JSON -> gpu_samples rows.

Fixtures are hand-written in dcgm-exporter's exact exposition format (see tests/fixtures/dcgm/SOURCE.txt).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from aifinops.sources.dcgm import DcgmSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIX = Path(__file__).parent / "fixtures" / "dcgm"
SCRAPE_TIME = "2026-11-20T10:00:00"
H100_0 = "GPU-5fd4a9b2-1c3e-4b7a-9e21-0a8d3f6c7b10"
H100_1 = "GPU-9a1e7c44-2b6d-4f0e-8c35-7d2f1e9b4a62"
A100_0 = "GPU-3c8b2e11-7f4a-4d19-b6e2-5a0c9d8e1f23"
A100_1 = "GPU-e41d6a90-0b3c-4e85-a7f2-6c1b2d3e4f50"
LABELS = ('gpu="0",UUID="GPU-1111",pci_bus_id="00000000:18:00.0",device="nvidia0",'
          'modelName="NVIDIA H100 80GB HBM3",Hostname="node-x",DCGM_FI_DRIVER_VERSION="550.54.15"')


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def rows(store: Store, where: str = "true") -> list[dict]:
    return store.rows(f"SELECT * EXCLUDE (_batch_id, _errors, _warnings, _raw) FROM gpu_samples WHERE {where} "
                      "ORDER BY node, gpu, gpu_instance_id NULLS FIRST, ts")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_scrape_folder_pivots_to_one_row_per_gpu_instance_and_pod(store: Store) -> None:
    res = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [FIX / "scrape"])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 6, 6, 0)
    got = rows(store)
    assert [(r["node"], r["gpu"], r["gpu_instance_id"]) for r in got] == [
        ("node-a", H100_0, None), ("node-a", H100_1, None), ("node-a", H100_1, "2"), ("node-a", H100_1, "9"),
        ("node-b", A100_0, None), ("node-b", A100_1, None)]
    a0 = got[0]
    assert a0 == {
        "ts": datetime(2026, 11, 20, 10, 0), "node": "node-a", "gpu": H100_0, "gpu_index": 0,
        "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_instance_id": None, "gpu_instance_profile": None,
        "namespace": "ml-train", "pod": "train-llm-0", "container": "trainer", "job": None, "_superseded": False,
        "sm_active": 0.85, "gr_engine_active": 0.912345, "gpu_util": 0.87, "fb_used_mib": 68110.0,
        "fb_free_mib": 12345.0, "power_w": 612.483, "energy_j": 8123456.789, "source": "dcgm",
        "_file": str(FIX / "scrape" / "node-a.prom"), "_row": 1}
    b1 = got[5]
    assert (b1["gpu_util"], b1["sm_active"], b1["gr_engine_active"], b1["energy_j"], b1["pod"]) == (
        1.0, 0.997, 1.0, 987654321.0, "train-llm-1")
    # an idle GPU: dcgm-exporter writes pod="" -> no pod
    assert (got[4]["pod"], got[4]["namespace"], got[4]["container"], got[4]["gpu_util"]) == (None, None, None, 0.0)


def test_mig_instances_are_rows_of_their_own(store: Store) -> None:
    ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [FIX / "scrape" / "node-a.prom"])
    got = {r["gpu_instance_id"]: r for r in rows(store, f"gpu = '{H100_1}'")}
    whole, big, small = got[None], got["2"], got["9"]
    # device-level fields of a MIG GPU carry no instance labels: power and energy stay on the whole GPU
    assert (whole["power_w"], whole["energy_j"], whole["fb_used_mib"], whole["gpu_instance_profile"]) == (
        245.117, 3456789.012, None, None)
    assert (big["gpu_instance_profile"], big["sm_active"], big["gr_engine_active"], big["fb_used_mib"],
            big["fb_free_mib"], big["pod"], big["namespace"], big["power_w"]) == (
        "3g.40gb", 0.375, 0.41, 10240.0, 30210.0, "infer-api-7d9f8c6b5-x2k4q", "ml-serve", None)
    assert (small["gpu_instance_profile"], small["sm_active"], small["fb_free_mib"], small["pod"]) == (
        "1g.10gb", 0.0, 9800.0, None)
    assert big["gpu_util"] is None  # dcgm-exporter does not report GPU_UTIL for MIG instances


def test_unknown_metrics_are_ignored_and_counted_in_a_note(store: Store) -> None:
    res = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [FIX / "scrape" / "node-a.prom"])
    assert res.notes == [
        "node-a.prom: 17 sample(s) without a timestamp, stamped 2026-11-20T10:00:00Z (the scrape_time option)",
        "node-a.prom: ignored 4 sample(s) of 2 metric(s) not used: DCGM_FI_DEV_GPU_TEMP (2), DCGM_FI_DEV_SM_CLOCK (2)"]
    note = store.rows("SELECT note FROM batches")[0]["note"]
    assert "DCGM_FI_DEV_GPU_TEMP (2)" in note


def test_query_range_json_prefers_exported_pod_labels(store: Store) -> None:
    res = ingest(store, DcgmSource(), [FIX / "query_range.json"])
    assert (res.rows_read, res.rows_loaded) == (6, 6)
    got = rows(store)
    h = [r for r in got if r["gpu"] == H100_0]
    assert [(r["ts"], r["gpu_util"], r["energy_j"]) for r in h] == [
        (datetime(2026, 11, 20, 10, 0, 0), 0.87, 8123456.789),
        (datetime(2026, 11, 20, 10, 0, 15), 0.91, 8132643.0),
        (datetime(2026, 11, 20, 10, 0, 30), 0.79, 8141829.211)]
    # exported_* names the workload; plain pod/namespace are the dcgm-exporter pod's own (honor_labels=false)
    assert {(r["namespace"], r["pod"], r["container"]) for r in h} == {("ml-train", "train-llm-0", "trainer")}
    idle = [r for r in got if r["gpu"] == A100_0]
    assert [(r["gpu_util"], r["pod"], r["namespace"]) for r in idle] == [(0.0, None, None)] * 3


def test_scrape_timestamp_order_sample_then_option_then_mtime(store: Store, tmp_path: Path) -> None:
    second = LABELS.replace('gpu="0"', 'gpu="1"').replace("1111", "2222")
    text = (f"# TYPE DCGM_FI_DEV_POWER_USAGE gauge\nDCGM_FI_DEV_POWER_USAGE{{{LABELS}}} 100.5 1795172400000\n"
            f"DCGM_FI_DEV_POWER_USAGE{{{second}}} 90\n")
    p = write(tmp_path, "one.prom", text)
    os.utime(p, (1795000000, 1795000000))
    ingest(store, DcgmSource(scrape_time="2026-11-20T10:30:00Z"), [p])
    assert [(r["gpu"], r["ts"]) for r in rows(store)] == [
        ("GPU-1111", datetime(2026, 11, 20, 11, 0)), ("GPU-2222", datetime(2026, 11, 20, 10, 30))]
    q = shutil.copy(p, tmp_path / "two.prom")
    os.utime(q, (1795000000, 1795000000))
    with Store(tmp_path / "other.duckdb") as other:
        res = ingest(other, DcgmSource(), [q])
        assert ("two.prom: 1 sample(s) without a timestamp, stamped 2026-11-18T11:06:40Z "
                "(the file's modification time)") in res.notes
        assert [r["ts"] for r in rows(other)] == [datetime(2026, 11, 20, 11, 0), datetime(2026, 11, 18, 11, 6, 40)]


def test_gpu_without_uuid_is_named_by_node_and_index(store: Store, tmp_path: Path) -> None:
    p = write(tmp_path, "no-uuid.prom", 'DCGM_FI_DEV_GPU_UTIL{gpu="3",Hostname="node-c"} 50\n')
    ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [p])
    assert [(r["gpu"], r["gpu_index"], r["gpu_util"]) for r in rows(store)] == [("node-c/3", 3, 0.5)]


def quarantined(store: Store) -> list[tuple]:
    return [(r["row_number"], r["column"], r["reason"])
            for r in store.rows("SELECT * FROM quarantine_errors ORDER BY row_number, \"column\"")]


def test_missing_labels_quarantine_the_row_with_a_reason(store: Store, tmp_path: Path) -> None:
    p = write(tmp_path, "bad.prom",
              f'DCGM_FI_DEV_GPU_UTIL{{{LABELS}}} 10\n'
              'DCGM_FI_DEV_GPU_UTIL{modelName="NVIDIA H100 80GB HBM3",Hostname="node-x"} 20\n'
              'DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-3333"} 30\n')
    res = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [p])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (3, 1, 2)
    assert quarantined(store) == [
        (2, "gpu", "UUID and gpu labels both missing: the sample cannot be tied to a GPU"),
        (3, "node", "Hostname label missing: the sample cannot be tied to a node")]
    raw = store.rows("SELECT raw FROM quarantine WHERE row_number = 3")[0]["raw"]
    assert (raw["gpu"], raw["gpu_util"], raw["node"]) == ("GPU-3333", "30.0", None)


def test_nan_loads_as_null_with_a_warning(store: Store, tmp_path: Path) -> None:
    p = write(tmp_path, "nan.prom", f"DCGM_FI_DEV_POWER_USAGE{{{LABELS}}} NaN\nDCGM_FI_DEV_FB_USED{{{LABELS}}} 5\n")
    res = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [p])
    assert (res.rows_loaded, res.rows_quarantined) == (1, 0)
    assert [(r["power_w"], r["fb_used_mib"]) for r in rows(store)] == [(None, 5.0)]
    assert res.warnings == [{"file": str(p), "rule": "nan", "column": "power_w", "rows": 1, "first_row": 1}]


def test_negative_infinite_and_out_of_range_values_are_quarantined(store: Store, tmp_path: Path) -> None:
    other = [LABELS.replace("1111", str(n)).replace('gpu="0"', f'gpu="{n}"') for n in range(5)]
    p = write(tmp_path, "range.prom",
              f"DCGM_FI_DEV_POWER_USAGE{{{other[0]}}} -3\n"
              f"DCGM_FI_DEV_GPU_UTIL{{{other[1]}}} 101\n"
              f"DCGM_FI_PROF_SM_ACTIVE{{{other[2]}}} 1.2\n"
              f"DCGM_FI_DEV_FB_USED{{{other[3]}}} +Inf\n"
              f"DCGM_FI_DEV_GPU_UTIL{{{other[4]}}} 100\n")
    res = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [p])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (5, 1, 4)
    assert quarantined(store) == [
        (1, "power_w", "DCGM_FI_DEV_POWER_USAGE is negative: -3.0"),
        (2, "gpu_util", "DCGM_FI_DEV_GPU_UTIL is above 100: 101.0"),
        (3, "sm_active", "DCGM_FI_PROF_SM_ACTIVE is above 1: 1.2"),
        (4, "fb_used_mib", "DCGM_FI_DEV_FB_USED is not finite: inf")]
    assert [r["gpu_util"] for r in rows(store)] == [1.0]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("page.prom", "<html><body>502 Bad Gateway</body></html>\n", "not Prometheus text exposition format"),
    ("bill.txt", "BilledCost,EffectiveCost\n1,2\n", "not Prometheus text exposition format"),
    ("empty.prom", "", "the file is empty"),
    ("blank.metrics", "\n  \n", "the file is empty"),
    ("r.json", '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\""}',
     'the Prometheus query failed: bad_data invalid parameter "query"'),
    ("r2.json", '{"hello": 1}', "not a Prometheus HTTP API response"),
    ("r3.json", "{not json", "not JSON"),
    ("r4.json", '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}}]}}',
     'malformed Prometheus query result (series 1 has no "values" array)'),
])
def test_unreadable_files_are_rejected_naming_the_file(store: Store, tmp_path: Path, name: str, text: str,
                                                       message: str) -> None:
    p = write(tmp_path, name, text)
    with pytest.raises(IngestError) as err:
        ingest(store, DcgmSource(), [FIX / "scrape" / "node-b.prom", p])
    assert str(err.value).startswith(f"{p}: ")
    assert message in str(err.value)
    assert store.rows("SELECT count(*) AS n FROM gpu_samples")[0]["n"] == 0


def test_other_file_types_and_empty_results(store: Store, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"bill\.csv: not a \.prom, \.txt, \.metrics or \.json file"):
        ingest(store, DcgmSource(), [write(tmp_path, "bill.csv", "a,b\n")])
    p = write(tmp_path, "none.json", '{"status":"success","data":{"resultType":"matrix","result":[]}}')
    res = ingest(store, DcgmSource(), [p])
    assert (res.status, res.rows_read) == ("empty", 0)
    assert "none.json: no samples" in res.notes


def test_reingesting_the_same_files_is_a_no_op(store: Store) -> None:
    first = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [FIX / "scrape"])
    again = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [FIX / "scrape"])
    assert (again.status, again.duplicate_of) == ("unchanged", first.batch_id)
    assert store.rows("SELECT count(*) AS n FROM gpu_samples")[0]["n"] == 6


def test_duplicate_series_in_one_file_count_once(store: Store, tmp_path: Path) -> None:
    """Both rows are loaded (read = loaded), the first is marked superseded: the last copy counts."""
    line = f"DCGM_FI_DEV_POWER_USAGE{{{LABELS}}} 100\n"
    p = write(tmp_path, "dup.prom", line + line.replace("100", "120"))
    res = ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [p])
    assert (res.rows_read, res.rows_loaded) == (2, 2)
    assert [(r["_row"], r["power_w"], r["_superseded"]) for r in rows(store)] == [(1, 100.0, True), (2, 120.0, False)]
    assert any("1 row(s) repeat an observation" in n for n in res.notes)


def test_a_sample_seen_again_supersedes_the_older_copy(store: Store, tmp_path: Path) -> None:
    """Overlapping exports: the newer batch's copy of a (GPU, time, pod) counts, the older is kept for lineage;
    a time-sliced second pod on the same GPU at the same time is another observation, not a duplicate."""
    a = f"DCGM_FI_DEV_GPU_UTIL{{{LABELS},pod=\"p1\",namespace=\"ns\"}} 40 1790000000000\n"
    first = ingest(store, DcgmSource(), [write(tmp_path, "a.prom", a)])
    b = (a.replace(" 40 ", " 60 ") + a.replace("p1", "p2")
         + f"DCGM_FI_DEV_GPU_UTIL{{{LABELS},pod=\"p1\",namespace=\"ns\"}} 50 1790000015000\n")
    second = ingest(store, DcgmSource(), [write(tmp_path, "b.prom", b)])
    got = [(r["pod"], r["ts"].second, r["gpu_util"], r["_superseded"]) for r in rows(store)]
    assert sorted(got) == [("p1", 20, 0.4, True), ("p1", 20, 0.6, False), ("p1", 35, 0.5, False),
                           ("p2", 20, 0.4, False)]
    assert "1 row(s) of earlier batches observed again: superseded by this batch" in second.notes
    assert first.batch_id == 1 and store.rows("SELECT count(*) AS n FROM gpu_samples")[0]["n"] == 4


def test_hpc_job_and_old_pod_labels(store: Store, tmp_path: Path) -> None:
    """dcgm-exporter's HPC job mapping (hpc_job) names the Slurm job; pre-2.x exporters wrote pod_name."""
    other = LABELS.replace('gpu="0"', 'gpu="1"').replace("GPU-1111", "GPU-2222")
    text = (f"DCGM_FI_DEV_GPU_UTIL{{{LABELS},hpc_job=\"4105\"}} 90\n"
            f"DCGM_FI_DEV_GPU_UTIL{{{other},pod_name=\"old-pod\",pod_namespace=\"legacy\"}} 10\n")
    ingest(store, DcgmSource(scrape_time=SCRAPE_TIME), [write(tmp_path, "hpc.prom", text)])
    assert [(r["gpu"], r["job"], r["pod"], r["namespace"]) for r in rows(store)] == [
        ("GPU-1111", "4105", None, None), ("GPU-2222", None, "old-pod", "legacy")]


def test_bad_option_is_named() -> None:
    from aifinops.sources.base import SourceError

    with pytest.raises(SourceError, match="scrape_time"):
        DcgmSource(scrape_time="yesterday-ish")
