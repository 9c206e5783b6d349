"""Business outcomes: what the AI spend bought (tickets resolved, conversions, revenue, ...), from CSV(.gz),
Parquet or JSON (an array of objects, a ``{"data": [...]}`` page, or JSON lines).

One row is one measurement: at a time, of a metric, for a feature and/or model and/or team (and optionally a
tenant and a user), a value in a unit. Columns are matched by name, ignoring case:

==========  ==========================================================  =====================================
outcomes    file column (first found)                                   rule
==========  ==========================================================  =====================================
ts          ts, time, timestamp, datetime, date, day                    required; ISO text (``time_unit``: s
                                                                        or ms for epoch numbers); UTC
metric      metric, outcome, name                                       required
value       value, amount, count                                        required, a number (DECIMAL(38, 12))
unit        unit, currency                                              ``count``, ``USD``, ...
feature     feature
model       model
team        team
tenant      tenant, customer
user_id     user_id, user
attributes  every other column (and the keys of an ``attributes``
            JSON object column)
==========  ==========================================================  =====================================

``columns`` (canonical column -> SQL expression over the file's columns) overrides a match or fills a
column the file names otherwise (``columns={metric: "'tickets_resolved'", value: solved}``); a column read
into a canonical one, by name or in such an expression, is not also an attribute.

The same outcome reported again (same ``ts``, ``metric``, feature, model, team, tenant and user) supersedes
the earlier row, whichever file or batch it came in: a daily report re-exported with corrected numbers, or
overlapping exports, never count twice (``_superseded`` rows stay, for the audit trail). Two different
events in one file at the same instant and dimensions are one measurement: aggregate them first (the
ingest note says how many rows repeated one).

Bad rows are quarantined with the reason: no time or not a time, no metric, no value or one that is not a
number; a record that is not a JSON object; a malformed CSV line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator

from ..model.checks import ERROR, Check, sql_ident, sql_str
from ..model.llm import OUTCOME_COLUMNS
from .base import FileRead, Source, SourceError, SourceFile, csv_stream, expand, sources, typed_ref
from .json_rows import json_relation, read_json_rows, record_check, table_format
from .workloads_csv import bind_check, csv_header, map_sql, parquet_names, parse_origin, relation_sql, shown, time_sql

#: canonical column -> file column names that give it, first found wins
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "time", "timestamp", "datetime", "date", "day"),
    "metric": ("metric", "outcome", "name"),
    "value": ("value", "amount", "count"),
    "unit": ("unit", "currency"),
    "feature": ("feature",),
    "model": ("model",),
    "team": ("team",),
    "tenant": ("tenant", "customer"),
    "user_id": ("user_id", "user"),
}
REQUIRED = ("ts", "metric", "value")
KEY = ("ts", "metric", "feature", "model", "team", "tenant", "user_id")


@sources.register("outcomes")
class OutcomesSource(Source):
    """Business outcomes (time, metric, value per feature/model/team) from CSV, Parquet or JSON.

    Example: ``aifinops ingest outcomes tickets_resolved.csv``
    """

    target: ClassVar[str] = "outcomes"
    unique_key: ClassVar[tuple[str, ...]] = KEY
    unique_range: ClassVar[str | None] = "ts"

    class Options(Source.Options):
        #: canonical column -> SQL expression over the file's columns, over the name matching
        columns: dict[str, str] = Field(default_factory=dict)
        time_unit: Literal["iso", "s", "ms"] = "iso"
        #: when numeric times count from; default the Unix epoch
        time_origin: str | None = None
        delimiter: str = ","

        @field_validator("columns", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option columns={metric: "'conversions'"}`` arrives as text (YAML)."""
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
            rows = read_json_rows(file, "a JSON export of outcome rows")
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
            raise SourceError(f"{file.path}: not an outcomes file: no {' / '.join(ALIASES[missing[0]])} column for "
                              f"{missing[0]}{' (and ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''} "
                              f"(columns: {shown_names or 'none'}); map it with --option columns={{{missing[0]}: ...}}")
        # columns read into a canonical one (by name or named in a mapping expression) are not attributes
        used = {n for c, n in found.items() if n and c not in self.options.columns}
        used |= {n for n in names for e in self.options.columns.values()
                 if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", e, re.IGNORECASE)}
        others = [n for n in names if n not in used]
        bind_check(file, relation, names, set(), exprs)
        raw = {c: f"nullif(trim(CAST(({e}) AS VARCHAR)), '')" for c, e in exprs.items()}
        typed: dict[str, str] = {}
        for col, sql_type in OUTCOME_COLUMNS.items():
            expr = raw.get(col)
            if col == "attributes":
                typed[col] = self._attributes(others, names)
            elif expr is None:
                typed[col] = f"CAST(NULL AS {sql_type})"
            elif col == "ts":
                typed[col] = time_sql(expr, self.options.time_unit, self.origin)
            elif col == "value":
                typed[col] = f"TRY_CAST({expr} AS DECIMAL(38, 12))"
            else:
                typed[col] = expr
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={},
                        checks=[*checks, *outcome_checks(raw, refs)], is_csv=file.format in ("csv", "csv.gz"),
                        stream=stream)

    @staticmethod
    def _attributes(others: list[str], names: list[str]) -> str:
        """Every column not read into a canonical one, as text; an ``attributes`` column holding a JSON
        object contributes its keys instead (its own keys first, a column of the same name wins)."""
        entries = {n: f"s.{sql_ident(n)}" for n in others if n.lower() != "attributes"}
        columns = map_sql(entries) if entries else "CAST(MAP {} AS MAP(VARCHAR, VARCHAR))"
        nested = next((n for n in others if n.lower() == "attributes"), None)
        if nested is None:
            return columns
        obj = f"TRY(CAST(CAST(s.{sql_ident(nested)} AS JSON) AS MAP(VARCHAR, VARCHAR)))"
        return f"map_concat(coalesce({obj}, CAST(MAP {{}} AS MAP(VARCHAR, VARCHAR))), {columns})"


def outcome_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """Errors that quarantine an outcome: no time or not a time, no metric, no value or one that is not a
    number (an outcome without them cannot be put beside a cost)."""
    def given(col: str) -> str:
        return raw.get(col, "NULL")

    return [
        Check("datetime", "ts", ERROR, f"NOT coalesce(isfinite({typed['ts']}), false)",
              f"CASE WHEN {given('ts')} IS NULL THEN 'no time' ELSE 'not a time: ' || {shown(given('ts'))} END"),
        Check("not-null", "metric", ERROR, f"{typed['metric']} IS NULL", sql_str("no metric")),
        Check("number", "value", ERROR, f"{typed['value']} IS NULL",
              f"CASE WHEN {given('value')} IS NULL THEN 'no value' ELSE 'not a number: ' || {shown(given('value'))} "
              "END"),
    ]
