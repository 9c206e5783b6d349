"""Inference benchmark: daily unit economics per model and team over N synthetic LLM requests, and request
pricing against LiteLLM's own cost function.

Generates N (default 100M) ``llm_requests`` rows straight into a fresh aifinops store, in DuckDB SQL (no Python
loop over rows), one insert a day (bounded memory), cached per size and seed in ``bench/out/``. The traffic has
the shape of a company's month of API calls: 30 days from 2026-09-01, weekends at 55%, busiest around 15:00 UTC,
0.4% growth a day, each day's rows in time order. 24 features of 12 teams, popular by rank (Zipf), each call a mix
of 30 real models through their real providers (OpenAI, Anthropic, Bedrock ids, Azure OpenAI, Vertex AI, the
Gemini API, Mistral, DeepSeek; OpenAI's dated response models), plus two models no catalog prices (an OpenAI
fine-tune and an in-house router: ~3% of requests, which must come out unpriced, never at 0). Input and output
tokens are log-normal per kind of feature (chat, RAG, agents, summaries, classification, embeddings, batch evals,
long documents), capped at each model's context; cache reads on ~30% of chat requests (128-token multiples),
cache writes on 10% of Claude's, batch evals and a quarter of summaries in the batch tier, reasoning models
spending part of their output thinking, ~0.9% of requests (long documents to gemini-2.5-pro, which prices them
higher) above 200k input tokens, 1.2% failed without usage. Users come from each feature's audience (customers,
staff or service accounts) by u^2 (the top 1% send ~10%); conversations (~5 turns, some long) belong to one user
and model and live within an hour.

Each measured step runs in its own subprocess (seconds timed in the child around the call, peak RSS from the
child's own ``VmHWM``, as in ``bench/ingest.py``), on the read-only store with the CLI's 1 GB memory limit:

* ``unit_costs(con, window, ["model", "team"], accumulate="day")``: the daily unit economics per model and team;
* ``unit_costs(con, window, ["team"])``: the window, with exact distinct users and conversations;
* per request: the sum of ``llm_costs.costed_sql`` (every request priced on its own), an independent total.

The daily rows' costs must add up to the window total exactly (Decimal), and to the per-request total.

LiteLLM comparison: a 100k-request sample (models LiteLLM knows, standard tier, no failed requests; cache reads,
cache writes and long contexts as generated) is priced by ``litellm.cost_per_token`` in a throwaway venv
(``bench/out/litellm-venv``, ``litellm==1.109.1``: the release whose price table aifinops bundles; tokencost too
when it installs, fed the same table), and by aifinops (``costed_sql`` on a store holding just the sample);
per-request costs go through Parquet and are compared request by request. LiteLLM gets OTel's token counts as
they are: its ``prompt_tokens`` include cached tokens, as ``input_tokens`` does.

Run: ``make bench-inference`` (``python bench/inference.py``: 100M requests) or ``PYTHONPATH=src python
bench/inference.py --requests 1000000 [--seed 7] [--sample 100000] [--no-litellm] [--no-per-request] [--repeat K]
[--json] [--regen] [--profile] [--memory-limit 1GB] [--out DIR]``; ``--profile`` lists the costliest operators of
each query. Generation is reproducible for a seed and a DuckDB version (it draws from DuckDB's hash()).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import harness  # bench/harness.py: the child-per-step runner and peak RSS

HERE = Path(__file__).resolve().parent
GEN_VERSION = 2  # bump when the generator changes: it names the cached stores
START, DAYS = datetime(2026, 9, 1), 30
TIME_TARGET_S = 30.0
LITELLM_VERSION = "1.109.1"  # the release whose price table aifinops bundles (sources/data/litellm_prices)


@dataclass(frozen=True)
class Model:
    """A model as requests name it: provider (OTel ``gen_ai.provider.name``), request and response model (None:
    the source reports none), the name LiteLLM prices it by (None: LiteLLM does not know it), max context."""

    provider: str
    request: str
    response: str | None
    litellm: str | None
    context: int
    reasoning: bool = False


MODELS: dict[str, Model] = {
    "gpt-4o-mini": Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", 128_000),
    "gpt-4o": Model("openai", "gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06", 128_000),
    "gpt-4.1": Model("openai", "gpt-4.1", "gpt-4.1-2025-04-14", "gpt-4.1-2025-04-14", 1_047_576),
    "gpt-4.1-mini": Model("openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini-2025-04-14", 1_047_576),
    "gpt-4.1-nano": Model("openai", "gpt-4.1-nano", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano-2025-04-14", 1_047_576),
    "o3-mini": Model("openai", "o3-mini", "o3-mini-2025-01-31", "o3-mini-2025-01-31", 200_000, True),
    "o4-mini": Model("openai", "o4-mini", "o4-mini-2025-04-16", "o4-mini-2025-04-16", 200_000, True),
    "gpt-5": Model("openai", "gpt-5", "gpt-5-2025-08-07", "gpt-5-2025-08-07", 272_000, True),
    "gpt-5-mini": Model("openai", "gpt-5-mini", "gpt-5-mini-2025-08-07", "gpt-5-mini-2025-08-07", 272_000, True),
    "te3-small": Model("openai", "text-embedding-3-small", "text-embedding-3-small", "text-embedding-3-small", 8191),
    "te3-large": Model("openai", "text-embedding-3-large", "text-embedding-3-large", "text-embedding-3-large", 8191),
    "sonnet-4.5": Model("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929",
                        "anthropic/claude-sonnet-4-5-20250929", 200_000),
    "haiku-4.5": Model("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001",
                       "anthropic/claude-haiku-4-5-20251001", 200_000),
    "opus-4.5": Model("anthropic", "claude-opus-4-5", "claude-opus-4-5-20251101", "anthropic/claude-opus-4-5-20251101",
                      200_000, True),
    # older Claude versions LiteLLM 1.109.1 no longer lists for Anthropic's API: genai-prices prices them
    "sonnet-3.5": Model("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022", None, 200_000),
    "haiku-3.5": Model("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", None, 200_000),
    "bedrock-sonnet-3.5": Model("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", None,
                                "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", 200_000),
    "bedrock-haiku-3.5": Model("aws.bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", None,
                               "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0", 200_000),
    "nova-pro": Model("aws.bedrock", "amazon.nova-pro-v1:0", None, "bedrock/amazon.nova-pro-v1:0", 300_000),
    "nova-lite": Model("aws.bedrock", "amazon.nova-lite-v1:0", None, "bedrock/amazon.nova-lite-v1:0", 300_000),
    "llama-3.1-70b": Model("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0", None,
                           "bedrock/meta.llama3-1-70b-instruct-v1:0", 128_000),
    "azure-gpt-4o": Model("azure.ai.openai", "gpt-4o", None, "azure/gpt-4o", 128_000),
    "azure-gpt-4o-mini": Model("azure.ai.openai", "gpt-4o-mini", None, "azure/gpt-4o-mini", 128_000),
    "gemini-2.5-pro": Model("gcp.vertex_ai", "gemini-2.5-pro", "gemini-2.5-pro", "vertex_ai/gemini-2.5-pro",
                            1_048_576, True),
    "gemini-2.5-flash": Model("gcp.vertex_ai", "gemini-2.5-flash", "gemini-2.5-flash", "vertex_ai/gemini-2.5-flash",
                              1_048_576),
    "gemini-2.5-flash-lite": Model("gcp.vertex_ai", "gemini-2.5-flash-lite", "gemini-2.5-flash-lite",
                                   "vertex_ai/gemini-2.5-flash-lite", 1_048_576),
    "gemini-api-flash": Model("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", "gemini/gemini-2.5-flash",
                              1_048_576),
    "mistral-large": Model("mistral_ai", "mistral-large-latest", "mistral-large-latest",
                           "mistral/mistral-large-latest", 262_144),
    "mistral-small": Model("mistral_ai", "mistral-small-latest", "mistral-small-latest",
                           "mistral/mistral-small-latest", 262_144),
    "deepseek-chat": Model("deepseek", "deepseek-chat", "deepseek-chat", "deepseek/deepseek-chat", 131_072),
    # no catalog prices these: they must come out unpriced
    "ft-support": Model("openai", "ft:gpt-4o-mini-2024-07-18:acme:support-v3:A1b2C3d4",
                        "ft:gpt-4o-mini-2024-07-18:acme:support-v3:A1b2C3d4", None, 128_000),
    "acme-router": Model("acme.gateway", "acme-router-v2", None, None, 128_000),
}
CLAUDE = {"sonnet-4.5", "haiku-4.5", "opus-4.5", "sonnet-3.5", "haiku-3.5", "bedrock-sonnet-3.5", "bedrock-haiku-3.5"}


@dataclass(frozen=True)
class Kind:
    """A kind of feature: operation, log-normal input and output tokens (median, sigma, max), the share of
    requests that read a cached prefix, the share in the batch tier, and the mean turns of a conversation (0:
    requests stand alone)."""

    operation: str
    input: tuple[int, float, int]
    output: tuple[int, float, int]
    cached: float
    batch: float
    turns: int


KINDS: dict[str, Kind] = {
    "chat": Kind("chat", (1800, 1.0, 128_000), (320, 0.8, 4096), 0.45, 0.0, 6),
    "rag": Kind("chat", (6500, 0.7, 128_000), (420, 0.7, 4096), 0.35, 0.0, 3),
    "agent": Kind("chat", (16_000, 0.9, 200_000), (850, 0.9, 16_384), 0.70, 0.0, 12),
    "summarise": Kind("chat", (9000, 0.8, 128_000), (480, 0.5, 4096), 0.05, 0.25, 0),
    "classify": Kind("chat", (700, 0.6, 16_000), (12, 0.5, 64), 0.20, 0.0, 0),
    "embed": Kind("embeddings", (380, 0.9, 8191), (0, 0.0, 0), 0.0, 0.0, 0),
    "eval": Kind("chat", (2600, 0.8, 64_000), (650, 0.7, 8192), 0.0, 1.0, 0),
    "longdoc": Kind("chat", (150_000, 0.55, 1_000_000), (1400, 0.6, 8192), 0.20, 0.0, 2),
}

#: Who calls a feature: customers (the product's users, N / 400 of them), staff (a fiftieth of that) or service
#: accounts (a handful), and the share of that pool the feature reaches.
POOLS = {"customer": ("user_", 0), "staff": ("staff_", 1), "service": ("svc_", 2)}

#: Features by popularity rank (weight 1/rank): name, team, kind, audience (pool, share), model mix in percent.
FEATURES: list[tuple[str, str, str, tuple[str, float], dict[str, int]]] = [
    ("support-assistant", "support", "chat", ("customer", 1.0),
     {"gpt-4o-mini": 44, "haiku-4.5": 25, "gpt-4.1-mini": 25, "ft-support": 6}),
    ("search-answers", "search", "rag", ("customer", 1.0),
     {"gpt-4.1-mini": 40, "gemini-2.5-flash": 30, "sonnet-4.5": 15, "gpt-4o": 15}),
    ("doc-embeddings", "search", "embed", ("service", 0.5), {"te3-small": 80, "te3-large": 20}),
    ("code-assistant", "dev-tools", "agent", ("staff", 0.6),
     {"sonnet-4.5": 50, "gpt-4.1": 25, "o4-mini": 15, "bedrock-sonnet-3.5": 10}),
    ("ticket-triage", "support", "classify", ("customer", 0.4), {"gpt-4.1-nano": 60, "gemini-2.5-flash-lite": 40}),
    ("sales-email", "sales", "chat", ("staff", 0.1), {"azure-gpt-4o": 50, "azure-gpt-4o-mini": 50}),
    ("query-embeddings", "search", "embed", ("customer", 1.0), {"te3-small": 100}),
    ("meeting-summary", "sales", "summarise", ("staff", 0.5),
     {"haiku-4.5": 40, "gemini-api-flash": 30, "mistral-small": 30}),
    ("contract-review", "legal", "longdoc", ("staff", 0.02), {"gemini-2.5-pro": 80, "gemini-2.5-flash": 20}),
    ("moderation", "trust-safety", "classify", ("customer", 1.0), {"gpt-4.1-nano": 50, "nova-lite": 50}),
    ("nightly-eval", "research", "eval", ("service", 0.25),
     {"gpt-5": 30, "opus-4.5": 20, "gpt-4.1": 25, "o3-mini": 25}),
    ("analytics-sql", "data-platform", "agent", ("staff", 0.2), {"gpt-5-mini": 60, "deepseek-chat": 40}),
    ("marketing-copy", "marketing", "chat", ("staff", 0.05), {"mistral-large": 40, "gpt-4o": 30, "sonnet-3.5": 30}),
    ("kb-ingest", "data-platform", "embed", ("service", 0.25), {"te3-large": 100}),
    ("invoice-extraction", "finance-ops", "summarise", ("customer", 0.3), {"nova-pro": 50, "bedrock-haiku-3.5": 50}),
    ("internal-router", "platform", "chat", ("staff", 1.0), {"acme-router": 100}),
    ("voice-agent", "support", "chat", ("customer", 0.5), {"gpt-4o-mini": 70, "gemini-2.5-flash-lite": 30}),
    ("research-agent", "research", "agent", ("staff", 0.03), {"o3-mini": 40, "gpt-5": 30, "opus-4.5": 30}),
    ("product-recs", "growth", "rag", ("customer", 1.0), {"gpt-4.1-mini": 50, "llama-3.1-70b": 50}),
    ("onboarding-bot", "growth", "chat", ("customer", 0.2), {"haiku-3.5": 40, "gpt-4o-mini": 60}),
    ("translation", "marketing", "summarise", ("customer", 0.5), {"gemini-2.5-flash-lite": 50, "deepseek-chat": 50}),
    ("fraud-notes", "finance-ops", "classify", ("customer", 0.6), {"gpt-4.1-nano": 100}),
    ("release-notes", "dev-tools", "summarise", ("service", 0.25), {"gpt-4.1-mini": 100}),
    ("pr-review", "dev-tools", "agent", ("staff", 0.4), {"sonnet-4.5": 60, "gpt-5": 40}),
]
ERROR_TYPES = ["rate_limit_exceeded", "timeout", "server_error", "context_length_exceeded"]

#: The measured unit_costs calls: (by, accumulate).
CALLS = {"model-team-day": (["model", "team"], "day"), "team-window": (["team"], "window")}


def pool_sizes(n: int) -> list[int]:
    """Customers, staff and service accounts for n requests (250k, 5k and 8 at 100M)."""
    customers = max(1000, n // 400)
    return [customers, max(50, customers // 50), 8]


def _q(v: str | None) -> str:
    return "NULL" if v is None else "'" + v.replace("'", "''") + "'"


def _u(seed: int, k: int) -> str:
    """SQL: a uniform (0, 1) draw number ``k`` of request ``i``."""
    return f"((CAST(hash(i, {seed}, {k}) % 1000000 AS DOUBLE) + 0.5) / 1e6)"


def _z(seed: int, k: int) -> str:
    """SQL: a standard normal draw (Box-Muller over draws k and k + 1)."""
    return f"(sqrt(-2 * ln({_u(seed, k)})) * cos(2 * pi() * {_u(seed, k + 1)}))"


def day_sizes(n: int) -> list[int]:
    """Requests per day: weekends at 55% of a weekday, 0.4% growth a day; they add up to n."""
    w = [(0.55 if (START + timedelta(days=d)).weekday() >= 5 else 1.0) * 1.004 ** d for d in range(DAYS)]
    cum = [round(n * sum(w[: d + 1]) / sum(w)) for d in range(DAYS)]
    return [c - p for c, p in zip(cum, [0, *cum[:-1]], strict=True)]


def build_lookups(con: duckdb.DuckDBPyConnection, n: int) -> None:
    """Temp tables gen_pick (10,000 slots -> feature, by popularity, with its share, turns and audience) and gen_fm
    (feature x 100 slots -> model, with every attribute a request takes from its feature, kind and model)."""
    weights = [1 / (r + 1) for r in range(len(FEATURES))]
    cum = [round(10000 * sum(weights[: f + 1]) / sum(weights)) for f in range(len(FEATURES))]
    sizes = pool_sizes(n)
    feats = []
    for f, (lo, hi) in enumerate(zip([0, *cum[:-1]], cum, strict=True)):
        _, _, kind, (pool, share), _ = FEATURES[f]
        prefix, p = POOLS[pool]
        feats.append(f"({lo}, {hi}, {f}, {(hi - lo) / 10000!r}, {KINDS[kind].turns}, {_q(prefix)}, "
                     f"{max(1, round(sizes[p] * share))})")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE gen_pick AS
SELECT s AS slot, v.* EXCLUDE (lo, hi) FROM range(10000) r(s)
JOIN (VALUES {", ".join(feats)}) v(lo, hi, f, fw, turns, pool, audience) ON s >= v.lo AND s < v.hi""")
    rows = []
    for f, (name, team, kind, _, mix) in enumerate(FEATURES):
        assert sum(mix.values()) == 100, name
        k, lo = KINDS[kind], 0
        for key, share in mix.items():
            m = MODELS[key]
            rows.append(
                f"({f}, {lo}, {lo + share}, {_q(name)}, {_q(team)}, {_q(k.operation)}, {_q(m.provider)}, "
                f"{_q(m.request)}, {_q(m.response)}, {k.input[0]}, {k.input[1]}, {min(k.input[2], m.context)}, "
                f"{k.output[0]}, {k.output[1]}, {k.output[2]}, {k.cached}, {k.batch}, {str(m.reasoning).lower()}, "
                f"{str(key in CLAUDE).lower()})")
            lo += share
    con.execute(f"""CREATE OR REPLACE TEMP TABLE gen_fm AS
SELECT s AS mslot, v.* EXCLUDE (lo, hi) FROM range(100) r(s) JOIN (VALUES {", ".join(rows)})
  v(f, lo, hi, feature, team, operation, provider, request_model, response_model, in_med, in_sigma, in_max,
    out_med, out_sigma, out_max, cached_p, batch_p, reasoning, claude) ON s >= v.lo AND s < v.hi""")


