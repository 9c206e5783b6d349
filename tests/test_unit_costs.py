"""Unit costs over the hand-priced requests of test_llm_costs: summing tokens before pricing gives exactly the
money of pricing each request; unpriced volume is reported, not costed at 0; outcomes and revenue join."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from test_llm_costs import WINDOW, priced, request  # noqa: F401 - priced is a fixture

from aifinops.analysis.llm_costs import request_costs
from aifinops.analysis.unit_costs import UnitCostError, unit_costs
from aifinops.store.connection import Store

D = Decimal


def test_summing_tokens_then_pricing_is_pricing_each_request(priced: Store) -> None:  # noqa: F811
    per_request = request_costs(priced.con, WINDOW)
    want: dict[str, Decimal] = defaultdict(Decimal)
    for r in per_request:
        if r["cost"] is not None:
            want[r["priced_model"]] += r["cost"]
    got = {r["model"]: r for r in unit_costs(priced.con, WINDOW, ["model"])}
    assert {m: got[m]["cost"] for m in want} == dict(want)
    gpt = got["gpt-4o"]  # r2 and r3 ask for "gpt-4o"; r1 for the dated version, its own model name
    assert (gpt["requests"], gpt["inputTokens"], gpt["outputTokens"], gpt["cost"]) == (2, 2000, 1000, D("0.00875"))
    assert gpt["costPerRequest"] == D("0.004375") and gpt["costPer1kTokens"] == D("0.00875") * 1000 / 3000
    mystery = got["mystery-model"]
    assert (mystery["cost"], mystery["unpricedRequests"], mystery["unpricedTokens"]) == (0, 1, 5100)
    assert mystery["costPerRequest"] is None  # nothing priced: no unit cost, rather than a false 0
    total = unit_costs(priced.con, WINDOW, [])
    assert len(total) == 1 and total[0]["cost"] == sum(want.values()) and total[0]["unpricedRequests"] == 1


def test_users_conversations_outcomes_and_margin(priced: Store) -> None:  # noqa: F811
    """support team: r1 and r2 (users u1, u2; one conversation) cost 0.00725 + 0.00625 = 0.0135; outcomes: 3
    tickets resolved and $1.00 revenue on the support team -> 0.0045 per ticket, margin (1 - 0.0135) / 1."""
    con = priced.con
    con.execute("UPDATE llm_requests SET team = 'support', user_id = 'u' || right(request_id, 1), "
                "conversation_id = 'c1', source_cost = 0.0130 WHERE request_id IN ('r1', 'r2')")
    con.execute("INSERT INTO outcomes (ts, metric, value, team, _batch_id, _file, _row) VALUES "
                "('2026-10-05 15:00', 'tickets_resolved', 2, 'support', 1, 't', 0), "
                "('2026-10-06 15:00', 'tickets_resolved', 1, 'support', 1, 't', 1), "
                "('2026-10-06 15:00', 'revenue', 1.00, 'support', 1, 't', 2), "
                "('2026-12-06 15:00', 'revenue', 9.00, 'support', 1, 't', 3)")  # outside the window
    rows = {r["team"]: r for r in unit_costs(con, WINDOW, ["team"], outcome="tickets_resolved",
                                             revenue="revenue")}
    s = rows["support"]
    assert (s["cost"], s["activeUsers"], s["conversations"], s["outcome"], s["revenue"]) == (
        D("0.0135"), 2, 1, D(3), D(1))
    assert s["costPerOutcome"] == D("0.0045") and s["costPerActiveUser"] == D("0.00675")
    assert s["grossMargin"] == D("0.9865")
    assert s["sourceCost"] == D("0.026") and s["drift"] == D("0.0135") - D("0.026")
    assert rows[None]["outcome"] is None  # requests without a team: no outcome of theirs
    by_provider = unit_costs(con, WINDOW, ["provider"], outcome="tickets_resolved")
    assert all(r["outcome"] is None for r in by_provider)  # outcomes name no provider: no join


def test_daily_periods_and_percentiles(priced: Store) -> None:  # noqa: F811
    rows = unit_costs(priced.con, WINDOW, ["model"], accumulate="day")
    days = {(r["start"].day, r["model"]) for r in rows}
    assert (5, "gpt-4o") in days and (10, "m-dated") in days and (20, "m-dated") in days
    for i in range(1, 101):  # 100 requests of 1,000 ... 100,000 tokens: p50 about 50,500, p95 about 95,000
        request(priced, f"q{i}", "2026-10-08 00:00", "openai", "gpt-q", i * 1000, 0)
    q = next(r for r in unit_costs(priced.con, WINDOW, ["model"]) if r["model"] == "gpt-q")
    assert q["p50TokensPerRequest"] == pytest.approx(50_500, rel=0.03)  # t-digest: approximate by design
    assert q["p95TokensPerRequest"] == pytest.approx(95_000, rel=0.03)


def test_bad_groupings(priced: Store) -> None:  # noqa: F811
    with pytest.raises(UnitCostError, match="unknown --by 'colour'"):
        unit_costs(priced.con, WINDOW, ["colour"])
    with pytest.raises(UnitCostError, match="unknown accumulate"):
        unit_costs(priced.con, WINDOW, ["model"], accumulate="fortnight")


def test_aggregated_usage_rows_count_their_requests(priced: Store) -> None:  # noqa: F811
    request(priced, "agg", "2026-10-07 00:00", "openai", "gpt-4o", 10_000, 0)
    priced.con.execute("UPDATE llm_requests SET requests = 10 WHERE request_id = 'agg'")
    gpt = next(r for r in unit_costs(priced.con, WINDOW, ["model"]) if r["model"] == "gpt-4o")
    assert gpt["requests"] == 12 and gpt["cost"] == D("0.00875") + D("0.025")


def test_a_cached_answer_costs_nothing(priced: Store) -> None:  # noqa: F811
    """A response served from a cache (LiteLLM's cache hit: status cached) never reached the provider."""
    request(priced, "hit", "2026-10-07 00:00", "openai", "gpt-4o", 1_000_000, 1_000_000)
    priced.con.execute("UPDATE llm_requests SET status = 'cached' WHERE request_id = 'hit'")
    gpt = next(r for r in unit_costs(priced.con, WINDOW, ["model"]) if r["model"] == "gpt-4o")
    assert gpt["requests"] == 3 and gpt["cost"] == D("0.00875") and gpt["unpricedRequests"] == 0
    hit = next(r for r in request_costs(priced.con, WINDOW) if r["request_id"] == "hit")
    assert (hit["cost"], hit["cost_basis"], hit["priced"]) == (0, "cached", True)


def test_an_aggregated_row_takes_the_context_tier_of_its_average_request(priced: Store) -> None:  # noqa: F811
    """An hourly rollup of 10 gemini-2.5-pro requests with 1M input tokens in all: 100k each, below the 200k
    context tier, so 1M x 1.25 = 1.25 (not the long-context 2.50 its sum would take)."""
    request(priced, "roll", "2026-10-09 00:00", "gcp.gemini", "gemini-2.5-pro", 1_000_000, 0)
    priced.con.execute("UPDATE llm_requests SET requests = 10 WHERE request_id = 'roll'")
    hit = next(r for r in request_costs(priced.con, WINDOW) if r["request_id"] == "roll")
    assert (hit["cost"], hit["price_above_tokens"]) == (D("1.25"), 0)
    tiers = {r["tier"]: r["requests"] for r in unit_costs(priced.con, WINDOW, ["tier"])}
    assert tiers["batch"] == 1 and tiers["priority"] == 1 and tiers["standard"] > 10


def test_percentiles_are_per_request_for_aggregated_rows(priced: Store) -> None:  # noqa: F811
    """A row of 10 requests with 10,000 input and 1,000 output tokens: 1,100 tokens per request."""
    request(priced, "agg2", "2026-10-07 00:00", "openai", "gpt-agg", 10_000, 1_000)
    priced.con.execute("UPDATE llm_requests SET requests = 10 WHERE request_id = 'agg2'")
    row = next(r for r in unit_costs(priced.con, WINDOW, ["model"]) if r["model"] == "gpt-agg")
    assert row["p50TokensPerRequest"] == pytest.approx(1_100)


def test_the_azure_trace_priced_under_two_models_equals_a_direct_computation(tmp_path) -> None:
    """The Azure LLM inference trace (code) slice, read through the llm-usage preset as if served by gpt-4o on
    Azure and by Claude 3.5 Haiku on Anthropic, priced from the bundled catalogs; the same sums computed
    straight from the raw CSV and the catalog's two prices."""
    from pathlib import Path

    import duckdb

    from aifinops.analysis.llm_prices import candidates
    from aifinops.analysis.windows import parse_window
    from aifinops.sources.llm_usage_csv import LlmUsageSource
    from aifinops.store.ingest import ingest

    trace = Path(__file__).parent / "fixtures" / "azure-llm" / "AzureLLMInferenceTrace_code_slice.csv"
    window = parse_window("2023-11", None)
    with Store(tmp_path / "s.duckdb") as store:
        for name, model, provider in (("as-gpt", "gpt-4o", "azure"), ("as-haiku", "claude-3-5-haiku", "anthropic")):
            res = ingest(store, LlmUsageSource(preset="azure-llm-trace", model=model, provider=provider,
                                               source_name=name), [trace])
            assert res.rows_quarantined == 0
        got = {r["model"]: r["cost"] for r in unit_costs(store.con, window, ["model"])}
        raw_in, raw_out = duckdb.connect().execute(
            f"SELECT sum(ContextTokens), sum(GeneratedTokens) FROM read_csv('{trace}')").fetchall()[0]
        for model, provider in (("gpt-4o", "azure.ai.openai"), ("claude-3-5-haiku", "anthropic")):
            win = next(c for c in candidates(store.con, model, provider=provider, at=window.start) if c["rank"] == 1)
            want = (D(raw_in) * win["input_per_mtok"] + D(raw_out) * win["output_per_mtok"]) * D("0.000001")
            assert got[model] == want and want > 0
