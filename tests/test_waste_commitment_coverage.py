"""``commitment-coverage`` by hand. Window 7 days (168 h); pool ``train`` of 8 x H100 p5.48xlarge nodes:

  n1  on demand (bill PricingCategory Standard), $98.32 every hour; w1 holds 6 of its GPUs all week;
  n2  on demand, billed only the first 84 h (stopped after: the ledger runs on); w2 holds its 8 GPUs meanwhile;
  n3  reserved: list $98.32, paid $60 an hour under savings plan sp-1 (CommitmentDiscountId) -> not counted.

On-demand GPUs per hour: running 16 for 84 h, then 8; held 14, then 6 -> baseline (the minimum) 6 held GPUs
(8 running: the 2 GPUs of n1 nobody holds are idle-gpu-capacity's, not a commitment's).
On-demand $/GPU-hour: 98.32 x (168 + 84) / (8 x (168 + 84)) = $12.29.
Discount observed on the ledger's commitment line: 1 - 60 x 168 / (98.32 x 168) = 38.32 / 98.32, so
$12.29 x discount = $4.79 per GPU-hour saved.
Saving = 6 x 168 h x $4.79 = $4,828.32; per month x 730.5 / 168 -> 6 x 730.5 x 4.79 = $20,994.57.
The commitment: 6 x $12.29 x 60 / 98.32 = $45.00 an hour.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from waste_fixtures import T0, add_charge, add_node, add_workload, findings, window

from aifinops.store.connection import Store

D = Decimal
WEEK = 168
W = window(WEEK)
M = D("730.5") / D(WEEK)
TOL = D("1e-6")
HOUR = timedelta(hours=1)


def _node(store: Store, node: str, pricing: str = "on-demand") -> None:
    add_node(store.con, node, 8, "98.32", provider="AWS", instance_type="p5.48xlarge", node_pool="train",
             pricing_category=pricing, resource_id=f"i-{node}", owner="ml-platform")


def _bill(store: Store, node: str, hours: int, hourly: str = "98.32", **columns: object) -> None:
    """One bill line over the node's first ``hours`` (the allocation prorates it per hour)."""
    if "ListCost" in columns:
        columns["ListCost"] = str(D(str(columns["ListCost"])) * hours)
    add_charge(store.con, T0, T0 + hours * HOUR, D(hourly) * hours, ResourceId=f"i-{node}",
               ServiceCategory="Compute", ProviderName="AWS", **{"PricingCategory": "Standard", **columns})


def _ledger_end(store: Store) -> None:
    """A storage line over the whole window: the ledger runs to its end, so unbilled node hours are stopped."""
    add_charge(store.con, T0, T0 + WEEK * HOUR, "10", ResourceId="vol-1", ServiceCategory="Storage")


