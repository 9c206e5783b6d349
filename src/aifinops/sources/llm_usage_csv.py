"""LLM requests from any CSV, CSV.gz, Parquet or JSON file, through a column mapping (like workloads-csv).

Usage exports differ by vendor and by team, so the mapping is data: each canonical ``llm_requests`` column
is a DuckDB SQL expression over the file's columns (``input_tokens: ContextTokens``, ``request_id:
"ts || '/' || row_key"``), evaluated vectorised by the ingest engine. Built-in mappings (presets) live in
``data/llm_usage_presets.yaml``; a user's own comes from aifinops.yaml (``sources: {llm-usage: {columns:
{...}}}``) or ``--option``. Presets:

- ``azure-llm-trace``: the Azure LLM inference trace (TIMESTAMP, ContextTokens, GeneratedTokens). It names
  no model or provider, so ``--option model=...`` and ``--option provider=...`` are required.
- ``openai-usage``: OpenAI's Usage API completions buckets (JSON as the API answers, or flattened to CSV).
  One row stands for ``num_model_requests`` requests (``requests``); ``tier`` is batch for batch usage.

``model`` and ``provider`` options fill ``request_model`` and ``provider`` wherever the mapping gives none.
``request_id`` and ``ts`` must be mapped: a request without an identity could not be told from itself
when a later export repeats it. ``requests`` is 1 unless mapped. Text is read as text; columns listed in
``numeric`` are read as DOUBLE so expressions can compute with them. Token counts must be whole numbers.
Times are ISO text unless ``time_unit`` says seconds or milliseconds (since ``time_origin``, default the
Unix epoch). Attributes listed by name are kept when the file has them, so a preset can name columns that
only some exports carry (OpenAI's audio token counts).

Prompt fingerprints (``prompt_hash``, ``prefix_hash``, ``prefix_tokens``: ``model.llm.PROMPT_COLUMNS``) can be
mapped too, for users who hash prompts upstream (the file never holds the content); the hashes are kept as text,
``prefix_tokens`` must be a whole number, not negative.

Bad rows are quarantined by ``requests_common.request_checks``: no model (it cannot be priced), a count that
is not a whole number, negative or absurd (over 100M tokens a request), cache or reasoning tokens above
their totals, no time or one that is not a time. A malformed CSV line is quarantined with its line.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml
from pydantic import Field, field_validator

from ..model.checks import ERROR, Check, sql_str
from ..model.llm import LLM_REQUEST_COLUMNS, PROMPT_COLUMNS, provider_sql
from .base import (
    FileRead,
    RequestSource,
    Source,
    SourceError,
    SourceFile,
    csv_stream,
    expand,
    option_from_text,
    sources,
    typed_ref,
)
from .json_rows import json_relation, numeric_checks, read_json_rows, record_check, table_format
from .requests_common import COUNT_COLUMNS, count_sql, request_checks
from .workloads_csv import (
    bind_check,
    column_entries,
    csv_header,
    map_sql,
    parquet_names,
    parse_origin,
    relation_sql,
    time_sql,
)

#: filled by the source itself, not by the mapping
_OWN = ("source", "attributes")
_NUMBERS = ("duration_ms",)
_REQUIRED = ("request_id", "ts")
#: every column a mapping may fill
_MAPPABLE = {**LLM_REQUEST_COLUMNS, **PROMPT_COLUMNS}


@cache
def presets() -> dict[str, dict[str, Any]]:
    text = resources.files("aifinops.sources").joinpath("data/llm_usage_presets.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _error(message: str) -> SourceError:
    return SourceError(f"options of source 'llm-usage': {message}")


@sources.register("llm-usage")
class LlmUsageSource(RequestSource):
    """LLM requests from a CSV/CSV.gz/Parquet/JSON usage file through a column mapping or a built-in preset.

    Example: ``aifinops ingest llm-usage -o preset=azure-llm-trace -o model=gpt-4o -o provider=azure trace.csv``
    """

    class Options(Source.Options):
        #: a built-in mapping (data/llm_usage_presets.yaml): azure-llm-trace, openai-usage
        preset: str | None = None
        #: canonical column -> SQL expression over the file's columns; merged over the preset's
        columns: dict[str, str] = Field(default_factory=dict)
        #: file columns read as DOUBLE, so expressions can compute with them
        numeric: list[str] = Field(default_factory=list)
        #: ``ts`` as ISO text (the default; no zone: UTC) or numbers of seconds / milliseconds since time_origin
        time_unit: Literal["s", "ms", "iso"] | None = None
        #: when numeric times count from; default the Unix epoch
        time_origin: str | None = None
        #: file columns copied into attributes when the file has them, or attribute key -> SQL expression
        attributes: list[str] | dict[str, str] = Field(default_factory=list)
        #: value of the ``source`` column: requests of one source supersede each other by request_id
        source_name: str | None = None
        #: the model of rows whose mapping names none (a trace that does not say)
        model: str | None = None
        #: the provider (gen_ai.provider.name or a LiteLLM provider name) of rows whose mapping names none
        provider: str | None = None
        delimiter: str = ","

        @field_validator("columns", "numeric", "attributes", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option`` gives text: ``attributes=region,app`` or ``columns={request_id: id}`` (YAML)."""
            return option_from_text(value)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        base: dict[str, Any] = {}
        if o.preset is not None:
            if o.preset not in presets():
                raise _error(f"unknown preset {o.preset!r} (known: {', '.join(sorted(presets()))})")
            base = presets()[o.preset]
            needed = [n for n in base.get("requires", []) if getattr(o, n) is None]
            if needed:
                given = " ".join(f"--option {n}=..." for n in needed)
                raise _error(f"preset {o.preset} needs {' and '.join(needed)}: the file names none, so say which "
                             f"to price its requests as ({given}, e.g. model=gpt-4o provider=azure.ai.openai)")
        given = o.model_fields_set

        def pick(name: str) -> Any:
            return getattr(o, name) if name in given or name not in base else base[name]

        self.columns: dict[str, str] = {**base.get("columns", {}), **o.columns}
        unknown = sorted((set(self.columns) - set(_MAPPABLE)) | (set(self.columns) & set(_OWN)))
        if unknown:
            allowed = ", ".join(c for c in _MAPPABLE if c not in _OWN)
            raise _error(f"columns {', '.join(unknown)} cannot be mapped (mappable: {allowed}; attributes has its "
                         "own option)")
        missing = [c for c in _REQUIRED if c not in self.columns]
        if missing:
            raise _error(f"give a preset or map columns.{' and columns.'.join(missing)} (a request needs an identity "
                         "and a time)")
        if not ({"request_model", "response_model"} & set(self.columns)) and o.model is None:
            raise _error("map columns.request_model (or response_model), or give --option model=...: "
                         "requests without a model cannot be priced")
        self.numeric = {n.lower() for n in [*base.get("numeric", []), *o.numeric]}
        self.time_unit: str = pick("time_unit") or "iso"
        self.origin = parse_origin(pick("time_origin") or "1970-01-01T00:00:00Z")
        listed = pick("attributes")
        self.attributes = column_entries(listed)
        self.listed = set(listed) if isinstance(listed, list) else set()
        self.source_name: str = pick("source_name") or "csv"

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        return expand(paths, classify=table_format, what=".csv, .csv.gz, .parquet, .json or .jsonl")

    def read(self, file: SourceFile) -> FileRead:
        delimiter, checks, stream = self.options.delimiter, [], None
        if file.format == "json":
            rows = read_json_rows(file, "a JSON export of usage rows")
            names, relation = rows.keys, json_relation(rows, rows.keys, self.numeric)
            checks = [record_check(), *numeric_checks(names, self.numeric)]
        elif file.format == "parquet":
            names, relation = parquet_names(file), relation_sql(file, [], delimiter, set())
        else:
            names = csv_header(file, delimiter)
            relation = relation_sql(file, names, delimiter, self.numeric)
            stream = csv_stream(file, names, delimiter, {n: pa.float64() for n in names if n.lower() in self.numeric})
        # attributes listed by name are kept when the file has them (a preset lists what some exports add)
        present = {n.lower() for n in names}
        attributes = {k: v for k, v in self.attributes.items() if k not in self.listed or k.lower() in present}
        bind_check(file, relation, names, self.numeric,
                   {**self.columns, **{f"attributes.{k}": v for k, v in attributes.items()}})
        raw = {c: f"({e})" for c, e in self.columns.items()}
        typed = {col: self._typed(col, sql_type, raw.get(col), attributes) for col, sql_type in _MAPPABLE.items()}
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        if "prefix_tokens" in raw:
            n, given = refs["prefix_tokens"], raw["prefix_tokens"]
            checks += [Check("whole-number", "prefix_tokens", ERROR, f"{given} IS NOT NULL AND {n} IS NULL",
                             f"'prefix_tokens is not a whole number: ' || left(CAST({given} AS VARCHAR), 80)"),
                       Check("non-negative", "prefix_tokens", ERROR, f"{n} < 0",
                             f"'prefix_tokens is negative: ' || CAST({n} AS VARCHAR)")]
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={},
                        checks=[*checks, *request_checks(raw, refs)], is_csv=file.format in ("csv", "csv.gz"),
                        stream=stream)

    def _typed(self, col: str, sql_type: str, expr: str | None, attributes: dict[str, str]) -> str:
        """SQL of one canonical column's typed value from its mapped expression (None: not mapped)."""
        text = f"nullif(trim(CAST({expr} AS VARCHAR)), '')" if expr else "CAST(NULL AS VARCHAR)"
        o = self.options
        if col == "source":
            return sql_str(self.source_name)
        if col == "attributes":
            return map_sql(attributes)
        if col == "request_model" and o.model is not None:
            return f"coalesce({text}, {sql_str(o.model)})"
        if col == "provider":
            fallback = provider_sql(sql_str(o.provider)) if o.provider is not None else "NULL"
            return f"coalesce({provider_sql(text)}, {fallback})"
        if expr is None:
            return "CAST(1 AS BIGINT)" if col == "requests" else f"CAST(NULL AS {sql_type})"
        if col == "ts":
            return time_sql(expr, self.time_unit, self.origin)
        if col in COUNT_COLUMNS or col == "prefix_tokens":
            return count_sql(expr)
        if col in _NUMBERS:
            return f"TRY_CAST({expr} AS DOUBLE)"
        if col == "source_cost":
            return f"TRY_CAST({expr} AS DECIMAL(38, 12))"
        if col == "tier":
            return f"lower({text})"
        return text