def hour_weights() -> list[float]:
    """Share of a day's requests in each UTC hour: 70% around 15:00 (normal, sd 3.5 h, wrapped), 30% flat."""
    def cdf(x: float) -> float:
        return sum(0.5 * (1 + math.erf((x + 24 * k - 15) / (3.5 * math.sqrt(2)))) for k in (-1, 0, 1))

    return [0.3 / 24 + 0.7 * (cdf(h + 1) - cdf(h)) / (cdf(24) - cdf(0)) for h in range(24)]


def _seconds_sql(size: int, j: str) -> str:
    """SQL: the second of the day of the day's ``j``-th request (0-based): requests fill each hour evenly in
    order, so a day's rows come out in time order, as a collector delivers them, without a sort."""
    w = hour_weights()
    bounds = [round(size * sum(w[: h + 1])) for h in range(24)]
    cases = []
    for h, (lo, hi) in enumerate(zip([0, *bounds[:-1]], bounds, strict=True)):
        if hi > lo:
            cases.append(f"WHEN {j} < {hi} THEN {h * 3600} + ({j} - {lo}) * {3600 / (hi - lo)!r}")
    return "CASE " + " ".join(cases) + " END" if cases else "0"


def requests_sql(seed: int, i0: int, i1: int, day: int) -> str:
    """SELECT of requests i0..i1 on day ``day`` in ``llm_requests`` column order (lineage included).

    A conversation lives within an hour: the feature's requests of that hour / its kind's turns conversations,
    drawn by u^1.5 (some run long); its user (and model) follow from the conversation, so a conversation is one
    user's on one model. Users are drawn by u^2 from the feature's audience (the top 1% send ~10%)."""
    u, z = (lambda k: _u(seed, k)), (lambda k: _z(seed, k))
    day_ts = START + timedelta(days=day)
    hw = "[" + ", ".join(f"{w!r}" for w in hour_weights()) + "]"
    conv = f"{seed}, f, {day}, CAST(sec // 3600 AS INTEGER), conv_idx"  # a conversation: feature, day, hour, index
    conv_u = f"((CAST(hash({conv}) % 1000000 AS DOUBLE) + 0.5) / 1e6)"
    return f"""
WITH a AS (
  SELECT i, p.*, {_seconds_sql(i1 - i0, f'i - {i0}')} AS sec
  FROM range({i0}, {i1}) r(i) JOIN gen_pick p ON p.slot = CAST(hash(i, {seed}, 1) % 10000 AS INTEGER)
), a2 AS (
  SELECT *, CASE WHEN turns > 0 THEN CAST(floor(greatest(1, round({i1 - i0} * {hw}[CAST(sec // 3600 AS INTEGER) + 1]
              * fw / turns)) * pow({u(9)}, 1.5)) AS BIGINT) END AS conv_idx
  FROM a
), a3 AS (
  SELECT *, CASE WHEN turns > 0 THEN {conv_u} ELSE {u(7)} END AS uu,
         CAST(CASE WHEN turns > 0 THEN hash({conv}, 2)
                   ELSE hash(i, {seed}, 2) END % 100 AS INTEGER) AS mslot
  FROM a2
), b AS (
  SELECT a3.i, a3.sec, a3.turns, a3.conv_idx, a3.pool, fm.*,
    CAST(floor(a3.audience * a3.uu * a3.uu) AS BIGINT) AS user_idx,
    {u(8)} < 0.012 AS failed,
    CAST(least(in_max, greatest(8, round(exp(ln(in_med) + in_sigma * {z(10)})))) AS BIGINT) AS inp,
    CASE WHEN out_med = 0 THEN 0 ELSE CAST(least(out_max, greatest(1, round(exp(ln(out_med) + out_sigma * {z(12)})
         * CASE WHEN reasoning THEN 3 ELSE 1 END))) AS BIGINT) END AS outp
  FROM a3 JOIN gen_fm fm ON fm.f = a3.f AND fm.mslot = a3.mslot
), c AS (
  SELECT *,
    CASE WHEN NOT failed AND inp >= 1024 AND {u(14)} < cached_p
         THEN CAST(floor(inp * (0.3 + 0.65 * {u(15)}) / 128) * 128 AS BIGINT) ELSE 0 END AS cache_read,
    {u(16)} < batch_p AS batch
  FROM b
), d AS (
  SELECT *,
    CASE WHEN claude AND NOT failed AND {u(17)} < 0.10 THEN CAST(floor((inp - cache_read) * (0.2 + 0.6 * {u(18)}))
         AS BIGINT) ELSE 0 END AS cache_write
  FROM c
)
SELECT printf('req_%016x', hash(i, {seed}, 99)) AS request_id, 'otel' AS source,
  TIMESTAMP '{day_ts}' + to_microseconds(CAST(sec * 1000000 AS BIGINT)) AS ts,
  round(CASE WHEN failed THEN 50 + 2000 * {u(19)} ELSE 180 + outp * (8 + 20 * {u(19)}) + inp * 0.02 END, 1)
    AS duration_ms,
  1 AS requests, provider, operation, request_model, CASE WHEN NOT failed THEN response_model END AS response_model,
  CASE WHEN NOT failed THEN inp END AS input_tokens, CASE WHEN NOT failed THEN outp END AS output_tokens,
  CASE WHEN NOT failed AND operation = 'chat' THEN cache_read END AS cache_read_tokens,
  CASE WHEN NOT failed AND claude THEN cache_write END AS cache_write_tokens,
  CASE WHEN NOT failed AND reasoning THEN CAST(floor(outp * (0.4 + 0.45 * {u(20)})) AS BIGINT) END
    AS reasoning_tokens,
  CASE WHEN batch THEN 'batch' WHEN provider = 'openai' THEN 'default' END AS tier,
  CASE WHEN turns > 0 THEN printf('conv_%016x', hash({conv})) END AS conversation_id,
  feature || '-svc' AS service, CASE WHEN {u(21)} < 0.03 THEN 'staging' ELSE 'prod' END AS environment,
  team, feature, printf('%s%06d', pool, user_idx) AS user_id,
  CASE WHEN pool = 'user_' THEN printf('tenant_%03d', hash({seed}, user_idx) % 500) ELSE 'acme' END AS tenant,
  'key-' || team || '-' || CAST(hash(i, {seed}, 22) % 3 AS INTEGER) AS api_key,
  CASE WHEN failed THEN 'error' ELSE 'ok' END AS status,
  CASE WHEN failed THEN {_pick(ERROR_TYPES, f'CAST(hash(i, {seed}, 23) % {len(ERROR_TYPES)} AS INTEGER)')} END
    AS error_type,
  NULL::DECIMAL(38, 12) AS source_cost, printf('%016x%016x', hash(i, {seed}, 97), hash(i, {seed}, 98)) AS trace_id,
  NULL::MAP(VARCHAR, VARCHAR) AS attributes,
  {day + 1} AS _batch_id, 'bench://llm_requests/day-{day + 1:02d}' AS _file, i - {i0} + 1 AS _row
FROM d"""


