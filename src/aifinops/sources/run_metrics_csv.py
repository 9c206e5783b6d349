"""Training-run metrics from a CSV(.gz), Parquet or JSON file: one row per run and metric (and step), for
experiment trackers other than MLflow (Weights & Biases or Neptune exports, a notebook's own table).

Columns are matched by name, ignoring case; ``columns`` maps the others:

============  =======================================================  ==============================================
run_metrics   file column (first found)                                rule
============  =======================================================  ==============================================
run_id        run_id, run_uuid                                         required
experiment    experiment, experiment_name, experiment_id, project
run_name      run_name, name
model         model, model_name, registered_model                      default: the experiment
workload_run  workload_run, run_label                                  the run label of the run's GPU workloads
                                                                       (``llm.training_labels.run``); default run_id
status        status, state                                            upper-cased: FINISHED, FAILED, KILLED, ...
start_ts      start_time, start_ts, started_at, start                  ISO text (``time_unit``: s or ms for epoch
end_ts        end_time, end_ts, ended_at, end                          numbers, counted from ``time_origin``); UTC
metric        metric, metric_key, metric_name, key                     required
value         value, metric_value                                      required, a number
step          step                                                     a whole number; default 0
ts            timestamp, ts, time, logged_at                           when the value was logged
attributes    every other column (and the keys of an ``attributes``
              JSON object column)
============  =======================================================  ==============================================

``columns`` (canonical column -> SQL expression over the file's columns) overrides a match or fills a column
the file names otherwise (``columns={run_id: id, metric: "'val_loss'", value: best_val_loss}``: a wide
export, one metric per column, is read once per metric this way); a column read into a canonical one is not
also an attribute. A run's run-level columns (status, times, model) may be given on every row or on one.

The same point seen again (``source``, ``run_id``, ``metric``, ``step``) supersedes the earlier row, whichever
file or batch it came in: a re-exported table never counts a value twice (``_superseded`` rows stay for the
audit trail). Bad rows are quarantined with the file, row, column and reason: no run_id, no metric, no value
or one that is not a number, a step that is not a whole number, a time that is not a time; a malformed CSV line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator

from ..model.checks import ERROR, WARNING, Check, sql_ident, sql_str
from ..model.runs import RUN_METRIC_COLUMNS, RUN_METRIC_KEY
from .base import FileRead, Source, SourceError, SourceFile, csv_stream, expand, sources, typed_ref
from .json_rows import json_relation, read_json_rows, record_check, table_format
from .workloads_csv import bind_check, csv_header, map_sql, parquet_names, parse_origin, relation_sql, shown, time_sql

#: canonical column -> file column names that give it, first found wins
ALIASES: dict[str, tuple[str, ...]] = {
    "run_id": ("run_id", "run_uuid"),
    "experiment": ("experiment", "experiment_name", "experiment_id", "project"),
    "run_name": ("run_name", "name"),
    "model": ("model", "model_name", "registered_model"),
    "workload_run": ("workload_run", "run_label"),
    "status": ("status", "state"),
    "start_ts": ("start_time", "start_ts", "started_at", "start"),
    "end_ts": ("end_time", "end_ts", "ended_at", "end"),
    "metric": ("metric", "metric_key", "metric_name", "key"),
    "value": ("value", "metric_value"),
    "step": ("step",),
    "ts": ("timestamp", "ts", "time", "logged_at"),
}
REQUIRED = ("run_id", "metric", "value")
_TIMES = ("start_ts", "end_ts", "ts")


def _integer(raw: str) -> str:
    """SQL: a whole number given as text; a fraction or text that is not a number -> NULL."""
    v = f"TRY_CAST({raw} AS DOUBLE)"
    return f"CASE WHEN isfinite({v}) AND {v} = round({v}) THEN TRY_CAST({v} AS BIGINT) END"


@sources.register("run-metrics")
class RunMetricsSource(Source):
    """Training-run metrics (run, metric, value, step) from CSV, Parquet or JSON, e.g. a tracker's export.

    Example: ``aifinops ingest run-metrics runs.csv``
    """

    target: ClassVar[str] = "run_metrics"
    unique_key: ClassVar[tuple[str, ...]] = RUN_METRIC_KEY

    class Options(Source.Options):
        #: canonical column -> SQL expression over the file's columns, over the name matching
        columns: dict[str, str] = Field(default_factory=dict)
        time_unit: Literal["iso", "s", "ms"] = "iso"
        #: when numeric times count from; default the Unix epoch
        time_origin: str | None = None
        #: value of the ``source`` column: runs of two trackers with their own ids are told apart by it
        source_name: str = "csv"
        delimiter: str = ","

        @field_validator("columns", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option columns={metric: "'val_loss'"}`` arrives as text (YAML)."""
            if isinstance(value, str):
                try:
                    return yaml.safe_load(value)
                except yaml.YAMLError as exc:
                    raise ValueError(f"not a YAML/JSON mapping: {exc}") from None
            return value

        @field_validator("columns")
        @classmethod
        def _known(cls, value: dict[str, str]) -> dict[str, str]:
            bad = sorted(set(value) - set(ALIASES))
            if bad:
                raise ValueError(f"{', '.join(bad)} cannot be mapped (mappable: {', '.join(ALIASES)})")
            return value

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.origin = parse_origin(self.options.time_origin or "1970-01-01T00:00:00Z")

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        return expand(paths, classify=table_format, what=".csv, .csv.gz, .parquet, .json or .jsonl")

    def read(self, file: SourceFile) -> FileRead:
        delimiter, checks, stream, empty = self.options.delimiter, [], None, False
        if file.format == "json":
            rows = read_json_rows(file, "a JSON export of run metrics")
            names, relation, checks, empty = rows.keys, json_relation(rows, rows.keys), [record_check()], rows.empty
        elif file.format == "parquet":
            names, relation = parquet_names(file), relation_sql(file, [], delimiter, set())
        else:
            names = csv_header(file, delimiter)
            relation, stream = relation_sql(file, names, delimiter, set()), csv_stream(file, names, delimiter)
        by_lower = {n.lower(): n for n in names}
        found = {c: next((by_lower[a] for a in alts if a in by_lower), None) for c, alts in ALIASES.items()}
        exprs = {c: sql_ident(n) for c, n in found.items() if n} | dict(self.options.columns)
        missing = [c for c in REQUIRED if c not in exprs]
        if missing and not empty:
            shown_names = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise SourceError(f"{file.path}: not a run-metrics file: no {' / '.join(ALIASES[missing[0]])} column for "
                              f"{missing[0]}{' (and ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''} "
                              f"(columns: {shown_names or 'none'}); map it with --option columns={{{missing[0]}: ...}}")
        used = {n for c, n in found.items() if n and c not in self.options.columns}
        used |= {n for n in names for e in self.options.columns.values()
                 if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", e, re.IGNORECASE)}
        others = [n for n in names if n not in used]
        bind_check(file, relation, names, set(), exprs)
        raw = {c: f"nullif(trim(CAST(({e}) AS VARCHAR)), '')" for c, e in exprs.items()}

        def given(col: str) -> str:
            return raw.get(col, "CAST(NULL AS VARCHAR)")

        unit = self.options.time_unit
        typed: dict[str, str] = {
            "run_id": given("run_id"),
            "source": sql_str(self.options.source_name),
            "experiment": given("experiment"),
            "run_name": given("run_name"),
            "model": f"coalesce({given('model')}, {given('experiment')})",
            "workload_run": f"coalesce({given('workload_run')}, {given('run_id')})",
            "status": f"upper({given('status')})",
            "start_ts": time_sql(given("start_ts"), unit, self.origin),
            "end_ts": time_sql(given("end_ts"), unit, self.origin),
            "metric": given("metric"),
            "value": f"TRY_CAST({given('value')} AS DOUBLE)",
            "step": f"coalesce({_integer(given('step'))}, 0)",
            "ts": time_sql(given("ts"), unit, self.origin),
            "attributes": self._attributes(others),
        }
        assert list(typed) == list(RUN_METRIC_COLUMNS), "typed columns must follow RUN_METRIC_COLUMNS"
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={},
                        checks=[*checks, *run_metric_checks(raw, refs)], is_csv=file.format in ("csv", "csv.gz"),
                        stream=stream)

    @staticmethod
    def _attributes(others: list[str]) -> str:
        """Every column not read into a canonical one, as text; an ``attributes`` column holding a JSON
        object contributes its keys instead (its own keys first, a column of the same name wins)."""
        entries = {n: f"s.{sql_ident(n)}" for n in others if n.lower() != "attributes"}
        columns = map_sql(entries) if entries else "CAST(MAP {} AS MAP(VARCHAR, VARCHAR))"
        columns = f"coalesce({columns}, CAST(MAP {{}} AS MAP(VARCHAR, VARCHAR)))"
        nested = next((n for n in others if n.lower() == "attributes"), None)
        if nested is None:
            return columns
        obj = f"TRY(CAST(CAST(s.{sql_ident(nested)} AS JSON) AS MAP(VARCHAR, VARCHAR)))"
        return f"map_concat(coalesce({obj}, CAST(MAP {{}} AS MAP(VARCHAR, VARCHAR))), {columns})"


