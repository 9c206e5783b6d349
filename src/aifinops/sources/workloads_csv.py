"""Workloads (pods, jobs, instances) from any CSV, CSV.gz or Parquet file, through a column mapping.

Every cluster exports its jobs differently, so instead of one reader per trace the mapping is data: each
canonical ``workloads`` column is a DuckDB SQL expression over the file's columns (``workload_id: name``,
``gpu_share: "num_gpu * gpu_milli / 1000.0"``), evaluated vectorised by the ingest engine. Built-in
mappings (presets) live in ``data/workload_presets.yaml``; a user's own mapping comes from aifinops.yaml
(``sources: {workloads-csv: {columns: {...}}}``) or ``--option``.

CSV values are text unless their column is listed in ``numeric``: DuckDB then reads it as DOUBLE (so
expressions may compute with it) and a value that is not a number quarantines its row with its line.
Types are declared, never sniffed: a sniffer guesses from the first rows and fails millions of rows later.
Parquet columns keep their own types (``numeric`` does not apply).

Times: ``start_ts``/``end_ts`` expressions give ISO text (``time_unit: iso``) or a number of seconds or
milliseconds counted from ``time_origin`` (default the Unix epoch, i.e. epoch timestamps). Traces that
count from their own start and do not publish its date (the Alibaba ones) get a conventional origin from
their preset: durations are exact, calendar dates are not. An empty or NaN time is unknown: ``start_ts``
NULL means it started before the data begins (or never held anything, then ``gpu_share`` is 0) and
``end_ts`` NULL that it was still running when the data ends.

Bad rows (``workload_checks``): no id, a value that is not a number or a time, an end before its start or
a negative GPU share or count is quarantined with its row and reason. Text columns (``node``, ``phase``,
...) are kept as the mapping gives them and are not checked: traces name their own phases and most have
no node, so a NULL ``node`` or an unfamiliar ``phase`` loads without a warning.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Literal

import duckdb
import pyarrow.parquet as pq
import yaml
from pydantic import Field, field_validator

from ..model.checks import ERROR, Check, sql_ident, sql_str
from ..model.gpu import WORKLOAD_COLUMNS
from .base import FileRead, Source, SourceError, SourceFile, csv_first_line, option_from_text, sources, typed_ref

#: canonical columns read as numbers: a mapped value that is not one is an error
_NUMBERS = ("gpu_count", "gpu_share", "cpu_request", "memory_request_mib", "exit_code")
_TIMES = ("start_ts", "end_ts")
#: filled by the source itself, not by the mapping
_OWN = ("source", "labels", "annotations")
_MICROS = {"s": 1_000_000, "ms": 1_000}



def shown(raw: str) -> str:
    """The offending value, quoted and shortened, inside a reason."""
    return f"'''' || left(CAST({raw} AS VARCHAR), 80) || ''''"


def csv_header(file: SourceFile, delimiter: str) -> list[str]:
    """Column names from the first line of a CSV(.gz), without reading its rows (fail fast, load nothing)."""
    line = csv_first_line(file)
    names = [n.strip() for n in next(csv.reader(io.StringIO(line), delimiter=delimiter))]
    if any(not n for n in names):
        raise SourceError(f"{file.path}: the header has an empty column name (is the delimiter {delimiter!r}?)")
    lower = [n.lower() for n in names]
    dupes = sorted({n for n in names if lower.count(n.lower()) > 1})
    if dupes:
        raise SourceError(f"{file.path}: duplicated column(s) in the header: {', '.join(dupes)}")
    return names


def parquet_names(file: SourceFile) -> list[str]:
    try:
        return list(pq.read_schema(file.path).names)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise SourceError(f"{file.path}: not a readable Parquet file ({exc})") from None


def relation_sql(file: SourceFile, names: list[str], delimiter: str, numeric: set[str]) -> str:
    """A DuckDB table expression for the file. For CSV it ends with ``)`` so that the ingest engine can
    append its rejects options; the declared types make a non-number a CAST reject with its line."""
    path = sql_str(str(file.path))
    if file.format == "parquet":
        return f"read_parquet({path}, file_row_number = true)"
    types = ", ".join(f"{sql_str(n)}: '{'DOUBLE' if n.lower() in numeric else 'VARCHAR'}'" for n in names)
    return (
        f"read_csv({path}, header = true, columns = {{{types}}}, delim = {sql_str(delimiter)},"
        " quote = '\"', escape = '\"', nullstr = ['NULL', ''], strict_mode = true,"
        " store_rejects = true, rejects_limit = 0, null_padding = false,"
        f" compression = '{'gzip' if file.format == 'csv.gz' else 'none'}', parallel = false)"
    )


def map_sql(entries: dict[str, str]) -> str:
    """key -> SQL expression as a MAP(VARCHAR, VARCHAR), leaving out the entries whose value is NULL."""
    if not entries:
        return "CAST(NULL AS MAP(VARCHAR, VARCHAR))"
    items = ", ".join(f"{{'k': {sql_str(k)}, 'v': CAST({v} AS VARCHAR)}}" for k, v in entries.items())
    return f"map_from_entries(list_filter([{items}], lambda e: e.v IS NOT NULL))"


def column_entries(spec: list[str] | dict[str, str]) -> dict[str, str]:
    """``labels``/``annotations`` option -> key -> SQL: a list names file columns copied under their name."""
    if isinstance(spec, dict):
        return dict(spec)
    return {name: sql_ident(name) for name in spec}


def parse_origin(text: str) -> datetime:
    """An ISO 8601 time -> naive UTC, as the store keeps time (zone-less input is UTC)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise SourceError(f"time_origin {text!r} is not an ISO 8601 date/time (e.g. 2023-01-01T00:00:00Z)") from None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def time_sql(raw: str, unit: str, origin: datetime) -> str:
    """SQL for a timestamp from a raw value: ISO text, or a number of ``unit`` since ``origin``.
    NaN and infinities are unknown times (NULL), as the Alibaba traces use NaN; it never raises."""
    if unit == "iso":
        return f"CAST(TRY_CAST(CAST({raw} AS VARCHAR) AS TIMESTAMPTZ) AS TIMESTAMP)"
    v = f"TRY_CAST({raw} AS DOUBLE)"
    return (f"CASE WHEN isfinite({v}) THEN TRY(TIMESTAMP '{origin:%Y-%m-%d %H:%M:%S.%f}' + "
            f"to_microseconds(CAST(round({v} * {_MICROS[unit]}) AS BIGINT))) END")


