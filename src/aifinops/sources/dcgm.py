"""GPU telemetry from NVIDIA's dcgm-exporter, in the two forms users keep it.

- **Prometheus text exposition**: a saved scrape of dcgm-exporter's ``/metrics`` (``.prom``, ``.txt``,
  ``.metrics``), parsed by ``prometheus_client``'s parser (not by hand: the format has escapes, optional
  timestamps and ``_total`` suffixes that a hand-written parser gets wrong).
- **Prometheus HTTP API** ``query_range`` (or instant ``query``) responses saved as ``.json``: one file
  per metric or several metrics in one file (``aifinops collect prometheus`` writes these).

Samples are pivoted to one wide ``gpu_samples`` row per (timestamp, Hostname, UUID, gpu index, GPU_I_ID,
namespace, pod, container). Units follow ``model.gpu``: ``DCGM_FI_DEV_GPU_UTIL`` % -> ratio,
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` mJ -> J; other metrics keep their units (MiB, W, ratios).

Timestamps of a scrape, in order of preference: the sample's own timestamp (rare in a scrape, always
present in a query result); else the ``scrape_time`` option; else the file's modification time (a saved
``curl`` output is written at scrape time, so its mtime is the best remaining guess).

Slurm: with ``--hpc-job-mapping-dir`` dcgm-exporter labels a GPU's series ``hpc_job`` (one series per job
on the GPU); it becomes ``job``, which allocation matches to the Slurm JobID. The pod labels of dcgm-exporter
before 2.x (``pod_name``, ``pod_namespace``, ``container_name``) are read too.

Pod labels: when Prometheus scrapes dcgm-exporter with ``honor_labels: false`` (its default), the
target's own ``pod``/``namespace``/``container`` (those of the dcgm-exporter pod itself, from service
discovery) overwrite the exporter's, and the exporter's (the workload's pod using the GPU) are renamed
``exported_pod``/... . So ``exported_*`` wins when present: it names the workload; ``pod`` then names the
exporter. And when any series of a file carries ``exported_*`` labels, the plain ones of that file are the
exporter's in every series: a GPU no pod holds then has no pod, not the dcgm-exporter pod.

Row rules: a row without ``Hostname``, or without both ``UUID`` and ``gpu``, cannot be tied to a GPU and
is quarantined; a negative or infinite value, a ratio above 1 or a GPU_UTIL above 100 % is quarantined;
a NaN value (DCGM reports one for a field it cannot read) loads as NULL with a warning. Samples out of
timestamp order are loaded as they are (analyses bucket by time, not by position). A duplicate sample (the
same series twice, or overlapping files) counts once: the same observation again (same GPU, MIG instance,
time and pod) supersedes the older row (``SampleSource``). Metrics other than the seven below are ignored
and counted in a note.

Energy counter resets: ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` is the energy used since the GPU or its
driver started, so it restarts near zero when either resets. A sample whose ``energy_j`` is lower than the
previous usable reading of the same GPU and MIG instance in the same file (in timestamp order) is a real
observation: it loads, with a ``counter-reset`` warning whose reason gives both readings ("energy counter
went down from 8132643.0 J to 120.5 J: the GPU or driver was reset; the counter restarts from this
sample"). Each file is compared on its own: a reset that falls between two files is not flagged. The
counter is kept as read, never corrected: analyses take energy from ``power_w`` samples (power x time),
which a reset does not disturb, never from differences of the counter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from ..model.checks import ERROR, WARNING, Check, sql_str
from ..model.gpu import GPU_SAMPLE_COLUMNS
from .base import (
    ArrowStream,
    FileRead,
    SampleSource,
    Source,
    SourceError,
    SourceFile,
    energy_reset_check,
    expand,
    sources,
    typed_ref,
)

#: DCGM metric -> (canonical column, SQL turning the raw value ``{v}`` into the canonical unit, upper bound)
METRICS: dict[str, tuple[str, str, float | None]] = {
    "DCGM_FI_PROF_SM_ACTIVE": ("sm_active", "{v}", 1.0),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("gr_engine_active", "{v}", 1.0),
    "DCGM_FI_DEV_GPU_UTIL": ("gpu_util", "{v} / 100.0", 100.0),
    "DCGM_FI_DEV_FB_USED": ("fb_used_mib", "{v}", None),
    "DCGM_FI_DEV_FB_FREE": ("fb_free_mib", "{v}", None),
    "DCGM_FI_DEV_POWER_USAGE": ("power_w", "{v}", None),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy_j", "{v} / 1000.0", None),
}

#: Arrow label column -> (canonical column, the labels that give it, first present wins)
LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Hostname": ("node", ("Hostname",)),
    "UUID": ("gpu", ("UUID",)),
    "gpu": ("gpu_index", ("gpu",)),
    "modelName": ("gpu_model", ("modelName",)),
    "GPU_I_ID": ("gpu_instance_id", ("GPU_I_ID",)),
    "GPU_I_PROFILE": ("gpu_instance_profile", ("GPU_I_PROFILE",)),
    # dcgm-exporter before 2.x wrote pod_name / pod_namespace / container_name
    "namespace": ("namespace", ("exported_namespace", "namespace", "exported_pod_namespace", "pod_namespace")),
    "pod": ("pod", ("exported_pod", "pod", "exported_pod_name", "pod_name")),
    "container": ("container", ("exported_container", "container", "exported_container_name", "container_name")),
    "hpc_job": ("job", ("exported_hpc_job", "hpc_job")),
}
_POD_LABELS = ("namespace", "pod", "container", "pod_namespace", "pod_name", "container_name")
_KEY = ("Hostname", "UUID", "gpu", "GPU_I_ID", "namespace", "pod", "container", "hpc_job")

TEXT_SUFFIXES = (".prom", ".txt", ".metrics")
JSON_SUFFIXES = (".json",)


def file_format(path: Path) -> str | None:
    """``prom`` (text exposition) or ``json`` (HTTP API response), by the file name's ending."""
    name = path.name.lower()
    if name.endswith(TEXT_SUFFIXES):
        return "prom"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    return None


