"""The demo's LLM features: real-format files the request sources read, tokens tied to the bill, unit costs with
outcomes, the self-hosted model priced from GPU cost, and the reconciliation with the ledger."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path

import pytest

from aifinops.analysis.layers import load_rules
from aifinops.analysis.llm_costs import self_hosted_report
from aifinops.analysis.llm_reconcile import ledger_by_provider, reconcile
from aifinops.analysis.unit_costs import unit_costs
from aifinops.analysis.windows import Window, parse_window
from aifinops.analysis.workload_costs import serving_costs
from aifinops.demo.fleet import Scenario, build_scenario
from aifinops.demo.gpu_fleet import write_gpu_fleet
from aifinops.demo.llm_usage import (
    LLAMA_PEAK_TOKENS_PER_S,
    ROLLUP_MAPPING,
    SELF_HOSTED,
    LlmFiles,
    bill_models,
    write_llm_usage,
)
from aifinops.demo.run import run_demo
from aifinops.demo.synthetic import write_bill
from aifinops.sources.base import sources
from aifinops.store.connection import Store
from aifinops.store.ingest import BatchResult, ingest

DAYS = 14  # a short company history keeps the module at a few seconds; the copilot launch falls on day 10
OUTCOMES = {"support-copilot": "tickets_resolved", "semantic-search": "searches_with_click",
            "doc-summarizer": "documents_summarized"}

@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(seed=7, days=DAYS)


@pytest.fixture(scope="module")
def files(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> LlmFiles:
    return write_llm_usage(scenario, tmp_path_factory.mktemp("llm"))


@pytest.fixture(scope="module")
def loaded(scenario: Scenario, files: LlmFiles, tmp_path_factory: pytest.TempPathFactory):
    """The bill, the GPU nodes and pods (what the serving cost needs), then the LLM files."""
    tmp = tmp_path_factory.mktemp("store")
    store = Store(tmp / "store.duckdb")
    ingest(store, sources.get("focus")(), write_bill(scenario, tmp / "bill"))
    fleet = write_gpu_fleet(scenario, tmp / "gpu", telemetry_days=1, step_s=3600)
    ingest(store, sources.get("inventory")(), [fleet.inventory])
    ingest(store, sources.get("kubernetes")(), fleet.pods)
    results = {kind: ingest(store, sources.get(kind)(**options), [path]) for kind, options, path in (
        ("otel", {}, files.otel), ("litellm", {}, files.litellm), ("llm-usage", ROLLUP_MAPPING, files.rollup),
        ("outcomes", {}, files.outcomes))}
    yield store, results
    store.close()


@pytest.fixture(scope="module")
def window(loaded: tuple[Store, dict[str, BatchResult]]) -> Window:
    store, _ = loaded
    end = store.con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges').fetchone()[0]
    return parse_window(f"{DAYS}d", end)


def test_the_sources_read_every_file_with_nothing_quarantined(loaded: tuple[Store, dict[str, BatchResult]]) -> None:
    _, results = loaded
    for kind, res in results.items():
        assert res.status == "loaded", kind
        assert res.rows_read == res.rows_loaded > 0, kind
        assert res.rows_quarantined == 0 and not res.warnings, (kind, res.warnings)
    # the only note: the escalation agent's invoke_agent spans, whose model calls are spans of their own
    assert [n for n in results["otel"].notes if "invoke_agent" not in n] == []
    assert not any(res.notes for kind, res in results.items() if kind != "otel")


def test_every_api_models_tokens_are_the_bills_of_the_same_day(loaded: tuple[Store, dict[str, BatchResult]],
                                                              scenario: Scenario) -> None:
    store, _ = loaded
    names = bill_models(scenario)
    store.con.execute("CREATE TEMP TABLE names(model VARCHAR, bill VARCHAR)")
    store.con.executemany("INSERT INTO names VALUES (?, ?)", list(names.items()))
    usage = store.con.execute("""
        SELECT n.bill, CAST(r.ts AS DATE) AS day, sum(r.input_tokens), sum(r.output_tokens)
        FROM llm_requests r JOIN names n ON n.model = coalesce(r.response_model, r.request_model)
        WHERE NOT r._superseded GROUP BY ALL""").fetchall()
    bill = store.con.execute("""
        SELECT regexp_extract("SkuMeter", '^(.*) (Input|Output) Tokens$', 1) AS bill,
               CAST("ChargePeriodStart" AS DATE) AS day,
               sum("ConsumedQuantity") FILTER (WHERE "SkuMeter" LIKE '% Input Tokens'),
               sum("ConsumedQuantity") FILTER (WHERE "SkuMeter" LIKE '% Output Tokens')
        FROM focus_charges WHERE "ConsumedUnit" = 'Tokens' GROUP BY ALL""").fetchall()
    billed = {(m, d): (int(i or 0), int(o or 0)) for m, d, i, o in bill}
    assert {(m, d): (int(i), int(o)) for m, d, i, o in usage} == billed
    assert {m for m, _ in billed} == {m.model for m in scenario.api_models}


def test_unit_costs_by_feature_have_their_outcomes(loaded: tuple[Store, dict[str, BatchResult]],
                                                   window: Window) -> None:
    store, _ = loaded
    served = serving_costs(store.con, window)
    for feature, metric in OUTCOMES.items():
        rows = {r["feature"]: r for r in unit_costs(store.con, window, ["feature"], served=served, outcome=metric,
                                                     revenue="revenue")}
        row = rows[feature]
        assert row["cost"] > 0 and row["outcome"] > 0 and row["costPerOutcome"] > 0, (feature, row)
        if feature == "doc-summarizer":  # the paid feature
            assert row["revenue"] > row["cost"] and 0 < row["grossMargin"] < 1
        else:
            assert row["revenue"] is None and row["grossMargin"] is None
    assert set(rows) == {"support-copilot", "semantic-search", "doc-summarizer", "recsys-explanations",
                         "analytics-assistant"}
    for feature in ("support-copilot", "doc-summarizer", "analytics-assistant"):  # per-request sources name users
        assert rows[feature]["activeUsers"] > 100 and rows[feature]["costPerActiveUser"] > 0
    assert rows["support-copilot"]["conversations"] > 1000 and rows["support-copilot"]["cachedTokens"] > 0
    assert rows["doc-summarizer"]["sourceCost"] > 0 and rows["doc-summarizer"]["drift"] != 0  # LiteLLM's own spend


def test_the_self_hosted_model_is_priced_from_its_serving_gpu_cost(loaded: tuple[Store, dict[str, BatchResult]],
                                                                    window: Window) -> None:
    store, _ = loaded
    served = serving_costs(store.con, window)
    llama = next(s for s in served if s.model == SELF_HOSTED.model)
    assert llama.gpu_cost > 0 and llama.workloads > 0
    report = {r["comparedWith"]: r for r in self_hosted_report(store.con, window, served)
              if r["model"] == SELF_HOSTED.model}
    first = next(iter(report.values()))
    tokens = first["inputTokens"] + first["outputTokens"]
    assert first["costPer1MTokens"] == llama.gpu_cost * 1_000_000 / tokens
    assert all(report[m]["apiCostPer1MTokens"] > 0 for m in ("openai/gpt-4o-mini", "openai/gpt-4o",
                                                              "anthropic/claude-3-5-haiku"))
    row = {r["model"]: r for r in unit_costs(store.con, window, ["model"], served=served)}[SELF_HOSTED.model]
    assert row["unpricedRequests"] == 0 and row["selfHostedCost"] == row["cost"]
    assert abs(row["cost"] - llama.gpu_cost) < Decimal("0.01")  # the GPU cost, spread over its tokens
    peak = store.con.execute("""SELECT max(t) FROM (SELECT sum(input_tokens + output_tokens) AS t FROM llm_requests
        WHERE request_model = ? GROUP BY date_trunc('hour', ts))""", [SELF_HOSTED.model]).fetchone()[0]
    assert 0 < peak <= LLAMA_PEAK_TOKENS_PER_S * 3600  # what 4 vLLM replicas of a 70B on A100-40GB can serve


def test_unpriced_requests_are_counted_not_costed(loaded: tuple[Store, dict[str, BatchResult]],
                                                  window: Window) -> None:
    store, _ = loaded
    by_model = unit_costs(store.con, window, ["model"], served=serving_costs(store.con, window))
    unpriced = [r for r in by_model if r["unpricedRequests"]]
    assert [r["model"].rsplit("/", 1)[0] for r in unpriced] == \
        ["arn:aws:bedrock:us-east-1:502193847261:application-inference-profile"]
    arn = unpriced[0]
    assert arn["unpricedRequests"] == arn["requests"] > 0 and arn["costPerRequest"] is None
    assert arn["unpricedTokens"] == arn["inputTokens"] + arn["outputTokens"]
    copilot = next(r for r in unit_costs(store.con, window, ["feature"], served=serving_costs(store.con, window))
                   if r["feature"] == "support-copilot")
    assert copilot["unpricedRequests"] == arn["requests"]
    assert copilot["costPerRequest"] == copilot["cost"] / (copilot["requests"] - arn["requests"])


@pytest.mark.parametrize(("provider", "low", "high"), [
    ("azure.ai.openai", 0.80, 0.95),  # cache reads priced at 25% of input; embeddings 10% above the bill's rate
    ("aws.bedrock", 0.85, 1.00),  # rollup rows priced per average request (their own context tier)
    ("gcp.vertex_ai", 0.88, 1.00),
])
def test_usage_covers_most_of_the_bill(loaded: tuple[Store, dict[str, BatchResult]], window: Window, provider: str,
                                       low: float, high: float) -> None:
    store, _ = loaded
    served = serving_costs(store.con, window)
    usage = unit_costs(store.con, window, ["provider"], served=served)
    # usage charges only: a short history starts mid-month, so the window holds the month's credits and taxes,
    # which the demo's 30-day window of its 90-day bill does not
    t = store.ibis().table("focus_charges")
    rows = {r["provider"]: r for r in reconcile(usage, ledger_by_provider(t.filter(t.ChargeCategory == "Usage"),
                                                                          window, load_rules(None)))}
    assert low <= rows[provider]["coverage"] <= high, rows[provider]
    assert rows["vllm"]["ledgerCost"] is None and rows["vllm"]["usageCost"] > 0  # GPU cost, not an AI service


def test_the_files_are_the_same_for_a_seed(scenario: Scenario, files: LlmFiles, tmp_path: Path) -> None:
    def digest(f: LlmFiles) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in (f.otel, f.litellm, f.rollup, f.outcomes)]

    assert digest(write_llm_usage(scenario, tmp_path / "again")) == digest(files)
    other = digest(write_llm_usage(build_scenario(seed=8, days=DAYS), tmp_path / "other"))
    assert all(a != b for a, b in zip(other, digest(files), strict=True))


def test_demo_summary_shows_the_llm_sections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = run_demo(tmp_path / "demo", days=7).read_text()
    for title in ("Unit costs by feature (last 30d)", "Self-hosted vs API models (last 30d)",
                  "LLM usage vs the bill, by provider (last 30d)"):
        assert title in html
    section = html[html.index("Unit costs by feature"):]
    section = section[:section.index("</section>")]
    for feature in ("support-copilot", "semantic-search", "doc-summarizer", "recsys-explanations",
                    "analytics-assistant"):
        assert f"<td>{feature}</td>" in section
    assert "tickets_resolved" in section and "grossMargin" in section
    assert "cost per resolved ticket" in html and SELF_HOSTED.model in html
    out = capsys.readouterr().out
    assert "5a. support copilot" in out and "Unit costs by feature" in out
    assert "unit-costs --by feature --outcome tickets_resolved" in out and "unit-costs --reconcile" in out
