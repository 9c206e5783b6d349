"""The litellm source: LiteLLM_SpendLogs exports (JSON and CSV) to llm_requests column by column, the cache
write rule across LiteLLM versions, keys never stored as given, bad rows quarantined with their reason,
re-ingest idempotent and a newer export superseding."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.litellm_spend import LiteLLMSpendSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIXTURES = Path(__file__).parent / "fixtures" / "litellm"
JSON_EXPORT = FIXTURES / "spend_logs.json"
CSV_EXPORT = FIXTURES / "spend_logs.csv"
ROWS = json.loads(JSON_EXPORT.read_text())
COLUMNS = ("provider", "operation", "request_model", "response_model", "input_tokens", "output_tokens",
           "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "tier", "team", "feature", "user_id",
           "tenant", "environment", "conversation_id", "api_key", "status", "error_type", "source_cost")
KEY1 = hashlib.sha256(b"sk-fixture-key-1").hexdigest()
KEY4 = hashlib.sha256(b"sk-fixture-key-4").hexdigest()

#: request -> the COLUMNS above, worked out by hand from the fixture (see its SOURCE.txt)
GOLDEN = {
    # OpenAI: 1,024 of the 1,200 prompt tokens were cache reads (inside prompt_tokens, as OTel counts)
    "chatcmpl-Bf3kQ1a7cXzE2r9YtLmN0pQsUvWx": (
        "openai", "chat", "gpt-4o", "gpt-4o-2024-08-06", 1200, 300, 1024, None, 0, None, "search",
        "semantic-search", "cust-0192", "acme", None, "sess-51a2", "search-prod", "ok", None, Decimal("0.00472")),
    # Anthropic, LiteLLM v1.80: prompt_tokens 2,010 already holds the 2,000 cache writes
    "msg_01HqR7vT2nWkS8yXo3bL5cDe": (
        "anthropic", "chat", "claude-sonnet", "claude-3-5-sonnet-20241022", 2010, 150, 0, 2000, 0, None, "support",
        "ticket-triage", "u-2b9c", None, "production", "sess-9c3d", "support-bot", "ok", None, Decimal("0.00978")),
    # Anthropic, LiteLLM v1.74: prompt_tokens 120,357 = 88 + 120,269 reads; the 21,002 writes are added
    "msg_01KpX2cN8uVd4QyHs6tG1aRf": (
        "anthropic", "chat", "claude-sonnet", "claude-3-5-sonnet-20241022", 141359, 4156, 120269, 21002, None, None,
        "support", "ticket-triage", "cust-7731", "globex", None, "sess-9c3d", "support-bot", "ok", None,
        Decimal("0.1774422")),
    "bd7e0c0a-5b41-4c9e-8f0e-1d2c3b4a5f60": (
        "aws.bedrock", "chat", "claude-3-7-reasoning", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", 3400, 1000, 0,
        None, 800, None, "research", None, "u-7f3e", None, None, None, "research", "ok", None, Decimal("0.0252")),
    "emb-4c1d9a7e-0f2b-4e6a-9b3c-8d7e6f5a4b3c": (
        "openai", "embeddings", "embeddings", "text-embedding-3-small", 512, 0, None, None, None, None, "search",
        "semantic-search", "u-7f3e", None, None, None, "search-prod", "ok", None, Decimal("0.00001024")),
    "2f8e4d6c-9a1b-4c3d-8e7f-0a1b2c3d4e5f": (
        "openai", "chat", "gpt-4o", "gpt-4o-2024-08-06", 0, 0, None, None, None, None, "search", None, "u-7f3e", None,
        None, None, "search-prod", "error", "RateLimitError", Decimal("0")),
    "chatcmpl-Bf3kQ1a7cXzE2r9YtLmN0pQsUvWx_cache_hit1748866800.52": (
        "openai", "chat", "gpt-4o", "gpt-4o-2024-08-06", 1200, 300, 0, None, 0, None, "search", "semantic-search",
        "u-7f3e", None, None, None, "search-prod", "cached", None, Decimal("0")),  # a cache hit: no provider call
    # no key alias: api_key is LiteLLM's hash of the key; feature/tenant from tags, environment from metadata
    "vtx-7d6c5b4a-3f2e-4d1c-9b8a-7f6e5d4c3b2a": (
        "gcp.vertex_ai", "chat", "gemini-flash", "gemini-2.0-flash-001", 8000, 640, 6000, None, 0, None, None,
        "summarize", "cust-0192", "initech", "staging", None, KEY4, "ok", None, Decimal("0.00204")),
}


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def loaded(store: Store, *columns: str) -> dict[str, tuple]:
    cols = ", ".join(columns)
    return {r[0]: r[1:] for r in store.con.execute(
        f"SELECT request_id, {cols} FROM llm_requests WHERE NOT _superseded ORDER BY _row").fetchall()}


def reasons(store: Store) -> list[tuple]:
    return store.con.execute('SELECT row_number, "column", reason FROM quarantine_errors ORDER BY 1, 2').fetchall()


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_json_export_golden_columns(store):
    res = ingest(store, LiteLLMSpendSource(), [JSON_EXPORT])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined, res.warnings) == \
        ("loaded", 8, 8, 0, [])
    assert loaded(store, *COLUMNS) == GOLDEN
    first = store.con.execute("SELECT source, ts, duration_ms, requests, trace_id FROM llm_requests "
                              "WHERE _row = 1").fetchone()
    assert first == ("litellm", datetime(2025, 6, 2, 9, 15, 3, 120000), 2360.0, 1, None)
    # the drift the lead reports needs the source's own money, exact
    assert store.con.execute("SELECT sum(source_cost) FROM llm_requests").fetchone()[0] == Decimal("0.21919244")


def test_csv_export_loads_the_same_rows_as_json(store, tmp_path):
    ingest(store, LiteLLMSpendSource(), [JSON_EXPORT])
    other = Store(tmp_path / "csv.duckdb")
    try:
        res = ingest(other, LiteLLMSpendSource(), [CSV_EXPORT])
        assert (res.rows_loaded, res.rows_quarantined) == (8, 0)
        query = ("SELECT * EXCLUDE (_batch_id, _file, _errors, _warnings, _raw) FROM llm_requests ORDER BY _row")
        assert other.con.execute(query).fetchall() == store.con.execute(query).fetchall()
    finally:
        other.close()


def test_attributes_keep_tags_metadata_and_litellm_columns(store):
    ingest(store, LiteLLMSpendSource(), [JSON_EXPORT])
    attrs = dict(store.con.execute("SELECT request_id, attributes FROM llm_requests").fetchall())
    vertex = attrs["vtx-7d6c5b4a-3f2e-4d1c-9b8a-7f6e5d4c3b2a"]
    assert vertex["tag.feature"] == "summarize" and vertex["tag.tenant"] == "initech"
    assert vertex["request_tags"] == '["feature:summarize","tenant:initech","batch-job"]'
    assert vertex["spend_logs_metadata.experiment"] == "prompt-v2"
    assert (vertex["call_type"], vertex["model_group"], vertex["organization_id"], vertex["api_key_hash"]) == \
        ("acompletion", "gemini-flash", "org-1", KEY4)
    support = attrs["msg_01HqR7vT2nWkS8yXo3bL5cDe"]
    assert support["user_api_key_team_alias"] == "support"
    assert json.loads(support["cost_breakdown"])["total_cost"] == 0.00978
    cached = attrs["chatcmpl-Bf3kQ1a7cXzE2r9YtLmN0pQsUvWx_cache_hit1748866800.52"]
    assert cached["cache_hit"] == "True"  # served by LiteLLM's cache: the provider was not called
    assert json.loads(attrs["2f8e4d6c-9a1b-4c3d-8e7f-0a1b2c3d4e5f"]["error_information"])["error_code"] == "429"
    # read into columns or private: never copied
    for a in attrs.values():
        assert not {"usage_object", "additional_usage_values", "requester_ip_address", "messages", "response",
                    "proxy_server_request", "user_api_key", "spend_logs_metadata"} & set(a)


@pytest.mark.parametrize(("rule", "v180", "v174"), [("auto", 2010, 141359), ("no", 4010, 141359), ("yes", 2010, None)])
def test_cache_writes_in_prompt_tokens(store, rule, v180, v174):
    ingest(store, LiteLLMSpendSource(cache_writes_in_prompt_tokens=rule), [JSON_EXPORT])
    got = loaded(store, "input_tokens")
    assert got["msg_01HqR7vT2nWkS8yXo3bL5cDe"] == (v180,)
    if v174 is not None:
        assert got["msg_01KpX2cN8uVd4QyHs6tG1aRf"] == (v174,)
    else:  # said to hold the writes, 120,357 prompt tokens cannot hold 120,269 reads + 21,002 writes
        assert "msg_01KpX2cN8uVd4QyHs6tG1aRf" not in got
        assert reasons(store) == [(3, "cache_read_tokens", "cache tokens (120,269 read + 21,002 written) exceed "
                                   "input_tokens 120,357: cache reads and writes are parts of the input (OTel)")]


def test_prompt_tokens_smaller_than_the_cache_cannot_hold_the_writes(store, tmp_path):
    # no usage_object (older LiteLLM: additional_usage_values only), 40 prompt tokens, 900 cache writes
    row = copy.deepcopy(ROWS[1])
    row["metadata"]["usage_object"] = None
    row["metadata"]["additional_usage_values"] = {"cache_creation_input_tokens": 900, "cache_read_input_tokens": 0}
    row.update(prompt_tokens=40, completion_tokens=10)
    ingest(store, LiteLLMSpendSource(), [write_json(tmp_path / "old.json", [row])])
    assert store.con.execute("SELECT input_tokens, cache_write_tokens FROM llm_requests").fetchone() == (940, 900)


def test_a_key_that_is_not_a_hash_is_hashed(store, tmp_path):
    row = copy.deepcopy(ROWS[7])
    row["api_key"] = "sk-live-THIS-IS-A-SECRET"
    ingest(store, LiteLLMSpendSource(), [write_json(tmp_path / "raw_key.json", [row])])
    api_key, attrs = store.con.execute("SELECT api_key, attributes FROM llm_requests").fetchone()
    assert api_key == "sha256:" + hashlib.sha256(b"sk-live-THIS-IS-A-SECRET").hexdigest()
    assert attrs["api_key_hash"] == api_key
    dump = str(store.con.execute("SELECT * FROM llm_requests").fetchall())
    assert "SECRET" not in dump


def test_page_and_json_lines_shapes(store, tmp_path):
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"data": ROWS[:3], "total": 8, "page": 1, "page_size": 3, "total_pages": 3}))
    lines = tmp_path / "logs.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in ROWS[3:]) + "\n")
    assert ingest(store, LiteLLMSpendSource(), [page]).rows_loaded == 3
    assert ingest(store, LiteLLMSpendSource(), [lines]).rows_loaded == 5
    assert loaded(store, *COLUMNS) == GOLDEN


def test_reingest_is_a_no_op_and_a_newer_export_supersedes(store, tmp_path):
    assert ingest(store, LiteLLMSpendSource(), [JSON_EXPORT]).status == "loaded"
    again = tmp_path / "copy.json"
    again.write_bytes(JSON_EXPORT.read_bytes())
    res = ingest(store, LiteLLMSpendSource(), [again])
    assert (res.status, res.duplicate_of) == ("unchanged", 1)
    # the next day's export repeats two requests (one with its spend corrected) and adds one
    newer = copy.deepcopy(ROWS[:2])
    newer[0]["spend"] = 0.005
    extra = copy.deepcopy(ROWS[4])
    extra["request_id"] = "emb-new"
    res = ingest(store, LiteLLMSpendSource(), [write_json(tmp_path / "day2.json", [*newer, extra])])
    assert res.rows_loaded == 3
    assert any("2 row(s) of earlier batches observed again" in n for n in res.notes)
    assert store.con.execute("SELECT count(*), count(*) FILTER (WHERE _superseded) FROM llm_requests").fetchone() \
        == (11, 2)
    live = loaded(store, "source_cost", "_batch_id")
    assert len(live) == 9
    assert live["chatcmpl-Bf3kQ1a7cXzE2r9YtLmN0pQsUvWx"] == (Decimal("0.005"), 2)
    assert store.con.execute("SELECT sum(source_cost) FROM llm_requests WHERE NOT _superseded").fetchone()[0] == \
        Decimal("0.21919244") + Decimal("0.00028") + Decimal("0.00001024")


def _bad(base: int = 4, **changes: object) -> dict:
    """A row of the fixture (the embedding: no cache tokens) with some fields changed and its own id."""
    row = copy.deepcopy(ROWS[base])
    for k, v in changes.items():
        if k == "usage":
            row["metadata"]["usage_object"].update(v)  # type: ignore[arg-type]
        else:
            row[k] = v
    row["request_id"] = changes.get("request_id", f"bad-{sorted(changes)}")
    return row


def test_bad_rows_are_quarantined_with_their_reason(store, tmp_path):
    rows = [
        ROWS[4],                                                         # 1 good
        _bad(model="", model_group=""),                                  # 2 no model
        _bad(prompt_tokens=-5),                                          # 3 negative
        _bad(completion_tokens=250_000_000),                             # 4 absurd
        _bad(prompt_tokens="12a"),                                       # 5 not a number
        _bad(prompt_tokens=12.5),                                        # 6 fractional
        _bad(0, prompt_tokens=1000),                                     # 7 1,024 cache reads > 1,000 input
        _bad(request_id=None),                                           # 8 no id
        _bad(startTime="yesterday"),                                     # 9 not a time
        _bad(spend="free"),                                              # 10 not a number
        7,                                                               # 11 not an object
    ]
    res = ingest(store, LiteLLMSpendSource(), [write_json(tmp_path / "bad.json", rows)])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (11, 1, 10)
    all_reasons = reasons(store)
    assert [r for r in all_reasons if r[0] < 11] == [
        (2, "request_model", "no model: neither the request nor the response names a model; the request cannot be "
                             "priced"),
        (3, "input_tokens", "input_tokens is negative: -5"),
        (4, "output_tokens", "output_tokens 250,000,000 is more than 100,000,000 tokens per request: not a real "
                             "request"),
        (5, "input_tokens", "input_tokens is not a whole number: '12a'"),
        (6, "input_tokens", "input_tokens is not a whole number: '12.5'"),
        (7, "cache_read_tokens", "cache tokens (1,024 read + 0 written) exceed input_tokens 1,000: cache reads and "
                                 "writes are parts of the input (OTel)"),
        (8, "request_id", "no request id: the request cannot be told apart from others, a re-ingest would count it "
                          "twice"),
        (9, "ts", "not a time: 'yesterday'"),
        (10, "source_cost", "not a number: 'free'"),
    ]
    # a record that is not an object has no fields either: every rule it breaks is listed
    assert ("_line", "not a JSON object: 7") in [r[1:] for r in all_reasons if r[0] == 11]
    raw = store.con.execute("SELECT raw FROM quarantine WHERE row_number = 5").fetchone()[0]
    assert raw["input_tokens"] == "12a" and raw["request_id"].startswith("bad-")


def test_reasoning_estimate_above_completion_loads_with_a_warning(store, tmp_path):
    row = copy.deepcopy(ROWS[3])
    row["metadata"]["usage_object"]["completion_tokens_details"]["reasoning_tokens"] = 1300
    res = ingest(store, LiteLLMSpendSource(), [write_json(tmp_path / "thinking.json", [row])])
    assert (res.rows_loaded, [w["rule"] for w in res.warnings]) == (1, ["reasoning-estimate"])
    assert store.con.execute("SELECT reasoning_tokens, output_tokens FROM llm_requests").fetchone() == (1000, 1000)


def test_metadata_that_is_not_json_loads_without_it(store, tmp_path):
    header, first = list(csv.reader(io.StringIO(CSV_EXPORT.read_text())))[:2]
    first[header.index("metadata")] = "{not json"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, first])
    bad = tmp_path / "bad_meta.csv"
    bad.write_text(out.getvalue())
    res = ingest(store, LiteLLMSpendSource(), [bad])
    assert (res.rows_loaded, [w["rule"] for w in res.warnings]) == (1, ["json"])
    assert store.con.execute("SELECT team, api_key, cache_read_tokens FROM llm_requests").fetchone() == \
        ("3f2b1c4e-8d7a-4b6e-9c01-2a5d7e9f0b13", KEY1, None)


@pytest.mark.parametrize(("content", "name", "message"), [
    ("request_id,model,spend\nr1,gpt-4o,0.1\n", "x.csv", "not a LiteLLM spend-log export: no column(s) startTime"),
    ('[{"request_id": "r1"}]', "x.json", "no column(s) startTime, model"),
    ('[{"request_id": "r1", "startTime": "2025-01-01"},', "cut.json", "the array does not end with ]"),
    ("hello", "x.json", "not JSON"),
])
def test_files_that_are_not_spend_logs_are_refused(store, tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(IngestError) as err:
        ingest(store, LiteLLMSpendSource(), [path])
    assert message in str(err.value)
    assert store.con.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def test_options_are_checked():
    with pytest.raises(SourceError, match="cache_writes_in_prompt_tokens"):
        LiteLLMSpendSource(cache_writes_in_prompt_tokens="maybe")
    with pytest.raises(SourceError, match="model cannot come from tags"):
        LiteLLMSpendSource(tag_columns="model=m")
    assert LiteLLMSpendSource(tag_columns="feature=app,tenant=customer").options.tag_columns == \
        {"feature": "app", "tenant": "customer"}


# -- prompt fingerprints -------------------------------------------------------------------------------------

SYSTEM = "You are the search assistant of Acme. Cite the document ids you used."
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]


def sha(system: object, tools: object, messages: object) -> str:
    """model.llm.PROMPT_COLUMNS' fingerprint, computed in Python: sha256 of the canonical JSON of the parts."""
    doc = json.dumps({"system": system, "tools": tools, "messages": messages}, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def tokens(*parts: object) -> int:
    """Characters of the canonical parts / 4, rounded half up."""
    return (sum(len(json.dumps(p, separators=(",", ":"))) for p in parts) + 2) // 4


def _with_prompts() -> list[dict]:
    """The fixture's rows as LiteLLM logs them with store_prompts_in_spend_logs on, in each version's place."""
    rows = copy.deepcopy(ROWS)
    # older LiteLLM: the request's messages in the messages column (system prompt first, OpenAI style)
    rows[0]["messages"] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "llm pricing"}]
    # newer LiteLLM: messages is {} and the request body is in proxy_server_request (Anthropic messages API)
    rows[1]["proxy_server_request"] = json.dumps({"model": "claude-sonnet", "max_tokens": 512, "system": SYSTEM,
                                                  "tools": TOOLS, "messages": [{"role": "user", "content": "hi"}]})
    # turn_off_message_logging: LiteLLM logs its placeholder instead of the content
    rows[2]["proxy_server_request"] = json.dumps({"messages": [{"role": "user", "content": "redacted-by-litellm"}]})
    # versions that keep the body in metadata
    rows[3]["metadata"]["proxy_server_request"] = {"messages": [{"role": "user", "content": "why"}]}
    return rows


