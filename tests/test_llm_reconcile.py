"""Usage-priced API spend against the providers' charges in the FOCUS ledger, by hand.

Ledger (October): Amazon Bedrock 10.00, Azure OpenAI Service 4.00, Vertex AI 2.00, an EC2 line 50.00 (not
AI services). Usage priced from requests: aws.bedrock 7.50, azure.ai.openai 4.40, openai 1.00 (billed
elsewhere). So: bedrock coverage 0.75, 2.50 unexplained; azure 1.10 (list price above a discounted bill),
-0.40; vertex no usage at all (2.00 unexplained); openai usage without a ledger line.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from helpers import write_focus_csv

from aifinops.analysis.layers import load_rules
from aifinops.analysis.llm_reconcile import ledger_by_provider, reconcile
from aifinops.analysis.windows import parse_window
from aifinops.sources.base import sources
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

D = Decimal


def test_reconcile_against_the_ledger(store: Store, tmp_path: Path) -> None:
    rows = [{"ServiceName": name, "ServiceCategory": cat, "EffectiveCost": cost, "BilledCost": cost,
             "ChargePeriodStart": "2026-10-05T00:00:00Z", "ChargePeriodEnd": "2026-10-06T00:00:00Z"}
            for name, cat, cost in (("Amazon Bedrock", "AI and Machine Learning", "10.00"),
                                    ("Azure OpenAI Service", "AI and Machine Learning", "4.00"),
                                    ("Vertex AI", "AI and Machine Learning", "2.00"),
                                    ("Amazon Elastic Compute Cloud", "Compute", "50.00"))]
    ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "bill.csv", rows)])
    ledger = ledger_by_provider(store.ibis().table("focus_charges"), parse_window("2026-10", None), load_rules())
    assert ledger == {"aws.bedrock": D(10), "azure.ai.openai": D(4), "gcp.vertex_ai": D(2)}
    usage = [{"provider": "aws.bedrock", "requests": 10, "cost": D("7.50"), "unpricedRequests": 0},
             {"provider": "azure.ai.openai", "requests": 4, "cost": D("4.40"), "unpricedRequests": 1},
             {"provider": "openai", "requests": 2, "cost": D("1.00"), "unpricedRequests": 0}]
    got = {r["provider"]: r for r in reconcile(usage, ledger)}
    assert (got["aws.bedrock"]["coverage"], got["aws.bedrock"]["unexplained"]) == (0.75, D("2.50"))
    assert got["azure.ai.openai"]["coverage"] == pytest.approx(1.1) and got["azure.ai.openai"]["unexplained"] == D(
        "-0.40")
    assert (got["gcp.vertex_ai"]["usageCost"], got["gcp.vertex_ai"]["unexplained"]) == (0, D(2))
    assert got["openai"]["ledgerCost"] is None and got["openai"]["coverage"] is None
