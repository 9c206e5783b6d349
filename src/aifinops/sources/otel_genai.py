"""LLM requests from OpenTelemetry GenAI spans: OTLP/JSON and OTLP protobuf files (``sources/otlp.py``), such as
the collector's ``file`` exporter writes and ``aifinops receive otlp`` spools.

One span with a ``gen_ai.`` attribute is one ``llm_requests`` row (``model/llm.py``). Attributes follow the
OpenTelemetry GenAI semantic conventions; the older names that instrumentations still emit are read too
(first found wins, and only the one used leaves ``attributes``):

=====================  ===========================================================================================
column                 from
=====================  ===========================================================================================
request_id, trace_id   span id, trace id (hex)
ts, duration_ms        start time; end - start
provider               ``gen_ai.provider.name``, ``gen_ai.system`` (normalised: ``model.llm.provider_sql``)
operation              ``gen_ai.operation.name``, ``llm.request.type`` (OpenLLMetry; completion, embedding mapped)
request_model          ``gen_ai.request.model``
response_model         ``gen_ai.response.model``
input_tokens           ``gen_ai.usage.input_tokens``, ``gen_ai.usage.prompt_tokens``
output_tokens          ``gen_ai.usage.output_tokens``, ``gen_ai.usage.completion_tokens``
cache_read_tokens      ``gen_ai.usage.cache_read.input_tokens``, ``gen_ai.usage.cache_read_input_tokens``
cache_write_tokens     ``gen_ai.usage.cache_creation.input_tokens``, ``gen_ai.usage.cache_creation_input_tokens``
reasoning_tokens       ``gen_ai.usage.reasoning.output_tokens``, ``gen_ai.usage.reasoning_tokens``
tier                   ``openai.response.service_tier``, ``gen_ai.openai.response.service_tier``, then the request's
                       (``openai.request.service_tier``, ...); ``default`` and ``auto`` are ``standard``
conversation_id        ``gen_ai.conversation.id``
service, environment   resource ``service.name``; ``deployment.environment.name``, ``deployment.environment``
team, feature,         the first of the keys an option names that the span or its resource has (a span attribute
user_id, tenant        wins over a resource attribute of the same key; defaults below)
status, error_type     ``error`` when the span status is ERROR or ``error.type`` is set, else ``ok``; ``error.type``
attributes             every other span and resource attribute, as text; plus ``otel.scope.name``/``version``
=====================  ===========================================================================================

Tokens follow OTel's semantics as they are: cache reads and writes are parts of ``input_tokens``, reasoning a
part of ``output_tokens``.

Not requests, and skipped with a note: spans without any ``gen_ai.`` attribute (HTTP, database, ...), and agent,
tool, workflow, retrieval and memory spans (``skip_operations``): the model calls inside an agent are spans of
their own, so counting the agent's span too would count its tokens twice. A remote agent whose
``invoke_agent`` span is the only one with usage is counted by taking ``invoke_agent`` out of the list.

Prompt and completion content (``gen_ai.input.messages``, ``gen_ai.output.messages``, OpenLLMetry's
``gen_ai.prompt.N.*``, ...) is personal data and not needed for cost: those attributes are dropped
(``drop_attributes``, glob patterns) and counted in a note; every other attribute, known or not, is kept.

What the prompt was is kept as a fingerprint (``prompt_hash``, ``prefix_hash``, ``prefix_tokens``: see
``sources/prompt_fingerprint.py``) when the span carries it — instrumentations record content only when asked to
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``): the parts are ``gen_ai.system_instructions``,
``gen_ai.tool.definitions`` and ``gen_ai.input.messages`` (current conventions), else the messages of an older
``gen_ai.prompt`` attribute or of OpenLLMetry's ``gen_ai.prompt.N.role`` / ``.content`` attributes (in the order of
N). The hashes are computed in SQL over the spans before anything reaches the store, and the content is then
discarded whatever ``drop_attributes`` says of the attributes; ``fingerprint_prompts: false`` leaves the three
columns NULL. Span events (the older ``gen_ai.*.message`` events) are not read.

Row rules (quarantined with the reason): a malformed span (span or trace id of the wrong length, no start time,
a bad status code, an attribute without a key or value); no model (neither request nor response model); a token
count that is not an integer, is negative, or is above ``max_tokens`` in one request; cache reads + writes above
the input tokens; reasoning above the output tokens. Loaded with a warning: a request with no token count at all
(``no-usage``: it cannot be priced) and a span that ends before it starts (``negative-duration``: a clock that
went back; what the request cost is still known). A file that is not OTLP is rejected, naming the line.

Options (``sources: {otel: {...}}`` in aifinops.yaml, or ``-o team_key=a,b``; a list or comma-separated keys):
``team_key`` (default ``team, team.name, team.id``), ``feature_key`` (``feature, feature.name``), ``user_key``
(``user.id, enduser.id``), ``tenant_key`` (``tenant.id, tenant``), ``skip_operations``, ``drop_attributes``,
``max_tokens`` (100,000,000), ``fingerprint_prompts`` (true).
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import Field, field_validator

from ..model.checks import ERROR, WARNING, Check, sql_str
from ..model.llm import PROMPT_COLUMNS, provider_sql
from . import otlp
from .base import ArrowStream, FileRead, RequestSource, Source, SourceError, SourceFile, expand, sources, typed_ref
from .prompt_fingerprint import fingerprint_relation

#: canonical column -> attribute keys, first found wins
TEXT_KEYS: dict[str, tuple[str, ...]] = {
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "operation": ("gen_ai.operation.name", "llm.request.type"),
    "request_model": ("gen_ai.request.model",),
    "response_model": ("gen_ai.response.model",),
    "tier": ("openai.response.service_tier", "gen_ai.openai.response.service_tier", "openai.request.service_tier",
             "gen_ai.openai.request.service_tier"),
    "conversation_id": ("gen_ai.conversation.id",),
    "service": ("service.name",),
    "environment": ("deployment.environment.name", "deployment.environment"),
    "error_type": ("error.type",),
}
TOKEN_KEYS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
}
LABELS = ("team", "feature", "user_id", "tenant")
NON_MODEL_OPERATIONS = ("execute_tool", "invoke_agent", "create_agent", "invoke_workflow", "plan", "retrieval",
                        "create_memory", "create_memory_store", "delete_memory", "delete_memory_store",
                        "search_memory", "update_memory", "upsert_memory")
CONTENT_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                      "gen_ai.tool.definitions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                      "gen_ai.prompt", "gen_ai.completion", "gen_ai.prompt.[0-9]*", "gen_ai.completion.[0-9]*",
                      "gen_ai.retrieval.documents", "gen_ai.memory.records")

#: the prompt's parts, first found wins (``gen_ai.prompt.N.*`` attributes are assembled into messages)
PROMPT_KEYS: dict[str, tuple[str, ...]] = {
    "prompt_system": ("gen_ai.system_instructions",),
    "prompt_tools": ("gen_ai.tool.definitions",),
    "prompt_messages": ("gen_ai.input.messages", "gen_ai.prompt"),
}
_PROMPT_PART = re.compile(r"gen_ai\.prompt\.([0-9]+)\.(.+)")
_FINGERPRINTS = ("_prompt_hash", "_prefix_hash", "_prefix_tokens")

_TEXT_COLS = ("line", "span_id", "trace_id", "start", "end", "problem", *TEXT_KEYS, *LABELS,
              *TOKEN_KEYS, *(f"{c}_key" for c in TOKEN_KEYS), *PROMPT_KEYS)
_SCHEMA = pa.schema([("_rn", pa.int64()), *((c, pa.string()) for c in _TEXT_COLS), ("status_code", pa.int64()),
                     ("attributes", pa.map_(pa.string(), pa.string()))])
_INTEGRAL = r"'-?[0-9]+(\.0*)?'"


def _legacy_messages(parts: list[tuple[str, str | None]]) -> str:
    """OpenLLMetry's flattened prompt (``gen_ai.prompt.0.role``, ``gen_ai.prompt.0.content``, ...) as the JSON
    array of its messages in the order of their index, each message's fields in name order."""
    messages: dict[int, dict[str, str | None]] = {}
    for key, value in parts:
        m = _PROMPT_PART.fullmatch(key)
        if m:
            messages.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return json.dumps([dict(sorted(messages[i].items())) for i in sorted(messages)], separators=(",", ":"),
                      ensure_ascii=False)


