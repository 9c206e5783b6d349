"""LiteLLM proxy spend logs: its ``LiteLLM_SpendLogs`` table exported as CSV(.gz), Parquet or JSON.

JSON may be the rows as an array (``GET /spend/logs``), a page of them (``{"data": [...]}``, the UI's
``/spend/logs/ui``) or JSON lines. Columns are the table's (``schema.prisma``), matched ignoring case
(``start_time`` for ``startTime`` too); ``metadata`` and ``request_tags`` are JSON, as objects or as JSON
text. One row is one request (``request_id``); the same request in a later export supersedes the earlier
row, never counts twice.

=========================  =====================================================================
llm_requests               LiteLLM_SpendLogs
=========================  =====================================================================
request_id                 request_id (a LiteLLM cache hit has its own: ``<id>_cache_hit<time>``)
ts, duration_ms            startTime; request_duration_ms, else endTime - startTime
provider                   custom_llm_provider via ``PROVIDER_ALIASES`` (``bedrock`` -> ``aws.bedrock``),
                           else a known provider prefix of ``model`` (``openai/gpt-4o``)
operation                  call_type: (a)completion/responses/anthropic_messages -> chat, (a)embedding ->
                           embeddings, (a)text_completion -> text_completion, else as given
request_model              model_group (the name the client asked for: a router alias)
response_model             model (the deployment model LiteLLM called and priced)
input_tokens               prompt_tokens, + cache writes where LiteLLM left them out (below)
output_tokens              completion_tokens
cache_read_tokens          metadata.usage_object.prompt_tokens_details.cached_tokens (or
                           cache_read_input_tokens; additional_usage_values in older versions)
cache_write_tokens         metadata.usage_object.cache_creation_input_tokens (Anthropic, Bedrock)
reasoning_tokens           metadata.usage_object.completion_tokens_details.reasoning_tokens
tier                       batch for batch call types, else NULL (standard)
conversation_id            session_id
team                       metadata.user_api_key_team_alias, else team_id
user_id                    end_user (the ``user`` of the request), else user (the key's owner)
api_key                    metadata.user_api_key_alias, else api_key (LiteLLM's sha256 of the key); a
                           value that is not a hash is stored as ``sha256:<its hash>``, never as is
feature, tenant,           ``tag_columns``: a ``key:value`` request tag or a key of
environment, service       metadata.spend_logs_metadata (default: feature, tenant, environment, service)
status, error_type         status (success -> ok, failure -> error; a row without one is ok: LiteLLM
                           logged only successes there before it had the column); a cache hit is
                           ``cached`` (served by LiteLLM's cache: no provider charge);
                           metadata.error_information.error_class
source_cost                spend (USD, LiteLLM's own price: kept beside aifinops', never instead)
attributes                 call_type, model_id, model_group, api_base, cache_hit, api_key_hash, user,
                           end_user, team_id, organization_id, request_tags, total_tokens, ...; every
                           scalar of metadata (user_api_key_team_alias, cost_breakdown, ...);
                           spend_logs_metadata.<k>; tag.<k> for each ``k:v`` tag
=========================  =====================================================================

Not kept: messages, response and proxy_server_request (prompts), requester_ip_address, and the usage
and model-map objects of metadata (read into the token columns above).

**Prompt fingerprints.** With ``store_prompts_in_spend_logs`` on, LiteLLM logs the prompt: older versions in
``messages`` (the request's messages as JSON), newer ones as the request body in ``proxy_server_request`` (a
column, or ``metadata.proxy_server_request`` in some versions). From it ``prompt_hash``, ``prefix_hash`` and
``prefix_tokens`` are computed in SQL (``sources/prompt_fingerprint.py``): the messages (``messages``, else the
body's ``messages``, ``input`` or ``prompt``), the system prompt of the body (``system``: Anthropic's messages API;
``instructions``: the Responses API) and its tools (``tools``, else ``functions``); leading ``system`` and
``developer`` messages are part of the prefix. The content itself is never stored. Content logging off (``{}``)
or redacted (``redacted-by-litellm``, LiteLLM's ``turn_off_message_logging``) leaves the three columns NULL, as
does the option ``fingerprint_prompts: false``. LiteLLM cuts strings longer than its limit in the middle; the
hash is then of what it kept, and ``prefix_tokens`` counts the kept characters only.

**Tokens.** LiteLLM reports OpenAI-style usage whatever the provider: ``prompt_tokens`` includes cache
reads (``cached_tokens``) and ``completion_tokens`` includes reasoning, as OTel counts. Anthropic's cache
*writes* are the exception: LiteLLM counted them into ``prompt_tokens`` before v1.66 and again in recent
versions (v1.80 logs ``prompt_tokens_details.cache_creation_tokens`` beside them), but not from v1.66
(PR #9838, April 2025) through at least v1.74, which log ``cache_creation_input_tokens`` apart. So, with
``cache_writes_in_prompt_tokens: auto`` (default), writes are added to ``input_tokens`` when the row's
usage object has no ``cache_creation_tokens`` detail, or when ``prompt_tokens`` is smaller than reads +
writes (then it cannot hold them); ``yes`` / ``no`` say it for every row. LiteLLM *estimates* Anthropic's
reasoning tokens from the thinking text; an estimate above ``completion_tokens`` is loaded as
``completion_tokens`` (what LiteLLM itself does since), with a warning.

Bad rows are quarantined by ``requests_common.request_checks`` (no model, negative, fractional or absurd
token counts, cache parts above the input) and a record that is not a JSON object by its own rule; metadata
that is not JSON loads the row without it, with a warning. The metadata fields are parsed once per row in
the relation the engine reads (``_extracted``); a CSV is therefore read by DuckDB's reader in file order,
and a malformed line (rare in a machine-written export) refuses the file, naming the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from ..model.checks import WARNING, Check, sql_ident, sql_str
from ..model.llm import LLM_REQUEST_COLUMNS, PROMPT_COLUMNS, PROVIDER_ALIASES, provider_sql
from .base import FileRead, RequestSource, Source, SourceError, SourceFile, expand, sources, typed_ref
from .json_rows import json_relation, read_json_rows, record_check, table_format
from .prompt_fingerprint import fingerprint_relation
from .requests_common import count_sql, request_checks
from .workloads_csv import csv_header, map_sql

#: LiteLLM_SpendLogs columns read, with the other spellings exports use
COLUMNS: dict[str, tuple[str, ...]] = {
    "request_id": (), "call_type": (), "api_key": (), "spend": (), "total_tokens": (), "prompt_tokens": (),
    "completion_tokens": (), "startTime": ("start_time",), "endTime": ("end_time",),
    "request_duration_ms": (), "completionStartTime": ("completion_start_time",), "model": (), "model_id": (),
    "model_group": (), "custom_llm_provider": (), "api_base": (), "user": (), "metadata": (), "cache_hit": (),
    "request_tags": (), "team_id": (), "organization_id": (), "end_user": (), "session_id": (), "status": (),
    "mcp_namespaced_tool_name": (), "agent_id": (), "messages": (), "proxy_server_request": (),
}
REQUIRED = ("request_id", "startTime")
#: metadata keys not copied into attributes: read into columns, prompts, addresses, large objects
_NOT_ATTRIBUTES = ("usage_object", "additional_usage_values", "model_map_information", "proxy_server_request",
                   "spend_logs_metadata", "user_api_key", "requester_ip_address", "mcp_tool_call_metadata",
                   "vector_store_request_metadata", "guardrail_information", "cold_storage_object_key")
_BATCH_CALLS = ("create_batch", "acreate_batch", "retrieve_batch", "aretrieve_batch")
#: metadata fields read into columns, extracted together (one parse of the object per row)
_PATHS = ("user_api_key_alias", "user_api_key_team_alias", "user_api_key_team_id", "user_api_key_user_id", "status",
          "error_information.error_class", "error_information.error_code", "spend_logs_metadata",
          "usage_object", "usage_object.prompt_tokens_details", "proxy_server_request",
          *(f"{u}.{p}" for u in ("usage_object", "additional_usage_values") for p in (
              "prompt_tokens_details.cached_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
              "prompt_tokens_details.cache_creation_tokens", "completion_tokens_details.reasoning_tokens")))
#: route prefixes of ``model`` that name a provider, when custom_llm_provider is empty
_PREFIXES = sorted({*PROVIDER_ALIASES, *PROVIDER_ALIASES.values(), "openai", "anthropic", "groq", "deepseek",
                    "mistral", "cohere", "ollama", "openrouter", "perplexity", "databricks", "cerebras",
                    "hosted_vllm", "vllm", "huggingface", "replicate", "deepinfra", "nvidia_nim", "sambanova"})


def _json_map(entries: str, prefix: str = "", exclude: tuple[str, ...] = ()) -> str:
    """SQL: a MAP(VARCHAR, JSON) (a JSON object cast) as MAP(VARCHAR, VARCHAR): nested values as JSON text,
    NULL and empty values left out, keys prefixed; an empty map for NULL."""
    skip = f" AND e.key NOT IN ({', '.join(sql_str(prefix + k) for k in exclude)})" if exclude else ""
    pairs = (f"list_transform(map_entries({entries}), lambda e: "
             f"{{'key': {sql_str(prefix)} || e.key, 'value': json_extract_string(e.value, '$')}})")
    return (f"coalesce(map_from_entries(list_filter({pairs}, lambda e: nullif(e.value, '') IS NOT NULL{skip})), "
            "CAST(MAP {} AS MAP(VARCHAR, VARCHAR)))")


def _extracted(base: str, ref: dict[str, str]) -> str:
    """The file's rows plus what the mapping reads from the metadata and tags JSON, parsed once per row in
    a plain projection: ``_m`` (the fields of ``_PATHS``, as text), ``_mm`` (the object, for attributes),
    ``_tags`` and ``_metadata_invalid``. Written into each column expression instead, the same parse would
    be repeated for every use (DuckDB does not share an expression under CASE or COALESCE)."""
    meta = f"TRY_CAST({ref['metadata']} AS JSON)"
    paths = "[" + ", ".join(sql_str("$." + p) for p in _PATHS) + "]"
    return (f"(SELECT s.*, json_extract_string({meta}, {paths}) AS _m, "
            f"TRY_CAST({meta} AS MAP(VARCHAR, JSON)) AS _mm, "
            f"TRY_CAST(TRY_CAST({ref['request_tags']} AS JSON) AS VARCHAR[]) AS _tags, "
            f"{ref['metadata']} IS NOT NULL AND {meta} IS NULL AS _metadata_invalid FROM {base} s)")


#: what LiteLLM writes in place of content it was told not to log
REDACTED = "redacted-by-litellm"


def _present(text: str) -> str:
    """SQL: a logged value, NULL for what says nothing was logged (empty, ``{}``, ``[]``, ``null``)."""
    return f"nullif(nullif(nullif(nullif(trim({text}), ''), '{{}}'), '[]'), 'null')"


#: where a logged request body keeps the prompt's parts, first found wins
_BODY_FIELDS = {"_p_system": ("system", "instructions"), "_p_tools": ("tools", "functions"),
                "_p_messages": ("messages", "input", "prompt")}


def _prompt_relation(base: str, ref: dict[str, str], metadata_body: str) -> str:
    """``base`` (``_extracted``) with the system prompt, tools and messages a row logged, as text (``_p_system``,
    ``_p_tools``, ``_p_messages``; all NULL when the content was redacted). The request body is parsed once, its
    fields extracted together in an inner projection (written into each part's expression, the parse would be
    repeated and DuckDB's optimizer spends minutes on the tree)."""
    body = f"TRY_CAST(coalesce({_present(ref['proxy_server_request'])}, {_present(metadata_body)}) AS JSON)"
    paths = [f"$.{p}" for fields in _BODY_FIELDS.values() for p in fields]
    redacted = (f"contains(coalesce({ref['messages']}, '') || coalesce({ref['proxy_server_request']}, '') || "
                f"coalesce({metadata_body}, ''), {sql_str(REDACTED)})")
    inner = (f"SELECT s.*, json_extract({body}, [{', '.join(map(sql_str, paths))}]) AS _p_fields, "
             f"{_present(ref['messages'])} AS _p_logged, {redacted} AS _p_redacted FROM {base} s")
    cols, i = [], 0
    for name, fields in _BODY_FIELDS.items():
        found = [_present(f"CAST(s._p_fields[{i + k + 1}] AS VARCHAR)") for k in range(len(fields))]
        i += len(fields)
        if name == "_p_messages":
            found.insert(0, "s._p_logged")
        cols.append(f"CASE WHEN NOT s._p_redacted THEN coalesce({', '.join(found)}) END AS {name}")
    return f"(SELECT s.* EXCLUDE (_p_fields, _p_logged, _p_redacted), {', '.join(cols)} FROM ({inner}) s)"


@sources.register("litellm")
class LiteLLMSpendSource(RequestSource):
    """LLM requests from LiteLLM proxy spend logs (LiteLLM_SpendLogs as CSV, Parquet or JSON).

    Example: ``aifinops ingest litellm spend_logs.json`` (``curl $PROXY/spend/logs -H "Authorization: ..."``)
    """

    class Options(Source.Options):
        #: value of the ``source`` column: two proxies with their own request ids can be told apart
        source_name: str = "litellm"
        #: are Anthropic cache writes inside prompt_tokens? auto: decided per row (see the module docstring)
        cache_writes_in_prompt_tokens: Literal["auto", "yes", "no"] = "auto"
        #: keep sha256 fingerprints of the prompt and its reusable prefix when the log holds the content
        fingerprint_prompts: bool = True
        #: canonical column -> key of a ``key:value`` request tag or of metadata.spend_logs_metadata
        tag_columns: dict[str, str] = Field(default_factory=lambda: {
            "feature": "feature", "tenant": "tenant", "environment": "environment", "service": "service"})
        delimiter: str = ","

        @field_validator("tag_columns", mode="before")
        @classmethod
        def _from_text(cls, value: Any) -> Any:
            """``--option tag_columns=feature=app,tenant=customer`` arrives as text."""
            if not isinstance(value, str):
                return value
            pairs = [p.partition("=") for p in value.split(",") if p.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ValueError("expected COLUMN=KEY,COLUMN=KEY")
            return {k.strip(): v.strip() for k, _, v in pairs}

        @field_validator("tag_columns")
        @classmethod
        def _known(cls, value: dict[str, str]) -> dict[str, str]:
            allowed = ("feature", "tenant", "environment", "service", "team", "user_id")
            bad = sorted(set(value) - set(allowed))
            if bad:
                raise ValueError(f"{', '.join(bad)} cannot come from tags (allowed: {', '.join(allowed)})")
            return value

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        return expand(paths, classify=table_format, what=".csv, .csv.gz, .parquet, .json or .jsonl")

    def read(self, file: SourceFile) -> FileRead:
        names, base, extra_checks, empty = self._relation(file)
        by_lower = {n.lower(): n for n in names}
        found = {c: next((by_lower[a.lower()] for a in (c, *alts) if a.lower() in by_lower), None)
                 for c, alts in COLUMNS.items()}
        missing = [c for c in REQUIRED if found[c] is None]
        if found["model"] is None and found["model_group"] is None:
            missing.append("model")
        if missing and not empty:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise SourceError(f"{file.path}: not a LiteLLM spend-log export: no column(s) {', '.join(missing)} "
                              f"(columns: {shown or 'none'})")
        ref = {c: f"nullif(trim(CAST(s.{sql_ident(n)} AS VARCHAR)), '')" if n else "CAST(NULL AS VARCHAR)"
               for c, n in found.items()}
        raw, typed = self._mapping(ref)
        refs = {c: typed_ref(i) for i, c in enumerate(typed)}
        reasoning = raw["reasoning_tokens"]
        checks = [*extra_checks, *request_checks(raw, refs), Check(
            "reasoning-estimate", "reasoning_tokens", WARNING,
            f"{count_sql(reasoning)} > {count_sql(raw['output_tokens'])}",
            f"'reasoning_tokens ' || {reasoning} || ' above completion_tokens ' || {raw['output_tokens']} || "
            "' (LiteLLM estimates them from the thinking text): loaded as completion_tokens'"), Check(
            "json", "metadata", WARNING, "s._metadata_invalid",
            f"'metadata is not JSON: loaded without it (' || left({ref['metadata']}, 60) || ')'")]
        relation = _extracted(base, ref)
        if self.options.fingerprint_prompts:
            metadata_body = f"nullif(s._m[{_PATHS.index('proxy_server_request') + 1}], '')"
            parts = _prompt_relation(relation, ref, metadata_body)
            relation = fingerprint_relation(parts, "s._p_system", "s._p_tools", "s._p_messages")
        return FileRead(file=file, relation_sql=relation, raw=raw, typed=typed, extra_columns={}, checks=checks)

    def _relation(self, file: SourceFile) -> tuple[list[str], str, list[Check], bool]:
        """(column names, table expression with ``file_row_number``, checks of the format, whether it is known
        to hold no records) of one file."""
        path = sql_str(str(file.path))
        if file.format == "json":
            rows = read_json_rows(file, "a LiteLLM spend-log export")
            return rows.keys, json_relation(rows, rows.keys), [record_check()], rows.empty
        if file.format == "parquet":
            try:
                schema = pq.read_schema(file.path)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                raise SourceError(f"{file.path}: not a readable Parquet file ({exc})") from None
            # a column that is not text (JSON as a struct, times as timestamps) is read as its JSON text
            cols = ", ".join(sql_ident(f.name) if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                             else f"CAST(to_json({sql_ident(f.name)}) ->> '$' AS VARCHAR) AS {sql_ident(f.name)}"
                             for f in schema)
            return schema.names, f"(SELECT {cols}, file_row_number FROM read_parquet({path}, " \
                                 "file_row_number = true))", [], False
        delimiter = self.options.delimiter
        names = csv_header(file, delimiter)
        # Read by DuckDB in file order (single-threaded, numbered as read): the metadata fields are extracted
        # in a projection over the rows (``_extracted``), which an Arrow stream gives the engine no place for.
        # A malformed line refuses the file, naming the line (LiteLLM's exports are machine-written).
        types = ", ".join(f"{sql_str(n)}: 'VARCHAR'" for n in names)
        return names, (f"(SELECT *, row_number() OVER () - 1 AS file_row_number FROM read_csv({path}, header = true, "
                       f"columns = {{{types}}}, delim = {sql_str(delimiter)}, quote = '\"', escape = '\"', "
                       "nullstr = ['NULL', ''], strict_mode = true, null_padding = false, parallel = false, "
                       f"compression = '{'gzip' if file.format == 'csv.gz' else 'none'}'))"), [], False

    def _mapping(self, ref: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """(raw, typed) SQL per canonical column over the LiteLLM columns ``ref`` and the metadata fields
        ``_extracted`` adds to the relation."""
        o = self.options

        def meta(path: str) -> str:
            return f"nullif(s._m[{_PATHS.index(path) + 1}], '')"

        def usage(path: str) -> str:
            return f"coalesce({meta('usage_object.' + path)}, {meta('additional_usage_values.' + path)})"

        cache_read = f"coalesce({usage('prompt_tokens_details.cached_tokens')}, {usage('cache_read_input_tokens')})"
        cache_write = (f"coalesce({usage('cache_creation_input_tokens')}, "
                       f"{usage('prompt_tokens_details.cache_creation_tokens')})")
        reasoning = usage("completion_tokens_details.reasoning_tokens")
        prompt, read, write = count_sql(ref["prompt_tokens"]), count_sql(cache_read), count_sql(cache_write)
        if o.cache_writes_in_prompt_tokens == "auto":
            usage_logged = f"coalesce(starts_with({meta('usage_object')}, '{{'), false)"
            detailed = (f"coalesce(json_exists(TRY_CAST({meta('usage_object.prompt_tokens_details')} AS JSON), "
                        "'$.cache_creation_tokens'), false)")
            left_out = (f"({usage_logged} AND NOT {detailed}) OR "
                        f"{prompt} < coalesce({read}, 0) + coalesce({write}, 0)")
        else:
            left_out = "true" if o.cache_writes_in_prompt_tokens == "no" else "false"
        input_tokens = f"{prompt} + CASE WHEN coalesce({write}, 0) > 0 AND ({left_out}) THEN {write} ELSE 0 END"
        completion = count_sql(ref["completion_tokens"])

        tags = "s._tags"
        slm = f"TRY_CAST({meta('spend_logs_metadata')} AS JSON)"

        def tagged(key: str) -> str:
            tag = f"list_filter({tags}, lambda t: starts_with(t, {sql_str(key + ':')}))[1]"
            return (f"coalesce(nullif(json_extract_string({slm}, {sql_str('$.' + key)}), ''), "
                    f"nullif(substr({tag}, {len(key) + 2}), ''))")

        key = ref["api_key"]
        key_hash = (f"CASE WHEN regexp_full_match({key}, '[0-9a-f]{{64}}') OR {key} = 'litellm_proxy_master_key' "
                    f"THEN {key} WHEN {key} IS NOT NULL THEN 'sha256:' || sha256({key}) END")
        call = f"lower({ref['call_type']})"
        model = ref["model"]
        prefix = f"CASE WHEN contains({model}, '/') THEN split_part({model}, '/', 1) END"
        known = ", ".join(sql_str(p) for p in _PREFIXES)
        status = f"lower(coalesce({ref['status']}, {meta('status')}))"
        start, end = (f"CAST(TRY_CAST({ref[c]} AS TIMESTAMPTZ) AS TIMESTAMP)" for c in ("startTime", "endTime"))
        from_tags = {c: tagged(k) for c, k in o.tag_columns.items()}
        kv = (f"list_transform(list_filter({tags}, lambda t: contains(t, ':')), lambda t: "
              "{'key': 'tag.' || split_part(t, ':', 1), 'value': substr(t, strpos(t, ':') + 1)})")
        tag_map = (f"coalesce(map_from_entries(list_filter({kv}, lambda e, i: "
                   f"list_position(list_transform({kv}, lambda x: x.key), e.key) = i)), "
                   "CAST(MAP {} AS MAP(VARCHAR, VARCHAR)))")
        fixed = map_sql({
            "call_type": ref["call_type"], "model_id": ref["model_id"], "model_group": ref["model_group"],
            "api_base": ref["api_base"], "cache_hit": ref["cache_hit"], "api_key_hash": key_hash,
            "user": ref["user"], "end_user": ref["end_user"], "team_id": ref["team_id"],
            "organization_id": ref["organization_id"], "request_tags": f"TRY(json({ref['request_tags']}))",
            "total_tokens": ref["total_tokens"],
            "completion_start_time": f"CAST(TRY_CAST({ref['completionStartTime']} AS TIMESTAMPTZ) AS TIMESTAMP)",
            "mcp_namespaced_tool_name": ref["mcp_namespaced_tool_name"], "agent_id": ref["agent_id"],
        })
        typed: dict[str, str] = {
            "request_id": ref["request_id"],
            "source": sql_str(o.source_name),
            "ts": start,
            "duration_ms": f"coalesce(TRY_CAST({ref['request_duration_ms']} AS DOUBLE), "
                           f"(epoch_us({end}) - epoch_us({start})) / 1000.0)",
            "requests": "CAST(1 AS BIGINT)",
            "provider": f"coalesce({provider_sql(ref['custom_llm_provider'])}, "
                        f"CASE WHEN lower({prefix}) IN ({known}) THEN {provider_sql(prefix)} END)",
            "operation": f"CASE WHEN {call} IN ('completion', 'acompletion', 'responses', 'aresponses', "
                         f"'anthropic_messages') THEN 'chat' WHEN {call} IN ('embedding', 'aembedding') THEN "
                         f"'embeddings' WHEN {call} IN ('text_completion', 'atext_completion') THEN "
                         f"'text_completion' ELSE {call} END",
            "request_model": f"coalesce({ref['model_group']}, {model})",
            "response_model": model,
            "input_tokens": input_tokens,
            "output_tokens": completion,
            "cache_read_tokens": read,
            "cache_write_tokens": write,
            "reasoning_tokens": f"CASE WHEN {count_sql(reasoning)} > {completion} THEN {completion} "
                                f"ELSE {count_sql(reasoning)} END",
            "tier": f"CASE WHEN {call} IN ({', '.join(map(sql_str, _BATCH_CALLS))}) THEN 'batch' END",
            "conversation_id": ref["session_id"],
            "service": from_tags.get("service", "CAST(NULL AS VARCHAR)"),
            "environment": from_tags.get("environment", "CAST(NULL AS VARCHAR)"),
            "team": f"coalesce({from_tags.get('team', 'NULL')}, {meta('user_api_key_team_alias')}, "
                    f"{ref['team_id']}, {meta('user_api_key_team_id')})",
            "feature": from_tags.get("feature", "CAST(NULL AS VARCHAR)"),
            "user_id": f"coalesce({from_tags.get('user_id', 'NULL')}, {ref['end_user']}, {ref['user']}, "
                       f"{meta('user_api_key_user_id')})",
            "tenant": from_tags.get("tenant", "CAST(NULL AS VARCHAR)"),
            "api_key": f"coalesce({meta('user_api_key_alias')}, {key_hash})",
            # a cache hit never reached the provider: ``cached`` (priced at $0, as LiteLLM's spend is)
            "status": f"CASE WHEN lower(CAST({ref['cache_hit']} AS VARCHAR)) IN ('true', '1') THEN 'cached' "
                      f"WHEN {status} = 'failure' THEN 'error' WHEN {status} = 'success' THEN 'ok' "
                      f"ELSE coalesce({status}, 'ok') END",
            "error_type": f"coalesce({meta('error_information.error_class')}, "
                          f"{meta('error_information.error_code')})",
            "source_cost": f"TRY_CAST({ref['spend']} AS DECIMAL(38, 12))",
            "trace_id": "CAST(NULL AS VARCHAR)",
            "attributes": f"map_concat({_json_map('s._mm', '', _NOT_ATTRIBUTES)}, "
                          f"{_json_map(f'TRY_CAST({slm} AS MAP(VARCHAR, JSON))', 'spend_logs_metadata.')}, "
                          f"{tag_map}, {fixed})",
        }
        fingerprints = {c: f"s._{c}" if o.fingerprint_prompts else f"CAST(NULL AS {t})"
                        for c, t in PROMPT_COLUMNS.items()}
        typed.update(fingerprints)
        assert list(typed) == [*LLM_REQUEST_COLUMNS, *PROMPT_COLUMNS], \
            "typed columns must follow LLM_REQUEST_COLUMNS, then PROMPT_COLUMNS"
        raw = {
            "request_id": ref["request_id"], "ts": ref["startTime"], "endTime": ref["endTime"],
            "request_model": ref["model_group"], "response_model": model,
            "custom_llm_provider": ref["custom_llm_provider"], "call_type": ref["call_type"],
            "input_tokens": ref["prompt_tokens"], "output_tokens": ref["completion_tokens"],
            "cache_read_tokens": cache_read, "cache_write_tokens": cache_write, "reasoning_tokens": reasoning,
            "source_cost": ref["spend"], "metadata": ref["metadata"], "request_tags": ref["request_tags"],
        }
        return raw, typed
