"""The otel source: OpenTelemetry GenAI spans in OTLP/JSON and OTLP protobuf files -> llm_requests rows.

Fixtures are written by the OpenTelemetry SDK itself (tests/fixtures/otel/make_fixtures.py, SOURCE.txt); bad
inputs are derived from them by editing one span of the OTLP/JSON.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gzip
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aifinops.interfaces.cli.app import app
from aifinops.sources.otel_genai import OtelSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIX = Path(__file__).parent / "fixtures" / "otel"
LINES = (FIX / "genai.jsonl").read_text().splitlines()
SUPPORT = {"service": "support-bot", "environment": "prod", "team": "support", "feature": "ticket-triage",
           "user_id": "u-42", "tenant": "acme", "trace_id": "4bf92f3577b34da6a3ce929d0e0e0101"}
SEARCH = {"service": "search-api", "environment": "staging", "team": "search", "feature": None, "user_id": None,
          "tenant": None}
NONE = {"conversation_id": None, "cache_read_tokens": None, "cache_write_tokens": None, "reasoning_tokens": None,
        "api_key": None, "source_cost": None, "error_type": None, "status": "ok", "requests": 1, "source": "otel",
        "prompt_hash": None, "prefix_hash": None, "prefix_tokens": None}


def sha(system: Any, tools: Any, messages: Any) -> str:
    """The fingerprint as model.llm.PROMPT_COLUMNS defines it, computed here in Python: sha256 of the canonical
    (minified) JSON of the prompt's parts."""
    doc = json.dumps({"system": system, "tools": tools, "messages": messages}, separators=(",", ":"),
                     ensure_ascii=False)
    return hashlib.sha256(doc.encode()).hexdigest()


#: the prompts the fixture's spans carry (make_fixtures.py): the openai_v2 span's gen_ai.input.messages and the
#: OpenLLMetry span's gen_ai.prompt.0.role / .content, assembled as one message
TICKET = [{"role": "user", "parts": [{"type": "text", "content": "my card was charged twice"}]}]
REPORT = [{"content": "summarise the quarterly report", "role": "user"}]
OPENAI_SCOPE = {"otel.scope.name": "opentelemetry.instrumentation.openai_v2", "otel.scope.version": "2.1b0"}
#: every column of every row the fixtures hold, worked out from make_fixtures.py
GOLDEN = [
    {**NONE, **SUPPORT, "request_id": "00f067aa0ba90102", "ts": datetime(2026, 11, 20, 10, 0, 0, 5000),
     "duration_ms": 1840.0, "provider": "openai", "operation": "chat", "request_model": "gpt-4o",
     "response_model": "gpt-4o-2024-08-06", "input_tokens": 1200, "output_tokens": 300, "cache_read_tokens": 1000,
     "tier": "standard", "conversation_id": "conv_5j66UpCpwteGg4YSxUnt7lPY", "prompt_hash": sha(None, None, TICKET),
     "attributes": {"gen_ai.response.id": "chatcmpl-123", "gen_ai.response.finish_reasons": '["stop"]',
                    "gen_ai.request.temperature": "0.2", "gen_ai.request.stream": "false",
                    "server.address": "api.openai.com", "server.port": "443", **OPENAI_SCOPE}},
    {**NONE, **SUPPORT, "request_id": "00f067aa0ba90103", "ts": datetime(2026, 11, 20, 10, 0, 1, 900000),
     "duration_ms": 7500.0, "provider": "openai", "operation": "chat", "request_model": "o3-mini",
     "response_model": "o3-mini-2025-01-31", "input_tokens": 500, "output_tokens": 2000, "reasoning_tokens": 1500,
     "tier": "flex", "conversation_id": "conv_5j66UpCpwteGg4YSxUnt7lPY",
     "attributes": {"openai.request.service_tier": "flex", **OPENAI_SCOPE}},
    {**NONE, **SUPPORT, "request_id": "00f067aa0ba90105", "ts": datetime(2026, 11, 20, 10, 0, 9, 500000),
     "duration_ms": 12.0, "provider": "openai", "operation": "chat", "request_model": "gpt-4o",
     "response_model": None, "input_tokens": None, "output_tokens": None, "tier": None, "status": "error",
     "error_type": "RateLimitError",
     "attributes": {**OPENAI_SCOPE, "otel.status_description": "Rate limit reached for gpt-4o"}},
    {**NONE, **SEARCH, "request_id": "00f067aa0ba90201", "trace_id": "4bf92f3577b34da6a3ce929d0e0e0201",
     "ts": datetime(2026, 11, 20, 10, 0, 20), "duration_ms": 3250.0, "provider": "anthropic", "operation": "chat",
     "request_model": "claude-3-5-sonnet-20241022", "response_model": "claude-3-5-sonnet-20241022",
     "input_tokens": 3000, "output_tokens": 250, "cache_read_tokens": 2000, "cache_write_tokens": 500, "tier": None,
     "prompt_hash": sha(None, None, REPORT),
     "attributes": {"cloud.region": "us-east-1", "llm.is_streaming": "true",
                    "otel.scope.name": "opentelemetry.instrumentation.anthropic", "otel.scope.version": "0.40.2"}},
    {**NONE, **SEARCH, "request_id": "00f067aa0ba90202", "trace_id": "4bf92f3577b34da6a3ce929d0e0e0202",
     "ts": datetime(2026, 11, 20, 10, 0, 24), "duration_ms": 80.0, "provider": "aws.bedrock",
     "operation": "embeddings", "request_model": "amazon.titan-embed-text-v2:0", "response_model": None,
     "input_tokens": 64, "output_tokens": None, "tier": None,
     "attributes": {"cloud.region": "us-east-1", "gen_ai.embeddings.dimension.count": "1024",
                    "otel.scope.name": "opentelemetry.instrumentation.botocore"}},
]


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def rows(store: Store, where: str = "true") -> list[dict[str, Any]]:
    got = store.rows("SELECT * EXCLUDE (_batch_id, _file, _row, _errors, _warnings, _raw, _superseded) "
                     f"FROM llm_requests WHERE {where} ORDER BY ts")
    return got