Sample = tuple[str, dict[str, str], float, float | None]  # metric, labels, value, timestamp (epoch s)


def _text_samples(file: SourceFile, text: str) -> list[Sample]:
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise SourceError(f"{file.path}: not Prometheus text exposition format ({exc})") from None
    out: list[Sample] = []
    for fam in families:
        for s in fam.samples:
            if s.name in (fam.name, f"{fam.name}_total"):  # a counter's family drops its _total suffix
                ts = float(s.timestamp) if s.timestamp is not None else None
                out.append((fam.name, dict(s.labels), float(s.value), ts))
    return out


def _json_samples(file: SourceFile, text: str) -> list[Sample]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"{file.path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or "status" not in doc:
        raise SourceError(f"{file.path}: not a Prometheus HTTP API response (no \"status\" field)")
    if doc["status"] != "success":
        raise SourceError(f"{file.path}: the Prometheus query failed: {doc.get('errorType', '')} "
                          f"{doc.get('error', doc['status'])}".replace("  ", " "))
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") not in ("matrix", "vector"):
        raise SourceError(f"{file.path}: not a Prometheus query result: data.resultType must be matrix or vector")
    out: list[Sample] = []
    try:
        for series in data.get("result") or []:
            labels = {str(k): str(v) for k, v in series["metric"].items()}
            name = labels.pop("__name__", "")
            points = series["values"] if data["resultType"] == "matrix" else [series["value"]]
            out.extend((name, labels, float(v), float(ts)) for ts, v in points)
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{file.path}: malformed Prometheus query result ({type(exc).__name__}: {exc})") from None
    return out


def _label(labels: dict[str, str], names: tuple[str, ...], renamed: bool) -> str | None:
    for n in names:
        if renamed and n in _POD_LABELS:
            continue  # Prometheus renamed the exporter's pod labels: the plain ones are the exporter pod's
        if labels.get(n):  # dcgm-exporter writes pod="" for a GPU no pod holds: that is no pod
            return labels[n]
    return None


def pivot(samples: list[Sample], default_ts: float) -> tuple[pa.Table, dict[str, int]]:
    """One row per (timestamp, GPU, MIG instance, pod); returns the table and the count of ignored samples
    per unknown metric. A series seen twice at the same timestamp gives a second row, not an overwrite."""
    rows: list[dict[str, Any]] = []
    index: dict[tuple[Any, ...], list[int]] = {}
    ignored: dict[str, int] = {}
    renamed = any(f"exported_{n}" in labels for _, labels, _, _ in samples for n in _POD_LABELS)
    for name, labels, value, ts in samples:
        if name not in METRICS:
            ignored[name] = ignored.get(name, 0) + 1
            continue
        when = ts if ts is not None else default_ts
        ids = {col: _label(labels, names, renamed) for col, (_, names) in LABELS.items()}
        key = (when, *(ids[k] for k in _KEY))
        slot = next((i for i in index.get(key, []) if name not in rows[i]), None)
        if slot is None:
            slot = len(rows)
            rows.append({"timestamp": when, **ids})
            index.setdefault(key, []).append(slot)
        else:  # the same row: labels only some metrics carry (modelName, GPU_I_PROFILE) fill in
            for col, v in ids.items():
                rows[slot][col] = rows[slot][col] or v
        rows[slot][name] = value
    columns: dict[str, pa.Array] = {"timestamp": pa.array([r["timestamp"] for r in rows], pa.float64())}
    for col in LABELS:
        columns[col] = pa.array([r[col] for r in rows], pa.string())
    for metric in METRICS:
        columns[metric] = pa.array([r.get(metric) for r in rows], pa.float64())
    columns["_rn"] = pa.array(range(1, len(rows) + 1), pa.int64())
    return pa.table(columns), ignored


def _ref(col: str) -> str:
    return f's."{col}"'


