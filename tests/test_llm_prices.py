"""LLM price catalogs: golden normalisation of real entries of both bundled snapshots, exact decimals, the
matching and precedence rule (analysis/llm_prices.py), effective dates, snapshot restatement and the CLI.

Every expected price below was read off the bundled files by hand (USD per token x 10^6 for LiteLLM, USD per
1M tokens as written for genai-prices), not computed by the code under test.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from aifinops.analysis import llm_prices
from aifinops.config import LlmSettings
from aifinops.interfaces.cli.app import app
from aifinops.sources import genai_prices, litellm_prices
from aifinops.sources.price_catalog import Normalised, canonical_table, per_mtok
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

D = Decimal
PRICE = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


def _bundled(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()), parse_float=Decimal)


LITELLM = _bundled(litellm_prices.BUNDLED)
GENAI = _bundled(genai_prices.BUNDLED)


def _rows(table: Any) -> dict[tuple[str, str, int], tuple[Decimal | None, ...]]:
    """(model, tier, above_tokens) -> (input, output, cache_read, cache_write) of canonical rows."""
    return {(r["model"], r["tier"], r["above_tokens"]): tuple(r[f] for f in PRICE) for r in table.to_pylist()}


def _litellm(*keys: str) -> tuple[Any, Normalised]:
    out = litellm_prices.normalise({k: LITELLM[k] for k in keys})
    return canonical_table(out.rows, "litellm", "test"), out


# -- normalisation: LiteLLM ------------------------------------------------------------------------

def test_litellm_gpt_4o_standard_batch_priority() -> None:
    table, _ = _litellm("gpt-4o")
    # batch states no cache read price: the standard one (1.25e-06) applies; OpenAI prices no cache write
    assert _rows(table) == {
        ("gpt-4o", "standard", 0): (D("2.5"), D("10"), D("1.25"), None),
        ("gpt-4o", "batch", 0): (D("1.25"), D("5"), D("1.25"), None),
        ("gpt-4o", "priority", 0): (D("4.25"), D("17"), D("2.125"), None),
    }
    row = table.to_pylist()[0]
    assert (row["provider"], row["model_key"], row["mode"], row["currency"], row["valid_from"]) == \
        ("openai", "gpt-4o", "chat", "USD", None)


def test_litellm_context_tiers_above_200k_tokens() -> None:
    table, _ = _litellm("gemini/gemini-2.5-pro")
    assert _rows(table) == {
        ("gemini/gemini-2.5-pro", "standard", 0): (D("1.25"), D("10"), D("0.125"), None),
        ("gemini/gemini-2.5-pro", "standard", 200000): (D("2.5"), D("15"), D("0.25"), None),
        ("gemini/gemini-2.5-pro", "batch", 0): (D("0.625"), D("5"), D("0.125"), None),
        ("gemini/gemini-2.5-pro", "batch", 200000): (D("1.25"), D("7.5"), D("0.25"), None),
        ("gemini/gemini-2.5-pro", "priority", 0): (D("2.25"), D("18"), D("0.225"), None),
        ("gemini/gemini-2.5-pro", "priority", 200000): (D("4.5"), D("27"), D("0.45"), None),
        ("gemini/gemini-2.5-pro", "flex", 0): (D("0.625"), D("5"), D("0.125"), None),
    }
    assert {r["provider"] for r in table.to_pylist()} == {"gcp.gemini"}
    assert {r["model_key"] for r in table.to_pylist()} == {"gemini-2.5-pro"}


def test_litellm_anthropic_cache_write_and_read() -> None:
    table, out = _litellm("claude-sonnet-4-5", "us.anthropic.claude-3-5-sonnet-20241022-v2:0")
    rows = _rows(table)
    assert rows[("claude-sonnet-4-5", "standard", 0)] == (D("3"), D("15"), D("0.3"), D("3.75"))
    assert rows[("claude-sonnet-4-5", "batch", 0)] == (D("1.5"), D("7.5"), D("0.15"), D("1.875"))
    assert rows[("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "standard", 0)] == \
        (D("3"), D("15"), D("0.3"), D("3.75"))
    bedrock = next(r for r in table.to_pylist() if r["model"].startswith("us."))
    assert (bedrock["provider"], bedrock["model_key"]) == ("aws.bedrock", "claude-3-5-sonnet-20241022")
    # the 1-hour cache write price (6e-06) has no column: counted, the 5-minute price kept
    assert out.skipped["1-hour cache write price(s) not kept (the 5-minute price is)"] == 1


def test_litellm_tiered_pricing_skips_and_rounding() -> None:
    table, out = _litellm("dashscope/qwen-flash", "twelvelabs.marengo-embed-2-7-v1:0",
                          "databricks/databricks-claude-sonnet-4-1", "amazon.nova-pro-v1:0")
    rows = _rows(table)
    assert rows[("dashscope/qwen-flash", "standard", 0)] == (D("0.05"), D("0.4"), None, None)
    assert rows[("dashscope/qwen-flash", "standard", 256000)] == (D("0.25"), D("2"), None, None)
    # priced per query, video second and image; its only token price is an output price of 0: not token-priced
    assert not any(m.startswith("twelvelabs") for m, _, _ in rows)
    assert out.entries == 4 and out.priced == 3
    # 0.0000029999900000000002 per token is a float artefact: 2.99999 per 1M tokens to 12 decimals
    assert rows[("databricks/databricks-claude-sonnet-4-1", "standard", 0)][0] == D("2.999990000000")
    assert out.rounded == 2
    # 3.2e-06 x 1e6 is 3.2000000000000006 in floats; parsed as a decimal it is 3.2 exactly
    assert 3.2e-06 * 1e6 != 3.2
    assert rows[("amazon.nova-pro-v1:0", "standard", 0)][:2] == (D("0.8"), D("3.2"))
    assert per_mtok(D("2e-07"), Normalised()) == D("0.2")


def test_litellm_snapshot_date_is_valid_from() -> None:
    out = litellm_prices.normalise({"gpt-4o": LITELLM["gpt-4o"]}, valid_from=datetime(2026, 11, 22))
    assert {(r["valid_from"], r["valid_to"]) for r in out.rows} == {(datetime(2026, 11, 22), None)}


# -- normalisation: genai-prices ------------------------------------------------------------------

def _genai(provider: str, *ids: str) -> list[dict[str, Any]]:
    p = next(p for p in GENAI if p["id"] == provider)
    doc = [{**p, "models": [m for m in p["models"] if m["id"] in ids]}]
    return canonical_table(genai_prices.normalise(doc).rows, "genai-prices", "test").to_pylist()


def test_genai_dated_price_change() -> None:
    rows = _genai("openai", "o3")
    got = {(r["model"], r["valid_from"], r["valid_to"]): tuple(r[f] for f in PRICE) for r in rows}
    # o3: 10/40 until 2025-06-10, then 2/8; the match clause's o3-2025-04-16 is priced the same
    change = datetime(2025, 6, 10)
    assert got == {
        ("o3", None, change): (D("10"), D("40"), D("0.5"), None),
        ("o3", change, None): (D("2"), D("8"), D("0.5"), None),
        ("o3-2025-04-16", None, change): (D("10"), D("40"), D("0.5"), None),
        ("o3-2025-04-16", change, None): (D("2"), D("8"), D("0.5"), None),
    }
    assert {r["provider"] for r in rows} == {"openai"}


def test_genai_tiered_prices_and_dated_tiers() -> None:
    rows = [r for r in _genai("anthropic", "claude-sonnet-4-5", "claude-opus-4-6") if "." not in r["model"]
            and r["model"] in ("claude-sonnet-4-5", "claude-opus-4-6")]
    got = {(r["model"], r["above_tokens"], r["valid_from"]): tuple(r[f] for f in PRICE) for r in rows}
    assert got == {
        ("claude-sonnet-4-5", 0, None): (D("3"), D("15"), D("0.3"), D("3.75")),
        ("claude-sonnet-4-5", 200000, None): (D("6"), D("22.5"), D("0.6"), D("7.5")),
        # claude-opus-4-6: long contexts cost double until 2026-03-13; from then on one flat price
        ("claude-opus-4-6", 0, None): (D("5"), D("25"), D("0.5"), D("6.25")),
        ("claude-opus-4-6", 200000, None): (D("10"), D("37.5"), D("1"), D("12.5")),
        ("claude-opus-4-6", 0, datetime(2026, 3, 13)): (D("5"), D("25"), D("0.5"), D("6.25")),
    }
    names = {r["model"] for r in _genai("anthropic", "claude-sonnet-4-5")}
    assert "claude-sonnet-4.5" in names  # a starts_with name of the match clause


def test_genai_time_of_day_and_provider_names() -> None:
    rows = _genai("deepseek", "deepseek-chat")
    # 0.27/1.1 from 00:30 to 16:30 UTC (16 h), 0.135/0.55 off-peak: the usual price is kept
    assert {(r["model"], *(r[f] for f in PRICE)) for r in rows if r["model"] == "deepseek-chat"} == \
        {("deepseek-chat", D("0.27"), D("1.1"), D("0.07"), None)}
    assert {r["provider"] for r in _genai("aws", "openai.gpt-5.6-luna")} == {"aws.bedrock"}
    assert {r["provider"] for r in _genai("google", "gemma-3")} == set()  # no prices at all: skipped


def test_bundled_snapshot_numbers() -> None:
    lite = litellm_prices.normalise(LITELLM)
    gen = genai_prices.normalise(GENAI)
    assert (lite.entries, lite.priced, len(lite.rows)) == (4552, 3737, 5465)
    assert (gen.entries, gen.priced, len(gen.rows)) == (1466, 1309, 1926)
    table = llm_prices.bundled_table()
    assert table.num_rows == 5465 + 1926
    assert set(table.column("snapshot").to_pylist()) == {litellm_prices.BUNDLED_SNAPSHOT,
                                                         genai_prices.BUNDLED_SNAPSHOT}


# -- matching and precedence ----------------------------------------------------------------------

REQ_COLS = "provider, model, ts, input_tokens, tier"


def _match(requests: list[tuple[Any, ...]], llm: LlmSettings | None = None,
           con: duckdb.DuckDBPyConnection | None = None) -> list[dict[str, Any]]:
    """``match_sql`` over VALUES rows (provider, model, ts, input_tokens, tier), in the given order."""
    con = con or duckdb.connect()
    values = ", ".join(
        f"({i}, {_lit(p)}, {_lit(m)}, {_lit(t)}::TIMESTAMP, {n if n is not None else 'NULL'}::BIGINT, {_lit(tier)})"
        for i, (p, m, t, n, tier) in enumerate(requests))
    sql = llm_prices.match_sql(con, f"SELECT * FROM (VALUES {values}) v(i, {REQ_COLS})", llm)
    cur = con.execute(f"SELECT * FROM ({sql}) ORDER BY i")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _lit(v: Any) -> str:
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def _price(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["price_catalog"], r["price_model"], r["price_tier"], r["input_per_mtok"], r["output_per_mtok"])


def test_matching_across_prefixes_dates_and_bedrock_ids() -> None:
    t = "2026-12-01"
    got = _match([
        ("openai", "openai/gpt-4o", t, 1000, None),
        (None, "gpt-4o-2024-08-06", t, 1000, None),
        ("openai", "gpt-4o-2099-01-01", t, 1000, None),  # a dated version no catalog prices: the base name
        ("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", t, 1000, None),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", t, 1000, None),
        ("gcp.vertex_ai", "claude-3-5-sonnet@20240620", t, 1000, None),
        ("openai", "no-such-model", t, 1000, None),
    ])
    assert [(_price(r), r["price_match"]) for r in got] == [
        (("litellm", "gpt-4o", "standard", D("2.5"), D("10")), "provider+model"),
        (("litellm", "gpt-4o-2024-08-06", "standard", D("2.5"), D("10")), "model"),
        (("litellm", "gpt-4o", "standard", D("2.5"), D("10")), "provider+base"),
        (("litellm", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "standard", D("3"), D("15")), "provider+model"),
        (("litellm", "anthropic.claude-3-5-sonnet-20241022-v2:0", "standard", D("3"), D("15")), "provider+model"),
        (("litellm", "vertex_ai/claude-3-5-sonnet@20240620", "standard", D("3"), D("15")), "provider+model"),
        ((None, None, None, None, None), None),
    ]
    assert got[3]["price_provider"] == "aws.bedrock" and got[3]["cache_write_per_mtok"] == D("3.75")


def test_tiers_and_context_tiers() -> None:
    t = "2026-12-01"
    got = _match([
        ("gcp.gemini", "gemini-2.5-pro", t, 100_000, "standard"),
        ("gcp.gemini", "gemini-2.5-pro", t, 300_000, "standard"),
        ("gcp.gemini", "gemini-2.5-pro", t, 300_000, "priority"),
        ("gcp.gemini", "gemini-2.5-pro", t, 200_000, "batch"),  # not above 200,000: the base batch price
        ("openai", "gpt-4o", t, 1000, "batch"),
        ("openai", "gpt-4o", t, 1000, "flex"),  # LiteLLM has no flex price for gpt-4o: standard, flagged
    ])
    assert [(r["price_tier"], r["price_above_tokens"], r["input_per_mtok"], r["price_tier_fallback"]) for r in got] \
        == [("standard", 0, D("1.25"), False), ("standard", 200000, D("2.5"), False),
            ("priority", 200000, D("4.5"), False), ("batch", 0, D("0.625"), False),
            ("batch", 0, D("1.25"), False), ("standard", 0, D("2.5"), True)]


def _settings(**kw: Any) -> LlmSettings:
    return LlmSettings.model_validate(kw)


def test_precedence_override_contract_catalog_and_catalog_order() -> None:
    t = "2026-12-01"
    reqs = [("openai", "gpt-4o", t, 1000, None), ("azure", "azure/gpt-4o", t, 1000, None),
            ("openai", "gpt-4o-mini", t, 1000, None), ("openai", "o3", t, 1000, None)]
    llm = _settings(prices=[
        {"model": "gpt-4o", "kind": "contract", "input_per_mtok": "2.0", "output_per_mtok": "8.0"},
        {"model": "gpt-4o", "provider": "openai", "kind": "override", "input_per_mtok": "1.5",
         "output_per_mtok": "6"},
        {"model": "gpt-4o-mini", "kind": "contract", "input_per_mtok": "0.1", "output_per_mtok": "0.5"},
    ])
    got = _match(reqs, llm)
    assert [(r["price_kind"], r["input_per_mtok"], r["output_per_mtok"]) for r in got] == [
        ("override", D("1.5"), D("6")),  # override beats contract beats catalog
        ("contract", D("2"), D("8")),  # the override is for openai only; the contract is for any provider
        ("contract", D("0.1"), D("0.5")),
        ("catalog", D("2"), D("8")),
    ]
    assert got[3]["price_catalog"] == "litellm"
    flipped = _match(reqs[3:], _settings(catalogs=["genai-prices", "litellm"]))
    assert flipped[0]["price_catalog"] == "genai-prices"


def test_aliases_are_applied_first() -> None:
    llm = _settings(aliases={"prod-chat-v2": "openai/gpt-4o", "azure/my-deployment": "gpt-4o-mini"})
    got = _match([("openai", "prod-chat-v2", "2026-12-01", 10, None),
                  ("azure", "my-deployment", "2026-12-01", 10, None)], llm)
    # azure/gpt-4o-mini (0.15), not the data-zone azure/eu/gpt-4o-mini (0.165)
    assert [(r["price_alias"], r["price_model"], r["input_per_mtok"]) for r in got] == [
        ("openai/gpt-4o", "gpt-4o", D("2.5")), ("gpt-4o-mini", "azure/gpt-4o-mini", D("0.15"))]


def test_effective_dates() -> None:
    llm = _settings(prices=[
        {"model": "gpt-4o", "kind": "contract", "input_per_mtok": 2, "output_per_mtok": 8,
         "valid_from": "2026-01-01", "valid_to": "2026-07-01T00:00:00Z"},
        {"model": "house-model", "kind": "override", "input_per_mtok": 1, "output_per_mtok": 1,
         "valid_from": "2026-03-01"},
        {"model": "house-model", "kind": "override", "input_per_mtok": 3, "output_per_mtok": 3,
         "valid_from": "2026-09-01"},
    ])
    got = _match([
        ("openai", "o3", "2025-06-09 23:59:59", 10, None),  # genai-prices' dated history: 10/40 then
        ("openai", "o3", "2025-06-10 00:00:00", 10, None),  # from the change on: 2/8 (LiteLLM, first catalog)
        ("openai", "gpt-4o", "2026-03-01", 10, None),  # inside the contract
        ("openai", "gpt-4o", "2026-07-01", 10, None),  # the contract ended: the catalog
        ("openai", "house-model", "2026-01-01", 10, None),  # before any dated row: the earliest, flagged
        ("openai", "house-model", "2026-05-01", 10, None),
        ("openai", "house-model", "2026-10-01", 10, None),
        ("openai", "house-model", None, 10, None),  # no time: the open row
    ], llm)
    assert [(r["price_catalog"], r["input_per_mtok"], r["price_in_force"]) for r in got] == [
        ("genai-prices", D("10"), True), ("litellm", D("2"), True), ("contract", D("2"), True),
        ("litellm", D("2.5"), True), ("override", D("1"), False), ("override", D("1"), True),
        ("override", D("3"), True), ("override", D("3"), True)]


def test_match_sql_agrees_with_candidates() -> None:
    """The pruned set-based match and the per-model listing rank alike (the same rule, two queries)."""
    reqs = [(p, m, t, n, tier) for p, m in [("openai", "gpt-4o"), (None, "o3"), ("anthropic", "claude-opus-4-6"),
                                           ("gcp.gemini", "gemini-2.5-pro"), ("azure", "gpt-4o-2024-05-13")]
            for t in ("2025-01-01", "2026-03-13", "2026-12-01") for n in (1000, 250_000)
            for tier in (None, "batch", "priority")]
    con = duckdb.connect()
    got = _match(reqs, con=con)
    for (p, m, t, n, tier), r in zip(reqs, got, strict=True):
        best = llm_prices.candidates(con, m, p, datetime.fromisoformat(t), n, tier)[0]
        assert best["rank"] == 1
        assert (best["catalog"], best["model"], best["tier"], best["above_tokens"], best["valid_from"],
                best["input_per_mtok"]) == (r["price_catalog"], r["price_model"], r["price_tier"],
                                            r["price_above_tokens"], r["price_valid_from"], r["input_per_mtok"])


def test_candidates_say_why() -> None:
    rows = llm_prices.candidates(duckdb.connect(), "o3", "openai", datetime(2025, 1, 1))
    assert rows[0]["why"].startswith("wins: catalog, match provider+model")
    assert (rows[0]["catalog"], rows[0]["input_per_mtok"]) == ("genai-prices", D("10"))
    assert rows[1]["why"] == "open-ended; the winner is dated history"
    assert any(r["rank"] is None and r["why"].startswith("tier batch") for r in rows)


# -- store: ingest, restatement of a snapshot, read-only ------------------------------------------

def _catalog(path: Path, input_cost: str) -> Path:
    path.write_text('{"house-llm": {"litellm_provider": "openai", "mode": "chat", '
                    f'"input_cost_per_token": {input_cost}, "output_cost_per_token": 4e-06}}}}')
    return path


def test_ingest_bundled_snapshots(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        res = ingest(store, litellm_prices.LitellmPricesSource(), ["bundled"])
        assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (5465, 5465, 0)
        assert ingest(store, genai_prices.GenaiPricesSource(), ["bundled"]).rows_loaded == 1926
        assert store.con.execute("SELECT DISTINCT snapshot FROM llm_prices ORDER BY 1").fetchall() == [
            (genai_prices.BUNDLED_SNAPSHOT,), (litellm_prices.BUNDLED_SNAPSHOT,)]
        assert ingest(store, litellm_prices.LitellmPricesSource(), ["bundled"]).status == "unchanged"


def test_restatement_of_a_snapshot(tmp_path: Path) -> None:
    lite = litellm_prices.LitellmPricesSource
    with Store(tmp_path / "s.duckdb") as store:
        first = ingest(store, lite(snapshot="house 2026-01", snapshot_date="2026-01-01"),
                       [_catalog(tmp_path / "a.json", "1e-06")])
        # the same snapshot again, corrected: replaces its rows
        again = ingest(store, lite(snapshot="house 2026-01", snapshot_date="2026-01-01"),
                       [_catalog(tmp_path / "b.json", "2e-06")])
        assert (again.rows_loaded, again.rows_replaced, again.replaced_batches) == (1, 1, [first.batch_id])
        # a newer snapshot adds its rows; the older keeps pricing the times before it
        newer = ingest(store, lite(snapshot_date="2026-06-01"), [_catalog(tmp_path / "c.json", "3e-06")])
        assert newer.rows_replaced == 0
        assert store.con.execute("SELECT snapshot, valid_from, input_per_mtok FROM llm_prices ORDER BY 2").fetchall() \
            == [("house 2026-01", datetime(2026, 1, 1), D("2")), ("litellm 2026-06-01", datetime(2026, 6, 1), D("3"))]
        assert store.con.execute("SELECT status FROM batches ORDER BY batch_id").fetchall() == \
            [("replaced",), ("loaded",), ("loaded",)]
    with Store(tmp_path / "s.duckdb", read_only=True) as ro:
        got = _match([("openai", "house-llm", "2025-12-01", 10, None), ("openai", "house-llm", "2026-03-01", 10, None),
                      ("openai", "house-llm", "2026-07-01", 10, None), ("openai", "gpt-4o", "2026-07-01", 10, None)],
                     con=ro.con)
        assert [(r["price_snapshot"], r["input_per_mtok"], r["price_in_force"]) for r in got] == [
            ("house 2026-01", D("2"), False), ("house 2026-01", D("2"), True), ("litellm 2026-06-01", D("3"), True),
            (genai_prices.BUNDLED_SNAPSHOT, D("2.5"), True)]  # the store's litellm rows replace the bundled ones
        catalogs = ro.con.execute(f"SELECT catalog, count(*) FROM ({llm_prices.prices_sql(ro.con)}) GROUP BY ALL "
                                  "ORDER BY 1").fetchall()
        assert catalogs == [("genai-prices", 1926), ("litellm", 2)]


# -- CLI ------------------------------------------------------------------------------------------

runner = CliRunner()


def _cli(tmp_path: Path, *args: str, code: int = 0) -> str:
    config = tmp_path / "aifinops.yaml"
    if not config.exists():
        config.write_text("llm:\n  aliases: {prod-chat: gpt-4o}\n  prices:\n"
                          "    - {model: gpt-4o, provider: openai, kind: contract, input_per_mtok: 2.1, "
                          "output_per_mtok: 8.4}\n")
    res = runner.invoke(app, ["--db", str(tmp_path / "none.duckdb"), "--config", str(config), *args],
                        catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


def test_cli_prices_show(tmp_path: Path) -> None:
    rows = json.loads(_cli(tmp_path, "prices", "show", "prod-chat", "--provider", "openai", "--format", "json"))
    win = rows[0]
    assert (win["rank"], win["kind"], win["model"], win["input_per_mtok"], win["alias"]) == \
        (1, "contract", "gpt-4o", "2.1", "gpt-4o")
    assert win["why"] == "wins: contract, match provider+model, tier standard"
    assert rows[1]["why"] == "catalog ranks below contract"
    rows = json.loads(_cli(tmp_path, "prices", "show", "gemini-2.5-pro", "--provider", "gemini", "--tier",
                           "priority", "--input-tokens", "300000", "--format", "json"))
    assert (rows[0]["tier"], rows[0]["above_tokens"], rows[0]["input_per_mtok"]) == ("priority", 200000, "4.5")
    assert "no price for 'no-such-model'" in _cli(tmp_path, "prices", "show", "no-such-model", code=1)
    out = _cli(tmp_path, "prices", "show", "gpt-4o", "--at", "yesterday", code=1)
    assert "--at 'yesterday'" in out and "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert "wins: contract" in _cli(tmp_path, "prices", "show", "gpt-4o", "--provider", "openai")


def test_cli_prices_diff(tmp_path: Path) -> None:
    doc = json.loads(_cli(tmp_path, "prices", "diff", "--format", "json"))
    assert doc["summary"] == {"catalog_a": "litellm", "catalog_b": "genai-prices", "models_litellm": 3087,
                              "models_genai-prices": 1753, "models_in_both": 354, "disagree": 72,
                              "min_diff": "0.05"}
    by_key = {(r["provider"], r["model_key"]): r for r in doc["disagreements"]}
    flash = by_key[("deepseek", "deepseek-v4-flash")]
    assert (flash["input_litellm"], flash["input_genai-prices"], flash["differ"]) == \
        ("0.3", "0.14", "input,output,cache_read,cache_write")
    assert ("openai", "gpt-4o") not in by_key  # both say 2.5 / 10 / 1.25
    loose = json.loads(_cli(tmp_path, "prices", "diff", "--min-diff", "0.5", "--format", "json"))
    assert loose["summary"]["models_in_both"] == 354 and loose["summary"]["disagree"] < 72
    assert "in both: 354" in _cli(tmp_path, "prices", "diff")
    assert "two different catalogs" in _cli(tmp_path, "prices", "diff", "--catalogs", "litellm", code=1)


@pytest.mark.parametrize(("settings", "named"), [
    ("llm:\n  catalog: [litellm]\n", "llm.catalog"),
    ("llm:\n  prices:\n    - {model: gpt-4o, kind: discount, input_per_mtok: 1, output_per_mtok: 1}\n",
     "llm.prices.0.kind"),
    ("llm:\n  prices:\n    - {model: gpt-4o, kind: contract, input_per_mtok: -1, output_per_mtok: 1}\n",
     "llm.prices.0.input_per_mtok"),
])
def test_bad_price_settings_are_one_line(tmp_path: Path, settings: str, named: str) -> None:
    (tmp_path / "aifinops.yaml").write_text(settings)
    out = _cli(tmp_path, "prices", "show", "gpt-4o", code=1)
    assert named in out and "Traceback" not in out