def reasons(store: Store) -> list[tuple[str, str]]:
    return [(r["column"], r["reason"]) for r in store.rows(
        'SELECT "column", reason FROM quarantine_errors ORDER BY row_number, "column"')]


def test_fixtures_are_what_the_sdk_writes(tmp_path: Path) -> None:
    """SOURCE.txt's recipe reproduces the committed fixtures byte for byte."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIX / "make_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    for name in ("genai.jsonl", "genai-collector.pb", "genai.binpb"):
        assert (tmp_path / name).read_bytes() == (FIX / name).read_bytes(), name


def test_collector_json_lines_golden(store: Store) -> None:
    res = ingest(store, OtelSource(), [FIX / "genai.jsonl"])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 5, 5, 0)
    assert rows(store) == GOLDEN
    assert res.notes == [
        "genai.jsonl: 1 span(s) without gen_ai.* attributes skipped (not LLM requests)",
        "genai.jsonl: 1 agent/tool span(s) skipped (execute_tool 1): their model calls are spans of their own "
        "(option skip_operations)",
        "genai.jsonl: prompt/completion content dropped from 2 span(s) (option drop_attributes)"]
    # the failed call has no usage: loaded (it happened), with a warning that it cannot be priced
    assert [(w["rule"], w["rows"], w["first_row"]) for w in res.warnings] == [("no-usage", 1, 3)]


@pytest.mark.parametrize("name", ["genai-collector.pb", "genai.binpb"])
def test_protobuf_files_give_the_same_rows(store: Store, name: str) -> None:
    """The file exporter's length-prefixed proto and a bare OTLP/HTTP body decode to the JSON's rows."""
    res = ingest(store, OtelSource(), [FIX / name])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (5, 5, 0)
    assert rows(store) == GOLDEN


def test_one_document_an_array_gzip_and_a_file_without_extension(store: Store, tmp_path: Path) -> None:
    docs = [json.loads(line) for line in LINES]
    (tmp_path / "pretty.json").write_text(json.dumps(docs[0], indent=2))
    (tmp_path / "array.json").write_text(json.dumps([docs[1]]))
    res = ingest(store, OtelSource(), [tmp_path / "pretty.json", tmp_path / "array.json"])
    assert rows(store) == GOLDEN
    # the collector's example path is ./file (no extension); gzip is recognised by its magic bytes
    (tmp_path / "file").write_bytes((FIX / "genai-collector.pb").read_bytes())
    (tmp_path / "traces.jsonl.gz").write_bytes(gzip.compress((FIX / "genai.jsonl").read_bytes()))
    for f in ("file", "traces.jsonl.gz"):
        res = ingest(store, OtelSource(), [tmp_path / f])
        assert (res.rows_loaded, res.rows_quarantined) == (5, 0), f
    assert len(rows(store, "NOT _superseded")) == 5


def test_base64_ids_of_protobufs_generic_json_mapping_are_read(store: Store, tmp_path: Path) -> None:
    doc = json.loads(LINES[1])
    for sp in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for k in ("traceId", "spanId"):
            sp[k] = base64.b64encode(bytes.fromhex(sp[k])).decode()
    (tmp_path / "b64.json").write_text(json.dumps(doc))
    ingest(store, OtelSource(), [tmp_path / "b64.json"])
    assert [r["request_id"] for r in rows(store)] == ["00f067aa0ba90201", "00f067aa0ba90202"]


def test_repeats_count_once(store: Store, tmp_path: Path) -> None:
    """A retried export (same spans in another file, another batch) supersedes; the same file is a no-op."""
    ingest(store, OtelSource(), [FIX / "genai.jsonl"])
    assert ingest(store, OtelSource(), [FIX / "genai.jsonl"]).status == "unchanged"
    (tmp_path / "again.jsonl").write_text(LINES[0] + "\n" + LINES[0] + "\n")
    res = ingest(store, OtelSource(), [tmp_path / "again.jsonl"])
    assert res.rows_loaded == 6
    live = rows(store, "NOT _superseded")
    assert [r["request_id"] for r in live] == [g["request_id"] for g in GOLDEN]
    assert store.rows("SELECT sum(input_tokens) AS t FROM llm_requests WHERE NOT _superseded")[0]["t"] == 4764


def test_label_keys_and_attribute_options(tmp_path: Path) -> None:
    """Options as aifinops.yaml gives them (lists) and as -o gives them (comma-separated text)."""
    db = tmp_path / "s.duckdb"
    (tmp_path / "aifinops.yaml").write_text(
        "sources:\n  otel:\n    team_key: [server.address]\n    drop_attributes: []\n")
    res = CliRunner().invoke(app, ["--db", str(db), "--config", str(tmp_path / "aifinops.yaml"), "ingest", "otel",
                                   str(FIX / "genai.jsonl"), "-o", "tenant_key=cloud.region,tenant.id",
                                   "-o", "feature_key=gen_ai.response.id"])
    assert res.exit_code == 0, res.output
    assert "5 rows read, 5 loaded, 0 quarantined" in res.output
    with Store(db, read_only=True) as s:
        got = rows(s)
    assert [(r["team"], r["tenant"], r["feature"]) for r in got] == [
        ("api.openai.com", "acme", "chatcmpl-123"), (None, "acme", None), (None, "acme", None),
        (None, "us-east-1", None), (None, "us-east-1", None)]
    assert "gen_ai.input.messages" in got[0]["attributes"] and got[0]["attributes"]["team"] == "support"
    assert got[3]["attributes"]["gen_ai.prompt.0.content"] == "summarise the quarterly report"
    bad = CliRunner().invoke(app, ["--db", str(db), "ingest", "otel", str(FIX / "genai.jsonl"), "-o", "max_tokens=x"])
    assert bad.exit_code == 1 and "max_tokens" in bad.output


def _span_file(tmp_path: Path, edit: Any, name: str = "bad.json") -> Path:
    """The fixture's first line with its first span (chat gpt-4o) edited by ``edit(span, attrs)``."""
    doc = json.loads(LINES[0])
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    sp = spans[0]
    attrs = {kv["key"]: kv for kv in sp["attributes"]}
    edit(sp, attrs)
    sp["attributes"] = list(attrs.values())
    spans.append(copy.deepcopy(spans[1]))  # and a good span after it, which still loads
    spans[-1]["spanId"] = "00f067aa0ba9ffff"
    path = tmp_path / name
    path.write_text(json.dumps(doc) + "\n")
    return path


