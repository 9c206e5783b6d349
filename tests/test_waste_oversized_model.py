"""``oversized-model``: short requests on frontier models priced again at the mapped small model's catalog price,
half of them assumed routable.

Prices are the bundled catalog's (LiteLLM 1.109.1 / genai-prices): gpt-4o $2.50 / $10 per 1M input / output tokens,
gpt-4o-mini $0.15 / $0.60; claude-3-5-sonnet $3 / $15, claude-3-5-haiku $0.80 / $4."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from waste_fixtures import T0, add_requests, findings, window
from waste_llm_sources import otel_spans

from aifinops.store.connection import Store

RULE = "oversized-model"
MONTH = Decimal("730.5") / Decimal(24)


def rows(n: int, inp: int, out: int, requests: int = 1, **columns: Any) -> list[dict[str, Any]]:
    base = {"provider": "openai", "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06"}
    return [{**base, "ts": T0 + timedelta(minutes=10 * i), "requests": requests, "input_tokens": inp * requests,
             "output_tokens": out * requests, **columns} for i in range(n)]


def scenario(store: Store) -> None:
    """classify-intent: 1,000 short requests (10 rows of 100, 500 in / 100 out each) and 10 long ones (5,000 /
    1,000) on gpt-4o-2024-08-06; faq: 40 short requests (800 / 200) on claude-3-5-sonnet."""
    add_requests(store.con, [*rows(10, 500, 100, requests=100, feature="classify-intent", team="support"),
                             *rows(10, 5000, 1000, feature="classify-intent"),
                             *rows(40, 800, 200, feature="faq", provider="anthropic",
                                   request_model="claude-3-5-sonnet-20241022", response_model=None)])


def test_short_requests_on_a_frontier_model(store: Store) -> None:
    """Short: 1,000 x (500 x 2.5e-6 + 100 x 10e-6) = $2.25; at gpt-4o-mini 1,000 x (500 x 0.15e-6 + 100 x 0.6e-6)
    = $0.135; saving 0.5 x 2.115 = $1.0575, x 730.5 / 24 = $32.18765625 a month. The group cost $2.25 + 10 x
    (5,000 x 2.5e-6 + 1,000 x 10e-6) = $2.475. Short share 1,000 / 1,010 >= 50%: medium. The Claude faq saves
    0.5 x 40 x ((800 x 3 + 200 x 15) - (800 x 0.8 + 200 x 4)) x 1e-6 = $0.0792, $2.41 a month: below $10."""
    scenario(store)
    [f] = findings(store.con, window(24), RULE).findings
    assert f.monthly_saving == Decimal("1.0575") * MONTH == Decimal("32.18765625")
    assert f.monthly_cost == Decimal("2.475") * MONTH and f.monthly_waste == Decimal("2.115") * MONTH
    assert (f.scope_kind, f.scope, f.owner, f.pool, f.confidence) == (
        "model", "openai/gpt-4o-2024-08-06/classify-intent", "support",
        "llm:openai/gpt-4o-2024-08-06/classify-intent", "medium")
    e = f.evidence
    assert (e["target"], e["short_requests"], e["requests"], e["avg_input_tokens"]) == ("gpt-4o-mini", 1000, 1010,
                                                                                       500.0)
    assert e["target_price_per_mtok"] == [Decimal("0.15"), Decimal("0.6")]
    assert "Route short classify-intent from gpt-4o-2024-08-06 to gpt-4o-mini: 1,000 of 1,010" in f.recommendation
    assert any("50% of the short requests" in a for a in f.assumptions)
    assert f.saving_formula.startswith("0.5 x (short requests' cost $2.2500 - at gpt-4o-mini's price $0.1350)")


def test_silent_for_small_models_and_long_requests(store: Store) -> None:
    """gpt-4o-mini is no frontier model; gpt-4o requests of 1,200 input tokens (or 350 output) are not short."""
    add_requests(store.con, [*rows(10, 500, 100, requests=100, feature="a", request_model="gpt-4o-mini",
                                   response_model=None),
                             *rows(10, 1200, 100, requests=100, feature="b"),
                             *rows(10, 500, 350, requests=100, feature="c")])
    assert findings(store.con, window(24), RULE).findings == []


def test_thresholds_are_options(store: Store) -> None:
    """max_input_tokens 400: nothing is short. routable_share 1: the whole gap, 2.115 x 730.5 / 24. min saving 0:
    the Claude faq too, to claude-3-5-haiku. No target for gpt-4o: not reported."""
    scenario(store)
    assert findings(store.con, window(24), RULE, max_input_tokens=400).findings == []
    [f] = findings(store.con, window(24), RULE, routable_share=1.0).findings
    assert f.monthly_saving == Decimal("2.115") * MONTH
    both = {f.scope: f for f in findings(store.con, window(24), RULE, min_monthly_saving=0).findings}
    faq = both["anthropic/claude-3-5-sonnet-20241022/faq"]
    assert faq.monthly_saving == Decimal("0.0792") * MONTH and faq.evidence["target"].startswith("claude-3-5-haiku")
    only_claude = findings(store.con, window(24), RULE, min_monthly_saving=0,
                           targets={"claude-*sonnet*": "claude-3-5-haiku"}).findings
    assert [f.scope for f in only_claude] == ["anthropic/claude-3-5-sonnet-20241022/faq"]


def test_skipped_without_requests(store: Store) -> None:
    res = findings(store.con, window(24), RULE)
    assert res.findings == [] and [s.rule for s in res.skipped] == [RULE]
    assert "no LLM requests" in res.skipped[0].reason


def test_requests_from_otel_spans(store: Store, tmp_path: Path) -> None:
    """25 SDK-written gpt-4o spans of 600 input / 50 output tokens: each $0.0015 + $0.0005 = $0.002, at gpt-4o-mini
    $0.00009 + $0.00003; saving 0.5 x 25 x 0.00188 = $0.0235 in the window (min saving 0 to see it)."""
    res = otel_spans(store, tmp_path / "spans.jsonl", [
        {"ts": T0 + timedelta(minutes=i), "model": "gpt-4o", "input_tokens": 600, "output_tokens": 50,
         "attributes": {"feature": "faq-bot"}} for i in range(25)])
    assert res.rows_loaded == 25
    [f] = findings(store.con, window(24), RULE, min_monthly_saving=0).findings
    assert f.scope == "openai/gpt-4o/faq-bot" and f.monthly_saving == Decimal("0.0235") * MONTH
