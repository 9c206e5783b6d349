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

from typing import ClassVar

from ..model.checks import ERROR, Check, sql_str
from ..model.llm import OUTCOME_COLUMNS
from .base import FileRead, SourceFile, sources, typed_ref
from .mapped_rows import MappedRowsSource, mapping_options
from .workloads_csv import shown, time_sql

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
class OutcomesSource(MappedRowsSource):
    """Business outcomes (time, metric, value per feature/model/team) from CSV, Parquet or JSON.

    Example: ``aifinops ingest outcomes tickets_resolved.csv``
    """

    target: ClassVar[str] = "outcomes"
    unique_key: ClassVar[tuple[str, ...]] = KEY
    unique_range: ClassVar[str | None] = "ts"

    Options = mapping_options(ALIASES)
    aliases: ClassVar[dict[str, tuple[str, ...]]] = ALIASES
    required: ClassVar[tuple[str, ...]] = REQUIRED
    noun: ClassVar[str] = "an outcomes file"
    json_what: ClassVar[str] = "a JSON export of outcome rows"

    def read(self, file: SourceFile) -> FileRead:
        m = self.map_columns(file)
        raw = m.raw
        typed: dict[str, str] = {}
        for col, sql_type in OUTCOME_COLUMNS.items():
            expr = raw.get(col)
            if col == "attributes":
                typed[col] = self.attributes(m.others)
            elif expr is None:
                typed[col] = f"CAST(NULL AS {sql_type})"
            elif col == "ts":
                typed[col] = time_sql(expr, self.options.time_unit, self.origin)
            elif col == "value":
                typed[col] = f"TRY_CAST({expr} AS DECIMAL(38, 12))"
            else:
                typed[col] = expr
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql=m.relation, raw=raw, typed=typed, extra_columns={},
                        checks=[*m.checks, *outcome_checks(raw, refs)], is_csv=file.format in ("csv", "csv.gz"),
                        stream=m.stream)


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