def run_metric_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """Errors that quarantine a metric point: no run id or metric (it cannot be put in a run's history), no
    value or one that is not a number, a step that is not a whole number, a time given that is not a time."""
    def given(col: str) -> str:
        return raw.get(col, "NULL")

    checks = [
        Check("not-null", "run_id", ERROR, f"{typed['run_id']} IS NULL", sql_str("no run_id")),
        Check("not-null", "metric", ERROR, f"{typed['metric']} IS NULL", sql_str("no metric")),
        Check("number", "value", ERROR, f"{typed['value']} IS NULL",
              f"CASE WHEN {given('value')} IS NULL THEN 'no value' ELSE 'not a number: ' || {shown(given('value'))} "
              "END"),
        Check("finite", "value", WARNING, f"NOT isfinite({typed['value']})",
              f"'value ' || {given('value')} || ' is not finite (a diverged run?): loaded; rules ignore it'"),
    ]
    if "step" in raw:
        checks.append(Check("integer", "step", ERROR, f"{raw['step']} IS NOT NULL AND {_integer(raw['step'])} IS NULL",
                            f"'step is not a whole number: ' || {shown(raw['step'])}"))
    for col in _TIMES:
        if col in raw:
            checks.append(Check("datetime", col, ERROR,
                                f"{raw[col]} IS NOT NULL AND NOT coalesce(isfinite({typed[col]}), false)",
                                f"'not a time: ' || {shown(raw[col])}"))
    return checks