def _int(v: Any) -> dict[str, Any]:
    return {"intValue": str(v)}


def _set(key: str, value: dict[str, Any]) -> Any:
    def edit(sp: dict[str, Any], a: dict[str, Any]) -> None:
        a[key] = {"key": key, "value": value}
    return edit


def _drop(*keys: str) -> Any:
    def edit(sp: dict[str, Any], a: dict[str, Any]) -> None:
        for k in keys:
            a.pop(k)
    return edit


def _field(key: str, value: Any) -> Any:
    def edit(sp: dict[str, Any], a: dict[str, Any]) -> None:
        if value is None:
            sp.pop(key)
        else:
            sp[key] = value
    return edit


BAD = [
    ("no model", _drop("gen_ai.request.model", "gen_ai.response.model"), "request_model",
     "no model: neither gen_ai.request.model nor gen_ai.response.model is set, so the request cannot be priced"),
    ("negative", _set("gen_ai.usage.output_tokens", _int(-5)), "output_tokens",
     "output_tokens (gen_ai.usage.output_tokens) is negative: -5"),
    ("absurd", _set("gen_ai.usage.input_tokens", _int(250_000_000)), "input_tokens",
     "input_tokens (gen_ai.usage.input_tokens) is 250000000, more than 100,000,000 tokens in one request: "
     "not a plausible count (option max_tokens)"),
    ("fraction", _set("gen_ai.usage.output_tokens", {"doubleValue": 12.5}), "output_tokens",
     "output_tokens (gen_ai.usage.output_tokens) is not an integer: '12.5'"),
    ("text", _set("gen_ai.usage.input_tokens", {"stringValue": "many"}), "input_tokens",
     "input_tokens (gen_ai.usage.input_tokens) is not an integer: 'many'"),
    ("array", _set("gen_ai.usage.input_tokens", {"arrayValue": {"values": [_int(1)]}}), "input_tokens",
     "input_tokens (gen_ai.usage.input_tokens) is not an integer: '[1]'"),
    ("cache above input", _set("gen_ai.usage.cache_creation.input_tokens", _int(700)), "cache_read_tokens",
     "cache tokens exceed the input tokens: cache reads 1000 + cache writes 700 > input_tokens 1200 (OTel counts "
     "cache tokens as part of the input; an instrumentation that reports input without them is wrong)"),
    ("reasoning above output", _set("gen_ai.usage.reasoning.output_tokens", _int(301)), "reasoning_tokens",
     "reasoning tokens exceed the output tokens: reasoning_tokens 301 > output_tokens 300 (OTel counts reasoning "
     "as part of the output)"),
    ("bad span id", _field("spanId", "xyz"), "request_id",
     "malformed span: span id 'xyz' is not 8 bytes (16 hex digits, not all zero)"),
    ("no span id", _field("spanId", None), "request_id",
     "malformed span: span id missing is not 8 bytes (16 hex digits, not all zero)"),
    ("zero trace id", _field("traceId", "0" * 32), "trace_id",
     "malformed span: trace id '00000000000000000000000000000000' is not 16 bytes (32 hex digits, not all zero)"),
    ("no start", _field("startTimeUnixNano", None), "ts",
     "malformed span: startTimeUnixNano missing is not a time in nanoseconds since 1970"),
    ("start not a number", _field("startTimeUnixNano", "soon"), "ts",
     "malformed span: startTimeUnixNano 'soon' is not a time in nanoseconds since 1970"),
    ("status code", _field("status", {"code": 7}), "span", "malformed span: status code 7 is not 0, 1 or 2"),
    ("attribute without key", _set("", {"stringValue": "x"}), "span", "malformed span: attribute #20 has no key"),
    ("value not an AnyValue", _set("x.custom", "plain"), "span",
     "malformed span: attribute 'x.custom': the value is not an AnyValue object"),
]