def _pick(values: list[str], idx: str) -> str:
    """SQL: the value at 0-based ``idx`` of a constant list."""
    return "[" + ", ".join(_q(v) for v in values) + f"][{idx} + 1]"


def store_path(out: Path, n: int, seed: int) -> Path:
    return out / f"llm_{n}_seed{seed}_v{GEN_VERSION}.duckdb"


def generate(db: Path, n: int, seed: int, memory_limit: str) -> dict[str, Any]:
    """Write n requests into a fresh store at ``db`` (via a temporary file, so a killed run leaves no cache)."""
    from aifinops.model.llm import LLM_REQUEST_COLUMNS
    from aifinops.store.connection import Store

    started = time.perf_counter()
    tmp = db.with_name(db.name + ".tmp")
    for p in (tmp, tmp.with_name(tmp.name + ".wal")):
        p.unlink(missing_ok=True)
    st = Store(tmp, memory_limit=memory_limit)
    con = st.con
    build_lookups(con, n)
    cols = ", ".join(f'"{c}"' for c in (*LLM_REQUEST_COLUMNS, "_batch_id", "_file", "_row"))
    batch = ("INSERT INTO batches (batch_id, source_kind, status, fingerprint, started_at, seconds, rows_read, "
             "rows_loaded, rows_quarantined, note) VALUES (?, 'otel', 'loaded', ?, now()::TIMESTAMP, 0, ?, ?, 0, "
             "'bench')")
    i0 = 0
    for day, size in enumerate(day_sizes(n)):
        with st.transaction():  # a day at a time: bounded memory, and one batch a day as a collector would send
            con.execute(f"INSERT INTO llm_requests ({cols}) {requests_sql(seed, i0, i0 + size, day)}")
            con.execute(batch, [day + 1, f"bench-{seed}-requests-{day}", size, size])
        i0 += size
        if day % 5 == 4 or day == DAYS - 1:
            print(f"  day {day + 1}/{DAYS}: {i0:,} requests, {time.perf_counter() - started:.0f}s", file=sys.stderr)
    info = {"seconds": time.perf_counter() - started, "requests": n, "seed": seed,
            "pools": dict(zip(POOLS, pool_sizes(n), strict=True)),
            "features": len(FEATURES), "models": len(MODELS), "duckdb": duckdb.__version__, "peak_mb": _peak_mb()}
    info.update(shape(con))
    con.execute("INSERT INTO meta VALUES ('bench_generation', ?)", [json.dumps(info, default=str)])
    con.execute("CHECKPOINT")
    st.close()
    tmp.replace(db)
    return info


