"""The bad-input matrix of the GPU fleet sources: every cell gets a clear message or a documented handling,
and nothing silently disappears (rows read = loaded + quarantined, always).

Telemetry (dcgm text scrape, dcgm query_range JSON, nvidia-smi CSV, nvml Parquet) x {unknown metric or
column, missing identifying label or column, energy counter reset, NaN, infinite, negative, timestamps out
of order, duplicate sample}; workloads (kubernetes pods JSON, slurm sacct, workloads-csv) x {missing node,
missing start, negative or non-numeric GPU request, end before start, unknown phase or state}. Inputs are
copies of the real-format fixtures in tests/fixtures, mutated in tmp_path; the agent's Parquet is written
with pyarrow in its own SCHEMA. Each case states the outcome exactly: counts, quarantined rows with column
and reason, warnings with rule, column and reason, notes.

Cells that do not apply: nvidia-smi has no energy field (no counter to reset); a workload has no unknown
metric, NaN or duplicate-sample cell (a newer snapshot of a workload restates it, tested in its own file).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aifinops.interfaces.cli.agent import SCHEMA
from aifinops.model.gpu import SAMPLE_KEY
from aifinops.sources.base import Source
from aifinops.sources.dcgm import DcgmSource
from aifinops.sources.kubernetes import KubernetesSource
from aifinops.sources.nvidia_smi import NvidiaSmiSource
from aifinops.sources.nvml import NvmlSource
from aifinops.sources.slurm import SlurmSource
from aifinops.sources.workloads_csv import WorkloadsCsvSource
from aifinops.store.connection import Store
from aifinops.store.ingest import BatchResult, IngestError, ingest

FIX = Path(__file__).parent / "fixtures"
SCRAPE = FIX / "dcgm" / "scrape" / "node-a.prom"
QUERY = FIX / "dcgm" / "query_range.json"
SMI = FIX / "nvidia-smi" / "gpu-node-1.csv"
PODS = FIX / "kubernetes" / "pods.json"
SACCT = FIX / "slurm" / "sacct.txt"
OPENB = FIX / "alibaba" / "openb_pods_slice.csv"

SCRAPE_TIME = "2026-11-20T10:00:00"
T0 = datetime(2026, 11, 20, 10)
T0_MS = 1795168800000  # T0 in epoch milliseconds, as a scrape writes a sample's timestamp
H100_0 = "GPU-5fd4a9b2-1c3e-4b7a-9e21-0a8d3f6c7b10"
H100_1 = "GPU-9a1e7c44-2b6d-4f0e-8c35-7d2f1e9b4a62"
A100_0 = "GPU-3c8b2e11-7f4a-4d19-b6e2-5a0c9d8e1f23"
RESET = ": the GPU or driver was reset; the counter restarts from this sample"
REPEATS = f"row(s) repeat an observation of these files ({', '.join(SAMPLE_KEY)}): the last copy counts, " \
          "the others are kept as superseded"
IGNORED_SCRAPE = "ignored {n} sample(s) of 2 metric(s) not used: DCGM_FI_DEV_GPU_TEMP ({k}), DCGM_FI_DEV_SM_CLOCK ({k})"


@dataclass(frozen=True)
class Outcome:
    """What one ingest must report, exactly."""

    read: int
    loaded: int
    #: (row, column, reason) of every rule a quarantined row breaks
    quarantined: list[tuple[int, str, str]] = field(default_factory=list)
    #: (row, rule, column, reason) of every warning on a loaded row
    warnings: list[tuple[int, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    superseded: int = 0


@dataclass(frozen=True)
class Case:
    source: str  # the input format, for the test id
    cell: str  # the bad input
    make: Callable[[Path], list[Path]]  # writes the input under tmp_path
    expect: Outcome
    options: dict[str, Any] = field(default_factory=dict)
    #: extra exact assertions on the stored rows (timestamps, NULLs, kept values)
    then: Callable[[Store], None] | None = None


SOURCES: dict[str, type[Source]] = {
    "dcgm text": DcgmSource, "dcgm json": DcgmSource, "nvidia-smi": NvidiaSmiSource, "nvml": NvmlSource,
    "kubernetes": KubernetesSource, "slurm": SlurmSource, "workloads-csv": WorkloadsCsvSource,
}


# -- inputs: copies of the fixtures, mutated -------------------------------------------------------------

def stamped(text: str, ms: int) -> str:
    """A scrape with every sample carrying its own timestamp (``metric{...} value ms``)."""
    return "".join(line + (f" {ms}" if line and not line.startswith("#") else "") + "\n"
                   for line in text.splitlines())


def scrape(mutate: Callable[[str], str] = lambda t: t, name: str = "node-a.prom") -> Callable[[Path], list[Path]]:
    def make(tmp: Path) -> list[Path]:
        p = tmp / name
        p.write_text(mutate(SCRAPE.read_text()))
        return [p]
    return make


def query(mutate: Callable[[list[dict[str, Any]]], None], names: tuple[str, ...] = ("q.json",),
          second: Callable[[list[dict[str, Any]]], None] | None = None) -> Callable[[Path], list[Path]]:
    """The query_range fixture with ``mutate`` applied to its series (and ``second`` to a second file's)."""
    def make(tmp: Path) -> list[Path]:
        out = []
        for name, fn in zip(names, (mutate, second), strict=False):
            doc = json.loads(QUERY.read_text())
            assert fn is not None
            fn(doc["data"]["result"])
            (tmp / name).write_text(json.dumps(doc))
            out.append(tmp / name)
        return out
    return make


def series(result: list[dict[str, Any]], name: str, host: str) -> dict[str, Any]:
    return next(s for s in result if s["metric"]["__name__"] == name and s["metric"]["Hostname"] == host)


def energy(result: list[dict[str, Any]]) -> list[list[Any]]:
    return series(result, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "node-a")["values"]


def smi(mutate: Callable[[list[str]], list[str]]) -> Callable[[Path], list[Path]]:
    """gpu-node-1.csv with ``mutate`` applied to its lines (header first)."""
    def make(tmp: Path) -> list[Path]:
        p = tmp / "gpu-node-1.csv"
        p.write_text("\n".join(mutate(SMI.read_text().splitlines())) + "\n")
        return [p]
    return make


def smi_cell(line: str, index: int, value: str) -> str:
    cells = line.split(", ")
    cells[index] = value
    return ", ".join(cells)


def agent_rows() -> list[dict[str, Any]]:
    """What ``aifinops agent`` records on a host with two H100s, GPU 1 in MIG mode with one instance: three
    samples 15 s apart, each a whole-GPU row per GPU plus one row for the MIG instance (rows 1..9)."""
    rows = []
    for k in range(3):
        ts = T0 + timedelta(seconds=15 * k)
        base = {"ts": ts, "node": "gpu-node-7", "gpu_model": "NVIDIA H100 80GB HBM3", "source": "nvml"}
        rows += [
            {**base, "gpu": "GPU-gpu0-uuid", "gpu_index": 0, "gpu_util": 0.87, "fb_used_mib": 40321.0,
             "fb_free_mib": 41238.0, "power_w": 612.5, "energy_j": 100000.0 + 10000 * k},
            {**base, "gpu": "GPU-gpu1-uuid", "gpu_index": 1, "gpu_util": 0.40, "fb_used_mib": 20000.0,
             "fb_free_mib": 61559.0, "power_w": 350.5, "energy_j": 50000.0 + 5000 * k},
            {**base, "gpu": "GPU-gpu1-uuid", "gpu_index": 1, "gpu_instance_id": "7", "gpu_instance_profile": "1g.10gb",
             "fb_used_mib": 5000.0, "fb_free_mib": 4856.0},
        ]
    return rows


def nvml(mutate: Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None] = lambda rows: None,
         table: Callable[[pa.Table], pa.Table] = lambda t: t) -> Callable[[Path], list[Path]]:
    """The agent's rows (``mutate`` may change them in place or return new ones), written as the agent does."""
    def make(tmp: Path) -> list[Path]:
        rows = agent_rows()
        rows = mutate(rows) or rows
        p = tmp / "nvml-gpu-node-7-20261120T100000Z.parquet"
        pq.write_table(table(pa.Table.from_pylist(rows, schema=SCHEMA)), p, compression="zstd")
        return [p]
    return make