@pytest.mark.parametrize(("case", "edit", "column", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_spans_are_quarantined_with_the_reason(store: Store, tmp_path: Path, case: str, edit: Any, column: str,
                                                   reason: str) -> None:
    res = ingest(store, OtelSource(), [_span_file(tmp_path, edit)])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (4, 3, 1), case
    assert reasons(store) == [(column, reason)]
    raw = store.rows("SELECT row_number, raw FROM quarantine")[0]
    assert raw["row_number"] == 1 and raw["raw"]["line"] == "1"  # where to find it: the file's line


def test_a_span_that_ends_before_it_starts_loads_with_a_warning(store: Store, tmp_path: Path) -> None:
    res = ingest(store, OtelSource(), [_span_file(tmp_path, _field("endTimeUnixNano", "1795168800000000000"))])
    assert (res.rows_loaded, res.rows_quarantined) == (4, 0)
    assert [(w["rule"], w["column"], w["first_row"]) for w in res.warnings] == [
        ("negative-duration", "duration_ms", 1), ("no-usage", "input_tokens", 3)]
    assert rows(store)[0]["duration_ms"] == -5.0
    edit = _field("endTimeUnixNano", "1795168800004000000")
    strict = ingest(store, OtelSource(), [_span_file(tmp_path, edit, "b.json")], strict=True)
    assert strict.rows_quarantined == 2 and reasons(store)[0] == (
        "duration_ms", "the span ends before it starts (startTimeUnixNano 1795168800005000000, endTimeUnixNano "
        "1795168800004000000): loaded; the duration is not used for cost")


def test_integral_numbers_sent_as_double_or_text_load(store: Store, tmp_path: Path) -> None:
    def edit(sp: dict[str, Any], a: dict[str, Any]) -> None:
        a["gen_ai.usage.input_tokens"]["value"] = {"doubleValue": 1200.0}
        a["gen_ai.usage.output_tokens"]["value"] = {"stringValue": "300"}
        a["x.custom"] = {"key": "x.custom", "value": {"kvlistValue": {"values": [{"key": "a", "value": _int(1)}]}}}

    ingest(store, OtelSource(), [_span_file(tmp_path, edit)])
    got = rows(store)[0]
    assert (got["input_tokens"], got["output_tokens"]) == (1200, 300)
    assert got["attributes"]["x.custom"] == '{"a":1}'  # unknown attributes are kept, as text


def test_max_tokens_and_skip_operations_are_options(store: Store, tmp_path: Path) -> None:
    res = ingest(store, OtelSource(max_tokens="2500", skip_operations=""), [FIX / "genai.jsonl"])
    # the tool span is now read (and has no model); the Anthropic call's 3,000 input tokens are above 2,500
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (6, 4, 2)
    assert [c for c, _ in reasons(store)] == ["request_model", "input_tokens"]


MALFORMED = [
    ("notjson.jsonl", LINES[0] + "\n{\"resourceSpans\": [\n", "line 2: not JSON (Expecting value at column 20)"),
    ("metrics.json", '{"resourceMetrics": []}', "line 1: OTLP metrics, not traces"),
    ("other.json", '{"hello": "world"}',
     "line 1: not an OTLP ExportTraceServiceRequest (no resourceSpans; keys: hello)"),
    ("spans.json", '{"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}', "line 1: spans is not a list"),
    ("empty.jsonl", "\n\n", "the file is empty (no spans)"),
    ("random.pb", b"\xff\xfe\x00\x01garbage", "not a protobuf ExportTraceServiceRequest"),
    ("latin1.json", "{\"resourceSpans\": []}\xe9".encode("latin-1"), "not UTF-8 (byte 21)"),
]


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_files_that_are_not_otlp_are_refused_naming_the_line(store: Store, tmp_path: Path, name: str,
                                                             content: str | bytes, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(IngestError) as exc:
        ingest(store, OtelSource(), [FIX / "genai.jsonl", path])
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)
    assert store.rows("SELECT count(*) AS n FROM llm_requests")[0]["n"] == 0  # nothing of the batch loaded


def test_a_file_of_other_spans_loads_nothing_and_says_why(store: Store, tmp_path: Path) -> None:
    doc = json.loads(LINES[0])
    doc["resourceSpans"][0]["scopeSpans"] = doc["resourceSpans"][0]["scopeSpans"][2:]  # the HTTP server span only
    (tmp_path / "http.json").write_text(json.dumps(doc))
    res = ingest(store, OtelSource(), [tmp_path / "http.json"])
    assert res.status == "empty" and "1 span(s) without gen_ai.* attributes skipped" in res.notes[0]


WEIRD = [None, 5, -1, 1.5, "x", "", [], {}, [1], {"a": 1}, True, [[[]]], {"stringValue": 5}, {"intValue": [1]},
         {"arrayValue": {"values": 5}}, {"kvlistValue": {"values": [{"key": [1]}]}}, "1" * 5000, 10**30]


def test_no_shape_of_otlp_json_crashes_the_reader(store: Store, tmp_path: Path) -> None:
    """Seeded random edits of the fixture (a wrong JSON type anywhere): each file is refused with a message
    (SourceError) or read, the readable ones load or quarantine row by row, and the receiver's check of the same
    body refuses (OtlpError) or accepts it. Nothing else is ever raised."""
    import random

    from aifinops.sources import otlp
    from aifinops.sources.base import SourceError

    base = json.loads(LINES[0])

    def paths(x: Any, p: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        yield p
        children = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, v in children:
            yield from paths(v, (*p, k))

    every = [p for p in paths(base) if p]
    rnd = random.Random(7)
    source, readable, refused = OtelSource(), [], 0
    for i in range(100):
        doc = copy.deepcopy(base)
        for p in rnd.sample(every, rnd.randint(1, 3)):
            cur = doc
            with contextlib.suppress(KeyError, IndexError, TypeError):
                for k in p[:-1]:
                    cur = cur[k]
                cur[p[-1]] = rnd.choice(WEIRD)
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(doc))
        try:
            source.read(source.files([path])[0])
            readable.append(path)
        except SourceError:
            refused += 1
        with contextlib.suppress(otlp.OtlpError):
            otlp.check_body(path.read_bytes(), "json")
    res = ingest(store, OtelSource(), readable)
    assert res.rows_read == res.rows_loaded + res.rows_quarantined > 0
    assert refused > 10 and res.rows_quarantined > 10  # both outcomes were exercised


# -- prompt fingerprints -------------------------------------------------------------------------------------


def _sdk() -> Any:
    """make_fixtures.py as a module: its SDK recording and OTLP encoding, for spans of a test's own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", FIX / "make_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SYSTEM = [{"type": "text", "content": "You are the billing assistant of Acme. Answer in one sentence."}]
TOOLS = [{"type": "function", "name": "refund_lookup", "description": "Find a refund by order id",
          "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}}]


def _chat(start_ms: int, user: str, **extra: str) -> dict[str, Any]:
    """A chat span of the current GenAI conventions with content capture on: system instructions, tool definitions
    and input messages as the JSON text instrumentations record."""
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
             "gen_ai.usage.input_tokens": 2100, "gen_ai.usage.output_tokens": 40,
             "gen_ai.system_instructions": json.dumps(SYSTEM), "gen_ai.tool.definitions": json.dumps(TOOLS),
             "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": user}]}]),
             "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text",
                                                                                   "content": "Done."}]}]),
             **extra}
    return {"name": "chat gpt-4o", "start_ms": start_ms, "end_ms": start_ms + 900,
            "scope": "opentelemetry.instrumentation.openai_v2", "attributes": attrs}


def test_prompt_fingerprints_from_sdk_spans(store: Store, tmp_path: Path) -> None:
    """Spans written by the SDK with content capture on: the prompt and its prefix (system instructions + tools,
    or the leading system messages) are hashed as model.llm.PROMPT_COLUMNS defines them, the same from OTLP/JSON and
    protobuf, white space in the recorded JSON does not change a hash, and no content is stored anywhere."""
    sdk = _sdk()
    spans = [
        _chat(0, "refund order 1"),
        _chat(1_000, "refund order 2"),  # same instructions and tools, another question
        _chat(2_000, "refund order 1", **{"gen_ai.system_instructions": json.dumps(SYSTEM, indent=2)}),
        # an instrumentation that keeps the system prompt among the messages (OpenAI's chat format)
        {"name": "chat gpt-4o-mini", "start_ms": 3_000, "end_ms": 3_500, "attributes": {
            "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 5, "gen_ai.input.messages": json.dumps([
                {"role": "system", "content": "Classify the ticket."}, {"role": "user", "content": "card declined"}])}},
    ]
    msg = sdk.encode_spans(sdk._record({"service.name": "billing"}, 0x300, spans))
    (tmp_path / "t.jsonl").write_text(sdk._otlp_json(msg) + "\n")
    (tmp_path / "t.binpb").write_bytes(msg.SerializeToString())

    ingest(store, OtelSource(), [tmp_path / "t.jsonl"])
    got = [(r["prompt_hash"], r["prefix_hash"], r["prefix_tokens"]) for r in rows(store)]
    user = [[{"role": "user", "parts": [{"type": "text", "content": f"refund order {n}"}]}] for n in (1, 2)]
    prefix = sha(SYSTEM, TOOLS, None)
    # characters of the canonical parts / 4, rounded half up: the providers' rule of thumb
    chars = len(json.dumps(SYSTEM, separators=(",", ":"))) + len(json.dumps(TOOLS, separators=(",", ":")))
    system_msg = {"role": "system", "content": "Classify the ticket."}
    assert got == [
        (sha(SYSTEM, TOOLS, user[0]), prefix, (chars + 2) // 4),
        (sha(SYSTEM, TOOLS, user[1]), prefix, (chars + 2) // 4),
        (sha(SYSTEM, TOOLS, user[0]), prefix, (chars + 2) // 4),  # the first prompt again, pretty-printed
        (sha(None, None, [system_msg, {"role": "user", "content": "card declined"}]), sha(None, None, [system_msg]),
         (len(json.dumps([system_msg], separators=(",", ":"))) + 2) // 4),
    ]
    other = Store(tmp_path / "pb.duckdb")
    try:
        ingest(other, OtelSource(), [tmp_path / "t.binpb"])
        assert [(r["prompt_hash"], r["prefix_hash"], r["prefix_tokens"]) for r in rows(other)] == got
    finally:
        other.close()
    text = str(store.rows("SELECT * FROM llm_requests"))
    assert "refund order" not in text and "billing assistant" not in text and "Classify" not in text


def test_no_fingerprints_when_turned_off_and_no_content_in_quarantine(store: Store, tmp_path: Path) -> None:
    ingest(store, OtelSource(fingerprint_prompts=False), [FIX / "genai.jsonl"])
    assert {(r["prompt_hash"], r["prefix_hash"], r["prefix_tokens"]) for r in rows(store)} == {(None, None, None)}
    # a span quarantined for another reason keeps its raw values to fix it, never its prompt
    ingest(store, OtelSource(), [_span_file(tmp_path, _drop("gen_ai.request.model", "gen_ai.response.model"))])
    raw = store.rows("SELECT raw FROM quarantine")
    assert len(raw) == 1 and "charged twice" not in str(raw)
