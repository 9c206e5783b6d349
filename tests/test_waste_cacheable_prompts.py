"""``cacheable-prompts``: repeated prompts (a response cache) and shared long prefixes without prompt caching, from
the prompt fingerprints; the same from OTel spans and LiteLLM spend logs that carry the prompt.

Prices are the bundled catalog's: gpt-4o $2.50 / $10 per 1M input / output tokens; claude-3-5-sonnet $3 input,
$15 output, $0.30 cache read, $3.75 cache write."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from waste_fixtures import T0, add_requests, findings, window
from waste_llm_sources import litellm_rows, otel_spans

from aifinops.store.connection import Store

RULE = "cacheable-prompts"
MONTH = Decimal("730.5") / Decimal(24)
CLAUDE = {"provider": "anthropic", "request_model": "claude-3-5-sonnet-20241022"}


def claude(minutes: list[float], prompts: list[str], prefix_tokens: int = 25_000, **extra: Any) -> list[dict]:
    """Claude calls of 30,000 input (a 25,000-token shared prefix) and 1,000 output tokens: $0.105 each."""
    return [{**CLAUDE, "ts": T0 + timedelta(hours=5, minutes=m), "input_tokens": 30_000, "output_tokens": 1_000,
             "feature": "support", "team": "cx", "prompt_hash": p, "prefix_hash": "sys-support",
             "prefix_tokens": prefix_tokens, **extra} for m, p in zip(minutes, prompts, strict=True)]


def faq(hours: list[float], prompt: str = "same-question") -> list[dict]:
    """gpt-4o calls of 20,000 input and 5,000 output tokens: $0.05 + $0.05 = $0.10 each."""
    return [{"ts": T0 + timedelta(hours=h), "provider": "openai", "request_model": "gpt-4o", "input_tokens": 20_000,
             "output_tokens": 5_000, "feature": "faq", "prompt_hash": prompt} for h in hours]


def test_repeated_prompts_and_a_shared_prefix(store: Store) -> None:
    """faq: one prompt 5 times, an hour apart (within the 24 h TTL): 4 repeats x $0.10 = $0.40, x 730.5 / 24 =
    $12.175 a month (medium: a response cache). support: 10 prompts sharing a 25,000-token prefix, a minute apart:
    9 warm x 25,000 x (3 - 0.30) x 1e-6 = $0.6075, minus 1 write x 25,000 x (3.75 - 3) x 1e-6 = $0.01875:
    $0.58875, x 730.5 / 24 = $17.92 a month (high: prompt caching)."""
    add_requests(store.con, [*faq([0, 1, 2, 3, 4]), *claude(list(range(10)), [f"q{i}" for i in range(10)])])
    by = {f.scope: f for f in findings(store.con, window(24), RULE).findings}
    assert set(by) == {"openai/gpt-4o/faq", "anthropic/claude-3-5-sonnet-20241022/support"}
    f = by["openai/gpt-4o/faq"]
    assert f.monthly_saving == Decimal("0.4") * MONTH and f.confidence == "medium"
    assert (f.evidence["response_cache_hits"], f.evidence["repeated_prompts"], f.evidence["shared_prefixes"]) == (
        4, 1, 0)
    assert "cache responses: 4 of 5 request(s) repeated one of 1 prompt(s) within 24 h" in f.recommendation
    assert (f.pool, f.scope_kind) == ("llm:openai/gpt-4o/faq", "feature")
    s = by["anthropic/claude-3-5-sonnet-20241022/support"]
    assert s.monthly_saving == Decimal("0.58875") * MONTH and s.confidence == "high" and s.owner == "cx"
    assert (s.evidence["prefix_cache_reads"], s.evidence["prefix_cache_writes"]) == (9, 1)
    assert s.evidence["prefix_write_premium_in_window"] == Decimal("0.01875")
    assert "~25,000-token prefix" in s.recommendation and "cache_control" in s.recommendation
    assert s.monthly_cost == Decimal("1.05") * MONTH == s.pool_cost


def test_a_response_cache_and_prompt_caching_in_one_pool_never_count_a_request_twice(store: Store) -> None:
    """Minutes 0..5 with prompts q0 q1 q2 q0 q0 q3: the two repeats of q0 are answered by a response cache (2 x
    $0.105 = $0.21) and never reach the provider; of the 4 left (minutes 0, 1, 2, 5) 3 read the prefix: 3 x
    $0.0675 - $0.01875 = $0.18375. Total $0.39375 x 730.5 / 24; medium (the response cache is the larger part)."""
    add_requests(store.con, claude([0, 1, 2, 3, 4, 5], ["q0", "q1", "q2", "q0", "q0", "q3"]))
    [f] = findings(store.con, window(24), RULE).findings
    assert f.monthly_saving == Decimal("0.39375") * MONTH and f.confidence == "medium"
    e = f.evidence
    assert (e["response_cache_hits"], e["prefix_cache_reads"], e["prefix_cache_writes"]) == (2, 3, 1)
    assert e["response_cache_saving_in_window"] == Decimal("0.21")


def test_silent_below_each_threshold(store: Store) -> None:
    """A prompt seen twice (< 3); prefix requests 10 min apart (> 5 min: every one writes); a 900-token prefix
    (< 1,024); a prefix group that already reads from the cache."""
    add_requests(store.con, [
        *faq([0, 1]),
        *claude([0, 10, 20, 30], ["a0", "a1", "a2", "a3"]),
        *[{**r, "prefix_hash": "short"} for r in claude([40, 41, 42], ["b0", "b1", "b2"], prefix_tokens=900)],
        *[{**r, "prefix_hash": "on", "cache_read_tokens": 25_000 if i else 0}
          for i, r in enumerate(claude([50, 51, 52], ["c0", "c1", "c2"]))]])
    assert findings(store.con, window(24), RULE, min_monthly_saving=0).findings == []


def test_thresholds_are_options(store: Store) -> None:
    """min_repeats 2: the faq prompt seen twice saves one call, $0.10. prompt_cache_ttl_minutes 15: the requests 10
    min apart are warm (3 x $0.0675 - $0.01875 = $0.18375). min_prefix_tokens 800: the 900-token prefix counts
    (2 warm x 900 x 2.7e-6 - 900 x 0.75e-6 = $0.00418500)."""
    add_requests(store.con, [*faq([0, 1]), *claude([0, 10, 20, 30], ["a0", "a1", "a2", "a3"]),
                             *[{**r, "prefix_hash": "short", "feature": "tiny"}
                               for r in claude([40, 41, 42], ["b0", "b1", "b2"], prefix_tokens=900)]])
    [f] = findings(store.con, window(24), RULE, min_monthly_saving=0, min_repeats=2).findings
    assert f.scope == "openai/gpt-4o/faq" and f.monthly_saving == Decimal("0.1") * MONTH
    [f] = findings(store.con, window(24), RULE, min_monthly_saving=0, prompt_cache_ttl_minutes=15).findings
    assert f.scope.endswith("/support") and f.monthly_saving == Decimal("0.18375") * MONTH
    [f] = findings(store.con, window(24), RULE, min_monthly_saving=0, min_prefix_tokens=800).findings
    assert f.scope.endswith("/tiny") and f.monthly_saving == Decimal("0.004185") * MONTH


def test_skipped_without_fingerprints(store: Store) -> None:
    res = findings(store.con, window(24), RULE)
    assert [s.rule for s in res.skipped] == [RULE] and "no LLM requests" in res.skipped[0].reason
    add_requests(store.con, [{**r, "prompt_hash": None} for r in faq([0, 1, 2])])
    res = findings(store.con, window(24), RULE)
    assert res.findings == [] and len(res.skipped) == 1
    reason = res.skipped[0].reason
    assert reason.startswith("no prompt fingerprints") and all(s in reason for s in ("otel", "litellm", "llm-usage"))


def test_from_otel_spans_with_content_capture(store: Store, tmp_path: Path) -> None:
    """SDK-written Claude spans with a ~1,500-token system prompt (gen_ai.system_instructions) and their own
    question, a minute apart, then one question asked three times an hour apart: the source's fingerprints drive
    both parts. Expected numbers use the prefix size the source stored (its characters / 4)."""
    system = json.dumps([{"type": "text", "content": "You answer billing questions for Acme. " * 150}])

    def span(ts: Any, question: str) -> dict[str, Any]:
        return {"ts": ts, "model": "claude-3-5-sonnet-20241022", "provider": "anthropic", "input_tokens": 2_000,
                "output_tokens": 100, "attributes": {"feature": "billing-bot", "gen_ai.system_instructions": system,
                                                     "gen_ai.input.messages": json.dumps(
                                                         [{"role": "user", "parts": [{"type": "text",
                                                                                      "content": question}]}])}}

    spans = [span(T0 + timedelta(minutes=i), f"question {i}") for i in range(6)]
    spans += [span(T0 + timedelta(hours=h), "where is my invoice?") for h in (1, 2, 3)]
    assert otel_spans(store, tmp_path / "claude.jsonl", spans).rows_loaded == 9
    [(prefix_tokens, prefixes)] = store.con.execute(
        "SELECT any_value(prefix_tokens), count(DISTINCT prefix_hash) FROM llm_requests").fetchall()
    assert prefixes == 1 and prefix_tokens > 1024
    [f] = findings(store.con, window(24), RULE, min_monthly_saving=0).findings
    # 2 repeats of the invoice question: 2 x (2,000 x 3 + 100 x 15) x 1e-6; prefix: minutes 0..5 give 5 warm, the
    # first invoice question (an hour later) writes again: 2 writes
    cost = Decimal(2000 * 3 + 100 * 15) / 1_000_000
    prefix = 5 * prefix_tokens * Decimal("2.7") / 1_000_000 - 2 * prefix_tokens * Decimal("0.75") / 1_000_000
    assert f.monthly_saving == (2 * cost + prefix) * MONTH
    assert (f.evidence["response_cache_hits"], f.evidence["prefix_cache_reads"]) == (2, 5)


def test_from_litellm_spend_logs_with_messages(store: Store, tmp_path: Path) -> None:
    """LiteLLM logs (store_prompts_in_spend_logs) of the same question three times: 2 repeats x (20,000 x 2.5 +
    5,000 x 10) x 1e-6 = $0.20 in the window; logs without content ({}) give no fingerprint."""
    messages = [{"role": "user", "content": "What is our refund policy?"}]
    res = litellm_rows(store, tmp_path / "spend.json", [
        *[{"ts": T0 + timedelta(hours=h), "model": "gpt-4o", "prompt_tokens": 20_000, "completion_tokens": 5_000,
           "tags": ["feature:faq"], "messages": messages} for h in (0, 1, 2)],
        *[{"ts": T0 + timedelta(hours=h), "model": "gpt-4o", "prompt_tokens": 20_000, "completion_tokens": 5_000,
           "tags": ["feature:faq"]} for h in (3, 4, 5)]])
    assert res.rows_loaded == 6
    [f] = findings(store.con, window(24), RULE, min_monthly_saving=0).findings
    assert f.scope == "openai/gpt-4o/faq" and f.monthly_saving == Decimal("0.2") * MONTH
    assert f.evidence["requests"] == 3 and f.evidence["response_cache_hits"] == 2