def set_rows(changes: dict[int, dict[str, Any]]) -> Callable[[list[dict[str, Any]]], None]:
    """Row index (0-based) -> the values it gets."""
    def mutate(rows: list[dict[str, Any]]) -> None:
        for index, values in changes.items():
            rows[index].update(values)
    return mutate


def pods(mutate: Callable[[list[dict[str, Any]]], None]) -> Callable[[Path], list[Path]]:
    def make(tmp: Path) -> list[Path]:
        doc = json.loads(PODS.read_text())
        mutate(doc["items"])
        p = tmp / "pods.json"
        p.write_text(json.dumps(doc))
        return [p]
    return make


def sacct(mutate: Callable[[list[str]], None]) -> Callable[[Path], list[Path]]:
    """sacct.txt with ``mutate`` applied to its data lines (index 0 = JobID 4101)."""
    def make(tmp: Path) -> list[Path]:
        head, *body = SACCT.read_text().splitlines()
        mutate(body)
        p = tmp / "sacct.txt"
        p.write_text("\n".join([head, *body]) + "\n")
        return [p]
    return make


def sacct_field(body: list[str], index: int, name: str, value: str) -> None:
    fields = body[index].split("|")
    fields[SACCT.read_text().splitlines()[0].split("|").index(name)] = value
    body[index] = "|".join(fields)


def openb(mutate: Callable[[list[dict[str, str]]], None]) -> Callable[[Path], list[Path]]:
    """The openb slice with ``mutate`` applied to its rows (index 0 = data row 1)."""
    def make(tmp: Path) -> list[Path]:
        rows = list(csv.DictReader(io.StringIO(OPENB.read_text())))
        mutate(rows)
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        p = tmp / "openb.csv"
        p.write_text(out.getvalue())
        return [p]
    return make


