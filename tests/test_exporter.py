"""Prometheus /metrics by hand: a small store whose every number is worked out below, scraped with the
prometheus-client parser, and served by uvicorn on 127.0.0.1.

The store (the ledger ends 2026-10-11 00:00, so day = Oct 10, month = Oct 1-11, 24h = Oct 10)::

    ledger     Sep 30  EC2       $1000  team a                 (before the month: never counted)
               Oct 1   EC2 p5     $100  team ml, model llama   compute-gpu
               Oct 5   Bedrock     $50  team apps, model claude ai-services
               Oct 10  EC2 p5      $30  team ml, model llama   compute-gpu
               Oct 10  EC2 p5     -$10  team ml, model llama   compute-gpu (a credit)
               Oct 10  S3          $20  owner data (no team tag: waste.owner_labels falls back to owner)  storage
               Oct 10  Support      $5  team "  " (blank: untagged)  other
      month: 195 = ml 120 + apps 50 + data 20 + (untagged) 5;  day: 45 = ml 20 + data 20 + (untagged) 5

    GPU        pool-a: a1, 2 GPUs at $4/h; w1 holds 1 GPU all month (model acme-chat, a ReplicaSet)
                       activity 0.9 on Oct 1, 0.5 on Oct 10 (no telemetry between)
               pool-b: b1, 1 GPU at $2/h; w2 holds it on Oct 10 only, at 0.02 activity (allocated idle)
      month (240 h): a $960 (w1 $480, unallocated $480), efficiency (0.9 + 0.5) / 2 = 0.7
                     b $480 (w2 $48 allocated idle, unallocated 216 h = $432), efficiency 0.02
      24h:           a $96 (unallocated $48), efficiency 0.5;  b $48 (all w2, allocated idle), efficiency 0.02

    LLM        acme-chat (vllm, self-hosted): 3,000 tokens Oct 1, 2 x 1,500 Oct 10; its GPU cost is w1's:
                 month $480 / 6K tokens = $80 per 1K;  day $48 / 3K = $16 per 1K
               gpt-x ($1 in, $2 out per 1M): Oct 5 2M in = $2; Oct 10 1M in + 1M out = $3
                 month $5 / 4M = $0.00125 per 1K;  day $3 / 2M = $0.0015 per 1K
               zz-unpriced-test: 1,000 tokens Oct 10, no price: unpriced, no cost per 1K

    budgets    ml (tag:team=ml) $200: spent 120 (0.6); the ml history Oct 1..10 = 100, 0 x 8, 20 is too short for
                 MSTL (two weeks), so seasonal naive repeats its last week (20 once) over Oct 11-31: 3 x 20;
                 forecast 180 (0.9)
               all $1000: spent 195; last week Oct 4..10 = 50 + 45 -> 195 + 3 x 95 = 480 (0.48)
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from waste_fixtures import add_activity, add_charge, add_node, add_requests, add_workload

from aifinops.config import AllocationSettings, BudgetSettings, Settings
from aifinops.interfaces import exporter
from aifinops.store.connection import Store

T = datetime(2026, 10, 1)
END = datetime(2026, 10, 11)
DAY = timedelta(days=1)
DASHBOARD = Path(__file__).parent.parent / "examples" / "grafana" / "aifinops-dashboard.json"
Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


def _ledger(con: duckdb.DuckDBPyConnection) -> None:
    gpu = {"ServiceName": "Amazon EC2", "ChargeDescription": "p5.48xlarge"}
    add_charge(con, T - DAY, T, "1000", ServiceName="Amazon EC2", Tags={"team": "a"})
    add_charge(con, T, T + DAY, "100", **gpu, Tags={"team": "ml", "model": "llama"})
    add_charge(con, T + 4 * DAY, T + 5 * DAY, "50", ServiceName="Amazon Bedrock",
               Tags={"team": "apps", "model": "claude"})
    d10 = T + 9 * DAY
    add_charge(con, d10, END, "30", **gpu, Tags={"team": "ml", "model": "llama"})
    add_charge(con, d10, END, "-10", **gpu, ChargeCategory="Credit", Tags={"team": "ml", "model": "llama"})
    add_charge(con, d10, END, "20", ServiceName="Amazon S3", Tags={"owner": "data"})
    add_charge(con, d10, END, "5", ServiceName="Support", Tags={"team": "  "})


def _gpu(con: duckdb.DuckDBPyConnection) -> None:
    add_node(con, "a1", 2, "4", node_pool="pool-a")
    add_node(con, "b1", 1, "2", node_pool="pool-b")
    add_workload(con, "w1", "a1", 1, T, None, labels={"model": "acme-chat"}, owner_kind="ReplicaSet")
    add_workload(con, "w2", "b1", 1, T + 9 * DAY, END, phase="Succeeded")
    add_activity(con, "a1", 0, T, 24, 0.9, pod="w1", every_s=300)
    add_activity(con, "a1", 0, T + 9 * DAY, 24, 0.5, pod="w1", every_s=300)
    add_activity(con, "b1", 0, T + 9 * DAY, 24, 0.02, pod="w2", every_s=300)


def _llm(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO llm_prices (catalog, provider, model, model_key, mode, tier, above_tokens, input_per_mtok, "
        "output_per_mtok, currency, snapshot, _batch_id, _file, _row) VALUES ('litellm', 'openai', 'gpt-x', "
        "'gpt-x', 'chat', 'standard', 0, 1, 2, 'USD', 't', 1, 't', 0)")
    noon = timedelta(hours=12)
    add_requests(con, [
        {"ts": T + noon, "provider": "vllm", "request_model": "acme-chat", "input_tokens": 2000, "output_tokens": 1000},
        {"ts": T + 9 * DAY + noon, "provider": "vllm", "request_model": "acme-chat", "input_tokens": 1000,
         "output_tokens": 500},
        {"ts": T + 9 * DAY + noon, "provider": "vllm", "request_model": "acme-chat", "input_tokens": 1000,
         "output_tokens": 500},
        {"ts": T + 4 * DAY, "provider": "openai", "request_model": "gpt-x", "input_tokens": 2_000_000,
         "output_tokens": 0},
        {"ts": T + 9 * DAY, "provider": "openai", "request_model": "gpt-x", "input_tokens": 1_000_000,
         "output_tokens": 1_000_000},
        {"ts": T + 9 * DAY, "provider": "openai", "request_model": "zz-unpriced-test", "input_tokens": 1000,
         "output_tokens": 0},
    ])


def _findings_and_anomalies(con: duckdb.DuckDBPyConnection) -> None:
    for fid, rule, status, active, saving in [("f1", "idle-gpu-capacity", "open", True, 100),
                                              ("f2", "idle-gpu-capacity", "open", True, 50),
                                              ("f3", "underused-gpu", "open", True, 30),
                                              ("f4", "idle-gpu-capacity", "dismissed", True, 1000),
                                              ("f5", "underused-gpu", "open", False, 999)]:
        con.execute("INSERT INTO findings (finding_id, rule, scope_kind, scope, status, first_seen, last_seen, active, "
                    "achievable_saving) VALUES (?, ?, 'node_pool', ?, ?, ?, ?, ?, ?)",
                    [fid, rule, fid, status, END, END, active, saving])
    for aid, metric, severity, direction, impact, status, active in [
            ("a1", "cost", "high", "up", 500, "open", True), ("a2", "cost", "high", "up", 250, "open", True),
            ("a3", "gpu_cost", "medium", "up", 40, "open", True), ("a4", "cost", "low", "down", -30, "open", True),
            ("a5", "cost", "high", "up", 9999, "expected", True), ("a6", "tokens", "high", "up", 77, "open", False)]:
        con.execute("INSERT INTO anomalies (anomaly_id, metric, dimension, series, grain, period_start, periods, "
                    "impact_cost, direction, severity, status, first_seen, last_seen, active) "
                    "VALUES (?, ?, 'ServiceName', ?, 'day', ?, 1, ?, ?, ?, ?, ?, ?, ?)",
                    [aid, metric, aid, T, impact, direction, severity, status, END, END, active])
    con.execute("INSERT INTO batches (batch_id, source_kind, status, fingerprint, started_at, seconds, rows_read, "
                "rows_loaded, rows_quarantined) VALUES (1, 'focus', 'loaded', 'x', ?, 2.5, 9, 7, 2)",
                [END + timedelta(hours=1)])
    for key, event, ok in [("k1", "new", True), ("k1", "update", False), ("k2", "new", True)]:
        con.execute("INSERT INTO alert_deliveries VALUES (?, 'ops', ?, 1, ?, ?, NULL, NULL, 0.1)",
                    [key, event, END, ok])


BUDGETS = [BudgetSettings(name="ml", scope={"tag:team": "ml"}, amount=200), BudgetSettings(name="all", amount=1000)]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exporter") / "store.duckdb"
    with Store(path) as store:
        _ledger(store.con)
        _gpu(store.con)
        _llm(store.con)
        _findings_and_anomalies(store.con)
    return path


def _parse(body: bytes) -> tuple[Samples, set[str]]:
    """(sample name -> labels -> value, every family and sample name exposed)."""
    samples: Samples = {}
    names: set[str] = set()
    for fam in text_string_to_metric_families(body.decode()):
        names.add(fam.name)
        samples.setdefault(fam.name, {})
        for s in fam.samples:
            names.add(s.name)
            samples.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return samples, names


def _scrape(db: Path, settings: Settings | None = None, now: datetime | None = None, top: int = 10) -> Samples:
    with Store(db, read_only=True) as store:
        body = exporter.collect(store.con.cursor(), settings or Settings(budgets=BUDGETS), now=now, top=top)
    return _parse(body)[0]


def _by(samples: Samples, name: str, label: str, **fixed: str) -> dict[str, float]:
    """label value -> value of the samples of ``name`` whose other labels are ``fixed``."""
    out = {}
    for labels, v in samples[name].items():
        d = dict(labels)
        if all(d.get(k) == x for k, x in fixed.items()):
            out[d[label]] = v
    return out


@pytest.fixture(scope="module")
def scraped(db: Path) -> Samples:
    return _scrape(db)


def test_every_section_succeeds_and_the_windows_end_where_the_ledger_ends(scraped: Samples) -> None:
    assert _by(scraped, "aifinops_scrape_section_success", "section") == dict.fromkeys(exporter.SECTIONS, 1.0)
    assert _by(scraped, "aifinops_window_start_timestamp_seconds", "window") == {
        "day": exporter._epoch(T + 9 * DAY), "month": exporter._epoch(T), "24h": exporter._epoch(T + 9 * DAY)}
    assert scraped["aifinops_window_end_timestamp_seconds"] == {frozenset(): exporter._epoch(END)}
    assert _by(scraped, "aifinops_data_end_timestamp_seconds", "table") == {
        "focus_charges": exporter._epoch(END), "gpu_samples": exporter._epoch(END - timedelta(minutes=5)),
        "workloads": exporter._epoch(END), "llm_requests": exporter._epoch(T + 9 * DAY + timedelta(hours=12))}
    [(labels, one)] = scraped["aifinops_build_info"].items()
    assert one == 1 and dict(labels)["schema_version"].isdigit()


def test_cost_by_team_model_and_layer_by_hand(scraped: Samples) -> None:
    assert _by(scraped, "aifinops_cost_usd", "window") == {"day": 45.0, "month": 195.0}
    assert _by(scraped, "aifinops_team_cost_usd", "team", window="month") == {
        "ml": 120.0, "apps": 50.0, "data": 20.0, "(untagged)": 5.0}
    assert _by(scraped, "aifinops_team_cost_usd", "team", window="day") == {"ml": 20.0, "data": 20.0, "(untagged)": 5.0}
    assert _by(scraped, "aifinops_model_cost_usd", "model", window="month") == {
        "llama": 120.0, "claude": 50.0, "(untagged)": 25.0}
    assert _by(scraped, "aifinops_model_cost_usd", "model", window="day") == {"llama": 20.0, "(untagged)": 25.0}
    assert _by(scraped, "aifinops_layer_cost_usd", "layer", window="month") == {
        "compute-gpu": 120.0, "ai-services": 50.0, "storage": 20.0, "other": 5.0}
    assert _by(scraped, "aifinops_layer_cost_usd", "layer", window="day") == {
        "compute-gpu": 20.0, "storage": 20.0, "other": 5.0}


def test_gpu_cost_idle_hours_and_efficiency_by_node_pool(scraped: Samples) -> None:
    assert _by(scraped, "aifinops_gpu_cost_usd", "node_pool", window="month") == {"pool-a": 960.0, "pool-b": 480.0}
    assert _by(scraped, "aifinops_gpu_cost_usd", "node_pool", window="24h") == {"pool-a": 96.0, "pool-b": 48.0}
    idle = "aifinops_gpu_idle_cost_usd"
    assert _by(scraped, idle, "node_pool", window="month", kind="unallocated") == {"pool-a": 480.0, "pool-b": 432.0}
    assert _by(scraped, idle, "node_pool", window="month", kind="allocated") == {"pool-a": 0.0, "pool-b": 48.0}
    assert _by(scraped, idle, "node_pool", window="24h", kind="unallocated") == {"pool-a": 48.0, "pool-b": 0.0}
    assert _by(scraped, idle, "node_pool", window="24h", kind="allocated") == {"pool-a": 0.0, "pool-b": 48.0}
    hours = "aifinops_gpu_hours"
    assert _by(scraped, hours, "node_pool", window="month", state="allocated") == {"pool-a": 240.0, "pool-b": 24.0}
    assert _by(scraped, hours, "node_pool", window="month", state="unallocated") == {"pool-a": 240.0, "pool-b": 216.0}
    assert _by(scraped, hours, "node_pool", window="24h", state="unallocated") == {"pool-a": 24.0, "pool-b": 0.0}
    eff = "aifinops_gpu_efficiency_ratio"
    assert _by(scraped, eff, "node_pool", window="month") == pytest.approx({"pool-a": 0.7, "pool-b": 0.02})
    assert _by(scraped, eff, "node_pool", window="24h") == pytest.approx({"pool-a": 0.5, "pool-b": 0.02})


def test_llm_cost_per_1k_tokens_by_model(scraped: Samples) -> None:
    per_1k = "aifinops_llm_cost_per_1k_tokens_usd"
    assert _by(scraped, per_1k, "model", window="month") == pytest.approx({"acme-chat": 80.0, "gpt-x": 0.00125})
    assert _by(scraped, per_1k, "model", window="day") == pytest.approx({"acme-chat": 16.0, "gpt-x": 0.0015})
    assert _by(scraped, "aifinops_llm_cost_usd", "model", window="month") == pytest.approx(
        {"acme-chat": 480.0, "gpt-x": 5.0, "zz-unpriced-test": 0.0})
    assert _by(scraped, "aifinops_llm_tokens", "model", window="day") == {
        "acme-chat": 3000.0, "gpt-x": 2_000_000.0, "zz-unpriced-test": 1000.0}
    assert _by(scraped, "aifinops_llm_unpriced_tokens", "model", window="month") == {
        "acme-chat": 0.0, "gpt-x": 0.0, "zz-unpriced-test": 1000.0}
    assert _by(scraped, "aifinops_llm_requests", "model", window="month") == {
        "acme-chat": 3.0, "gpt-x": 2.0, "zz-unpriced-test": 1.0}


def test_budget_burn_by_hand(scraped: Samples) -> None:
    assert _by(scraped, "aifinops_budget_amount_usd", "budget") == {"ml": 200.0, "all": 1000.0}
    assert _by(scraped, "aifinops_budget_spent_usd", "budget") == {"ml": 120.0, "all": 195.0}
    assert _by(scraped, "aifinops_budget_spent_ratio", "budget") == {"ml": 0.6, "all": 0.195}
    assert _by(scraped, "aifinops_budget_forecast_usd", "budget") == pytest.approx({"ml": 180.0, "all": 480.0})
    assert _by(scraped, "aifinops_budget_forecast_ratio", "budget") == pytest.approx({"ml": 0.9, "all": 0.48})


def test_open_findings_anomalies_ingest_and_deliveries(scraped: Samples) -> None:
    assert _by(scraped, "aifinops_findings_open", "rule") == {"idle-gpu-capacity": 2.0, "underused-gpu": 1.0}
    assert _by(scraped, "aifinops_findings_open_monthly_saving_usd", "rule") == {
        "idle-gpu-capacity": 150.0, "underused-gpu": 30.0}
    count = {tuple(sorted(dict(k).items())): v for k, v in scraped["aifinops_anomalies_open"].items()}
    impact = {tuple(sorted(dict(k).items())): v for k, v in scraped["aifinops_anomalies_open_impact_usd"].items()}

    def key(m: str, sev: str, d: str) -> tuple[tuple[str, str], ...]:
        return (("direction", d), ("metric", m), ("severity", sev))

    assert count == {key("cost", "high", "up"): 2.0, key("gpu_cost", "medium", "up"): 1.0,
                     key("cost", "low", "down"): 1.0}
    assert impact == {key("cost", "high", "up"): 750.0, key("gpu_cost", "medium", "up"): 40.0,
                      key("cost", "low", "down"): -30.0}
    assert _by(scraped, "aifinops_ingest_rows_total", "source") == {"focus": 7.0}
    assert _by(scraped, "aifinops_ingest_rows_quarantined_total", "source") == {"focus": 2.0}
    assert _by(scraped, "aifinops_ingest_batches_total", "source") == {"focus": 1.0}
    assert _by(scraped, "aifinops_ingest_last_batch_timestamp_seconds", "source") == {
        "focus": exporter._epoch(END + timedelta(hours=1)) + 2.5}
    assert _by(scraped, "aifinops_alert_deliveries_total", "result", channel="ops") == {"ok": 2.0, "failed": 1.0}


def test_top_n_keeps_the_largest_and_folds_the_rest_into_other(db: Path) -> None:
    """top=1: the largest value of every family keeps its name and ``other`` holds the rest; a ratio of ``other``
    comes from its summed parts (pool-b alone here: 0.02)."""
    s = _scrape(db, top=1)
    assert _by(s, "aifinops_team_cost_usd", "team", window="month") == {"ml": 120.0, "other": 75.0}
    # day: ml and data tie at 20; the tie goes by name, so data stays
    assert _by(s, "aifinops_team_cost_usd", "team", window="day") == {"data": 20.0, "other": 25.0}
    # the real "other" layer folds into the other series: labels stay unique and the total is kept
    assert _by(s, "aifinops_layer_cost_usd", "layer", window="month") == {"compute-gpu": 120.0, "other": 75.0}
    assert _by(s, "aifinops_gpu_cost_usd", "node_pool", window="month") == {"pool-a": 960.0, "other": 480.0}
    assert _by(s, "aifinops_gpu_efficiency_ratio", "node_pool", window="month") == pytest.approx(
        {"pool-a": 0.7, "other": 0.02})
    assert _by(s, "aifinops_llm_cost_per_1k_tokens_usd", "model", window="month") == pytest.approx(
        {"acme-chat": 80.0, "other": 5 / 4000})  # gpt-x's $5 over its 4M priced tokens; the unpriced 1K left out
    assert _by(s, "aifinops_findings_open", "rule") == {"idle-gpu-capacity": 2.0, "other": 1.0}
    assert sorted(dict(k)["metric"] for k in s["aifinops_anomalies_open"]) == ["cost", "cost", "other"]


def test_fifty_teams_give_exactly_top_plus_one_series_adding_up_to_the_total(tmp_path: Path) -> None:
    """Teams t00..t49 spend $1..$50 on Oct 10, and a team named "other" $100: top 10 keeps t49..t40 ($50..$41); the
    other series holds $1..$40 = $820 and the team named other (it takes no top place: labels stay unique)."""
    path = tmp_path / "teams.duckdb"
    with Store(path) as store:
        for i in range(50):
            add_charge(store.con, T + 9 * DAY, END, str(i + 1), ServiceName="Amazon S3", Tags={"team": f"t{i:02d}"})
        add_charge(store.con, T + 9 * DAY, END, "100", ServiceName="Amazon S3", Tags={"team": "other"})
    s = _scrape(path, Settings())
    month = _by(s, "aifinops_team_cost_usd", "team", window="month")
    assert len(month) == 11
    assert month == {**{f"t{i:02d}": float(i + 1) for i in range(40, 50)}, "other": 920.0}
    assert sum(month.values()) == _by(s, "aifinops_cost_usd", "window")["month"] == 1375.0


def test_a_sharing_policy_prices_self_hosted_tokens_as_serving_costs_does(db: Path) -> None:
    """share_idle=weighted moves a1's idle $480 onto w1, so acme-chat's GPUs cost $960 this month ($160 per 1K) and
    $96 on Oct 10 ($32 per 1K); the node pool economics keep idle as its own line."""
    s = _scrape(db, Settings(budgets=BUDGETS, allocation=AllocationSettings(share_idle="weighted")))
    assert _by(s, "aifinops_llm_cost_per_1k_tokens_usd", "model", window="month") == pytest.approx(
        {"acme-chat": 160.0, "gpt-x": 0.00125})
    assert _by(s, "aifinops_llm_cost_per_1k_tokens_usd", "model", window="day") == pytest.approx(
        {"acme-chat": 32.0, "gpt-x": 0.0015})
    assert _by(s, "aifinops_gpu_idle_cost_usd", "node_pool", window="month", kind="unallocated") == {
        "pool-a": 480.0, "pool-b": 432.0}


def test_now_moves_every_window(db: Path) -> None:
    """Windows ending Oct 6: day = Oct 5 (Bedrock $50), month = Oct 1-5 ($150); the GPU month is 120 h."""
    s = _scrape(db, now=T + 5 * DAY)
    assert _by(s, "aifinops_cost_usd", "window") == {"day": 50.0, "month": 150.0}
    assert _by(s, "aifinops_gpu_cost_usd", "node_pool", window="month") == {"pool-a": 480.0, "pool-b": 240.0}


def test_an_empty_store_exposes_every_family_without_errors(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store:
        samples, names = _parse(exporter.collect(store.con.cursor(), Settings()))
    assert _by(samples, "aifinops_scrape_section_success", "section") == dict.fromkeys(exporter.SECTIONS, 1.0)
    assert _by(samples, "aifinops_cost_usd", "window") == {"day": 0.0, "month": 0.0}
    for family in ("aifinops_team_cost_usd", "aifinops_gpu_efficiency_ratio", "aifinops_llm_cost_per_1k_tokens_usd",
                   "aifinops_budget_spent_ratio", "aifinops_findings_open", "aifinops_anomalies_open"):
        assert family in names and samples[family] == {}


def test_a_failing_section_leaves_the_others_and_says_so(db: Path, tmp_path: Path) -> None:
    """A layers file that does not exist breaks the sections that read layers (the ledger's, the budgets'): their
    families stay, without samples; the GPU, LLM, findings and anomalies are there."""
    s = _scrape(db, Settings(budgets=BUDGETS, layers_file=tmp_path / "missing.yaml"))
    assert _by(s, "aifinops_scrape_section_success", "section") == {
        **dict.fromkeys(exporter.SECTIONS, 1.0), "ledger": 0.0, "budgets": 0.0}
    assert s["aifinops_budget_spent_ratio"] == {}
    assert s["aifinops_team_cost_usd"] == {} and s["aifinops_cost_usd"] == {}
    assert _by(s, "aifinops_gpu_cost_usd", "node_pool", window="month") == {"pool-a": 960.0, "pool-b": 480.0}


def test_the_grafana_dashboard_uses_only_exported_metrics(db: Path) -> None:
    with Store(db, read_only=True) as store:
        _, names = _parse(exporter.collect(store.con.cursor(), Settings(budgets=BUDGETS)))
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] == 39
    [var] = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert (var["type"], var["query"]) == ("datasource", "prometheus")
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    for p in panels:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], p["title"]
    used = {m for e in exprs for m in re.findall(r"aifinops_[a-z0-9_]+", e)}
    assert used and used <= names, sorted(used - names)
    kinds = {p["type"] for p in panels}
    assert {"bargauge", "piechart", "timeseries", "table", "gauge", "stat"} <= kinds
    [burn] = [p for p in panels if p["type"] == "gauge"]
    steps = burn["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.8, 1.0]


# -- served over HTTP ---------------------------------------------------------------------------------------


@contextmanager
def _serve(app: exporter.MetricsEndpoint) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_served_with_its_content_type_and_a_cache_that_collects_once_per_ttl(db: Path) -> None:
    store = Store(db, read_only=True)
    opened: list[object] = []

    def cursor() -> duckdb.DuckDBPyConnection:
        opened.append(1)
        return store.con.cursor()

    try:
        with _serve(exporter.make_asgi(cursor, Settings(budgets=BUDGETS), ttl=60)) as url:
            first, second = httpx.get(url + "/metrics", timeout=30), httpx.get(url + "/metrics", timeout=30)
            assert first.status_code == second.status_code == 200
            assert first.headers["content-type"] == exporter.CONTENT_TYPE
            assert first.content == second.content and len(opened) == 1
            samples, _ = _parse(first.content)
            assert _by(samples, "aifinops_cost_usd", "window") == {"day": 45.0, "month": 195.0}
            assert httpx.post(url + "/metrics", timeout=30).status_code == 405
        with _serve(exporter.make_asgi(cursor, Settings(), ttl=0)) as url:
            assert httpx.get(url, timeout=30).status_code == httpx.get(url, timeout=30).status_code == 200
            assert len(opened) == 3  # a ttl of 0: every scrape collects
    finally:
        store.close()


def test_authorize_guards_the_endpoint(db: Path) -> None:
    store = Store(db, read_only=True)
    try:
        def admin(request: Request) -> bool:
            return request.headers.get("authorization") == "Bearer admin"

        with _serve(exporter.make_asgi(store.con.cursor, Settings(), authorize=admin)) as url:
            denied = httpx.get(url, timeout=30)
            assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
            assert httpx.get(url, headers={"Authorization": "Bearer admin"}, timeout=30).status_code == 200
    finally:
        store.close()


def test_a_memo_reuses_the_data_sections_until_data_is_loaded(tmp_path: Path) -> None:
    """The month's allocation runs once per ingest: a second scrape of the same data reuses the ledger, GPU, LLM
    and budget sections; findings are read every time; a new charge (a row more) recomputes everything."""
    with Store(tmp_path / "memo.duckdb") as store:
        _ledger(store.con)
        memo = exporter.Memo()

        def scrape() -> Samples:
            return _parse(exporter.collect(store.con.cursor(), Settings(), memo=memo))[0]

        first, second = scrape(), scrape()
        assert _by(first, "aifinops_scrape_section_cached", "section") == dict.fromkeys(exporter.SECTIONS, 0.0)
        assert _by(second, "aifinops_scrape_section_cached", "section") == {
            **dict.fromkeys(exporter.SECTIONS, 0.0), **dict.fromkeys(exporter.DATA_SECTIONS, 1.0)}
        assert _by(second, "aifinops_cost_usd", "window") == _by(first, "aifinops_cost_usd", "window") == {
            "day": 45.0, "month": 195.0}
        store.con.execute("INSERT INTO findings (finding_id, rule, scope_kind, scope, first_seen, last_seen, "
                          "achievable_saving) VALUES ('f9', 'storage-bloat', 'resource', 'b', ?, ?, 12)", [END, END])
        third = scrape()
        assert _by(third, "aifinops_scrape_section_cached", "section")["ledger"] == 1.0
        assert _by(third, "aifinops_findings_open_monthly_saving_usd", "rule") == {"storage-bloat": 12.0}
        add_charge(store.con, T + 9 * DAY, END, "7", ServiceName="Amazon S3", Tags={"team": "ml"})
        fourth = scrape()
        assert _by(fourth, "aifinops_scrape_section_cached", "section")["ledger"] == 0.0
        assert _by(fourth, "aifinops_cost_usd", "window") == {"day": 52.0, "month": 202.0}
        assert _by(fourth, "aifinops_team_cost_usd", "team", window="month")["ml"] == 127.0
