"""The llm-usage source: the Azure LLM inference trace slice against a direct DuckDB computation on it,
OpenAI Usage API buckets (JSON and CSV) column by column, custom mappings through options, bad rows
quarantined with their reason, re-ingest idempotent and a later export of a bucket superseding."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.llm_usage_csv import LlmUsageSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

AZURE = Path(__file__).parent / "fixtures" / "azure-llm" / "AzureLLMInferenceTrace_code_slice.csv"
OPENAI = Path(__file__).parent / "fixtures" / "openai-usage"
AZURE_OPTIONS = {"preset": "azure-llm-trace", "model": "gpt-4o-2024-08-06", "provider": "azure"}


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def one(store: Store, sql: str) -> tuple:
    return store.con.execute(sql).fetchone()


def reasons(store: Store) -> list[tuple]:
    return store.con.execute('SELECT row_number, "column", reason FROM quarantine_errors ORDER BY 1, 2').fetchall()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- Azure LLM inference trace -----------------------------------------------------------------------

def test_azure_slice_reads_whole_with_exact_token_sums(store):
    res = ingest(store, LlmUsageSource(**AZURE_OPTIONS), [AZURE])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined, res.notes) == \
        ("loaded", 500, 500, 0, [])
    assert res.files[0].reader == "pyarrow"
    # independent of the source: DuckDB's own typed CSV reader on the same slice
    raw = duckdb.sql(f"SELECT count(*), sum(ContextTokens), sum(GeneratedTokens), min(ContextTokens), "
                     f"max(GeneratedTokens), min(TIMESTAMP), max(TIMESTAMP) FROM read_csv('{AZURE}')").fetchall()[0]
    got = one(store, "SELECT sum(requests), sum(input_tokens), sum(output_tokens), min(input_tokens), "
                     "max(output_tokens), min(ts), max(ts) FROM llm_requests")
    assert got == raw
    assert got[:3] == (500, 1_081_658, 12_040)
    by_minute = duckdb.sql(f"SELECT date_trunc('minute', TIMESTAMP) AS m, sum(ContextTokens), sum(GeneratedTokens) "
                           f"FROM read_csv('{AZURE}') GROUP BY m ORDER BY m").fetchall()
    assert store.con.execute("SELECT date_trunc('minute', ts) AS m, sum(input_tokens), sum(output_tokens) "
                             "FROM llm_requests GROUP BY m ORDER BY m").fetchall() == by_minute


def test_azure_rows(store):
    ingest(store, LlmUsageSource(**AZURE_OPTIONS), [AZURE])
    first = one(store, "SELECT request_id, source, ts, requests, provider, operation, request_model, response_model, "
                       "input_tokens, output_tokens, cache_read_tokens, status FROM llm_requests WHERE _row = 1")
    assert first == ("2023-11-16 18:17:03.9799600/4808/10", "azure-llm-trace",
                     datetime(2023, 11, 16, 18, 17, 3, 979960), 1, "azure.ai.openai", "chat", "gpt-4o-2024-08-06", None,
                     4808, 10, None, None)
    assert one(store, "SELECT count(DISTINCT request_id), count(*) FILTER (WHERE _superseded) FROM llm_requests") \
        == (500, 0)


def test_azure_preset_needs_a_model_and_a_provider():
    with pytest.raises(SourceError) as err:
        LlmUsageSource(preset="azure-llm-trace", provider="azure")
    assert "preset azure-llm-trace needs model: the file names none" in str(err.value)
    with pytest.raises(SourceError, match="needs model and provider"):
        LlmUsageSource(preset="azure-llm-trace")


def test_azure_slice_then_more_of_the_trace_counts_each_request_once(store, tmp_path):
    lines = AZURE.read_text().splitlines()
    head = _write(tmp_path / "first100.csv", "\n".join(lines[:101]) + "\n")
    ingest(store, LlmUsageSource(**AZURE_OPTIONS), [head])
    res = ingest(store, LlmUsageSource(**AZURE_OPTIONS), [AZURE])
    assert any("100 row(s) of earlier batches observed again" in n for n in res.notes)
    assert one(store, "SELECT count(*), sum(input_tokens) FROM llm_requests WHERE NOT _superseded") == (500, 1_081_658)


def test_a_gzipped_trace(store, tmp_path):
    f = tmp_path / "trace.csv.gz"
    f.write_bytes(gzip.compress(AZURE.read_bytes()))
    res = ingest(store, LlmUsageSource(**AZURE_OPTIONS), [f])
    assert (res.rows_loaded, one(store, "SELECT sum(output_tokens) FROM llm_requests")) == (500, (12_040,))


# -- OpenAI Usage API --------------------------------------------------------------------------------

GOLDEN_OPENAI = [
    # ts, requests, model, tier, input, output, cache read, api_key, user, project, audio in
    (datetime(2025, 6, 2), 3053, "gpt-4o-2024-08-06", None, 3718360, 97756, 76544, "key_7fQm2c1XbVd9LwRs", None,
     "proj_Zq8tLm3XbR4vN1sK", "0"),
    (datetime(2025, 6, 2), 6335, "gpt-4o-mini-2024-07-18", None, 8117824, 105662, 46464, "key_7fQm2c1XbVd9LwRs", None,
     "proj_Zq8tLm3XbR4vN1sK", "0"),
    (datetime(2025, 6, 2), 400, "gpt-4o-2024-08-06", "batch", 1200000, 240000, 0, "key_Bt5uR0nHs8KdY2Pa", None,
     "proj_4GhT9wYp2QcE6uJd", "0"),
    (datetime(2025, 6, 2), 157, "gpt-4o-realtime-preview-2024-12-17", None, 52786, 38204, 5440, "key_Bt5uR0nHs8KdY2Pa",
     None, "proj_4GhT9wYp2QcE6uJd", "4066"),
    (datetime(2025, 6, 4), 2687, "gpt-4o-2024-08-06", None, 3390547, 38604, 25344, "key_7fQm2c1XbVd9LwRs", None,
     "proj_Zq8tLm3XbR4vN1sK", "0"),
    (datetime(2025, 6, 4), 98, "o3-mini-2025-01-31", None, 29806, 57604, 0, "key_7fQm2c1XbVd9LwRs", "user-Lk2mW9qZ",
     "proj_Zq8tLm3XbR4vN1sK", "0"),
]
OPENAI_COLUMNS = ("ts, requests, request_model, tier, input_tokens, output_tokens, cache_read_tokens, api_key, "
                  "user_id, attributes['project_id'], attributes['input_audio_tokens']")


@pytest.mark.parametrize("name", ["usage_completions.json", "usage_completions.csv"])
def test_openai_usage_buckets(store, name):
    res = ingest(store, LlmUsageSource(preset="openai-usage"), [OPENAI / name])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (6, 6, 0)
    assert store.con.execute(f"SELECT {OPENAI_COLUMNS} FROM llm_requests ORDER BY _row").fetchall() == GOLDEN_OPENAI
    assert one(store, "SELECT DISTINCT source, provider, operation FROM llm_requests") == \
        ("openai-usage", "openai", "chat")
    assert one(store, "SELECT request_id, attributes['end_time'] FROM llm_requests WHERE _row = 3") == \
        ("1748822400/proj_4GhT9wYp2QcE6uJd/-/key_Bt5uR0nHs8KdY2Pa/gpt-4o-2024-08-06/true", "1748908800")
    assert one(store, "SELECT sum(requests), sum(input_tokens) FROM llm_requests") == (12_730, 16_509_323)


def test_a_later_export_of_a_bucket_supersedes_it(store, tmp_path):
    ingest(store, LlmUsageSource(preset="openai-usage"), [OPENAI / "usage_completions.json"])
    page = json.loads((OPENAI / "usage_completions.json").read_text())
    last = page["data"][2]  # the day was not over: the next export has more of it
    last["results"][0].update(num_model_requests=2700, input_tokens=3400000)
    later = _write(tmp_path / "later.json", json.dumps({"object": "page", "data": [last], "has_more": False}))
    res = ingest(store, LlmUsageSource(preset="openai-usage"), [later])
    assert res.rows_loaded == 2 and any("2 row(s) of earlier batches" in n for n in res.notes)
    assert one(store, "SELECT count(*), sum(requests), sum(input_tokens) FROM llm_requests WHERE NOT _superseded") == \
        (6, 12_743, 16_518_776)


def test_an_export_without_the_audio_columns(store, tmp_path):
    lines = (OPENAI / "usage_completions.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, c in enumerate(header) if "audio" not in c]
    f = _write(tmp_path / "older.csv", "\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n")
    assert ingest(store, LlmUsageSource(preset="openai-usage"), [f]).rows_loaded == 6
    assert one(store, "SELECT attributes FROM llm_requests WHERE _row = 1") == \
        ({"project_id": "proj_Zq8tLm3XbR4vN1sK", "end_time": "1748908800"},)


def test_a_usage_row_without_a_model_cannot_be_priced(store, tmp_path):
    page = {"object": "page", "data": [{"object": "bucket", "start_time": 1736616660, "end_time": 1736640000,
            "results": [{"object": "organization.usage.completions.result", "input_tokens": 141201,
                         "output_tokens": 9756, "num_model_requests": 470, "project_id": None, "user_id": None,
                         "api_key_id": None, "model": None, "batch": None, "input_cached_tokens": 0,
                         "input_audio_tokens": 0, "output_audio_tokens": 0}]}]}
    res = ingest(store, LlmUsageSource(preset="openai-usage"), [_write(tmp_path / "ungrouped.json", json.dumps(page))])
    assert (res.rows_loaded, res.rows_quarantined) == (0, 1)
    assert reasons(store) == [(1, "request_model", "no model: neither the request nor the response names a model; the "
                                                   "request cannot be priced")]


# -- custom mappings ---------------------------------------------------------------------------------

CUSTOM = {
    "columns": {"request_id": "call_id", "ts": "started", "request_model": "model", "provider": "vendor",
                "input_tokens": "prompt + cached", "output_tokens": "completion", "cache_read_tokens": "cached",
                "team": "team", "source_cost": "cost_usd", "duration_ms": "latency_s * 1000"},
    "numeric": ["prompt", "cached", "latency_s"],
    "attributes": ["region"],
    "source_name": "gateway",
}


def test_a_custom_mapping_through_options(store, tmp_path):
    f = _write(tmp_path / "calls.csv", "call_id,started,model,vendor,prompt,cached,completion,team,cost_usd,latency_s,"
                                       "region\n"
                                       "c1,2026-03-01T10:00:00+01:00,claude-3-5-haiku,anthropic,900,100,50,search,"
                                       "0.0011,1.25,eu\n"
                                       "c2,2026-03-01T10:00:05Z,mistral-small,mistral,10,0,5,,0.00001,0.2,\n")
    res = ingest(store, LlmUsageSource(**CUSTOM), [f])
    assert (res.rows_loaded, res.rows_quarantined) == (2, 0)
    rows = store.con.execute("SELECT request_id, source, ts, provider, request_model, input_tokens, output_tokens, "
                             "cache_read_tokens, team, source_cost, duration_ms, requests, attributes "
                             "FROM llm_requests ORDER BY _row").fetchall()
    assert rows == [
        ("c1", "gateway", datetime(2026, 3, 1, 9), "anthropic", "claude-3-5-haiku", 1000, 50, 100, "search",
         Decimal("0.0011"), 1250.0, 1, {"region": "eu"}),
        ("c2", "gateway", datetime(2026, 3, 1, 10, 0, 5), "mistral_ai", "mistral-small", 10, 5, 0, None,
         Decimal("0.00001"), 200.0, 1, {}),
    ]


def test_options_given_as_text_like_the_cli_and_parquet(store, tmp_path):
    f = tmp_path / "u.parquet"
    duckdb.sql("SELECT 'r1' AS id, TIMESTAMP '2026-01-01 00:00:00' AS t, 120::BIGINT AS i, 7::BIGINT AS o, "
               "'eu' AS region").write_parquet(str(f))
    src = LlmUsageSource(columns="{request_id: id, ts: t, input_tokens: i, output_tokens: o}", model="llama-3.1-8b",
                         provider="self-hosted", attributes="region")
    assert ingest(store, src, [f]).rows_loaded == 1
    assert one(store, "SELECT request_id, ts, provider, request_model, input_tokens, output_tokens, attributes "
                      "FROM llm_requests") == ("r1", datetime(2026, 1, 1), "self-hosted", "llama-3.1-8b", 120, 7,
                                               {"region": "eu"})


def test_bad_rows_are_quarantined_with_their_reason(store, tmp_path):
    src = LlmUsageSource(columns={"request_id": "id", "ts": "t", "request_model": "m", "requests": "n",
                                  "input_tokens": "i", "output_tokens": "o", "cache_read_tokens": "cr",
                                  "cache_write_tokens": "cw", "reasoning_tokens": "r"})
    f = _write(tmp_path / "bad.csv", "id,t,m,n,i,o,cr,cw,r\n"
                                     "ok,2026-01-01,gpt-4o,1,100,10,20,0,0\n"           # 1
                                     "a,2026-01-01,,1,100,10,,,\n"                       # 2 no model
                                     "b,2026-01-01,gpt-4o,1,-1,10,,,\n"                  # 3 negative
                                     "c,2026-01-01,gpt-4o,1,100000001,10,,,\n"           # 4 absurd
                                     "d,2026-01-01,gpt-4o,3,250000000,10,,,\n"           # 5 fine for 3 requests
                                     "e,2026-01-01,gpt-4o,1,ten,10,,,\n"                 # 6 not a number
                                     "f,2026-01-01,gpt-4o,1,100,10.5,,,\n"               # 7 fractional
                                     "g,2026-01-01,gpt-4o,1,100,10,90,20,\n"             # 8 cache > input
                                     "h,2026-01-01,gpt-4o,1,100,10,,,11\n"               # 9 reasoning > output
                                     "i,,gpt-4o,1,100,10,,,\n"                           # 10 no time
                                     "j,2026-01-01,gpt-4o,-2,100,10,,,\n"                # 11 negative requests
                                     "k,2026-01-01,gpt-4o,1,100,10,,\n")                 # 12 malformed line
    res = ingest(store, src, [f])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (12, 2, 10)
    assert res.files[0].reader == "duckdb"  # the malformed line sent the file to the exact reader
    got = reasons(store)
    assert got[:-1] == [
        (2, "request_model", "no model: neither the request nor the response names a model; the request cannot be "
                             "priced"),
        (3, "input_tokens", "input_tokens is negative: -1"),
        (4, "input_tokens", "input_tokens 100,000,001 is more than 100,000,000 tokens per request: not a real request"),
        (6, "input_tokens", "input_tokens is not a whole number: 'ten'"),
        (7, "output_tokens", "output_tokens is not a whole number: '10.5'"),
        (8, "cache_read_tokens", "cache tokens (90 read + 20 written) exceed input_tokens 100: cache reads and writes "
                                 "are parts of the input (OTel)"),
        (9, "reasoning_tokens", "reasoning_tokens 11 exceed output_tokens 10: reasoning is part of the output (OTel)"),
        (10, "ts", "no time: the request cannot be placed in a window"),
        (11, "requests", "requests is negative: -2"),
    ]
    assert got[-1][0] == 12 and "Expected Number of Columns: 9 Found: 8" in got[-1][2]
    assert [r[0] for r in store.con.execute("SELECT request_id FROM llm_requests ORDER BY _row").fetchall()] == \
        ["ok", "d"]


def test_reingest_is_a_no_op(store, tmp_path):
    ingest(store, LlmUsageSource(**AZURE_OPTIONS), [AZURE])
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(AZURE.read_bytes())
    res = ingest(store, LlmUsageSource(**AZURE_OPTIONS), [copy])
    assert (res.status, res.duplicate_of) == ("unchanged", 1)
    assert one(store, "SELECT count(*) FROM llm_requests") == (500,)


@pytest.mark.parametrize(("options", "message"), [
    ({"preset": "nope"}, "unknown preset 'nope' (known: azure-llm-trace, openai-usage)"),
    ({"columns": {"ts": "t"}, "model": "m"}, "map columns.request_id (a request needs an identity and a time)"),
    ({"columns": {"request_id": "i", "ts": "t"}}, "requests without a model cannot be priced"),
    ({"columns": {"request_id": "i", "ts": "t", "model": "m"}}, "columns model cannot be mapped"),
    ({"columns": {"request_id": "i", "ts": "t", "attributes": "a"}, "model": "m"}, "columns attributes cannot be"),
    ({"preset": "openai-usage", "time_unit": "h"}, "time_unit"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(SourceError) as err:
        LlmUsageSource(**options)
    assert message in str(err.value)


def test_a_mapping_the_file_cannot_satisfy_is_refused_before_loading(store, tmp_path):
    f = _write(tmp_path / "other.csv", "time,prompt_tokens,completion_tokens\n2026-01-01,1,1\n")
    with pytest.raises(IngestError) as err:
        ingest(store, LlmUsageSource(**AZURE_OPTIONS), [f])
    assert "mapping of request_id" in str(err.value) and "does not apply to this file" in str(err.value)
    assert one(store, "SELECT count(*) FROM batches") == (0,)


def test_the_same_file_with_other_options_is_another_batch(store: Store) -> None:
    """The batch fingerprint covers the options that change what a file loads as (here: which model served the
    trace); the same file with the same options again is a no-op."""
    first = ingest(store, LlmUsageSource(**AZURE_OPTIONS, source_name="a"), [AZURE])
    again = ingest(store, LlmUsageSource(**AZURE_OPTIONS, source_name="a"), [AZURE])
    other = ingest(store, LlmUsageSource(**{**AZURE_OPTIONS, "model": "gpt-4o-mini"}, source_name="b"), [AZURE])
    assert (first.status, again.status, other.status) == ("loaded", "unchanged", "loaded")
    assert one(store, "SELECT count(DISTINCT request_model) FROM llm_requests WHERE NOT _superseded") == (2,)


def test_prompt_fingerprints_hashed_upstream_can_be_mapped(store, tmp_path):
    """A gateway that hashes prompts itself: its hashes and prefix size are mapped like any column; a prefix size
    that is not a whole number or is negative quarantines the row, naming the value."""
    f = _write(tmp_path / "hashed.csv", "id,t,model,i,o,prompt_sha,system_sha,system_tokens\n"
                                        "a,2026-03-01T10:00:00Z,gpt-4o,1800,20,p1,s1,1500\n"
                                        "b,2026-03-01T10:01:00Z,gpt-4o,1800,20,p2,s1,1500\n"
                                        "c,2026-03-01T10:02:00Z,gpt-4o,90,20,p3,,\n"
                                        "d,2026-03-01T10:03:00Z,gpt-4o,90,20,p4,s2,1.5\n"
                                        "e,2026-03-01T10:04:00Z,gpt-4o,90,20,p5,s3,-2\n")
    mapping = {"request_id": "id", "ts": "t", "request_model": "model", "input_tokens": "i", "output_tokens": "o",
               "prompt_hash": "prompt_sha", "prefix_hash": "system_sha", "prefix_tokens": "system_tokens"}
    res = ingest(store, LlmUsageSource(columns=mapping, provider="openai"), [f])
    assert (res.rows_loaded, res.rows_quarantined) == (3, 2)
    assert store.con.execute("SELECT request_id, prompt_hash, prefix_hash, prefix_tokens FROM llm_requests "
                             "ORDER BY _row").fetchall() == [
        ("a", "p1", "s1", 1500), ("b", "p2", "s1", 1500), ("c", "p3", None, None)]
    assert reasons(store) == [(4, "prefix_tokens", "prefix_tokens is not a whole number: 1.5"),
                              (5, "prefix_tokens", "prefix_tokens is negative: -2")]