def sample_checks(typed: dict[str, str]) -> list[Check]:
    """Row rules over the raw (pre-pivot-unit) values, and the energy counter reset over the typed ones
    (``typed``: canonical column -> ``typed_ref``); see the module docstring for why each exists."""
    ts, host, uuid, idx = _ref("timestamp"), _ref("Hostname"), _ref("UUID"), _ref("gpu")
    checks = [
        Check("not-null", "node", ERROR, f"{host} IS NULL",
              sql_str("Hostname label missing: the sample cannot be tied to a node")),
        Check("gpu-identity", "gpu", ERROR, f"{uuid} IS NULL AND {idx} IS NULL",
              sql_str("UUID and gpu labels both missing: the sample cannot be tied to a GPU")),
        Check("timestamp", "ts", ERROR, f"{ts} IS NULL OR NOT isfinite({ts})",
              sql_str("no usable timestamp")),
        Check("integer", "gpu_index", WARNING, f"{idx} IS NOT NULL AND TRY_CAST({idx} AS INTEGER) IS NULL",
              f"'gpu label is not an integer index: ' || {idx}"),
    ]
    for metric, (col, _, bound) in METRICS.items():
        v = _ref(metric)
        shown = f"CAST({v} AS VARCHAR)"
        checks.append(Check("nan", col, WARNING, f"isnan({v})", sql_str(f"{metric} is NaN: loaded as NULL")))
        checks.append(Check("finite", col, ERROR, f"isinf({v})", f"'{metric} is not finite: ' || {shown}"))
        checks.append(Check("negative", col, ERROR, f"{v} < 0", f"'{metric} is negative: ' || {shown}"))
        if bound is not None:
            checks.append(Check("range", col, ERROR, f"isfinite({v}) AND {v} > {bound}",
                                f"'{metric} is above {bound:g}: ' || {shown}"))
    checks.append(energy_reset_check(typed, _ref("_rn")))
    return checks


@sources.register("dcgm")
class DcgmSource(SampleSource):
    """GPU telemetry from dcgm-exporter: saved /metrics scrapes or Prometheus query_range JSON.

    Example: ``aifinops ingest dcgm scrapes/`` or ``aifinops collect prometheus --url http://prom:9090``
    """


    class Options(Source.Options):
        #: when a scrape has no per-sample timestamps; naive values are UTC
        scrape_time: datetime | None = None

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """Paths -> scrape and query files (the engine's hook for sources that read neither CSV nor Parquet)."""
        return expand(paths, classify=file_format, what=".prom, .txt, .metrics or .json")

    def default_timestamp(self, file: SourceFile) -> tuple[float, str]:
        """The time of samples without their own, and where it comes from (said in a note)."""
        t: datetime | None = self.options.scrape_time  # type: ignore[attr-defined]
        if t is None:
            return file.path.stat().st_mtime, "the file's modification time"
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp(), "the scrape_time option"

    def read(self, file: SourceFile) -> FileRead:
        try:
            text = file.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{file.path}: not UTF-8 text (byte {exc.start}); not a Prometheus file") from None
        if not text.strip():
            raise SourceError(f"{file.path}: the file is empty (no metrics)")
        fmt = file.format or file_format(file.path)
        samples = _json_samples(file, text) if fmt == "json" else _text_samples(file, text)
        default_ts, origin = self.default_timestamp(file)
        table, ignored = pivot(samples, default_ts)
        notes = []
        untimed = sum(1 for s in samples if s[3] is None and s[0] in METRICS)
        if untimed:
            when = datetime.fromtimestamp(default_ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            notes.append(f"{file.path.name}: {untimed} sample(s) without a timestamp, stamped {when} ({origin})")
        if ignored:
            listed = ", ".join(f"{n} ({c})" for n, c in sorted(ignored.items()))
            notes.append(f"{file.path.name}: ignored {sum(ignored.values())} sample(s) of "
                         f"{len(ignored)} metric(s) not used: {listed}")
        if not samples:
            notes.append(f"{file.path.name}: no samples")
        raw = {"ts": _ref("timestamp"), **{canon: _ref(col) for col, (canon, _) in LABELS.items()},
               **{canon: _ref(m) for m, (canon, _, _) in METRICS.items()}}
        typed = {
            "ts": f"CASE WHEN isfinite({raw['ts']}) THEN make_timestamp(CAST(round({raw['ts']} * 1e6) AS BIGINT)) END",
            "node": raw["node"],
            "gpu": f"coalesce({raw['gpu']}, {raw['node']} || '/' || {raw['gpu_index']})",
            "gpu_index": f"TRY_CAST({raw['gpu_index']} AS INTEGER)",
            **{c: raw[c] for c in ("gpu_model", "gpu_instance_id", "gpu_instance_profile", "namespace", "pod",
                                   "container", "job")},
            **{canon: f"CASE WHEN isfinite({_ref(m)}) THEN {unit.format(v=_ref(m))} END"
               for m, (canon, unit, _) in METRICS.items()},
            "source": "'dcgm'",
        }
        assert list(typed) == list(GPU_SAMPLE_COLUMNS), "typed columns must follow GPU_SAMPLE_COLUMNS"
        return FileRead(
            file=file, relation_sql="", raw=raw, typed=typed, extra_columns={},
            checks=sample_checks({c: typed_ref(i) for i, c in enumerate(typed)}),
            is_csv=False, notes=notes, stream=ArrowStream(open=lambda: table.to_reader()),
        )