def _ref(col: str) -> str:
    return f's."{col}"'


def _keys(value: Any) -> Any:
    """``"a, b"`` (a ``-o`` option) -> ``["a", "b"]``; a list stays a list."""
    return [k.strip() for k in value.split(",") if k.strip()] if isinstance(value, str) else value


def file_format(path: Path) -> str | None:
    return otlp.file_format(path)


@sources.register("otel")
class OtelSource(RequestSource):
    """LLM requests from OpenTelemetry GenAI spans: OTLP/JSON lines or OTLP protobuf files.

    Example: ``aifinops ingest otel traces.jsonl -o team_key=team.name`` or ``aifinops receive otlp``
    """

    class Options(Source.Options):
        #: attribute keys tried in order, on the span's and its resource's attributes (the span's win)
        team_key: list[str] = Field(default_factory=lambda: ["team", "team.name", "team.id"])
        feature_key: list[str] = Field(default_factory=lambda: ["feature", "feature.name"])
        user_key: list[str] = Field(default_factory=lambda: ["user.id", "enduser.id"])
        tenant_key: list[str] = Field(default_factory=lambda: ["tenant.id", "tenant"])
        #: gen_ai.operation.name values that are not model requests (agents, tools, ...): skipped
        skip_operations: list[str] = Field(default_factory=lambda: list(NON_MODEL_OPERATIONS))
        #: attributes not kept (glob patterns): prompt and completion content by default
        drop_attributes: list[str] = Field(default_factory=lambda: list(CONTENT_ATTRIBUTES))
        #: a count above this in one request is not plausible: quarantined
        max_tokens: int = 100_000_000
        #: keep sha256 fingerprints of the prompt and its reusable prefix when spans carry the content
        fingerprint_prompts: bool = True

        @field_validator("team_key", "feature_key", "user_key", "tenant_key", "skip_operations", "drop_attributes",
                         mode="before")
        @classmethod
        def split_keys(cls, value: Any) -> Any:
            return _keys(value)

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """Paths -> OTLP files; a file named explicitly is read whatever its name (its content is sniffed)."""
        return expand(paths, classify=file_format, what=".json, .jsonl, .pb or .binpb (OTLP)", named_as="otlp")

    def read(self, file: SourceFile) -> FileRead:
        fmt = file.format if file.format in ("json", "proto") else otlp.sniff(file.path)
        counts = otlp.Counts()
        try:
            with otlp.no_gc():
                table, skipped, dropped = self._table(otlp.file_spans(file.path, fmt, counts))
        except otlp.OtlpError as exc:
            raise SourceError(f"{file.path}: {exc}") from None
        table = self._fingerprinted(table)
        notes = []
        if counts.other_spans:
            notes.append(f"{file.path.name}: {counts.other_spans:,} span(s) without gen_ai.* attributes skipped "
                         "(not LLM requests)")
        if skipped:
            listed = ", ".join(f"{op} {n:,}" for op, n in sorted(skipped.items()))
            notes.append(f"{file.path.name}: {sum(skipped.values()):,} agent/tool span(s) skipped ({listed}): "
                         "their model calls are spans of their own (option skip_operations)")
        if dropped:
            notes.append(f"{file.path.name}: prompt/completion content dropped from {dropped:,} span(s) "
                         "(option drop_attributes)")
        if not counts.spans:
            notes.append(f"{file.path.name}: no spans")
        raw = {c: _ref(c) for c in ("line", "span_id", "trace_id", "start", "end", *TEXT_KEYS, *LABELS,
                                     *TOKEN_KEYS, "status_code", "problem", "attributes")}
        return FileRead(file=file, relation_sql="", raw=raw, typed=self._typed(), extra_columns={},
                        checks=self._checks(), notes=notes, stream=ArrowStream(open=lambda: table.to_reader()))

    # -- spans -> an Arrow table of text columns ---------------------------------------------------

    def _fingerprinted(self, table: pa.Table) -> pa.Table:
        """The spans with the prompt fingerprints in place of the prompt's parts: hashed in SQL (vectorised, in a
        scratch connection), so the content never reaches the store. Spans without content need no query."""
        parts = list(PROMPT_KEYS)
        has_content = (self.options.fingerprint_prompts  # type: ignore[attr-defined]
                       and any(table.column(c).null_count < table.num_rows for c in parts))
        if not has_content:
            nulls = [pa.nulls(table.num_rows, pa.string()), pa.nulls(table.num_rows, pa.string()),
                     pa.nulls(table.num_rows, pa.int64())]
            out = table.drop_columns(parts)
            for name, arr in zip(_FINGERPRINTS, nulls, strict=True):
                out = out.append_column(name, arr)
            return out
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")
            con.register("_spans", table)
            inner = fingerprint_relation("_spans", *(f's."{c}"' for c in parts))
            return con.sql(f"SELECT * EXCLUDE ({', '.join(parts)}) FROM {inner}").to_arrow_table()
        finally:
            con.close()

    def _table(self, spans: Any) -> tuple[pa.Table, dict[str, int], int]:
        """One row per request span (raw text: every rule runs in SQL), the agent/tool spans skipped by
        operation, and how many spans had content attributes dropped. One tight loop per span: the attributes
        map is built as flat key and value lists with offsets, which Arrow takes without a Python object per
        entry."""
        o = self.options
        labels = {"team": tuple(o.team_key), "feature": tuple(o.feature_key),  # type: ignore[attr-defined]
                  "user_id": tuple(o.user_key), "tenant": tuple(o.tenant_key)}  # type: ignore[attr-defined]
        skip = {s.lower() for s in o.skip_operations}  # type: ignore[attr-defined]
        drop_re = re.compile("|".join(fnmatch.translate(p) for p in o.drop_attributes)  # type: ignore[attr-defined]
                             or "(?!)")
        drop_cache: dict[str, bool] = {}
        cols: dict[str, list[Any]] = {n: [] for n in _SCHEMA.names if n not in ("_rn", "attributes")}
        picks = [(cols[c], keys) for c, keys in (*TEXT_KEYS.items(), *labels.items(), *TOKEN_KEYS.items())]
        token_cols = [(cols[f"{c}_key"], keys) for c, keys in TOKEN_KEYS.items()]
        fixed = [cols[c] for c in ("line", "span_id", "trace_id", "start", "end", "problem", "status_code")]
        prompt = [(cols[c], keys) for c, keys in PROMPT_KEYS.items()]
        legacy = cols["prompt_messages"]
        map_keys: list[str] = []
        map_values: list[str] = []
        offsets = [0]
        skipped: dict[str, int] = {}
        dropped = 0
        for sp in spans:
            a = sp.attributes
            op = a.get("gen_ai.operation.name") or a.get("llm.request.type")
            if op and op.lower() in skip:
                skipped[op] = skipped.get(op, 0) + 1
                continue
            for col, value in zip(fixed, (str(sp.where), sp.span_id, sp.trace_id, sp.start, sp.end, sp.problem,
                                          sp.status_code), strict=True):
                col.append(value)
            for key_col, keys in token_cols:  # which key gave a token count, for the reasons of the rules
                for k in keys:
                    if k in a:
                        key_col.append(k)
                        break
                else:
                    key_col.append(None)
            for col, keys in picks:
                for k in keys:
                    if k in a:
                        col.append(a.pop(k))
                        break
                else:
                    col.append(None)
            for col, keys in prompt:  # read, never popped: drop_attributes decides what attributes keep
                for k in keys:
                    v = a.get(k)
                    if v is not None:
                        col.append(v)
                        break
                else:
                    col.append(None)
            hit = False
            parts: list[tuple[str, str | None]] | None = None
            for k, v in a.items():
                d = drop_cache.get(k)
                if d is None:  # 1: dropped, 2: a part of an OpenLLMetry prompt (gen_ai.prompt.N.*)
                    d = drop_cache[k] = int(bool(drop_re.match(k))) | (2 if _PROMPT_PART.fullmatch(k) else 0)
                if d & 2:
                    if parts is None:
                        parts = []
                    parts.append((k, v))
                if d & 1:
                    hit = True
                elif v is not None:
                    map_keys.append(k)
                    map_values.append(v)
            dropped += hit
            if parts and legacy[-1] is None:
                legacy[-1] = _legacy_messages(parts)
            for k, v in (("otel.scope.name", sp.scope[0]), ("otel.scope.version", sp.scope[1] if sp.scope[0] else None),
                         ("otel.status_description", sp.status_message)):
                if v:
                    map_keys.append(k)
                    map_values.append(v)
            offsets.append(len(map_keys))
        n = len(offsets) - 1
        arrays = [pa.array(range(1, n + 1), pa.int64()),
                  *(pa.array(cols[c], pa.int64() if c == "status_code" else pa.string()) for c in _SCHEMA.names[1:-1]),
                  pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(map_keys, pa.string()),
                                          pa.array(map_values, pa.string()))]
        return pa.Table.from_arrays(arrays, schema=_SCHEMA), skipped, dropped

    # -- SQL: typed values and row rules -----------------------------------------------------------

    @staticmethod
    def _tokens(col: str) -> str:
        v = _ref(col)
        return (f"CASE WHEN regexp_full_match({v}, {_INTEGRAL}) "
                f"THEN TRY_CAST(regexp_replace({v}, '\\.0*$', '') AS BIGINT) END")

    def _typed(self) -> dict[str, str]:
        start, end = f"TRY_CAST({_ref('start')} AS HUGEINT)", f"TRY_CAST({_ref('end')} AS HUGEINT)"
        text = {c: f"nullif(trim({_ref(c)}), '')" for c in ("request_model", "response_model", "conversation_id",
                                                            "service", "environment", *LABELS, "error_type")}
        op, tier = f"lower(trim({_ref('operation')}))", f"lower(trim({_ref('tier')}))"
        return {
            "request_id": _ref("span_id"),
            "source": "'otel'",
            "ts": f"CASE WHEN {start} > 0 AND {start} < 9223372036854775807 "
                  f"THEN make_timestamp(CAST({start} // 1000 AS BIGINT)) END",
            "duration_ms": f"CASE WHEN {start} > 0 AND {end} > 0 THEN CAST({end} - {start} AS DOUBLE) / 1e6 END",
            "requests": "CAST(1 AS BIGINT)",
            "provider": provider_sql(_ref("provider")),
            "operation": f"CASE {op} WHEN 'completion' THEN 'text_completion' WHEN 'embedding' THEN 'embeddings' "
                         f"ELSE nullif(trim({_ref('operation')}), '') END",
            "request_model": text["request_model"],
            "response_model": text["response_model"],
            **{c: self._tokens(c) for c in TOKEN_KEYS},
            "tier": f"CASE {tier} WHEN 'default' THEN 'standard' WHEN 'auto' THEN 'standard' "
                    f"ELSE nullif({tier}, '') END",
            "conversation_id": text["conversation_id"],
            "service": text["service"],
            "environment": text["environment"],
            **{c: text[c] for c in LABELS},
            "status": f"CASE WHEN {_ref('status_code')} = 2 OR {text['error_type']} IS NOT NULL THEN 'error' "
                      "ELSE 'ok' END",
            "error_type": text["error_type"],
            "trace_id": _ref("trace_id"),
            "attributes": _ref("attributes"),
            **{c: _ref(f"_{c}") for c in PROMPT_COLUMNS},
        }

    def _checks(self) -> list[Check]:
        """Row rules over the raw text (and the typed tokens, by position in ``_typed``)."""
        sid, tid, start, end = _ref("span_id"), _ref("trace_id"), _ref("start"), _ref("end")
        s_int, e_int = f"TRY_CAST({start} AS HUGEINT)", f"TRY_CAST({end} AS HUGEINT)"
        max_tokens = int(self.options.max_tokens)  # type: ignore[attr-defined]
        checks = [
            Check("malformed-span", "span", ERROR, f"{_ref('problem')} IS NOT NULL", _ref("problem")),
            Check("span-id", "request_id", ERROR,
                  f"{sid} IS NULL OR NOT regexp_full_match({sid}, '[0-9a-f]{{16}}') OR {sid} = '0000000000000000'",
                  f"'malformed span: span id ' || coalesce('''' || left({sid}, 40) || '''', 'missing') "
                  "|| ' is not 8 bytes (16 hex digits, not all zero)'"),
            Check("trace-id", "trace_id", ERROR,
                  f"{tid} IS NULL OR NOT regexp_full_match({tid}, '[0-9a-f]{{32}}') "
                  f"OR {tid} = '00000000000000000000000000000000'",
                  f"'malformed span: trace id ' || coalesce('''' || left({tid}, 40) || '''', 'missing') "
                  "|| ' is not 16 bytes (32 hex digits, not all zero)'"),
            Check("start-time", "ts", ERROR,
                  f"coalesce(NOT ({s_int} > 0 AND {s_int} < 9223372036854775807), true)",
                  f"'malformed span: startTimeUnixNano ' || coalesce('''' || left({start}, 40) || '''', 'missing') "
                  "|| ' is not a time in nanoseconds since 1970'"),
            # a clock that went back: the request happened and cost what it cost, so it loads
            Check("negative-duration", "duration_ms", WARNING, f"{e_int} > 0 AND {e_int} < {s_int}",
                  f"'the span ends before it starts (startTimeUnixNano ' || {start} || ', endTimeUnixNano ' "
                  f"|| {end} || '): loaded; the duration is not used for cost'"),
            Check("no-model", "request_model", ERROR,
                  f"nullif(trim({_ref('request_model')}), '') IS NULL "
                  f"AND nullif(trim({_ref('response_model')}), '') IS NULL",
                  sql_str("no model: neither gen_ai.request.model nor gen_ai.response.model is set, so the request "
                          "cannot be priced")),
        ]
        for col in TOKEN_KEYS:
            v, key = _ref(col), f"' (' || {_ref(col + '_key')} || ')'"
            label = f"'{col}' || {key}"
            checks += [
                Check("integer", col, ERROR, f"{v} IS NOT NULL AND NOT regexp_full_match({v}, {_INTEGRAL})",
                      f"{label} || ' is not an integer: ''' || left({v}, 80) || ''''"),
                Check("negative", col, ERROR, f"regexp_full_match({v}, {_INTEGRAL}) AND TRY_CAST({v} AS DOUBLE) < 0",
                      f"{label} || ' is negative: ' || {v}"),
                Check("absurd", col, ERROR,
                      f"regexp_full_match({v}, {_INTEGRAL}) AND TRY_CAST({v} AS DOUBLE) > {max_tokens}",
                      f"{label} || ' is ' || {v} || ', more than {max_tokens:,} tokens in one request: not a "
                      "plausible count (option max_tokens)'"),
            ]
        at = {c: typed_ref(n) for n, c in enumerate(self._typed())}
        i, o, cr, cw, r = (at[c] for c in TOKEN_KEYS)
        checks += [
            Check("parts", "cache_read_tokens", ERROR, f"coalesce({cr}, 0) + coalesce({cw}, 0) > {i} AND {i} >= 0",
                  f"'cache tokens exceed the input tokens: cache reads ' || coalesce({cr}, 0) || ' + cache writes ' "
                  f"|| coalesce({cw}, 0) || ' > input_tokens ' || {i} || ' (OTel counts cache tokens as part of the "
                  "input; an instrumentation that reports input without them is wrong)'"),
            Check("parts", "reasoning_tokens", ERROR, f"{r} > {o} AND {o} >= 0",
                  f"'reasoning tokens exceed the output tokens: reasoning_tokens ' || {r} || ' > output_tokens ' "
                  f"|| {o} || ' (OTel counts reasoning as part of the output)'"),
            Check("no-usage", "input_tokens", WARNING,
                  f"{_ref('input_tokens')} IS NULL AND {_ref('output_tokens')} IS NULL",
                  sql_str("no token usage (gen_ai.usage.input_tokens / output_tokens): the request cannot be priced")),
        ]
        return checks
