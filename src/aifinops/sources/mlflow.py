"""Training-run metrics from an MLflow tracking server: the JSON of its REST API 2.0 ``runs/search`` answers.

One file is one answer of ``POST /api/2.0/mlflow/runs/search`` (what ``aifinops collect mlflow`` writes, page
by page, or a ``curl`` of it): ``{"runs": [{"info": {...}, "data": {"metrics": [...], "params": [...],
"tags": [...]}}], "next_page_token": "..."}``. Every metric point of every run is one ``run_metrics`` row:

=============  ==============================================================================================
run_metrics    from the run
=============  ==============================================================================================
run_id         ``info.run_id`` (``info.run_uuid``, its deprecated name, when it is missing); required
experiment     the experiment's name when the file carries ``experiments`` (the collector adds the
               ``experiments/search`` answer's objects), else ``info.experiment_id``
run_name       ``info.run_name``, else the ``mlflow.runName`` tag
model          the first of the ``model_tags`` tags present (default: a tag ``model``), else the experiment
               (MLflow records no model name on a run: registered model versions point at runs, not the
               reverse, and MLflow 3's logged models are entities of their own; tag the run, e.g.
               ``mlflow.set_tag("model", "fraud-detector")``, or keep one model per experiment)
workload_run   the ``run_tag`` tag (default ``run``): the run label its GPU workloads carry
               (``llm.training_labels.run``); else the run id
status         ``info.status``: FINISHED, FAILED, KILLED, RUNNING or SCHEDULED
start_ts       ``info.start_time`` / ``info.end_time``, milliseconds since the epoch (UTC); absent while a
end_ts         run is running
metric         ``data.metrics[].key``; required
value          ``data.metrics[].value``, a number; MLflow writes NaN and infinities as the strings "NaN",
               "Infinity" (loaded, with a warning: a diverged run's loss)
step           ``data.metrics[].step`` (0 when absent)
ts             ``data.metrics[].timestamp``, milliseconds since the epoch
attributes     ``params.<key>`` and ``tags.<key>`` of every param and tag, and ``user_id``, ``lifecycle_stage``
=============  ==============================================================================================

``runs/search`` gives each metric's latest point only; the collector's ``--history`` replaces a run's
``data.metrics`` with its whole history (``metrics/get-history``), in the same shape, so a file is read the
same way either way. A run that logged no metric has nothing to load (a note counts them).

The same point seen again (``source``, ``run_id``, ``metric``, ``step``: a second sync, an overlapping page)
supersedes the earlier row, whichever batch it came in; the latest copy counts once. A file that is not
JSON, or not a ``runs/search`` answer, is refused naming it; a run that is not an object, a run without an
id, a point without a key or a value that is not a number is quarantined with its position
(``runs[i].data.metrics[j]``) and the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import duckdb
from pydantic import Field, field_validator

from ..model.checks import ERROR, WARNING, Check, sql_str
from ..model.runs import RUN_METRIC_COLUMNS, RUN_METRIC_KEY
from .base import FileRead, Source, SourceError, SourceFile, expand, option_from_text, sources, typed_ref
from .workloads_csv import shown

#: the fields of a run read from the file (``json_transform`` parses each run once into this struct)
_RUN = {"info": {k: "VARCHAR" for k in ("run_id", "run_uuid", "run_name", "experiment_id", "user_id", "status",
                                         "start_time", "end_time", "lifecycle_stage")},
        "data": {"metrics": "JSON[]", "params": [{"key": "VARCHAR", "value": "VARCHAR"}],
                 "tags": [{"key": "VARCHAR", "value": "VARCHAR"}]}}
_POINT = {"key": "VARCHAR", "value": "VARCHAR", "timestamp": "VARCHAR", "step": "VARCHAR"}
#: top-level keys of a runs/search answer (and of the collector's files)
_KEYS = {"runs", "next_page_token", "experiments"}


def _json_file(path: Path) -> str | None:
    return "json" if path.name.lower().endswith(".json") else None


def _tag(tags: str, key: str) -> str:
    """SQL: the value of tag ``key`` in a list of {key, value} structs (NULL when absent or empty)."""
    return f"nullif(list_filter({tags}, lambda x: x.key = {sql_str(key)})[1].value, '')"


def _pairs(items: str, prefix: str) -> str:
    """SQL: a {key, value} struct list as ``prefix.key`` entries for a MAP (keys without a name left out)."""
    return (f"list_transform(list_filter(coalesce({items}, []), lambda x: nullif(x.key, '') IS NOT NULL), "
            f"lambda x: {{'key': {sql_str(prefix)} || x.key, 'value': x.value}})")


def _epoch_ms(raw: str) -> str:
    """SQL: milliseconds since the epoch (a number or its text) -> TIMESTAMP; 0, text and NaN -> NULL."""
    v = f"TRY_CAST({raw} AS DOUBLE)"
    return f"CASE WHEN isfinite({v}) AND {v} <> 0 THEN TRY(epoch_ms(CAST(round({v}) AS BIGINT))) END"


def _integer(raw: str) -> str:
    """SQL: an integer given as a number or text; a fraction or text that is not a number -> NULL."""
    v = f"TRY_CAST({raw} AS DOUBLE)"
    return f"CASE WHEN isfinite({v}) AND {v} = round({v}) THEN TRY_CAST({v} AS BIGINT) END"


@sources.register("mlflow")
class MlflowSource(Source):
    """Training-run metrics from MLflow: REST API runs/search answers as JSON (as collect mlflow writes them).

    Example: ``aifinops ingest mlflow runs-page-1.json`` (``curl -X POST $MLFLOW/api/2.0/mlflow/runs/search``)
    """

    target: ClassVar[str] = "run_metrics"
    unique_key: ClassVar[tuple[str, ...]] = RUN_METRIC_KEY

    class Options(Source.Options):
        #: run tags naming what the run (re)trains, first present wins; else the experiment
        model_tags: list[str] = Field(default_factory=lambda: ["model"])
        #: run tag holding the run label of the run's GPU workloads; else the run id
        run_tag: str = "run"
        #: value of the ``source`` column: runs of two tracking servers are told apart by it
        source_name: str = "mlflow"

        @field_validator("model_tags", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option model_tags=model,registered_model`` arrives as text."""
            return option_from_text(value)

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        return expand(paths, classify=_json_file, what=".json (an MLflow runs/search answer)", named_as="json")

    def read(self, file: SourceFile) -> FileRead:
        runs, bare = _inspect(file)
        o = self.options
        relation = self._relation(file)
        p = "s.p"
        raw = {"run": "s._run", "point": "s._point", "run_id": "coalesce(s.run_id, s.run_uuid)",
               "metric": f"{p}.key", "value": f"{p}.value", "step": f"{p}.step", "timestamp": f"{p}.timestamp",
               "start_time": "s.start_time", "end_time": "s.end_time", "_line": "s._line",
               "_point_line": "s._point_line"}
        run_id = "nullif(trim(coalesce(s.run_id, s.run_uuid)), '')"
        typed: dict[str, str] = {
            "run_id": run_id,
            "source": sql_str(o.source_name),
            "experiment": "coalesce(s.experiment_name, nullif(s.experiment_id, ''))",
            "run_name": "coalesce(nullif(s.run_name, ''), s._run_name_tag)",
            "model": "coalesce(s._model, s.experiment_name, nullif(s.experiment_id, ''))",
            "workload_run": f"coalesce(s._workload_run, {run_id})",
            "status": "upper(nullif(trim(s.status), ''))",
            "start_ts": _epoch_ms("s.start_time"),
            "end_ts": _epoch_ms("s.end_time"),
            "metric": f"nullif({p}.key, '')",
            "value": f"TRY_CAST({p}.value AS DOUBLE)",
            "step": f"coalesce({_integer(f'{p}.step')}, 0)",
            "ts": _epoch_ms(f"{p}.timestamp"),
            "attributes": "s._attributes",
        }
        assert list(typed) == list(RUN_METRIC_COLUMNS), "typed columns must follow RUN_METRIC_COLUMNS"
        t = {c: typed_ref(i) for i, c in enumerate(typed)}
        where = "'runs[' || s._run || ']'"
        at = f"{where} || '.data.metrics[' || s._point || ']'"
        whole = 's."_line" IS NULL'
        point_ok = f"{whole} AND s._point_line IS NULL"
        checks = [
            Check("json-object", "_line", ERROR, f"NOT {whole}",
                  f"{where} || ' is not a JSON object: ' || left(s.\"_line\", 200)"),
            Check("json-object", "metric", ERROR, f"{whole} AND s._point_line IS NOT NULL",
                  f"{at} || ' is not a JSON object: ' || s._point_line"),
            Check("not-null", "run_id", ERROR, f"{whole} AND {t['run_id']} IS NULL",
                  f"'no run_id (' || {where} || '.info.run_id)'"),
            Check("not-null", "metric", ERROR, f"{point_ok} AND {t['metric']} IS NULL",
                  f"'no metric key (' || {at} || '.key)'"),
            Check("number", "value", ERROR, f"{point_ok} AND {t['value']} IS NULL",
                  f"CASE WHEN {p}.value IS NULL THEN 'no value (' || {at} || '.value)' "
                  f"ELSE 'not a number: ' || {shown(f'{p}.value')} || ' (' || {at} || '.value)' END"),
            Check("integer", "step", ERROR, f"{point_ok} AND {p}.step IS NOT NULL AND {_integer(f'{p}.step')} IS NULL",
                  f"'step is not an integer: ' || {shown(f'{p}.step')} || ' (' || {at} || '.step)'"),
            *(Check("epoch-ms", col, ERROR, f"{whole} AND {given} IS NOT NULL AND {given} <> '0' AND {t[col]} IS NULL",
                    f"'not a time in milliseconds since the epoch: ' || {shown(given)} || ' (' || {where} || ')'")
              for col, given in (("start_ts", "s.start_time"), ("end_ts", "s.end_time"),
                                 ("ts", f"{p}.timestamp"))),
            Check("finite", "value", WARNING, f"NOT isfinite({t['value']})",
                  f"'value ' || {p}.value || ' is not finite (a diverged run?): loaded; rules ignore it'"),
        ]
        notes = []
        if bare:
            notes.append(f"{file.path.name}: {bare:,} of {runs:,} run(s) logged no metric: nothing to load for them")
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={}, checks=checks,
                        notes=notes)

    def _relation(self, file: SourceFile) -> str:
        """The file's metric points, one row each, numbered in document order (run, then point), with the
        run's fields (parsed once per run) beside each point."""
        o = self.options
        path = sql_str(str(file.path))
        tags = "t.data.tags"
        model = f"coalesce({', '.join(_tag(tags, k) for k in o.model_tags)}, NULL)" if o.model_tags else "NULL"
        entries = (f"list_concat({_pairs('t.data.params', 'params.')}, {_pairs(tags, 'tags.')}, "
                   "list_filter([{'key': 'user_id', 'value': t.info.user_id}, "
                   "{'key': 'lifecycle_stage', 'value': t.info.lifecycle_stage}], lambda x: x.value IS NOT NULL))")
        # one entry per key (the first), as a MAP requires
        attributes = (f"map_from_entries(list_filter({entries}, lambda e, i: "
                      f"list_position(list_transform({entries}, lambda x: x.key), e.key) = i))")
        return f"""(
WITH doc AS (SELECT CAST(content AS JSON) AS d FROM read_text({path})),
exps AS (
  SELECT json_extract_string(e, '$.experiment_id') AS id, any_value(json_extract_string(e, '$.name')) AS name
  FROM (SELECT unnest(CAST(coalesce(json_extract(d, '$.experiments'), '[]') AS JSON[])) AS e FROM doc) GROUP BY 1
), runs AS (
  SELECT generate_subscripts(a, 1) AS ri, unnest(a) AS run
  FROM (SELECT CAST(coalesce(json_extract(d, '$.runs'), '[]') AS JSON[]) AS a FROM doc)
), parsed AS (
  SELECT ri, t, _line, {model} AS _model, {_tag(tags, o.run_tag)} AS _workload_run,
         {_tag(tags, 'mlflow.runName')} AS _run_name_tag, {attributes} AS _attributes
  FROM (SELECT ri, CASE WHEN json_type(run) = 'OBJECT' THEN json_transform(run, {sql_str(json.dumps(_RUN))}) END AS t,
               CASE WHEN json_type(run) <> 'OBJECT' THEN left(CAST(run AS VARCHAR), 1000) END AS _line FROM runs)
), points AS (
  SELECT *, generate_subscripts(m, 1) AS mi, unnest(m) AS pt
  FROM (SELECT *, CASE WHEN t IS NULL THEN [NULL::JSON] ELSE t.data.metrics END AS m FROM parsed)
)
SELECT row_number() OVER (ORDER BY ri, mi) - 1 AS file_row_number, ri - 1 AS _run, mi - 1 AS _point, _line,
       t.info.run_id AS run_id, t.info.run_uuid AS run_uuid, t.info.run_name AS run_name,
       t.info.experiment_id AS experiment_id, nullif(e.name, '') AS experiment_name, t.info.status AS status,
       t.info.start_time AS start_time, t.info.end_time AS end_time, _model, _workload_run, _run_name_tag,
       _attributes,
       CASE WHEN json_type(pt) = 'OBJECT' THEN json_transform(pt, {sql_str(json.dumps(_POINT))}) END AS p,
       CASE WHEN pt IS NOT NULL AND json_type(pt) <> 'OBJECT' THEN left(CAST(pt AS VARCHAR), 200) END AS _point_line
FROM points LEFT JOIN exps e ON e.id = t.info.experiment_id)"""


