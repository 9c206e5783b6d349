"""Hand-computed answers for a small ledger (tests/golden/ledger_small.yaml)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from helpers import GOLDEN, write_focus_csv

from aifinops.analysis import costs, tags
from aifinops.analysis.layers import load_rules
from aifinops.analysis.windows import parse_window
from aifinops.sources.base import sources
from aifinops.store.ingest import ingest

CASE = yaml.safe_load((GOLDEN / "ledger_small.yaml").read_text())
D = Decimal


@pytest.fixture
def ledger(store, tmp_path: Path):
    path = write_focus_csv(tmp_path / "small.csv", CASE["charges"])
    res = ingest(store, sources.get("focus")(), [path])
    assert res.rows_loaded == len(CASE["charges"]) and res.rows_quarantined == 0
    return store.ibis().table("focus_charges")


def _by(t, by: str, **kw) -> dict:
    w = parse_window("2026-10", None)
    rows = costs.cost_by(t, costs.parse_by(by), w, **kw).to_pyarrow().to_pylist()
    return {r[by]: r["cost"] for r in rows}


def test_total(ledger) -> None:
    rows = costs.cost_by(ledger, [], parse_window("2026-10", None)).to_pyarrow().to_pylist()
    assert rows[0]["cost"] == D(CASE["expected"]["total"])
    assert rows[0]["charges"] == 7


def test_by_team(ledger) -> None:
    assert _by(ledger, "tag:team") == {k: D(v) for k, v in CASE["expected"]["by_team"].items()}


def test_by_layer(ledger) -> None:
    got = _by(ledger, "layer", rules=load_rules())
    assert got == {k: D(v) for k, v in CASE["expected"]["by_layer"].items()}


def test_billed_equals_effective_here(ledger) -> None:
    assert _by(ledger, "ServiceName", cost="billed") == _by(ledger, "ServiceName")


def test_window_excludes_other_months(ledger) -> None:
    rows = costs.cost_by(ledger, [], parse_window("2026-09", None)).to_pyarrow().to_pylist()
    assert rows == [{"cost": D(0), "charges": 0}]  # no spend is 0, not NULL (found by the property test)


def test_coverage(ledger) -> None:
    rows = tags.coverage(ledger, ["team", "env"], parse_window("2026-10", None)).to_pyarrow().to_pylist()
    got = {r["key"]: (r["tagged_cost"], r["total_cost"]) for r in rows}
    assert got == {k: (D(a), D(b)) for k, (a, b) in CASE["expected"]["coverage"].items()}


def test_untagged_resources_lists_missing_keys(ledger) -> None:
    rows = tags.untagged_resources(ledger, ["team", "env"], parse_window("2026-10", None)).to_pyarrow().to_pylist()
    got = {r["ResourceId"]: (r["cost"], sorted(r["missing_keys"])) for r in rows}
    assert got == {
        "bedrock-1": (D("40.00"), ["env", "team"]),
        "nat-1": (D("9.00"), ["env", "team"]),
        "i-cpu-1": (D("0.384"), ["env"]),
    }
    assert [r["ResourceId"] for r in rows] == ["bedrock-1", "nat-1", "i-cpu-1"]


def test_user_layer_rules_come_first(ledger, tmp_path: Path) -> None:
    f = tmp_path / "layers.yaml"
    f.write_text("layers:\n  - layer: data-movement\n    any:\n      ServiceName: 'bedrock'\n")
    got = _by(ledger, "layer", rules=load_rules(f))
    assert got["data-movement"] == D("49.00") and "ai-services" not in got


def test_typos(store, tmp_path: Path) -> None:
    rows = [
        {"EffectiveCost": "5", "BilledCost": "5", "Tags": '{"team": "ml-platform"}',
         "ChargePeriodStart": "2026-10-01T00:00:00Z", "ChargePeriodEnd": "2026-10-01T01:00:00Z"},
        {"EffectiveCost": "1", "BilledCost": "1", "Tags": '{"team": "mlplatform"}',
         "ChargePeriodStart": "2026-10-01T00:00:00Z", "ChargePeriodEnd": "2026-10-01T01:00:00Z"},
        {"EffectiveCost": "2", "BilledCost": "2", "Tags": '{"Team": "search"}',
         "ChargePeriodStart": "2026-10-01T00:00:00Z", "ChargePeriodEnd": "2026-10-01T01:00:00Z"},
        {"EffectiveCost": "3", "BilledCost": "3", "Tags": '{"team": "search"}',
         "ChargePeriodStart": "2026-10-01T00:00:00Z", "ChargePeriodEnd": "2026-10-01T01:00:00Z"},
    ]
    ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "t.csv", rows)])
    t = store.ibis().table("focus_charges")
    found = tags.typo_pairs(t, parse_window("2026-10", None)).to_pyarrow().to_pylist()
    pairs = {(r["kind"], r["a"], r["b"]) for r in found}
    assert pairs == {("value", "ml-platform", "mlplatform"), ("key", "Team", "team")}
