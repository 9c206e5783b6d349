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

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from ..model.checks import ERROR, WARNING, Check, sql_ident, sql_str
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


#: Every label a series may carry that a canonical column reads.
_RAW_LABELS = tuple(dict.fromkeys(n for _, names in LABELS.values() for n in names))
#: A file is read into two tables: ``series`` (sid, metric, raw labels) and ``points`` (sid, pid, ts, value).
_SERIES = pa.schema([("sid", pa.int64()), ("metric", pa.string()), *((n, pa.string()) for n in _RAW_LABELS)])
_POINTS = pa.schema([("sid", pa.int64()), ("pid", pa.int64()), ("ts", pa.float64()), ("value", pa.float64())])


def _text_tables(con: duckdb.DuckDBPyConnection, file: SourceFile, text: str, default_ts: float) -> int:
    """A scrape as ``series`` and ``points`` in ``con`` (each sample a series of one point); returns the number
    of samples without a timestamp. The text is parsed by prometheus_client; a scrape holds one instant of a
    node, so this loop stays small."""
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise SourceError(f"{file.path}: not Prometheus text exposition format ({exc})") from None
    series: dict[str, list[Any]] = {n: [] for n in _SERIES.names}
    points: dict[str, list[Any]] = {n: [] for n in _POINTS.names}
    untimed = 0
    for fam in families:
        for s in fam.samples:
            if s.name not in (fam.name, f"{fam.name}_total"):  # a counter's family drops its _total suffix
                continue
            sid = len(series["sid"])
            series["sid"].append(sid)
            series["metric"].append(fam.name)
            for n in _RAW_LABELS:
                series[n].append(s.labels.get(n))
            untimed += s.timestamp is None and fam.name in METRICS
            points["sid"].append(sid)
            points["pid"].append(0)
            points["ts"].append(default_ts if s.timestamp is None else float(s.timestamp))
            points["value"].append(float(s.value))
    con.register("series", pa.table(series, schema=_SERIES))
    con.register("points", pa.table(points, schema=_POINTS))
    return untimed