def test_prompt_fingerprints_from_logged_prompts(store, tmp_path):
    """Hashes come from whichever place the LiteLLM version logged the prompt, the same from the JSON and the CSV
    export; content logging off ({}) or redacted gives none; the content is not stored."""
    rows = _with_prompts()
    ingest(store, LiteLLMSpendSource(), [write_json(tmp_path / "prompts.json", rows)])
    got = loaded(store, "prompt_hash", "prefix_hash", "prefix_tokens")
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "llm pricing"}]
    assert got["chatcmpl-Bf3kQ1a7cXzE2r9YtLmN0pQsUvWx"] == (
        sha(None, None, first), sha(None, None, first[:1]), tokens(first[:1]))
    assert got["msg_01HqR7vT2nWkS8yXo3bL5cDe"] == (
        sha(SYSTEM, TOOLS, [{"role": "user", "content": "hi"}]), sha(SYSTEM, TOOLS, None), tokens(SYSTEM, TOOLS))
    assert got["bd7e0c0a-5b41-4c9e-8f0e-1d2c3b4a5f60"] == (sha(None, None, [{"role": "user", "content": "why"}]),
                                                           None, None)
    assert got["msg_01KpX2cN8uVd4QyHs6tG1aRf"] == (None, None, None)  # redacted
    assert got["vtx-7d6c5b4a-3f2e-4d1c-9b8a-7f6e5d4c3b2a"] == (None, None, None)  # logged as {}
    dump = str(store.con.execute("SELECT * FROM llm_requests").fetchall())
    assert "search assistant" not in dump and "llm pricing" not in dump and "why" not in dump

    # the same rows as `\copy ... CSV HEADER` writes them: JSON as text cells
    header, *lines = list(csv.reader(io.StringIO(CSV_EXPORT.read_text())))
    for line, row in zip(lines, rows, strict=True):
        for col in ("messages", "proxy_server_request", "metadata"):
            value = row[col]
            line[header.index(col)] = value if isinstance(value, str) else json.dumps(value)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *lines])
    other = Store(tmp_path / "csv.duckdb")
    try:
        (tmp_path / "prompts.csv").write_text(out.getvalue())
        ingest(other, LiteLLMSpendSource(), [tmp_path / "prompts.csv"])
        assert loaded(other, "prompt_hash", "prefix_hash", "prefix_tokens") == got
    finally:
        other.close()


def test_fingerprints_can_be_turned_off(store, tmp_path):
    ingest(store, LiteLLMSpendSource(fingerprint_prompts=False), [write_json(tmp_path / "p.json", _with_prompts())])
    assert set(loaded(store, "prompt_hash", "prefix_hash", "prefix_tokens").values()) == {(None, None, None)}
