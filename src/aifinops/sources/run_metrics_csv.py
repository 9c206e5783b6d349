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

from typing import ClassVar

from ..model.checks import ERROR, WARNING, Check, sql_str
from ..model.runs import RUN_METRIC_COLUMNS, RUN_METRIC_KEY
from .base import FileRead, SourceFile, sources, typed_ref
from .mapped_rows import MappedRowsSource, mapping_options
from .workloads_csv import shown, time_sql

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
class RunMetricsSource(MappedRowsSource):
    """Training-run metrics (run, metric, value, step) from CSV, Parquet or JSON, e.g. a tracker's export.

    Example: ``aifinops ingest run-metrics runs.csv``
    """

    target: ClassVar[str] = "run_metrics"
    unique_key: ClassVar[tuple[str, ...]] = RUN_METRIC_KEY

    aliases: ClassVar[dict[str, tuple[str, ...]]] = ALIASES
    required: ClassVar[tuple[str, ...]] = REQUIRED
    noun: ClassVar[str] = "a run-metrics file"
    json_what: ClassVar[str] = "a JSON export of run metrics"

    class Options(mapping_options(ALIASES)):  # type: ignore[misc]
        #: value of the ``source`` column: runs of two trackers with their own ids are told apart by it
        source_name: str = "csv"

    def read(self, file: SourceFile) -> FileRead:
        m = self.map_columns(file)
        raw = m.raw

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
            "attributes": self.attributes(m.others),
        }
        assert list(typed) == list(RUN_METRIC_COLUMNS), "typed columns must follow RUN_METRIC_COLUMNS"
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql=m.relation, raw=raw, typed=typed, extra_columns={},
                        checks=[*m.checks, *run_metric_checks(raw, refs)], is_csv=file.format in ("csv", "csv.gz"),
                        stream=m.stream)


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