def _json_tables(con: duckdb.DuckDBPyConnection, file: SourceFile) -> None:
    """A query or query_range response as ``series`` and ``points`` in ``con``, parsed by DuckDB's JSON
    reader (vectorised: a week of 15 s samples is millions of points). The answer's status and resultType
    are checked first, so that a failed query or another JSON document is named as such."""
    with file.path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith(b"{"):
        raise SourceError(f"{file.path}: not a Prometheus HTTP API response (not a JSON object)")
    try:
        con.execute(f"""CREATE TABLE doc AS SELECT * FROM read_json({sql_str(str(file.path))}, format = 'auto',
            records = true, maximum_object_size = {file.bytes + 1},
            columns = {{'status': 'VARCHAR', 'errorType': 'VARCHAR', 'error': 'VARCHAR', 'data': 'JSON'}})""")
    except duckdb.Error as exc:
        raise SourceError(f"{file.path}: not JSON ({_first_line(exc)})") from None
    status, error_type, error, result_type = con.execute(
        "SELECT status, errorType, error, data->>'$.resultType' FROM doc").fetchall()[0]
    if status is None:
        raise SourceError(f"{file.path}: not a Prometheus HTTP API response (no \"status\" field)")
    if status != "success":
        raise SourceError(f"{file.path}: the Prometheus query failed: {error_type or ''} "
                          f"{error or status}".replace("  ", " "))
    if result_type not in ("matrix", "vector"):
        raise SourceError(f"{file.path}: not a Prometheus query result: data.resultType must be matrix or vector")
    field = "values" if result_type == "matrix" else "value"
    con.execute("CREATE TABLE raw_series AS SELECT unnest(CAST(coalesce(data->'$.result', '[]') AS JSON[])) AS s, "
                "generate_subscripts(CAST(coalesce(data->'$.result', '[]') AS JSON[]), 1) AS sid FROM doc")
    bad = con.execute(f"""SELECT sid, json_extract(s, 'metric') IS NULL FROM raw_series
        WHERE json_extract(s, 'metric') IS NULL OR json_type(json_extract(s, '{field}')) IS DISTINCT FROM 'ARRAY'
        ORDER BY sid LIMIT 1""").fetchall()
    if bad:
        what = "metric" if bad[0][1] else f'"{field}" array'
        raise SourceError(f"{file.path}: malformed Prometheus query result (series {bad[0][0]} has no {what})")
    points = f"json_extract(s, '{field}')" if result_type == "matrix" else f"json_array(json_extract(s, '{field}'))"
    labels = ", ".join(f"m[{sql_str(n)}] AS {sql_ident(n)}" for n in _RAW_LABELS)
    try:
        con.execute(f"""CREATE TABLE series AS SELECT sid, coalesce(m['__name__'], '') AS metric, {labels}
            FROM (SELECT sid, CAST(json_extract(s, 'metric') AS MAP(VARCHAR, VARCHAR)) AS m FROM raw_series)""")
        con.execute(f"""CREATE TABLE points AS
            SELECT sid, pid, CAST(p->>'$[0]' AS DOUBLE) AS ts, CAST(p->>'$[1]' AS DOUBLE) AS value
            FROM (SELECT sid, unnest(pts) AS p, generate_subscripts(pts, 1) AS pid
                  FROM (SELECT sid, CAST({points} AS JSON[]) AS pts FROM raw_series))""")
    except duckdb.Error as exc:
        raise SourceError(f"{file.path}: malformed Prometheus query result ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _label_sql(names: tuple[str, ...]) -> str:
    """SQL: the first non-empty of ``names`` (dcgm-exporter writes pod="" for a GPU no pod holds: no pod).
    When Prometheus renamed the exporter's pod labels (``renamed``), the plain ones are the exporter pod's."""
    plain = [f"nullif({sql_ident(n)}, '')" for n in names]
    if not any(n in _POD_LABELS for n in names):
        return f"coalesce({', '.join(plain)})"
    exported = [f"nullif({sql_ident(n)}, '')" for n in names if n not in _POD_LABELS]
    return f"CASE WHEN renamed THEN coalesce({', '.join(exported)}) ELSE coalesce({', '.join(plain)}) END"


def pivot(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, dict[str, int]]:
    """``series`` and ``points`` in ``con`` -> one row per (timestamp, GPU, MIG instance, pod, job), in the
    order the samples first appear, and the count of ignored samples per unknown metric.

    Labels are resolved once per series, not per sample. Series with the same identity and metric are
    numbered (``copy``); a series seen twice gives a second row, its n-th copy pairing with the n-th copies
    of the other metrics, not an overwrite: ingest then marks the earlier copy superseded."""
    renamed = " OR ".join(f"{sql_ident('exported_' + n)} IS NOT NULL" for n in _POD_LABELS)
    ids = ", ".join(f"{_label_sql(names)} AS {sql_ident(col)}" for col, (_, names) in LABELS.items())
    key = ", ".join(sql_ident(k) for k in _KEY)
    fill = ", ".join(f"{'any_value' if c in _KEY else 'max'}({sql_ident(c)}) AS {sql_ident(c)}" for c in LABELS)
    metrics = ", ".join(f"max(p.value) FILTER (WHERE g.metric = {sql_str(m)}) AS {sql_ident(m)}" for m in METRICS)
    known = ", ".join(sql_str(m) for m in METRICS)
    con.execute(f"""CREATE TABLE grouped AS
        WITH r AS (SELECT *, (SELECT coalesce(bool_or({renamed}), false) FROM series) AS renamed FROM series),
        ided AS (SELECT sid, metric, {ids} FROM r WHERE metric IN ({known}))
        SELECT *, dense_rank() OVER (ORDER BY {key}) AS gid,
               row_number() OVER (PARTITION BY {key}, metric ORDER BY sid) AS copy FROM ided""")
    table = con.sql(f"""
        WITH rows AS (
          SELECT p.ts, g.gid, g.copy, min(p.sid * 4294967296 + p.pid) AS first, {metrics}
          FROM points p JOIN grouped g ON g.sid = p.sid GROUP BY p.ts, g.gid, g.copy
        ), labels AS (SELECT gid, {fill} FROM grouped GROUP BY gid)
        SELECT r.ts AS "timestamp", {", ".join(f"l.{sql_ident(c)}" for c in LABELS)},
               {", ".join(f"r.{sql_ident(m)}" for m in METRICS)}, row_number() OVER (ORDER BY r.first) AS _rn
        FROM rows r JOIN labels l ON l.gid = r.gid ORDER BY r.first""").to_arrow_table()
    ignored = dict(con.execute(f"SELECT s.metric, count(*) FROM points p JOIN series s ON s.sid = p.sid "
                               f"WHERE s.metric NOT IN ({known}) GROUP BY ALL").fetchall())
    return table, ignored


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
        fmt = file.format or file_format(file.path)
        default_ts, origin = self.default_timestamp(file)
        con = duckdb.connect()  # the reader's own scratch database, never the store
        try:
            if fmt == "json":
                if file.bytes == 0 or not file.path.read_bytes().strip():
                    raise SourceError(f"{file.path}: the file is empty (no metrics)")
                _json_tables(con, file)
                untimed = 0
            else:
                try:
                    text = file.path.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise SourceError(f"{file.path}: not UTF-8 text (byte {exc.start}); not a Prometheus file") \
                        from None
                if not text.strip():
                    raise SourceError(f"{file.path}: the file is empty (no metrics)")
                untimed = _text_tables(con, file, text, default_ts)
            n_samples = con.execute("SELECT count(*) FROM points").fetchall()[0][0]
            table, ignored = pivot(con)
        finally:
            con.close()
        notes = []
        if untimed:
            when = datetime.fromtimestamp(default_ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            notes.append(f"{file.path.name}: {untimed} sample(s) without a timestamp, stamped {when} ({origin})")
        if ignored:
            listed = ", ".join(f"{n} ({c})" for n, c in sorted(ignored.items()))
            notes.append(f"{file.path.name}: ignored {sum(ignored.values())} sample(s) of "
                         f"{len(ignored)} metric(s) not used: {listed}")
        if not n_samples:
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