def bad_time(raw: str, typed: str) -> str:
    """True when a value is given but is not a time (NaN is an unknown time, not an error)."""
    return f"{raw} IS NOT NULL AND {typed} IS NULL AND NOT coalesce(isnan(TRY_CAST({raw} AS DOUBLE)), false)"


def bind_check(file: SourceFile, relation: str, names: list[str], numeric: set[str],
               exprs: dict[str, str]) -> None:
    """Every mapping expression, bound against the file's columns on an empty in-memory relation: a typo
    or a column the file lacks is reported here, naming the mapping, before the store is touched."""
    con = duckdb.connect()
    try:
        if file.format == "parquet":
            con.execute(f"CREATE TEMP VIEW s AS SELECT * FROM {relation} LIMIT 0")
        else:
            cols = ", ".join(f"CAST(NULL AS {'DOUBLE' if n.lower() in numeric else 'VARCHAR'}) AS {sql_ident(n)}"
                             for n in names)
            con.execute(f"CREATE TEMP VIEW s AS SELECT {cols} LIMIT 0")
        for col, expr in exprs.items():
            try:
                con.execute(f"SELECT {expr} FROM s")
            except duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0]
                raise SourceError(f"{file.path}: mapping of {col} ({expr.strip()}) does not apply to this file: "
                                  f"{first} (columns: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''})"
                                  ) from None
    finally:
        con.close()


@cache
def presets() -> dict[str, dict[str, Any]]:
    text = resources.files("aifinops.sources").joinpath("data/workload_presets.yaml").read_text("utf-8")
    return yaml.safe_load(text)