def _inspect(file: SourceFile) -> tuple[int, int]:
    """(runs, runs without a metric) of a runs/search answer, found in a scratch connection before the store
    is touched: a file that is not JSON, or not such an answer, is refused naming it."""
    with file.path.open("rb") as fh:
        head = fh.read(1 << 16).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise SourceError(f"{file.path}: the file is empty (no JSON, no runs)")
    if head[:1] != b"{":
        raise SourceError(f"{file.path}: not an MLflow runs/search answer: it starts with "
                          f"{head[:1].decode('latin-1')!r}, not {{ (one answer per file)")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        try:
            valid, = con.execute(f"SELECT json_valid(content) FROM read_text({sql_str(str(file.path))})").fetchone()
            if not valid:
                raise SourceError(f"{file.path}: not valid JSON (a truncated download?)")
            doc = f"(SELECT CAST(content AS JSON) AS d FROM read_text({sql_str(str(file.path))}))"
            keys, runs_type = con.execute(f"SELECT json_keys(d), json_type(d, '$.runs') FROM {doc}").fetchone()
            runs = bare = 0
            if runs_type == "ARRAY":
                runs, bare = con.execute(f"""
SELECT count(*),
       count(*) FILTER (WHERE json_type(r) = 'OBJECT' AND coalesce(json_array_length(r, '$.data.metrics'), 0) = 0)
FROM (SELECT unnest(CAST(json_extract(d, '$.runs') AS JSON[])) AS r FROM {doc})""").fetchone()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(f"{file.path}: not valid JSON ({first})") from None
    finally:
        con.close()
    if runs_type not in (None, "ARRAY"):
        raise SourceError(f"{file.path}: not an MLflow runs/search answer: runs is {runs_type.lower()}, not an array")
    if runs_type is None and set(keys or []) - _KEYS:
        raise SourceError(f"{file.path}: not an MLflow runs/search answer: no runs, keys "
                          f"{', '.join(sorted(keys)[:8])} (POST /api/2.0/mlflow/runs/search answers "
                          '{"runs": [...], "next_page_token": ...})')
    return int(runs), int(bare)
