"""``untagged-spend`` by hand. Window one day (per month x 730.5 / 24).

Ledger (tag keys team, project, env, model):
  S3 in acct research  $300 with no tags, and a -$50 credit (credits are not resources anyone tags)
  EC2 in acct research $500 with every key (owned), $200 with only team -> missing project, env, model
GPU: namespace lab, a workload without a team label: 10 h of 1 GPU at $1 -> $10 ($304 a month).
LLM: 2 gpt-4o requests of 1M input tokens without a team ($5, $152 a month), 1 with.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from waste_fixtures import T0, add_charge, add_node, add_requests, add_workload, findings, window

from aifinops.store.connection import Store

D = Decimal
W = window(24)
M = D("730.5") / D(24)
ALL = {"team": "a", "project": "p", "env": "prod", "model": "m"}


def _ledger(store: Store) -> None:
    end = T0 + timedelta(days=1)
    add_charge(store.con, T0, end, "300", ServiceName="Amazon S3", SubAccountName="research", ResourceId="bkt")
    add_charge(store.con, T0, end, "-50", ServiceName="Amazon S3", SubAccountName="research",
               ChargeCategory="Credit")
    add_charge(store.con, T0, end, "500", ServiceName="Amazon EC2", SubAccountName="research", ResourceId="i-1",
               Tags=ALL)
    add_charge(store.con, T0, end, "200", ServiceName="Amazon EC2", SubAccountName="research", ResourceId="i-2",
               Tags={"team": "a"})


def test_untagged_ledger_spend_per_account(store: Store) -> None:
    _ledger(store)
    add_charge(store.con, T0, T0 + timedelta(days=1), "150", ServiceName="Amazon EC2", SubAccountName="web",
               ResourceId="i-9", Tags={"team": "web", "project": "p", "env": "prod"})
    got = {f.scope: f for f in findings(store.con, W, "untagged-spend").findings}
    assert set(got) == {"ledger:research", "ledger:web"}
    research, web = got["ledger:research"], got["ledger:web"]
    assert research.monthly_cost == pytest.approx(D(500) * M, abs=D("1e-9"))  # S3 300 + EC2 200
    assert research.evidence["services"] == ["Amazon S3", "Amazon EC2"]
    assert research.evidence["missing_keys"] == ["env", "model", "project", "team"]
    assert research.evidence["untagged_share"] == pytest.approx(500 / 1000)
    assert (research.monthly_saving, research.monthly_waste, research.confidence) == (0, 0, "high")
    assert "largest: bkt" in research.recommendation
    assert web.evidence["missing_keys"] == ["model"] and web.monthly_cost == pytest.approx(D(150) * M)


def test_workloads_and_requests_without_a_team(store: Store) -> None:
    add_node(store.con, "n1", 1, "1")
    add_workload(store.con, "w1", "n1", 1, T0, T0 + timedelta(hours=10), namespace="lab")
    add_requests(store.con, [
        {"ts": T0, "provider": "openai", "request_model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0},
        {"ts": T0, "provider": "openai", "request_model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0,
         "service": "digest-job"},
        {"ts": T0, "provider": "openai", "request_model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0,
         "team": "web"}])
    assert findings(store.con, W, "untagged-spend", min_monthly_cost=400).findings == []
    got = {f.scope: f for f in findings(store.con, W, "untagged-spend").findings}
    assert set(got) == {"gpu-workloads:lab", "llm:openai/gpt-4o"}
    assert got["gpu-workloads:lab"].monthly_cost == pytest.approx(D(10) * M, abs=D("1e-9"))
    llm = got["llm:openai/gpt-4o"]  # gpt-4o input at $2.50 per 1M tokens (bundled LiteLLM snapshot)
    assert llm.monthly_cost == pytest.approx(D(5) * M, abs=D("1e-9"))
    assert (llm.evidence["requests"], llm.evidence["top_caller"]) == (2, "digest-job")


def test_fully_tagged_spend_is_silent(store: Store) -> None:
    add_charge(store.con, T0, T0 + timedelta(days=1), "900", ServiceName="Amazon EC2", Tags=ALL)
    assert findings(store.con, W, "untagged-spend").findings == []
    # ... unless the required keys say otherwise
    [f] = findings(store.con, W, "untagged-spend", keys=["cost-center"]).findings
    assert f.evidence["missing_keys"] == ["cost-center"]


def test_skipped_on_an_empty_store(store: Store) -> None:
    assert findings(store.con, W, "untagged-spend").skipped[0].reason == "no cloud bill (aifinops ingest focus)"