@sources.register("workloads-csv")
class WorkloadsCsvSource(Source):
    """Workloads from a CSV/CSV.gz/Parquet file through a column mapping or a built-in preset.

    Example: ``aifinops ingest workloads-csv --option preset=alibaba-openb openb_pod_list_default.csv``
    """

    target: ClassVar[str] = "workloads"
    restatement_key: ClassVar[tuple[str, ...]] = ("source", "workload_id")
    key_noun: ClassVar[str] = "workload(s)"

    class Options(Source.Options):
        #: a built-in mapping (data/workload_presets.yaml): alibaba-openb, alibaba-dlrm
        preset: str | None = None
        #: canonical column -> SQL expression over the file's columns; merged over the preset's
        columns: dict[str, str] = Field(default_factory=dict)
        #: file columns read as DOUBLE (CSV), so expressions can compute with them
        numeric: list[str] = Field(default_factory=list)
        #: when trace-relative numbers count from; default the Unix epoch (or the preset's)
        time_origin: str | None = None
        time_unit: Literal["s", "ms", "iso"] | None = None
        #: file columns copied into the labels MAP, or label key -> SQL expression
        labels: list[str] | dict[str, str] = Field(default_factory=list)
        annotations: list[str] | dict[str, str] = Field(default_factory=list)
        #: value of the ``source`` column: workloads of one source restate each other by workload_id
        source_name: str | None = None
        delimiter: str = ","

        @field_validator("columns", "numeric", "labels", "annotations", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option`` gives text: ``labels=qos,gpu_spec`` or ``columns={workload_id: name}`` (YAML)."""
            return option_from_text(value)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        base: dict[str, Any] = {}
        if o.preset is not None:
            if o.preset not in presets():
                known = ", ".join(sorted(presets()))
                raise SourceError(f"options of source 'workloads-csv': unknown preset {o.preset!r} (known: {known})")
            base = presets()[o.preset]
        given = o.model_fields_set

        def pick(name: str) -> Any:
            return getattr(o, name) if name in given or name not in base else base[name]

        self.columns: dict[str, str] = {**base.get("columns", {}), **o.columns}
        unknown = sorted((set(self.columns) - set(WORKLOAD_COLUMNS)) | (set(self.columns) & set(_OWN)))
        if unknown:
            allowed = ", ".join(c for c in WORKLOAD_COLUMNS if c not in _OWN)
            raise SourceError(f"options of source 'workloads-csv': columns {', '.join(unknown)} cannot be mapped "
                              f"(mappable: {allowed}; labels and annotations have their own options)")
        if "workload_id" not in self.columns:
            raise SourceError("options of source 'workloads-csv': give a preset or map at least columns.workload_id")
        self.numeric = {n.lower() for n in [*base.get("numeric", []), *o.numeric]}  # merged, like columns
        self.time_unit: str = pick("time_unit") or "s"
        self.origin = parse_origin(pick("time_origin") or "1970-01-01T00:00:00Z")
        self.labels = column_entries(pick("labels"))
        self.annotations = column_entries(pick("annotations"))
        self.source_name: str = pick("source_name") or "csv"

    def describe_key(self, values: tuple[Any, ...]) -> str:
        return f"{values[0]} workload {values[1]}"

    def read(self, file: SourceFile) -> FileRead:
        delimiter = self.options.delimiter
        if file.format == "parquet":
            relation = relation_sql(file, [], delimiter, set())
            names = parquet_names(file)
        else:
            names = csv_header(file, delimiter)
            relation = relation_sql(file, names, delimiter, self.numeric)
        bind_check(file, relation, names, self.numeric,
                   {**self.columns, **{f"labels.{k}": v for k, v in self.labels.items()},
                    **{f"annotations.{k}": v for k, v in self.annotations.items()}})
        raw = dict(self.columns)
        typed: dict[str, str] = {}
        for col, sql_type in WORKLOAD_COLUMNS.items():
            expr = raw.get(col)
            if col == "source":
                typed[col] = sql_str(self.source_name)
            elif col == "labels":
                typed[col] = map_sql(self.labels)
            elif col == "annotations":
                typed[col] = map_sql(self.annotations)
            elif expr is None:
                typed[col] = f"CAST(NULL AS {sql_type})"
            elif col in _TIMES:
                typed[col] = time_sql(f"({expr})", self.time_unit, self.origin)
            elif col in _NUMBERS:
                typed[col] = f"TRY_CAST(({expr}) AS {sql_type})"
            elif col == "gpu_uuids":  # comma-separated text
                typed[col] = f"list_transform(string_split(CAST(({expr}) AS VARCHAR), ','), lambda u: trim(u))"
            else:
                typed[col] = f"CAST(({expr}) AS VARCHAR)"
        raw = {c: f"({e})" for c, e in raw.items()}
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={},
                        checks=workload_checks(raw, refs), is_csv=file.format != "parquet")


def workload_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """Errors that quarantine a row: no id, a value that is not a number or a time, end before start, a
    negative GPU share or count (a share below zero would credit GPU time to nobody)."""
    checks = [Check("not-null", "workload_id", ERROR, f"{raw['workload_id']} IS NULL",
                    sql_str("workload_id must not be empty"))]
    for col in _NUMBERS:
        if col in raw:
            checks.append(Check("number", col, ERROR, f"{raw[col]} IS NOT NULL AND {typed[col]} IS NULL",
                                f"'not a number: ' || {shown(raw[col])}"))
    for col in _TIMES:
        if col in raw:
            checks.append(Check("datetime", col, ERROR, bad_time(raw[col], typed[col]),
                                f"'not a time: ' || {shown(raw[col])}"))
    if "start_ts" in raw and "end_ts" in raw:
        checks.append(Check("period-order", "end_ts", ERROR, f"{typed['end_ts']} < {typed['start_ts']}",
                            f"'end ' || {shown(typed['end_ts'])} || ' is before start ' || {shown(typed['start_ts'])}"))
    for col in ("gpu_share", "gpu_count"):
        if col in raw:
            checks.append(Check("non-negative", col, ERROR, f"{typed[col]} < 0",
                                f"'{col} must not be negative: ' || {shown(raw[col])}"))
    return checks
