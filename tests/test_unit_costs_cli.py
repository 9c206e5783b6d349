"""`aifinops unit-costs` end to end on the bundled price catalogs (LiteLLM's snapshot prices gpt-4o at $2.50 /
$10.00 per 1M tokens), a training run, a self-hosted model and a ledger to reconcile against."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import write_focus_csv
from typer.testing import CliRunner

from aifinops.interfaces.cli.app import app
from aifinops.sources.base import sources
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

D = Decimal
WINDOW = ["--window", "2026-10"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        bill = [{"ProviderName": "OpenAI", "PublisherName": "OpenAI", "InvoiceIssuerName": "OpenAI",
                 "ServiceName": "OpenAI API", "ServiceCategory": "AI and Machine Learning", "EffectiveCost": "3.00",
                 "BilledCost": "3.00", "ChargePeriodStart": "2026-10-05T00:00:00Z",
                 "ChargePeriodEnd": "2026-10-06T00:00:00Z"}]
        ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "bill.csv", bill)])
        con = store.con
        for rid, provider, model, inp, out, team in (("a", "openai", "gpt-4o", 1_000_000, 0, "ml"),
                                                     ("b", "openai", "gpt-4o", 0, 100_000, "web"),
                                                     ("c", "vllm", "llama-ft", 3000, 1000, "ml")):
            con.execute("INSERT INTO llm_requests (request_id, source, ts, requests, provider, request_model, "
                        "input_tokens, output_tokens, team, _batch_id, _file, _row) VALUES (?, 'test', "
                        "'2026-10-05 10:00', 1, ?, ?, ?, ?, ?, 9, 't', 0)", [rid, provider, model, inp, out, team])
        con.execute("INSERT INTO gpu_nodes (node, gpu_count, hourly_price, _batch_id, _file, _row) "
                    "VALUES ('n1', 2, '4', 9, 't', 0)")
        for wid, labels, owner, phase, end in (
                ("srv", {"model": "llama-ft"}, "ReplicaSet", "Running", None),
                ("tr", {"run": "r-1", "experiment": "e"}, "Job", "Failed", "2026-10-05 11:00")):
            con.execute("INSERT INTO workloads (workload_id, name, source, node, gpu_share, start_ts, end_ts, labels, "
                        "owner_kind, phase, _batch_id, _file, _row) VALUES (?, ?, 'kubernetes', 'n1', 1, "
                        "'2026-10-05 10:00', ?, ?, ?, ?, 9, 't', 0)", [wid, wid, end, labels, owner, phase])
    return path


def run(db: Path, *args: str) -> list[dict]:
    res = CliRunner().invoke(app, ["--db", str(db), "unit-costs", *WINDOW, *args, "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_by_team(db: Path) -> None:
    rows = {r["team"]: r for r in run(db, "--by", "team")}
    assert D(rows["web"]["cost"]) == D("1")  # 100k output tokens x $10 / 1M
    ml = rows["ml"]  # 1M input x $2.50 + the self-hosted request's share of its serving GPUs
    assert D(ml["cost"]) > D("2.5") and D(ml["selfHostedCost"]) == D(ml["cost"]) - D("2.5")
    assert ml["requests"] == 2


def test_training_self_hosted_and_reconcile(db: Path) -> None:
    [run_row] = run(db, "--by", "run")
    assert run_row["run"] == "r-1" and D(run_row["failedCost"]) == D(run_row["cost"]) > 0
    llama = {r["comparedWith"]: r for r in run(db, "--self-hosted")}
    assert set(llama) == {"openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku"}
    gpt = llama["openai/gpt-4o"]
    assert gpt["model"] == "llama-ft" and gpt["requests"] == 1
    assert D(gpt["apiCost"]) == D("0.0175")  # 3000 x 2.5 + 1000 x 10 per 1M
    recon = {r["provider"]: r for r in run(db, "--reconcile")}
    assert D(recon["openai"]["usageCost"]) == D("3.5") and D(recon["openai"]["ledgerCost"]) == D("3")
    assert recon["openai"]["coverage"] == pytest.approx(3.5 / 3)


def test_errors_are_one_line(db: Path) -> None:
    res = CliRunner().invoke(app, ["--db", str(db), "unit-costs", "--by", "colour"])
    assert res.exit_code == 1 and "unknown --by 'colour'" in res.output
