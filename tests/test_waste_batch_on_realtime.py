"""``batch-on-realtime``: standard-tier requests of batch-like features (by name, or sent in one burst a day) priced
again at the catalog's batch prices, or at the assumed 50% discount where the catalog has none.

Prices are the bundled catalog's (LiteLLM 1.109.1): gpt-4o standard $2.50 / $10 per 1M input / output tokens,
batch $1.25 / $5; claude-3-5-sonnet standard $3 / $15 and no batch price."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from waste_fixtures import T0, add_requests, findings, window
from waste_llm_sources import litellm_rows

from aifinops.store.connection import Store

RULE = "batch-on-realtime"


def calls(start: datetime, n: int, every_min: float, **columns: Any) -> list[dict[str, Any]]:
    """``n`` requests of 100,000 input and 10,000 output tokens, ``every_min`` minutes apart."""
    base = {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 10_000}
    return [{**base, "ts": start + timedelta(minutes=every_min * i), **columns} for i in range(n)]


def month(hours: float) -> Decimal:
    return Decimal("730.5") / Decimal(repr(float(hours)))


def test_named_batch_work_priced_at_batch_and_at_the_assumed_discount(store: Store) -> None:
    """nightly-digest, 20 gpt-4o calls: standard 100k x 2.5e-6 + 10k x 10e-6 = $0.35 each, $7.00; batch 100k x
    1.25e-6 + 10k x 5e-6 = $0.175 each, $3.50: saving $3.50 x 730.5 / 24 a month (high: named, catalog price).
    eval-suite on claude-3-5-sonnet, 10 calls: 100k x 3e-6 + 10k x 15e-6 = $0.45 each, $4.50; no batch price, 50%
    assumed: saving $2.25 x 730.5 / 24 (medium: one level down). The chat feature is neither named nor bursty."""
    add_requests(store.con, [
        *calls(T0 + timedelta(hours=2), 20, 1, feature="nightly-digest", team="growth"),
        *calls(T0 + timedelta(hours=3), 10, 1, feature="eval-suite", provider="anthropic",
               request_model="claude-3-5-sonnet-20241022"),
        *calls(T0, 48, 30, feature="chat")])
    res = findings(store.con, window(24), RULE)
    by = {f.scope: f for f in res.findings}
    assert set(by) == {"openai/gpt-4o/nightly-digest", "anthropic/claude-3-5-sonnet-20241022/eval-suite"}
    digest = by["openai/gpt-4o/nightly-digest"]
    assert digest.monthly_saving == Decimal("3.5") * month(24)
    assert digest.monthly_cost == Decimal(7) * month(24)
    assert (digest.confidence, digest.owner, digest.pool, digest.scope_kind) == (
        "high", "growth", "llm:openai/gpt-4o/nightly-digest", "feature")
    assert digest.evidence["matched_names"] == ["nightly-digest"] and digest.evidence["requests"] == 20
    assert digest.evidence["batch_cost_in_window"] == Decimal("3.5")
    assert "OpenAI Batch API" in digest.recommendation and "$1.2500 in / $5.0000 out" in digest.recommendation
    evals = by["anthropic/claude-3-5-sonnet-20241022/eval-suite"]
    assert evals.monthly_saving == Decimal("2.25") * month(24)
    assert evals.confidence == "medium" and evals.evidence["requests_at_assumed_discount"] == 10
    assert "Message Batches API" in evals.recommendation and "assumed 50% batch discount" in evals.recommendation
    assert any("assumed 50% off" in a for a in evals.assumptions)


def test_a_feature_sent_in_one_burst_a_day(store: Store) -> None:
    """ticket-summary: 12 calls between 01:00 and 01:55 on each of 3 days (100% within 2 h, 3 of 3 days): 36 x
    $0.35 = $12.60, batch $6.30, saving $6.30 x 730.5 / 72 a month, medium (shape only)."""
    for day in range(3):
        add_requests(store.con, calls(T0 + timedelta(days=day, hours=1), 12, 5, feature="ticket-summary"))
    [f] = findings(store.con, window(72), RULE).findings
    assert abs(f.monthly_saving - Decimal("6.3") * month(72)) < Decimal("1e-18")
    assert (f.confidence, f.evidence["concentrated"], f.evidence["burst_days"], f.evidence["busy_days"]) == (
        "medium", True, 3, 3)
    assert "sent in bursts" in f.recommendation


def test_silent_for_spread_traffic_and_work_already_on_batch(store: Store) -> None:
    """The same 36 calls spread over the day (one every 2 h: at most 1 of 12 within 2 h) and nightly work already
    sent at tier batch are not findings."""
    for day in range(3):
        add_requests(store.con, calls(T0 + timedelta(days=day), 12, 120, feature="ticket-summary"))
    add_requests(store.con, calls(T0 + timedelta(hours=2), 20, 1, feature="nightly-digest", tier="batch"))
    assert findings(store.con, window(72), RULE).findings == []


def test_thresholds_are_options(store: Store) -> None:
    """10 of 12 calls of a day in one burst (83%): concentrated at burst_share 0.8, not at 0.9. No pattern: the
    nightly job is not named batch work any more. default_discount 0.3: the Claude evals save 30% of $4.50."""
    for day in range(3):
        rows = [*calls(T0 + timedelta(days=day, hours=1), 10, 5), *calls(T0 + timedelta(days=day, hours=13), 2, 60)]
        add_requests(store.con, [{**r, "feature": "ticket-summary"} for r in rows])
    assert [f.scope for f in findings(store.con, window(72), RULE).findings] == ["openai/gpt-4o/ticket-summary"]
    assert findings(store.con, window(72), RULE, burst_share=0.9).findings == []
    add_requests(store.con, calls(T0 + timedelta(hours=2, minutes=30), 20, 1, feature="nightly-digest"))
    scopes = {f.scope for f in findings(store.con, window(72), RULE, burst_share=0.9).findings}
    assert scopes == {"openai/gpt-4o/nightly-digest"}
    assert findings(store.con, window(72), RULE, burst_share=0.9, patterns=[]).findings == []
    add_requests(store.con, calls(T0 + timedelta(hours=3), 10, 1, feature="eval-suite", provider="anthropic",
                                  request_model="claude-3-5-sonnet-20241022"))
    evals = next(f for f in findings(store.con, window(72), RULE, default_discount=0.3).findings
                 if f.scope.startswith("anthropic/"))
    assert abs(evals.monthly_saving - Decimal("4.5") * Decimal("0.3") * month(72)) < Decimal("1e-18")


def test_skipped_without_requests(store: Store) -> None:
    res = findings(store.con, window(24), RULE)
    assert res.findings == [] and [(s.rule, s.reason) for s in res.skipped] == [
        (RULE, "no LLM requests (aifinops ingest otel / litellm / llm-usage)")]


def test_litellm_spend_logs_tagged_with_a_feature(store: Store, tmp_path: Path) -> None:
    """LiteLLM logs of the nightly job (feature from its request tag, the dated deployment model): the catalog's
    batch price of gpt-4o-2024-08-06 is $1.25 / $5 too, so the saving is the same $3.50 x 730.5 / 24."""
    res = litellm_rows(store, tmp_path / "spend.json", [
        {"ts": T0 + timedelta(hours=2, minutes=i), "model": "gpt-4o-2024-08-06", "model_group": "gpt-4o",
         "prompt_tokens": 100_000, "completion_tokens": 10_000, "tags": ["feature:nightly-digest"], "spend": 0.35}
        for i in range(20)])
    assert res.rows_loaded == 20
    [f] = findings(store.con, window(24), RULE).findings
    assert f.scope == "openai/gpt-4o-2024-08-06/nightly-digest" and f.owner == "search"
    assert f.monthly_saving == Decimal("3.5") * month(24)