def shape(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the generated traffic looks like (shares, percentiles), for the report."""
    row = con.execute("""
SELECT count(*), count(DISTINCT team), count(DISTINCT feature), count(DISTINCT coalesce(response_model, request_model)),
  avg((tier = 'batch')::INT), avg((cache_read_tokens > 0)::INT), avg((cache_write_tokens > 0)::INT),
  avg((status = 'error')::INT), sum((input_tokens > 200000)::INT),
  approx_quantile(input_tokens, [0.5, 0.9, 0.99]), approx_quantile(output_tokens, [0.5, 0.9, 0.99]),
  sum(input_tokens), sum(output_tokens), count(DISTINCT user_id), count(DISTINCT conversation_id),
  count(conversation_id) / count(DISTINCT conversation_id)
FROM llm_requests""").fetchone()
    assert row is not None
    return {"rows": row[0], "teams": row[1], "features_seen": row[2], "priced_model_names": row[3],
            "batch_share": row[4], "cache_read_share": row[5], "cache_write_share": row[6], "error_share": row[7],
            "above_200k": row[8], "input_p50_p90_p99": row[9], "output_p50_p90_p99": row[10],
            "input_tokens": row[11], "output_tokens": row[12], "users": row[13], "conversations": row[14],
            "turns_per_conversation": row[15]}


# -- measurement -------------------------------------------------------------------------------------------------


_peak_mb = harness.peak_mb


def top_operators(profile: Path, n: int = 10) -> list[tuple[float, str, int, str]]:
    """The ``n`` costliest operators of a DuckDB JSON profile: (CPU seconds, operator, rows out, what)."""
    ops: list[tuple[float, str, int, str]] = []

    def walk(node: dict[str, Any]) -> None:
        info = node.get("extra_info") if isinstance(node.get("extra_info"), dict) else {}
        what = info.get("Table") or info.get("CTE Name") or info.get("Groups") or info.get("Conditions") or ""
        ops.append((round(node.get("timing", 0.0), 2), node.get("name", ""), node.get("intermediate_rows", 0),
                    str(what)[:90]))
        for c in node.get("children", []):
            walk(c)

    for root in json.loads(profile.read_text()).get("operator", []):
        walk(root)
    return sorted(ops, reverse=True)[:n]


def _open(db: Path, memory_limit: str) -> Any:
    from aifinops.store.connection import Store, StoreError

    try:
        return Store(db, read_only=True, memory_limit=memory_limit)
    except StoreError:  # a cached store from before a schema migration: migrate it once, as the CLI would ask
        Store(db, memory_limit=memory_limit).close()
        return Store(db, read_only=True, memory_limit=memory_limit)


def run_query(db: Path, step: str, memory_limit: str, profile: bool) -> dict[str, Any]:
    """One timed call on the read-only store: a unit_costs call of CALLS, or the per-request total."""
    from aifinops.analysis.llm_costs import costed_sql
    from aifinops.analysis.unit_costs import unit_costs
    from aifinops.analysis.windows import Window
    from aifinops.config import Settings

    st = _open(db, memory_limit)
    window = Window(START, START + timedelta(days=DAYS))
    requests = st.con.execute("SELECT count(*) FROM llm_requests").fetchone()[0]
    prof = db.with_name(f"profile_{os.getpid()}.json")
    if profile:
        st.con.execute("SET enable_profiling = 'json'")
        st.con.execute(f"SET profiling_output = '{prof}'")
    report: dict[str, Any] = {"step": step, "requests": requests}
    started = time.perf_counter()
    if step == "per-request":
        sql = (f"SELECT sum(cost), count(*) FILTER (WHERE NOT priced), sum(requests) FROM "
               f"({costed_sql(st.con, Settings().llm)})")
        cost, unpriced, n = st.con.execute(sql, {"start": window.start, "end": window.end}).fetchone()
        report.update(seconds=time.perf_counter() - started, rows=1, cost=str(cost), unpriced_requests=unpriced,
                      counted=n)
    else:
        by, accumulate = CALLS[step]
        rows = unit_costs(st.con, window, by, accumulate=accumulate)
        report.update(seconds=time.perf_counter() - started, rows=len(rows),
                      cost=str(sum((r["cost"] for r in rows), Decimal(0))),
                      unpriced_requests=sum(r["unpricedRequests"] for r in rows),
                      unpriced_tokens=sum(r["unpricedTokens"] for r in rows),
                      counted=sum(r["requests"] for r in rows),
                      days=len({r["start"] for r in rows}) if accumulate == "day" else None,
                      groups=len({tuple(r[b] for b in by) for r in rows}))
        if step == "team-window":
            report["teams"] = {str(r["team"]): {"cost": str(r["cost"]), "requests": r["requests"],
                                                "activeUsers": r["activeUsers"], "conversations": r["conversations"],
                                                "unpricedRequests": r["unpricedRequests"]} for r in rows}
    if profile:
        st.con.execute("SET enable_profiling = 'no_output'")
        report["operators"] = top_operators(prof)
        prof.unlink(missing_ok=True)
    st.close()
    return {**report, "peak_mb": _peak_mb()}


# -- LiteLLM comparison -----------------------------------------------------------------------------------------

SAMPLE_COLUMNS = ("request_id", "source", "ts", "requests", "provider", "operation", "request_model", "response_model",
                  "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                  "tier", "team", "feature", "user_id", "status")

#: The LiteLLM child: runs in the throwaway venv (litellm, pyarrow; tokencost optional), not in aifinops's.
LITELLM_CHILD = r'''
import json, os, sys, time
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # the price table of the installed release, no download
import pyarrow as pa, pyarrow.parquet as pq
sample, out = sys.argv[1], sys.argv[2]
t = pq.read_table(sample).to_pydict()
rows = list(zip(t["request_id"], t["litellm_model"], t["input_tokens"], t["output_tokens"], t["cache_read_tokens"],
                t["cache_write_tokens"]))
started = time.perf_counter()
import litellm
import_s = time.perf_counter() - started
costs, errors = [], []
started = time.perf_counter()
for rid, model, inp, outp, cr, cw in rows:
    try:
        p, c = litellm.cost_per_token(model=model, prompt_tokens=inp, completion_tokens=outp,
                                      cache_read_input_tokens=cr or 0, cache_creation_input_tokens=cw or 0)
        costs.append(p + c); errors.append(None)
    except Exception as exc:
        costs.append(None); errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
seconds = time.perf_counter() - started
import importlib.metadata as md
report = {"litellm": md.version("litellm"), "import_seconds": import_s,
          "seconds": seconds, "requests": len(rows), "errors": sum(e is not None for e in errors)}
cols = {"request_id": [r[0] for r in rows], "litellm_cost": costs, "litellm_error": errors}
try:
    import tokencost, tokencost.constants as tcc
    backup = os.path.join(os.path.dirname(litellm.__file__), "model_prices_and_context_window_backup.json")
    with open(backup) as f:  # the same price table as litellm's (tokencost ships an older copy of its own)
        table = json.load(f)
    table.pop("sample_spec", None)
    tcc.TOKEN_COSTS.clear(); tcc.TOKEN_COSTS.update(table)
    calc = tokencost.calculate_cost_by_tokens
    tc = []
    started = time.perf_counter()
    for rid, model, inp, outp, cr, cw in rows:
        try:
            cr = cr or 0
            key = tokencost.costs._normalize_model_for_pricing(model)
            cached = calc(cr, model, "cached") if cr and "cache_read_input_token_cost" in tcc.TOKEN_COSTS.get(key, {}) \
                else calc(cr, model, "input")
            tc.append(float(calc(inp - cr, model, "input") + cached + calc(outp, model, "output")))
        except Exception:
            tc.append(None)
    report["tokencost_seconds"] = time.perf_counter() - started
    report["tokencost_errors"] = sum(x is None for x in tc)
    report["tokencost"] = md.version("tokencost")
    cols["tokencost_cost"] = tc
except ImportError:
    pass
pq.write_table(pa.table(cols), out)
status = open("/proc/self/status").read().splitlines() if os.path.exists("/proc/self/status") else []
report["peak_mb"] = next((int(x.split()[1]) for x in status if x.startswith("VmHWM:")), 0) / 1024
print(json.dumps(report))
'''


def litellm_venv(out: Path) -> tuple[Path | None, str]:
    """The throwaway venv's python with litellm==LITELLM_VERSION and pyarrow (tokencost if it installs), made
    once in ``out/litellm-venv``; (None, why) when it cannot be made (no network, pip failing)."""
    venv = out / "litellm-venv"
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import importlib.metadata as m, pyarrow; print(m.version('litellm'))"]
    if py.exists():
        got = subprocess.run(check, capture_output=True, text=True)
        if got.returncode == 0 and got.stdout.strip() == LITELLM_VERSION:
            return py, ""
    print(f"creating {venv} (pip install litellm=={LITELLM_VERSION} pyarrow tokencost) ...", file=sys.stderr)
    steps = [[os.environ.get("PYTHON", "python3.11"), "-m", "venv", str(venv)],
             [str(py), "-m", "pip", "install", "-q", f"litellm=={LITELLM_VERSION}", "pyarrow"]]
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(cmd[:4])} failed: {exc}"
        if proc.returncode != 0:
            return None, f"{' '.join(cmd[:4])} failed: {(proc.stderr or proc.stdout).strip()[-500:]}"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "tokencost"], capture_output=True, timeout=900)
    return py, ""


def make_sample(db: Path, out: Path, size: int, seed: int) -> tuple[Path, int]:
    """A deterministic sample of ``size`` requests LiteLLM can price (a model it knows, standard tier, with
    usage), as Parquet beside the store (cached); returns the path and its row count."""
    path = db.with_name(db.stem + f"_sample{size}.parquet")
    if not path.exists():
        names = ", ".join(f"({_q(m.provider)}, {_q(m.request)}, {_q(m.litellm)})" for m in MODELS.values() if m.litellm)
        cols = ", ".join(f"r.{c}" for c in SAMPLE_COLUMNS)
        with duckdb.connect(str(db), read_only=True) as con:
            con.execute("SET memory_limit = '1GB'")
            con.execute(f"""COPY (
  SELECT {cols}, n.litellm_model FROM llm_requests r
  JOIN (VALUES {names}) n(provider, request_model, litellm_model) USING (provider, request_model)
  WHERE r.input_tokens IS NOT NULL AND coalesce(r.tier, 'default') IN ('default', 'standard')
  ORDER BY hash(r.request_id, {seed}) LIMIT {size}
) TO '{path}' (FORMAT parquet)""")
    with duckdb.connect() as con:
        return path, con.execute(f"SELECT count(*) FROM '{path}'").fetchone()[0]


def run_sample_aifinops(sample: Path, db: Path, dump: Path) -> dict[str, Any]:
    """aifinops prices the sample: a fresh store holding just it, then ``costed_sql`` to Arrow, timed twice in this
    process (cold: the first call reads and normalises the bundled catalogs; warm: a second call)."""
    started = time.perf_counter()
    from aifinops.analysis.llm_costs import costed_sql
    from aifinops.analysis.windows import Window
    from aifinops.config import Settings
    from aifinops.store.connection import Store

    import_s = time.perf_counter() - started
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    st = Store(db)
    cols = ", ".join(SAMPLE_COLUMNS)
    st.con.execute(f"INSERT INTO llm_requests ({cols}, _batch_id, _file, _row) SELECT {cols}, 1, 'sample', "
                   f"row_number() OVER () FROM read_parquet('{sample}')")
    window = Window(START, START + timedelta(days=DAYS))
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        sql = (f"SELECT request_id, cost, priced, price_catalog, price_model, price_tier, price_above_tokens "
               f"FROM ({costed_sql(st.con, Settings().llm)})")
        table = st.con.execute(sql, {"start": window.start, "end": window.end}).to_arrow_table()
        runs.append(time.perf_counter() - started)
    n = table.num_rows
    st.con.register("priced_sample", table)
    st.con.execute(f"COPY priced_sample TO '{dump}' (FORMAT parquet)")
    st.close()
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    return {"requests": n, "import_seconds": import_s, "cold_seconds": runs[0], "seconds": runs[1],
            "peak_mb": _peak_mb()}


def compare_sample(sample: Path, ours: Path, theirs: Path) -> dict[str, Any]:
    """Request by request: aifinops's exact cost against LiteLLM's float (and tokencost's): largest difference,
    totals, how many differ by more than 1e-9 relative, and why (grouped by model, price row and token shape)."""
    con = duckdb.connect()
    con.execute(f"""CREATE TEMP TABLE j AS
SELECT s.*, a.cost, a.priced, a.price_catalog, a.price_model, a.price_tier, a.price_above_tokens, l.litellm_cost,
       l.litellm_error, {'l.tokencost_cost' if 'tokencost_cost' in _parquet_columns(con, theirs) else 'NULL'}
         AS tokencost_cost
FROM read_parquet('{sample}') s JOIN read_parquet('{ours}') a USING (request_id)
JOIN read_parquet('{theirs}') l USING (request_id)""")
    out: dict[str, Any] = {}
    for other in ("litellm", "tokencost"):
        c = f"{other}_cost"
        if con.execute(f"SELECT count({c}) FROM j").fetchone()[0] == 0:
            continue
        rel = f"abs(CAST(cost AS DOUBLE) - {c}) / greatest(abs(CAST(cost AS DOUBLE)), abs({c}), 1e-300)"
        row = con.execute(f"""
SELECT count(*), count(*) FILTER (WHERE cost IS NULL), count(*) FILTER (WHERE {c} IS NULL),
  max(abs(CAST(cost AS DOUBLE) - {c})), sum(cost), sum({c}),
  count(*) FILTER (WHERE {rel} > 1e-9 OR (cost IS NULL) <> ({c} IS NULL)),
  sum(cost) FILTER (WHERE {c} IS NOT NULL)
FROM j""").fetchone()
        ours_total, theirs_total = row[4] or Decimal(0), row[5] or 0.0
        reasons = con.execute(f"""
SELECT litellm_model, price_model, price_tier, price_above_tokens, input_tokens > 200000 AS above_200k,
  cache_read_tokens > 0 AS cache_read, coalesce(cache_write_tokens, 0) > 0 AS cache_write, count(*) AS n,
  sum(CAST(cost AS DOUBLE) - {c}) AS diff,
  arg_max([input_tokens, output_tokens, cache_read_tokens, coalesce(cache_write_tokens, 0)], request_id) AS tokens,
  arg_max(CAST(cost AS DOUBLE), request_id) AS ours, arg_max({c}, request_id) AS theirs
FROM j WHERE cost IS NULL OR {c} IS NULL OR {rel} > 1e-9 GROUP BY ALL ORDER BY n DESC LIMIT 12""").fetchall()
        out[other] = {
            "requests": row[0], "aifinops_unpriced": row[1], "unpriced": row[2], "max_abs_diff": row[3],
            "aifinops_total": str(ours_total), "total": theirs_total,
            "total_diff": float(row[7] or 0) - theirs_total, "disagree": row[6],
            "reasons": [{"model": r[0], "aifinops_row": r[1], "tier": r[2], "above_tokens": r[3],
                         "above_200k": r[4], "cache_read": r[5], "cache_write": r[6], "requests": r[7],
                         "diff": r[8], "example_tokens": r[9], "example_aifinops": r[10], "example_other": r[11]}
                        for r in reasons],
        }
    errors = con.execute("SELECT litellm_error, count(*) FROM j WHERE litellm_error IS NOT NULL GROUP BY 1 "
                         "ORDER BY 2 DESC LIMIT 5").fetchall()
    out["litellm_errors"] = [list(e) for e in errors]
    out["models"] = con.execute("SELECT count(DISTINCT litellm_model) FROM j").fetchone()[0]
    out["with_cache_read"] = con.execute("SELECT count(*) FILTER (WHERE cache_read_tokens > 0) FROM j").fetchone()[0]
    out["above_200k"] = con.execute("SELECT count(*) FILTER (WHERE input_tokens > 200000) FROM j").fetchone()[0]
    con.close()
    return out


def _parquet_columns(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}


# -- driver ------------------------------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> dict[str, Any]:
    step, db, extra = args.child[0], Path(args.child[1]), args.child[2]
    if step == "generate":
        n, seed = (int(x) for x in extra.split(","))
        return generate(db, n, seed, args.memory_limit)
    if step == "sample":
        sample, dump = extra.split(",")
        return run_sample_aifinops(Path(sample), db, Path(dump))
    return run_query(db, step, args.memory_limit, args.profile)


def run_child(step: str, db: Path, extra: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step in a fresh interpreter (``harness.run_child``); returns its JSON report."""
    return harness.run_child(str(Path(__file__).resolve()), [step, str(db), extra], args.memory_limit, args.profile,
                             show_stderr=step == "generate")


def ensure(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The cached store (generated in a child when missing or --regen) and its generation info."""
    db = store_path(args.out, args.requests, args.seed)
    fresh = not db.exists() or args.regen
    if fresh:
        args.out.mkdir(parents=True, exist_ok=True)
        for p in db.parent.glob(db.stem + "_sample*.parquet"):
            p.unlink()
        print(f"generating {db.name} ...", file=sys.stderr)
        info = run_child("generate", db, f"{args.requests},{args.seed}", args)
        print(f"generated {db.name} in {info['seconds']:.0f}s, peak RSS {info['peak_mb']:.0f} MB", file=sys.stderr)
    else:
        with duckdb.connect(str(db), read_only=True) as con:
            info = json.loads(con.execute("SELECT value FROM meta WHERE key = 'bench_generation'").fetchone()[0])
    return db, {**info, "cached": not fresh, "bytes": db.stat().st_size}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the highest peak RSS of all and every run's seconds."""
    fast = min(runs, key=lambda r: r["seconds"])
    return {**fast, "peak_mb": max(r["peak_mb"] for r in runs), "all_seconds": [round(r["seconds"], 3) for r in runs]}


def litellm_step(db: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The sample priced by LiteLLM (throwaway venv) and by aifinops, --repeat times each; speed and agreement."""
    py, why = litellm_venv(args.out)
    if py is None:
        print(f"LiteLLM comparison skipped: {why}", file=sys.stderr)
        return {"skipped": why}
    sample, n = make_sample(db, args.out, args.sample, args.seed)
    ours = args.out / f"sample_aifinops_{os.getpid()}.parquet"
    theirs = args.out / f"sample_litellm_{os.getpid()}.parquet"
    scratch = args.out / f"sample_store_{os.getpid()}.duckdb"
    runs: dict[str, list[dict[str, Any]]] = {"aifinops": [], "litellm": []}
    try:
        for _ in range(args.repeat):
            runs["aifinops"].append(run_child("sample", scratch, f"{sample},{ours}", args))
            proc = subprocess.run([str(py), "-c", LITELLM_CHILD, str(sample), str(theirs)], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                return {"skipped": f"the LiteLLM child failed: {proc.stderr[-1500:]}"}
            runs["litellm"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        agreement = compare_sample(sample, ours, theirs)
    finally:
        for p in (ours, theirs):
            p.unlink(missing_ok=True)
    a, lt = best(runs["aifinops"]), best(runs["litellm"])
    res: dict[str, Any] = {"sample": str(sample), "requests": n, "aifinops": a, "litellm": lt,
                           "agreement": agreement, "ratio": lt["seconds"] / a["seconds"],
                           "ratio_cold": lt["seconds"] / a["cold_seconds"]}
    if "tokencost_seconds" in lt:
        tc = min(r["tokencost_seconds"] for r in runs["litellm"])
        res["tokencost"] = {"seconds": tc, "requests_per_s": n / tc, "ratio": tc / a["seconds"]}
    return res


def show(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    g = res["generation"]
    table = Table(title=f"inference benchmark, {g['requests']:,} requests x {DAYS} days, {g['models']} models, "
                        f"{g['features']} features, {os.cpu_count()} cores, duckdb {duckdb.__version__}")
    for col in ("step", "rows out", "seconds", "requests/s", "peak RSS MB", "runs (s)"):
        table.add_column(col, justify="left" if col == "step" else "right", no_wrap=True)
    table.add_row(f"generate ({'cached; ' if g['cached'] else ''}first run)", f"{g['requests']:,}",
                  f"{g['seconds']:.1f}", f"{g['requests'] / g['seconds']:,.0f}",
                  f"{g.get('peak_mb', 0):.0f}" if not g["cached"] else "", "")
    names = {"model-team-day": 'unit_costs(["model", "team"], accumulate="day")',
             "team-window": 'unit_costs(["team"]) (window, exact distinct users)',
             "per-request": "sum of costed_sql (every request priced)"}
    for step, r in res["steps"].items():
        table.add_row(names[step], f"{r['rows']:,}", f"{r['seconds']:.2f}", f"{r['requests'] / r['seconds']:,.0f}",
                      f"{r['peak_mb']:.0f}", " ".join(f"{s:.1f}" for s in r["all_seconds"]))
    lt = res.get("litellm", {})
    if "skipped" not in lt:
        a, ll = lt["aifinops"], lt["litellm"]
        table.add_row(f"sample: aifinops costed_sql (cold {a['cold_seconds']:.2f} s)", f"{a['requests']:,}",
                      f"{a['seconds']:.3f}", f"{a['requests'] / a['seconds']:,.0f}", f"{a['peak_mb']:.0f}",
                      " ".join(f"{s:.2f}" for s in a["all_seconds"]))
        table.add_row(f"sample: litellm.cost_per_token (import {ll['import_seconds']:.1f} s)", f"{ll['requests']:,}",
                      f"{ll['seconds']:.2f}", f"{ll['requests'] / ll['seconds']:,.0f}", f"{ll['peak_mb']:.0f}",
                      " ".join(f"{s:.2f}" for s in ll["all_seconds"]))
        if tc := lt.get("tokencost"):
            table.add_row("sample: tokencost (same price table)", f"{ll['requests']:,}", f"{tc['seconds']:.3f}",
                          f"{tc['requests_per_s']:,.0f}", "", "")
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    c = res["check"]
    console.print(f"daily rows' cost ${Decimal(c['daily_total']):,.2f} = window total: "
                  f"{'yes' if c['daily_equals_window'] else 'NO'}; = per-request total: "
                  f"{ {True: 'yes', False: 'NO', None: 'not run'}[c['per_request_equal']]}; unpriced requests "
                  f"{c['unpriced_requests']:,} ({c['unpriced_share']:.1%}), never costed")
    if "skipped" in lt:
        console.print(f"[yellow]LiteLLM comparison skipped: {lt['skipped']}")
    else:
        ag = lt["agreement"]["litellm"]
        console.print(f"LiteLLM / aifinops on the {lt['requests']:,}-request sample: {lt['ratio']:,.0f}x "
                      f"(aifinops cold {lt['ratio_cold']:,.0f}x); totals ${Decimal(ag['aifinops_total']):,.4f} vs "
                      f"${ag['total']:,.4f} (difference {ag['total_diff']:.2e}), largest per-request difference "
                      f"{ag['max_abs_diff']:.2e}, {ag['disagree']:,} requests differ by more than 1e-9 relative")
        for r in ag["reasons"]:
            console.print(f"  {r['requests']:>6,}  {r['model']}: aifinops row {r['aifinops_row']} ({r['tier']}, "
                          f"above {r['above_tokens']}), tokens in/out/cache-read/write {r['example_tokens']}: "
                          f"{r['example_aifinops']} vs {r['example_other']}", markup=False, highlight=False)
        if tc := lt["agreement"].get("tokencost"):
            kind = {(True, False): "above 200k", (True, True): "above 200k", (False, True): "cache write"}
            why = "; ".join(f"{r['model']} ({kind.get((r['above_200k'], r['cache_write']), 'other')}): "
                            f"{r['requests']:,}" for r in tc["reasons"][:4])
            console.print(f"tokencost (same table): {tc['disagree']:,} requests differ, total ${tc['total']:,.2f} vs "
                          f"${Decimal(tc['aifinops_total']):,.2f}; largest: {why}", markup=False, highlight=False)
    for step, r in res["steps"].items():
        if ops := r.get("operators"):
            console.print(f"\n[bold]{step}: costliest operators (CPU seconds, all threads)")
            for secs, name, rows, what in ops:
                console.print(f"  {secs:7.2f}s  {name:<22} {rows:>13,} rows  {what}", markup=False, highlight=False)
    t, d = res["targets"], res["steps"]["model-team-day"]["all_seconds"]
    console.print(f"target <= {TIME_TARGET_S:.0f} s for the daily unit economics: "
                  f"{'met' if t['model-team-day'] else 'MISSED'} by the fastest run ({min(d):.1f} s; all runs "
                  f"{min(d):.1f}-{max(d):.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000_000, help="requests to generate (default 100M)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sample", type=int, default=100_000, help="requests of the LiteLLM sample (default 100k)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    for flag, text in (("--regen", "regenerate the store even if cached"), ("--json", "print JSON results"),
                       ("--no-litellm", "skip the LiteLLM comparison"),
                       ("--no-per-request", "skip the per-request total (every request priced on its own)"),
                       ("--profile", "profile the queries (slower): top operators")):
        ap.add_argument(flag, action="store_true", help=text)
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit of the store (as the CLI)")
    ap.add_argument("--repeat", type=int, default=1, help="run the steps this many times; keep the fastest run")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # STEP DB EXTRA: how run_child runs a step
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args), default=str))
        return
    db, gen = ensure(args)
    steps = [*CALLS, *([] if args.no_per_request else ["per-request"])]
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in steps}
    for _ in range(args.repeat):  # interleaved, so that a slow spell of a shared machine hits every step
        for step in steps:
            runs[step].append(run_child(step, db, "", args))
            print(f"{step}: {runs[step][-1]['seconds']:.2f}s, {runs[step][-1]['peak_mb']:.0f} MB", file=sys.stderr)
    res: dict[str, Any] = {"requests": gen["requests"], "store": str(db), "generation": gen,
                           "steps": {s: best(rs) for s, rs in runs.items()}}
    day, win = res["steps"]["model-team-day"], res["steps"]["team-window"]
    per = res["steps"].get("per-request")
    res["check"] = {
        "daily_total": day["cost"], "window_total": win["cost"],
        "per_request_total": per["cost"] if per else None,
        "daily_equals_window": Decimal(day["cost"]) == Decimal(win["cost"]),
        "per_request_equal": Decimal(per["cost"]) == Decimal(day["cost"]) if per else None,
        "unpriced_requests": day["unpriced_requests"], "window_unpriced_requests": win["unpriced_requests"],
        "unpriced_share": day["unpriced_requests"] / day["requests"],
        "requests_counted": [day["counted"], win["counted"], day["requests"]],
    }
    res["targets"] = {"model-team-day": day["seconds"] <= TIME_TARGET_S}
    res["litellm"] = {"skipped": "--no-litellm"} if args.no_litellm else litellm_step(db, args)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        show(res)


if __name__ == "__main__":
    main()