def _n2(store: Store) -> None:
    _node(store, "n2")
    _bill(store, "n2", WEEK // 2)
    add_workload(store.con, "w2", "n2", 8, T0, T0 + WEEK // 2 * HOUR, labels={"team": "nlp"})


def _pool(store: Store) -> None:
    _node(store, "n1")
    _bill(store, "n1", WEEK)
    add_workload(store.con, "w1", "n1", 6, T0, None, labels={"team": "nlp"})
    _n2(store)
    _node(store, "n3", "reserved")
    _bill(store, "n3", WEEK, "60", ListCost="98.32", PricingCategory="Committed", CommitmentDiscountId="sp-1",
          CommitmentDiscountStatus="Used")
    add_workload(store.con, "w3", "n3", 8, T0, None, labels={"team": "nlp"})


def test_the_held_baseline_is_priced_at_the_observed_discount(store: Store) -> None:
    _pool(store)
    [f] = findings(store.con, W, "commitment-coverage").findings
    assert (f.scope_kind, f.scope, f.owner, f.pool, f.confidence) == (
        "node_pool", "train", "ml-platform", "node_pool:train", "medium")
    discount = D("38.32") / D("98.32")
    assert f.monthly_saving == pytest.approx(D(6) * WEEK * D("12.29") * discount * M, abs=TOL)
    assert f.monthly_saving == pytest.approx(D("20994.57"), abs=TOL)
    assert f.monthly_cost == pytest.approx(D("98.32") * (WEEK + WEEK // 2) * M, abs=TOL)
    assert f.pool_cost == pytest.approx((D("98.32") * (WEEK + WEEK // 2) + D(60) * WEEK) * M, abs=TOL)
    e = f.evidence
    assert (e["baseline_gpus"], e["baseline_running_gpus"], e["baseline_held_gpus"]) == (6, 8, 6.0)
    assert (e["min_gpus_in_an_hour"], e["peak_gpus"], e["on_demand_nodes"]) == (8, 16, 2)
    assert e["price_per_gpu_hour"] == pytest.approx(D("12.29"), abs=D("1e-9"))
    assert e["discount"] == pytest.approx(discount, abs=D("1e-12"))
    assert (e["discount_source"], e["discount_lines"], e["discount_provider"]) == ("ledger", 1, "aws")
    assert (e["committed_nodes_excluded"], e["committed_gpu_hours_excluded"]) == (1, 8.0 * WEEK)
    assert f.recommendation.startswith("Commit to 6 NVIDIA H100 80GB HBM3 GPUs of train (6 GPUs) for 1 year: a "
                                       "savings plan or reservation of about $45.00/h covers the on-demand GPUs "
                                       "workloads held in every hour")
    assert "6 GPUs x 168.0 h x $12.2900/GPU-h x 0.3897" in f.saving_formula


def test_counting_running_gpus_and_a_short_window_are_options(store: Store) -> None:
    _pool(store)
    [f] = findings(store.con, W, "commitment-coverage", baseline_of="running").findings
    assert f.monthly_saving == pytest.approx(D(8) * D("730.5") * D("4.79"), abs=TOL)
    assert f.recommendation.startswith("Commit to 8 NVIDIA H100 80GB HBM3 GPUs of train (1 x p5.48xlarge)")
    res = findings(store.con, window(48), "commitment-coverage")
    assert res.findings == [] and [(s.rule, s.reason) for s in res.skipped] == [
        ("commitment-coverage", "the window (2.0 days of data) is shorter than min_window_days (7): too little to "
                                "size a 1-year commitment")]
    [short] = findings(store.con, window(48), "commitment-coverage", min_window_days=2).findings
    assert short.evidence["baseline_gpus"] == 14  # in the first 48 h n2 ran too


def test_capacity_that_comes_and_goes_or_is_committed_stays_silent(store: Store) -> None:
    _n2(store)
    _node(store, "n3", "reserved")
    add_workload(store.con, "w3", "n3", 8, T0, None)
    _node(store, "n4", "spot")
    add_workload(store.con, "w4", "n4", 8, T0, None)
    _ledger_end(store)
    res = findings(store.con, W, "commitment-coverage")
    assert res.findings == [] and res.ran == ["commitment-coverage"]


def test_a_percentile_baseline_and_the_default_discount(store: Store) -> None:
    """n2 alone runs 84 of 168 hours: the minimum is 0 GPUs, the 60th percentile 8. Without commitment lines the
    default discount 0.35 applies: 8 x 168 x 12.29 x 0.35 = $5,781.216; with discount 0.5, $8,258.88."""
    _n2(store)
    _ledger_end(store)
    assert findings(store.con, W, "commitment-coverage").findings == []
    [f] = findings(store.con, W, "commitment-coverage", percentile=0.6).findings
    assert f.monthly_saving == pytest.approx(D("5781.216") * M, abs=TOL)
    assert f.evidence["discount_source"] == "option default_discount"
    assert "held in at least 40% of the hours" in f.recommendation
    [mine] = findings(store.con, W, "commitment-coverage", percentile=0.6, discount=0.5).findings
    assert mine.monthly_saving == pytest.approx(D("8258.88") * M, abs=TOL)
    assert findings(store.con, W, "commitment-coverage", percentile=0.6, min_baseline_gpus=16).findings == []


def test_skipped_without_an_inventory(store: Store) -> None:
    res = findings(store.con, W, "commitment-coverage")
    assert res.findings == [] and [(s.rule, s.reason) for s in res.skipped] == [
        ("commitment-coverage", "no GPU node inventory (aifinops ingest inventory / kubernetes)")]