def set_field(index: int, **values: str) -> Callable[[list[dict[str, str]]], None]:
    return lambda rows: rows[index].update(values)


def sample_rows(store: Store, cols: str) -> list[tuple[Any, ...]]:
    return store.con.execute(f"SELECT {cols} FROM gpu_samples ORDER BY _file, _row").fetchall()


def workload(store: Store, row: int, cols: str) -> tuple[Any, ...]:
    return store.con.execute(f"SELECT {cols} FROM workloads WHERE _row = ?", [row]).fetchone()


# -- then: exact stored values --------------------------------------------------------------------------

def scrape_reset_rows(store: Store) -> None:
    assert sample_rows(store, "_row, gpu, gpu_instance_id, ts, energy_j") == [
        (1, H100_0, None, T0, 8123456.789), (2, H100_1, None, T0, 3456789.012), (3, H100_1, "2", T0, None),
        (4, H100_1, "9", T0, None), (5, H100_0, None, T0 + timedelta(seconds=15), 120.5),
        (6, H100_1, None, T0 + timedelta(seconds=15), 3457000.0), (7, H100_1, "2", T0 + timedelta(seconds=15), None),
        (8, H100_1, "9", T0 + timedelta(seconds=15), None)]


def scrape_out_of_order_rows(store: Store) -> None:
    later = T0 + timedelta(seconds=15)
    assert sample_rows(store, "_row, gpu, gpu_instance_id, ts, energy_j") == [
        (1, H100_0, None, later, 8123456.789), (2, H100_1, None, later, 3456789.012), (3, H100_1, "2", later, None),
        (4, H100_1, "9", later, None), (5, H100_0, None, T0, 8123000.0), (6, H100_1, None, T0, 3456000.0),
        (7, H100_1, "2", T0, None), (8, H100_1, "9", T0, None)]


def scrape_nan_rows(store: Store) -> None:
    assert sample_rows(store, "_row, gpu, power_w, energy_j") == [
        (1, H100_0, None, 8123456.789), (2, H100_1, None, 3456789.012), (3, H100_1, None, None),
        (4, H100_1, None, None)]


def json_out_of_order_rows(store: Store) -> None:
    steps = [T0 + timedelta(seconds=s) for s in (30, 15, 0)]
    assert sample_rows(store, "_row, gpu, ts, gpu_util, energy_j") == [
        (1, H100_0, steps[0], 0.79, 8141829.211), (2, H100_0, steps[1], 0.91, 8132643.0),
        (3, H100_0, steps[2], 0.87, 8123456.789), (4, A100_0, steps[0], 0.0, None),
        (5, A100_0, steps[1], 0.0, None), (6, A100_0, steps[2], 0.0, None)]


def json_nan_rows(store: Store) -> None:
    assert [r[1] for r in sample_rows(store, "_row, gpu_util") if r[0] >= 4] == [0.0, None, 0.0]


def smi_out_of_order_rows(store: Store) -> None:
    got = sample_rows(store, "_row, ts")
    original = [datetime.strptime(line.split(", ")[0], "%Y/%m/%d %H:%M:%S.%f")
                for line in SMI.read_text().splitlines()[1:]]
    assert got == list(enumerate(reversed(original), start=1))
    assert len({ts for _, ts in got}) == 8


def nvml_nan_rows(store: Store) -> None:
    assert sample_rows(store, "_row, power_w, gpu_util")[:5] == [
        (1, 612.5, 0.87), (2, None, 0.40), (3, None, None), (4, 612.5, 0.87), (5, 350.5, None)]


def nvml_out_of_order_rows(store: Store) -> None:
    assert sample_rows(store, "_row, gpu, gpu_instance_id, ts, energy_j") == [
        (10 - i, r["gpu"], r.get("gpu_instance_id"), r["ts"], r.get("energy_j"))
        for i, r in reversed(list(enumerate(agent_rows(), start=1)))]


def nvml_null_node_loads(store: Store) -> None:
    assert sample_rows(store, "_row, node, gpu")[0] == (1, None, "GPU-gpu0-uuid")


# -- the telemetry matrix -------------------------------------------------------------------------------

def _reset_scrape(text: str) -> str:
    after = text.replace("} 8123456789", "} 120500").replace("} 3456789012", "} 3457000000")
    return stamped(text, T0_MS) + stamped(after, T0_MS + 15000)


def _unordered_scrape(text: str) -> str:
    before = text.replace("} 8123456789", "} 8123000000").replace("} 3456789012", "} 3456000000")
    return stamped(text, T0_MS + 15000) + stamped(before, T0_MS)


def _no_hostname(text: str) -> str:
    return "\n".join(re.sub(r',Hostname="node-a"', "", line) if 'gpu="0"' in line else line
                     for line in text.splitlines()) + "\n"


def _reverse_values(result: list[dict[str, Any]]) -> None:
    for s in result:
        s["values"].reverse()


def _drop_gpu_labels(result: list[dict[str, Any]]) -> None:
    labels = series(result, "DCGM_FI_DEV_GPU_UTIL", "node-b")["metric"]
    del labels["UUID"], labels["gpu"]


