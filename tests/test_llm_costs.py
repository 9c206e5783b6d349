"""Request pricing, hand-computed (prices per 1M tokens; cost = tokens x price / 1e6, exact decimals).

  model (catalog)             tier      above  input  output  cache read  cache write  valid
  gpt-4o (litellm)            standard  0      2.50   10.00   1.25        -            always
  gpt-4o (litellm)            batch     0      1.25    5.00   -           -            always
  gpt-4o-mini (litellm)       standard  0      0.15    0.60   -           -            always
  gpt-4o-mini (override)      standard  0      0.10    0.40   -           -            always
  claude-3-5-sonnet (litellm) standard  0      3.00   15.00   0.30        3.75         always
  gemini-2.5-pro (litellm)    standard  0      1.25   10.00   -           -            always
  gemini-2.5-pro (litellm)    standard  200k   2.50   15.00   -           -            always
  m-dated (genai-prices)      standard  0      1.00    1.00   -           -            to 2026-10-15
  m-dated (genai-prices)      standard  0      2.00    2.00   -           -            from 2026-10-15

  r1  openai/gpt-4o-2024-08-06, in 1000 (200 cached), out 500: 800 x 2.5 + 200 x 1.25 + 500 x 10 = 0.00725
  r2  gpt-4o batch, in 1000, out 1000: 1000 x 1.25 + 1000 x 5 = 0.00625
  r3  gpt-4o priority (no priority price: standard), in 1000: 0.0025
  r4  anthropic claude-3-5-sonnet-20241022 in 10000 (6000 cache read, 2000 cache write), out 1000 (300
      reasoning): 2000 x 3 + 6000 x 0.3 + 2000 x 3.75 + 1000 x 15 = 0.0303
  r5  gemini-2.5-pro in 250000, out 1000: above 200k: 250000 x 2.5 + 1000 x 15 = 0.64
  r6  gemini-2.5-pro in 100000, out 1000: base: 100000 x 1.25 + 1000 x 10 = 0.135
  r7  m-dated on 2026-10-10, in 1M: 1.00;  r8 on 2026-10-20: 2.00;  r8b on 2026-09-01 (before any dated
      price of the later row; the earlier row is open-ended backwards): 1.00
  r9  mystery-model: unpriced, cost NULL, its tokens still counted
  r10 gpt-4o-mini in 1M, out 1M: the override wins: 0.10 + 0.40 = 0.50
  r11 claude-3-5-sonnet as r4 on 2026-10-12, after an override (1.00 / 1.00, no cache prices: cache tokens
      cost the input price) took effect on 2026-10-10: 10000 x 1 + 1000 x 1 = 0.011 (r4, before it: catalog)
  r12 m-late, priced only from 2026-10-01 (3.00), asked on 2026-09-15: 3.00, flagged before_price_history
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from aifinops.analysis.llm_costs import SelfHosted, request_costs, self_hosted_report
from aifinops.analysis.windows import Window
from aifinops.config import Settings
from aifinops.store.connection import Store

D = Decimal
WINDOW = Window(datetime(2026, 9, 1), datetime(2026, 11, 1))


def price(store: Store, catalog: str, provider: str, model: str, i: str, o: str, tier: str = "standard",
          above: int = 0, cr: str | None = None, cw: str | None = None, valid_from: str | None = None,
          valid_to: str | None = None) -> None:
    store.con.execute(
        "INSERT INTO llm_prices (catalog, provider, model, model_key, mode, tier, above_tokens, valid_from, valid_to, "
        "input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, currency, snapshot, "
        "_batch_id, _file, _row) VALUES (?, ?, ?, lower(?), 'chat', ?, ?, ?, ?, ?, ?, ?, ?, 'USD', 't', 1, 't', 0)",
        [catalog, provider, model, model, tier, above, valid_from, valid_to, i, o, cr, cw])


def request(store: Store, rid: str, ts: str, provider: str | None, model: str, inp: int, out: int,
            cache_read: int | None = None, cache_write: int | None = None, reasoning: int | None = None,
            tier: str | None = None) -> None:
    store.con.execute(
        "INSERT INTO llm_requests (request_id, source, ts, requests, provider, request_model, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, tier, _batch_id, _file, _row) "
        "VALUES (?, 'test', ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 1, 't', 0)",
        [rid, ts, provider, model, inp, out, cache_read, cache_write, reasoning, tier])


@pytest.fixture
def priced(store: Store) -> Store:
    price(store, "litellm", "openai", "gpt-4o", "2.50", "10.00", cr="1.25")
    price(store, "litellm", "openai", "gpt-4o", "1.25", "5.00", tier="batch")
    price(store, "litellm", "openai", "gpt-4o-mini", "0.15", "0.60")
    price(store, "override", "openai", "gpt-4o-mini", "0.10", "0.40")
    price(store, "litellm", "anthropic", "claude-3-5-sonnet", "3.00", "15.00", cr="0.30", cw="3.75")
    price(store, "litellm", "gcp.gemini", "gemini-2.5-pro", "1.25", "10.00")
    price(store, "litellm", "gcp.gemini", "gemini-2.5-pro", "2.50", "15.00", above=200_000)
    price(store, "genai-prices", "acme", "m-dated", "1.00", "1.00", valid_to="2026-10-15")
    price(store, "genai-prices", "acme", "m-dated", "2.00", "2.00", valid_from="2026-10-15")
    price(store, "override", "anthropic", "claude-3-5-sonnet", "1.00", "1.00", valid_from="2026-10-10")
    price(store, "genai-prices", "acme", "m-late", "3.00", "3.00", valid_from="2026-10-01")
    day = "2026-10-05 12:00"
    request(store, "r1", day, "openai", "openai/gpt-4o-2024-08-06", 1000, 500, cache_read=200)
    request(store, "r2", day, "openai", "gpt-4o", 1000, 1000, tier="batch")
    request(store, "r3", day, "openai", "gpt-4o", 1000, 0, tier="priority")
    request(store, "r4", day, "anthropic", "claude-3-5-sonnet-20241022", 10_000, 1000, cache_read=6000,
            cache_write=2000, reasoning=300)
    request(store, "r5", day, "gcp.gemini", "gemini-2.5-pro", 250_000, 1000)
    request(store, "r6", day, "gcp.gemini", "gemini-2.5-pro", 100_000, 1000)
    request(store, "r7", "2026-10-10 00:00", "acme", "m-dated", 1_000_000, 0)
    request(store, "r8", "2026-10-20 00:00", "acme", "m-dated", 1_000_000, 0)
    request(store, "r8b", "2026-09-01 00:00", "acme", "m-dated", 1_000_000, 0)
    request(store, "r9", day, "openai", "mystery-model", 5000, 100)
    request(store, "r10", day, "openai", "gpt-4o-mini", 1_000_000, 1_000_000)
    request(store, "r11", "2026-10-12 00:00", "anthropic", "claude-3-5-sonnet-20241022", 10_000, 1000,
            cache_read=6000, cache_write=2000)
    request(store, "r12", "2026-09-15 00:00", "acme", "m-late", 1_000_000, 0)
    return store


def test_golden_costs(priced: Store) -> None:
    rows = {r["request_id"]: r for r in request_costs(priced.con, WINDOW)}
    expected = {"r1": "0.00725", "r2": "0.00625", "r3": "0.0025", "r4": "0.0303", "r5": "0.64", "r6": "0.135",
                "r7": "1", "r8": "2", "r8b": "1", "r10": "0.5", "r11": "0.011", "r12": "3"}
    assert {k: rows[k]["cost"] for k in expected} == {k: D(v) for k, v in expected.items()}
    assert rows["r9"]["cost"] is None and rows["r9"]["priced"] is False and rows["r9"]["input_tokens"] == 5000
    assert rows["r1"]["price_model"] == "gpt-4o" and rows["r1"]["price_match"] == "provider+base"  # dated version
    assert rows["r3"]["price_tier"] == "standard" and rows["r3"]["price_tier_fallback"] is True
    assert rows["r2"]["price_tier"] == "batch"
    assert rows["r10"]["price_kind"] == "override" and rows["r5"]["price_above_tokens"] == 200_000
    assert rows["r4"]["cache_write_cost"] == D("0.0075") and rows["r4"]["output_cost"] == D("0.015")
    assert rows["r8b"]["price_in_force"] is True  # the earlier row is open backwards
    assert rows["r12"]["price_in_force"] is False and rows["r11"]["price_kind"] == "override"
    assert rows["r4"]["price_catalog"] == "litellm"


def test_self_hosted_models_cost_their_gpu_share(priced: Store) -> None:
    """llama-ft served by workloads that cost $30 of GPU in the window: two requests of 1,000 and 2,000 tokens
    cost 10 and 20; a self-hosted provider without serving cost stays unpriced."""
    request(priced, "s1", "2026-10-05 13:00", "vllm", "llama-ft", 800, 200)
    request(priced, "s2", "2026-10-05 14:00", "vllm", "llama-ft", 1500, 500)
    request(priced, "s3", "2026-10-05 14:00", "vllm", "llama-other", 1500, 500)
    served = [SelfHosted("llama-ft", D("30"), 12.0, 2)]
    rows = {r["request_id"]: r for r in request_costs(priced.con, WINDOW, served=served)}
    assert (rows["s1"]["cost"], rows["s2"]["cost"]) == (D(10), D(20))
    assert rows["s1"]["cost_basis"] == "self-hosted" and rows["s1"]["self_hosted"] is True
    assert rows["s3"]["priced"] is False and rows["s3"]["self_hosted"] is True


def test_self_hosted_beside_api_models(priced: Store) -> None:
    """llama-ft: $30 of GPU for 3,000 tokens (2,300 in, 700 out) = $10,000 per 1M tokens. The same tokens on
    gpt-4o: 2300 x 2.5 + 700 x 10 = 0.01275; on openai/gpt-4o-mini at its override: 2300 x 0.10 + 700 x 0.40 =
    0.00051 (gpt-4o-mini without a provider: the catalog's 0.15 / 0.60 = 0.000765);
    a model no catalog knows: no price."""
    request(priced, "s1", "2026-10-05 13:00", "vllm", "llama-ft", 800, 200)
    request(priced, "s2", "2026-10-05 14:00", "vllm", "llama-ft", 1500, 500)
    served = [SelfHosted("llama-ft", D("30"), 12.0, 2), SelfHosted("idle-model", D("5"), 3.0, 1)]
    settings = Settings(llm={"compare_with": ["gpt-4o", "openai/gpt-4o-mini", "gpt-4o-mini", "nope"]})
    rows = self_hosted_report(priced.con, WINDOW, served, settings)
    llama = {r["comparedWith"]: r for r in rows if r["model"] == "llama-ft"}
    first = llama["gpt-4o"]
    assert (first["requests"], first["inputTokens"], first["outputTokens"], first["costPer1MTokens"]) == (
        2, 2300, 700, D(10_000))
    assert llama["gpt-4o"]["apiCost"] == D("0.01275") and llama["openai/gpt-4o-mini"]["apiCost"] == D("0.00051")
    assert llama["gpt-4o-mini"]["apiCost"] == D("0.000765")  # no provider: catalog prices; overrides are per provider
    assert llama["nope"]["apiCost"] is None and llama["gpt-4o"]["apiCostMinusGpuCost"] == D("0.01275") - 30
    idle = [r for r in rows if r["model"] == "idle-model"]
    assert len(idle) == 1 and idle[0]["requests"] == 0 and idle[0]["costPer1MTokens"] is None
    assert set(idle[0]) == set(first)  # every row has the same columns: tables take them from the first
    alone = self_hosted_report(priced.con, WINDOW, served, Settings(llm={"compare_with": []}))
    assert alone[0]["requests"] == 2 and alone[0]["comparedWith"] is None  # no comparison asked: the volumes stay