def _unknown_metric(result: list[dict[str, Any]]) -> None:
    extra = copy.deepcopy(series(result, "DCGM_FI_DEV_GPU_UTIL", "node-a"))
    extra["metric"]["__name__"] = "DCGM_FI_DEV_GPU_TEMP"
    result.append(extra)


def _lower_energy(result: list[dict[str, Any]]) -> None:
    """A later export of the same GPU whose counter restarted: every reading below the first file's."""
    _lower_steps(result)
    for point in energy(result):
        point[1] = str(int(point[1]) - 8_000_000_000)


def _lower_steps(result: list[dict[str, Any]]) -> None:
    for s in result:
        for point in s["values"]:
            point[0] += 45


TELEMETRY = [
    # dcgm text scrape ---------------------------------------------------------------------------------
    Case("dcgm text", "unknown metric", scrape(lambda t: t + 'DCGM_FI_DEV_XID_ERRORS{gpu="0",Hostname="node-a"} 0\n'),
         Outcome(4, 4, notes=[
             "node-a.prom: 17 sample(s) without a timestamp, stamped 2026-11-20T10:00:00Z (the scrape_time option)",
             "node-a.prom: ignored 5 sample(s) of 3 metric(s) not used: DCGM_FI_DEV_GPU_TEMP (2), "
             "DCGM_FI_DEV_SM_CLOCK (2), DCGM_FI_DEV_XID_ERRORS (1)"]),
         {"scrape_time": SCRAPE_TIME}),
    Case("dcgm text", "missing Hostname label", scrape(_no_hostname),
         Outcome(4, 3, quarantined=[(1, "node", "Hostname label missing: the sample cannot be tied to a node")],
                 notes=["node-a.prom: 17 sample(s) without a timestamp, stamped 2026-11-20T10:00:00Z (the "
                        "scrape_time option)", "node-a.prom: " + IGNORED_SCRAPE.format(n=4, k=2)]),
         {"scrape_time": SCRAPE_TIME}),
    Case("dcgm text", "energy counter reset", scrape(_reset_scrape),
         Outcome(8, 8, warnings=[(5, "counter-reset", "energy_j",
                                  "energy counter went down from 8123456.789 J to 120.5 J" + RESET)],
                 notes=["node-a.prom: " + IGNORED_SCRAPE.format(n=8, k=4)]),
         then=scrape_reset_rows),
    Case("dcgm text", "NaN", scrape(lambda t: t.replace("} 612.483", "} NaN").replace("} 245.117", "} NaN")),
         Outcome(4, 4, warnings=[(1, "nan", "power_w", "DCGM_FI_DEV_POWER_USAGE is NaN: loaded as NULL"),
                                 (2, "nan", "power_w", "DCGM_FI_DEV_POWER_USAGE is NaN: loaded as NULL")],
                 notes=["node-a.prom: 17 sample(s) without a timestamp, stamped 2026-11-20T10:00:00Z (the "
                        "scrape_time option)", "node-a.prom: " + IGNORED_SCRAPE.format(n=4, k=2)]),
         {"scrape_time": SCRAPE_TIME}, then=scrape_nan_rows),
    Case("dcgm text", "negative value", scrape(lambda t: t.replace("} 245.117", "} -245.117")),
         Outcome(4, 3, quarantined=[(2, "power_w", "DCGM_FI_DEV_POWER_USAGE is negative: -245.117")],
                 notes=["node-a.prom: 17 sample(s) without a timestamp, stamped 2026-11-20T10:00:00Z (the "
                        "scrape_time option)", "node-a.prom: " + IGNORED_SCRAPE.format(n=4, k=2)]),
         {"scrape_time": SCRAPE_TIME}),
    Case("dcgm text", "timestamps out of order", scrape(_unordered_scrape),
         Outcome(8, 8, notes=["node-a.prom: " + IGNORED_SCRAPE.format(n=8, k=4)]), then=scrape_out_of_order_rows),
    Case("dcgm text", "duplicate sample", scrape(lambda t: t + t),
         Outcome(8, 8, superseded=4, notes=[
             "node-a.prom: 34 sample(s) without a timestamp, stamped 2026-11-20T10:00:00Z (the scrape_time option)",
             "node-a.prom: " + IGNORED_SCRAPE.format(n=8, k=4), f"4 {REPEATS}"]),
         {"scrape_time": SCRAPE_TIME}),
    # dcgm query_range JSON ----------------------------------------------------------------------------
    Case("dcgm json", "unknown metric", query(_unknown_metric),
         Outcome(6, 6, notes=["q.json: ignored 3 sample(s) of 1 metric(s) not used: DCGM_FI_DEV_GPU_TEMP (3)"])),
    Case("dcgm json", "missing UUID and gpu labels", query(_drop_gpu_labels),
         Outcome(6, 3, quarantined=[
             (r, "gpu", "UUID and gpu labels both missing: the sample cannot be tied to a GPU") for r in (4, 5, 6)])),
    Case("dcgm json", "energy counter reset", query(lambda r: energy(r)[2].__setitem__(1, "120500")),
         Outcome(6, 6, warnings=[(3, "counter-reset", "energy_j",
                                  "energy counter went down from 8132643.0 J to 120.5 J" + RESET)])),
    Case("dcgm json", "counter lower in the next file: files are compared one at a time",
         query(lambda r: None, names=("a.json", "b.json"), second=_lower_energy),
         Outcome(12, 12)),
    Case("dcgm json", "NaN", query(lambda r: series(r, "DCGM_FI_DEV_GPU_UTIL", "node-b")["values"][1]
                                   .__setitem__(1, "NaN")),
         Outcome(6, 6, warnings=[(5, "nan", "gpu_util", "DCGM_FI_DEV_GPU_UTIL is NaN: loaded as NULL")]),
         then=json_nan_rows),
    Case("dcgm json", "infinite value", query(lambda r: series(r, "DCGM_FI_DEV_GPU_UTIL", "node-b")["values"][1]
                                              .__setitem__(1, "+Inf")),
         Outcome(6, 5, quarantined=[(5, "gpu_util", "DCGM_FI_DEV_GPU_UTIL is not finite: inf")])),
    # a negative reading is quarantined and takes no part in the reset check: the next one is no reset
    Case("dcgm json", "negative value", query(lambda r: energy(r)[0].__setitem__(1, "-5")),
         Outcome(6, 5, quarantined=[(1, "energy_j", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION is negative: -5.0")])),
    Case("dcgm json", "timestamps out of order", query(_reverse_values), Outcome(6, 6),
         then=json_out_of_order_rows),
    Case("dcgm json", "duplicate series in a file",
         query(lambda r: r.append(copy.deepcopy(series(r, "DCGM_FI_DEV_GPU_UTIL", "node-b")))),
         Outcome(9, 9, superseded=3, notes=[f"3 {REPEATS}"])),
    Case("dcgm json", "overlapping files", query(lambda r: None, names=("a.json", "b.json"), second=lambda r: None),
         Outcome(12, 12, superseded=6, notes=[f"6 {REPEATS}"])),
    # nvidia-smi CSV -----------------------------------------------------------------------------------
    Case("nvidia-smi", "unknown column",
         smi(lambda lines: [lines[0] + ", temperature.gpu"] + [line + ", 45" for line in lines[1:]]),
         Outcome(8, 8, notes=["gpu-node-1.csv: ignored field(s) not read by aifinops: temperature.gpu"])),
    Case("nvidia-smi", "missing uuid value",
         smi(lambda lines: [*lines[:2], smi_cell(lines[2], 1, "[N/A]"), *lines[3:]]),
         Outcome(8, 7, quarantined=[(2, "uuid", "no GPU UUID and no index: the sample belongs to no GPU")])),
    Case("nvidia-smi", "NaN", smi(lambda lines: [*lines[:4], smi_cell(lines[4], 6, "nan W"), *lines[5:]]),
         Outcome(8, 7, quarantined=[(4, "power.draw", "not a number in W: 'nan W'")])),
    Case("nvidia-smi", "negative values",
         smi(lambda lines: [lines[0], lines[1], smi_cell(lines[2], 6, "-71.02 W"), lines[3],
                            smi_cell(lines[4], 3, "-3 %"), smi_cell(lines[5], 4, "-4 MiB"), *lines[6:]]),
         Outcome(8, 5, quarantined=[(2, "power.draw", "negative value: -71.02 W"),
                                    (4, "utilization.gpu", "utilization outside 0..100 %: -3 %"),
                                    (5, "memory.used", "negative value: -4 MiB")])),
    Case("nvidia-smi", "timestamps out of order", smi(lambda lines: [lines[0], *reversed(lines[1:])]),
         Outcome(8, 8), then=smi_out_of_order_rows),
    Case("nvidia-smi", "duplicate line", smi(lambda lines: [*lines, lines[1]]),
         Outcome(9, 9, superseded=1, notes=[f"1 {REPEATS}"])),
    # nvml Parquet (the agent's SCHEMA) ----------------------------------------------------------------
    Case("nvml", "unknown column", nvml(table=lambda t: t.append_column("temperature_c", pa.array([45.0] * 9))),
         Outcome(9, 9, notes=["nvml-gpu-node-7-20261120T100000Z.parquet: ignored column(s) temperature_c"])),
    Case("nvml", "missing gpu, ts or node value",
         nvml(set_rows({0: {"node": None}, 4: {"gpu": None}, 5: {"ts": None}})),
         Outcome(9, 7, quarantined=[(5, "gpu", "gpu must not be null"), (6, "ts", "ts must not be null")]),
         then=nvml_null_node_loads),
    Case("nvml", "energy counter reset", nvml(set_rows({6: {"energy_j": 120.5}})),
         Outcome(9, 9, warnings=[(7, "counter-reset", "energy_j",
                                  "energy counter went down from 110000.0 J to 120.5 J" + RESET)])),
    Case("nvml", "NaN", nvml(set_rows({1: {"power_w": float("nan")}, 4: {"gpu_util": float("nan")}})),
         Outcome(9, 9, warnings=[(2, "nan", "power_w", "power_w is NaN: loaded as NULL"),
                                 (5, "nan", "gpu_util", "gpu_util is NaN: loaded as NULL")]),
         then=nvml_nan_rows),
    Case("nvml", "infinite value", nvml(set_rows({3: {"power_w": float("inf")}})),
         Outcome(9, 8, quarantined=[(4, "power_w", "power_w is not finite: inf")])),
    Case("nvml", "negative values", nvml(set_rows({1: {"power_w": -1.0}, 3: {"energy_j": -5.0}})),
         Outcome(9, 7, quarantined=[(2, "power_w", "power_w is negative: -1.0"),
                                    (4, "energy_j", "energy_j is negative: -5.0")])),
    Case("nvml", "timestamps out of order", nvml(lambda rows: rows[::-1]), Outcome(9, 9),
         then=nvml_out_of_order_rows),
    Case("nvml", "duplicate row", nvml(lambda rows: [*rows, dict(rows[0])]),
         Outcome(10, 10, superseded=1, notes=[f"1 {REPEATS}"])),
]


# -- the workload matrix --------------------------------------------------------------------------------

def _no_start(items: list[dict[str, Any]]) -> None:
    del items[3]["status"]["startTime"], items[3]["status"]["conditions"]


def _gpu_request(index: int, container: int, value: str) -> Callable[[list[dict[str, Any]]], None]:
    def mutate(items: list[dict[str, Any]]) -> None:
        res = items[index]["spec"]["containers"][container].setdefault("resources", {})
        for kind in ("requests", "limits"):
            res.setdefault(kind, {})["nvidia.com/gpu"] = value
    return mutate


def _ends_before_start(items: list[dict[str, Any]]) -> None:
    items[5]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = "2026-11-21T02:00:00Z"


def pending_pod_loads_quietly(store: Store) -> None:
    assert workload(store, 7, "name, node, start_ts, phase, gpu_share") == (
        "train-vit-0-zz9yx", None, None, "Pending", 4.0)


def unknown_phase_has_no_end(store: Store) -> None:
    assert workload(store, 1, "phase, end_ts, gpu_share") == ("Unknown", None, 8.0)


def pending_job_loads_quietly(store: Store) -> None:
    assert workload(store, 7, "workload_id, node, start_ts, phase, gpu_share") == (
        "4105_[3-4]", None, None, "PENDING", 0.0)


def unknown_state_is_kept(store: Store) -> None:
    assert workload(store, 6, "phase, annotations['slurm.state']") == ("EXPLODED", "EXPLODED")


def openb_has_no_node(store: Store) -> None:
    assert store.con.execute("SELECT count(*), count(node) FROM workloads").fetchone() == (331, 0)


def openb_unscheduled(store: Store) -> None:
    assert workload(store, 2, "workload_id, start_ts, gpu_share, phase") == ("openb-pod-0001", None, 0.0, "Running")


def openb_phase_kept(store: Store) -> None:
    assert workload(store, 1, "phase") == ("Exploded",)


PHASE_WARNING = "pod phase 'Unknown' is not one of Pending, Running, Succeeded, Failed: loaded as is; only a " \
                "Succeeded or Failed pod gets an end time, so this one counts as running"

WORKLOADS = [
    # kubernetes pods JSON -----------------------------------------------------------------------------
    Case("kubernetes", "pending pod without node and start", pods(lambda items: None), Outcome(8, 8),
         then=pending_pod_loads_quietly),
    Case("kubernetes", "running pod without node", pods(lambda items: items[1]["spec"].pop("nodeName")),
         Outcome(8, 8, warnings=[(2, "no-node", "node", "holds GPUs in phase 'Running' but has no spec.nodeName: "
                                                        "loaded; its GPU time cannot be placed on a node")])),
    Case("kubernetes", "running pod without start", pods(_no_start),
         Outcome(8, 8, warnings=[(4, "no-start", "start_ts", "holds GPUs in phase 'Running' but has no start time "
                                  "(no status.startTime, no PodScheduled condition): loaded; counted as holding "
                                  "them since before the data")])),
    # summed, the -1 of the sidecar would have turned the trainer's 8 GPUs into 7
    Case("kubernetes", "negative GPU request", pods(_gpu_request(0, 1, "-1")),
         Outcome(8, 7, quarantined=[(1, "resources", "nvidia.com/gpu of container 'log-shipper' is negative: '-1'")])),
    Case("kubernetes", "non-numeric GPU request", pods(_gpu_request(1, 0, "one")),
         Outcome(8, 7, quarantined=[(2, "resources", "nvidia.com/gpu of container 'vllm': not a Kubernetes "
                                                     "quantity: 'one'")])),
    Case("kubernetes", "end before start", pods(_ends_before_start),
         Outcome(8, 7, quarantined=[(6, "end_ts", "ends 2026-11-21T02:00:00Z before it starts 2026-11-21T03:00:00Z")])),
    Case("kubernetes", "unknown phase", pods(lambda items: items[0]["status"].update(phase="Unknown")),
         Outcome(8, 8, warnings=[(1, "unknown-phase", "phase", PHASE_WARNING)]), then=unknown_phase_has_no_end),
    Case("kubernetes", "no phase", pods(lambda items: items[4]["status"].pop("phase")),
         Outcome(8, 8, warnings=[(5, "unknown-phase", "phase", "no pod phase (status.phase): loaded as is; only a "
                                  "Succeeded or Failed pod gets an end time, so this one counts as running")])),
    # slurm sacct --------------------------------------------------------------------------------------
    Case("slurm", "pending job without node and start", sacct(lambda body: None), Outcome(11, 11),
         then=pending_job_loads_quietly),
    Case("slurm", "GPU job without node", sacct(lambda body: sacct_field(body, 2, "NodeList", "")),
         Outcome(11, 11, warnings=[(3, "no-node", "node", "holds GPUs (billing=16,cpu=8,gres/gpu=2,mem=64G,node=1) "
                                    "but has no NodeList: loaded; its GPU time cannot be placed on a node")])),
    Case("slurm", "GPU job without start", sacct(lambda body: sacct_field(body, 4, "Start", "Unknown")),
         Outcome(11, 11, warnings=[(5, "no-start", "start_ts", "holds GPUs (billing=8,cpu=8,gres/gpu:h100=1,"
                                    "mem=32G,node=1) but has no Start: loaded; counted as holding them since "
                                    "before the data")])),
    Case("slurm", "negative GPU count",
         sacct(lambda body: sacct_field(body, 0, "AllocTRES", "billing=256,cpu=128,gres/gpu:a100=16,gres/gpu=-16,"
                                                              "mem=1000G,node=2")),
         Outcome(11, 10, quarantined=[(1, "gpu_count", "AllocTRES GPU count is not a whole number: gres/gpu=-16")])),
    Case("slurm", "non-numeric GPU count",
         sacct(lambda body: sacct_field(body, 1, "AllocTRES", "billing=64,cpu=32,gres/gpu:a100=eight,mem=500G,"
                                                              "node=1")),
         Outcome(11, 10, quarantined=[(2, "gpu_count", "AllocTRES GPU count is not a whole number: "
                                                       "gres/gpu:a100=eight")])),
    Case("slurm", "end before start", sacct(lambda body: sacct_field(body, 1, "End", "2026-11-19T11:45:12")),
         Outcome(11, 10, quarantined=[(2, "end_ts", "ends 2026-11-19T11:45:12 before it starts 2026-11-20T11:00:00")])),
    Case("slurm", "unknown state", sacct(lambda body: sacct_field(body, 5, "State", "EXPLODED")), Outcome(11, 11),
         then=unknown_state_is_kept),
    # workloads-csv (Alibaba openb preset) -------------------------------------------------------------
    Case("workloads-csv", "no node column (the trace has none)", openb(lambda rows: None), Outcome(331, 331),
         {"preset": "alibaba-openb"}, then=openb_has_no_node),
    Case("workloads-csv", "missing start (never scheduled)", openb(set_field(1, scheduled_time="")),
         Outcome(331, 331), {"preset": "alibaba-openb"}, then=openb_unscheduled),
    Case("workloads-csv", "negative GPU request", openb(set_field(0, num_gpu="-1")),
         Outcome(331, 330, quarantined=[(1, "gpu_count", "gpu_count must not be negative: '-1.0'"),
                                        (1, "gpu_share", "gpu_share must not be negative: '-1.0'")]),
         {"preset": "alibaba-openb"}),
    Case("workloads-csv", "non-numeric GPU request", openb(set_field(2, num_gpu="one")),
         Outcome(331, 330, quarantined=[(3, "num_gpu", "CAST: Error when converting column \"num_gpu\". Could not "
                                                       "convert string \"one\" to 'DOUBLE'")]),
         {"preset": "alibaba-openb"}),
    Case("workloads-csv", "end before start", openb(set_field(1, deletion_time="100")),
         Outcome(331, 330, quarantined=[(2, "end_ts", "end '2023-01-01 00:01:40' is before start "
                                                      "'2023-01-05 22:37:41'")]),
         {"preset": "alibaba-openb"}),
    Case("workloads-csv", "unknown phase", openb(set_field(0, pod_phase="Exploded")), Outcome(331, 331),
         {"preset": "alibaba-openb"}, then=openb_phase_kept),
]


def _id(case: Case) -> str:
    return f"{case.source}: {case.cell}"


@pytest.mark.parametrize("case", TELEMETRY + WORKLOADS, ids=_id)
def test_bad_input_cell(case: Case, store: Store, tmp_path: Path) -> None:
    paths = case.make(tmp_path)
    source = SOURCES[case.source](**case.options)
    res = ingest(store, source, paths)
    e = case.expect
    quarantined_rows = len({row for row, _, _ in e.quarantined})
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (e.read, e.loaded, quarantined_rows)
    assert res.rows_read == res.rows_loaded + res.rows_quarantined
    assert res.notes == e.notes
    target = source.target
    assert store.con.execute(f"SELECT count(*) FROM {target}").fetchone() == (e.loaded,)
    assert store.con.execute(
        "SELECT row_number, \"column\", reason FROM quarantine_errors ORDER BY row_number, \"column\"").fetchall() \
        == sorted(e.quarantined)
    assert_warnings(store, target, res, e.warnings, paths)
    if target == "gpu_samples":
        assert store.con.execute("SELECT count(*) FILTER (WHERE _superseded) FROM gpu_samples").fetchone() == (
            e.superseded,)
    if case.then is not None:
        case.then(store)


def assert_warnings(store: Store, target: str, res: BatchResult, expected: list[tuple[int, str, str, str]],
                    paths: list[Path]) -> None:
    """Per row (the reason is stored with the row), per rule in the batch result and in row_warnings."""
    got = store.con.execute(
        f"SELECT _row, w.rule, w.\"column\", w.reason FROM (SELECT _row, unnest(_warnings) AS w FROM {target}) "
        "ORDER BY ALL").fetchall()
    assert got == sorted(expected)
    summary: dict[tuple[str, str], list[int]] = {}
    for row, rule, column, _ in expected:
        summary.setdefault((rule, column), []).append(row)
    file = str(paths[0])  # the cases that warn read one file
    by_rule = [{"file": file, "rule": rule, "column": column, "rows": len(rows), "first_row": min(rows)}
               for (rule, column), rows in sorted(summary.items())]
    assert res.warnings == by_rule
    stored = store.con.execute("SELECT file, rule, \"column\", rows, first_row FROM row_warnings ORDER BY ALL")
    assert [dict(zip(("file", "rule", "column", "rows", "first_row"), r, strict=True)) for r in stored.fetchall()] \
        == by_rule


def test_strict_ingest_quarantines_a_counter_reset(store: Store, tmp_path: Path) -> None:
    """``--strict`` treats warnings as errors: the reset sample goes to quarantine with the same reason."""
    paths = query(lambda r: energy(r)[2].__setitem__(1, "120500"))(tmp_path)
    res = ingest(store, DcgmSource(), paths, strict=True)
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined, res.warnings) == (6, 5, 1, [])
    assert store.con.execute("SELECT row_number, \"column\", reason FROM quarantine_errors").fetchall() == [
        (3, "energy_j", "energy counter went down from 8132643.0 J to 120.5 J" + RESET)]


def test_a_gap_in_the_energy_readings_is_not_a_reset(store: Store, tmp_path: Path) -> None:
    """A NaN reading (loaded as NULL) between two readings: the next reading is compared with the one before
    the gap, not with the NULL, and a real reset after the gap is still found."""
    def mutate(result: list[dict[str, Any]]) -> None:
        values = energy(result)
        values[1][1] = "NaN"
        values.append([values[2][0] + 15, "99"])
        for s in result:  # the other series get the fourth step too, so the rows stay one per step
            if s["values"] is not values:
                s["values"].append([values[3][0], s["values"][-1][1]])
    res = ingest(store, DcgmSource(), query(mutate)(tmp_path))
    assert (res.rows_read, res.rows_loaded) == (8, 8)
    got = store.con.execute("SELECT _row, w.rule, w.reason FROM (SELECT _row, unnest(_warnings) AS w "
                            "FROM gpu_samples) ORDER BY 1").fetchall()
    assert got == [(2, "nan", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION is NaN: loaded as NULL"),
                   (4, "counter-reset", "energy counter went down from 8141829.211 J to 0.099 J" + RESET)]


def test_a_counter_reset_of_one_gpu_does_not_touch_another(store: Store, tmp_path: Path) -> None:
    """The window is per GPU and MIG instance: GPU 1's readings are far below GPU 0's, and nothing warns."""
    res = ingest(store, NvmlSource(), nvml()(tmp_path))
    assert (res.rows_loaded, res.warnings) == (9, [])


@pytest.mark.parametrize(("name", "make", "message"), [
    ("nvidia-smi", smi(lambda lines: [", ".join(c for i, c in enumerate(ln.split(", ")) if i != 1) for ln in lines]),
     "gpu-node-1.csv: neither uuid nor index field: cannot tell the GPUs apart"),
    ("nvml", nvml(table=lambda t: t.drop_columns(["gpu"])),
     "nvml-gpu-node-7-20261120T100000Z.parquet: not a GPU sample file: missing column(s) gpu"),
    ("nvml", nvml(table=lambda t: t.drop_columns(["ts"])),
     "nvml-gpu-node-7-20261120T100000Z.parquet: not a GPU sample file: missing column(s) ts"),
])
def test_a_file_without_an_identifying_column_is_refused(store: Store, tmp_path: Path, name: str,
                                                         make: Callable[[Path], list[Path]], message: str) -> None:
    paths = make(tmp_path)
    with pytest.raises(IngestError) as err:
        ingest(store, SOURCES[name](), paths)
    assert str(err.value).startswith(str(tmp_path / message.split(": ", 1)[0]) + ": ")
    assert message.split(": ", 1)[1] in str(err.value)
    assert store.con.execute("SELECT count(*) FROM batches").fetchone() == (0,)
