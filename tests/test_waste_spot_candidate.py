"""``spot-candidate`` by hand. Window 24 h. Nodes: 8 x H100 (AWS p5.48xlarge, on demand, $98.32/h).

Spot ratio of p5.48xlarge in the bundled table: 20.9934 / 98.32 (the instance's own pair of rows).

  llama-ft  one Job pod, run label, ``checkpoint-interval: 30m``, 8 GPUs x 24 h on n1:
            GPU cost 98.32 x 24 = $2,359.68; spot cost 20.9934 x 24 = $503.8416;
            interruptions 0.05/h x 24 node-hours = 1.2, each re-running 15 min at $503.8416 / 24 h = $20.9934/h:
            overhead 1.2 x 0.25 x 20.9934 = $6.29802; saving 2,359.68 - 503.8416 - 6.29802 = $1,849.54038.
  big       a gang of two pods (run ``big``) on n2 and n3, ``checkpoint-interval: 1h`` annotation:
            GPU cost $4,719.36, spot $1,007.6832; 48 node-hours -> 2.4 interruptions, each re-running 30 min of the
            whole run at $1,007.6832 / 24 h = $41.9868/h: overhead $50.38416; saving $3,661.29264.
Per month: x 730.5 / 24 = 30.4375.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from waste_fixtures import T0, add_node, add_workload, findings, window

from aifinops.store.connection import Store
from aifinops.waste.rules.spot_candidate import duration_minutes

D = Decimal
W = window(24)
M = D("30.4375")
TOL = D("1e-6")


def _node(store: Store, node: str, pricing: str = "on-demand") -> None:
    add_node(store.con, node, 8, "98.32", provider="AWS", instance_type="p5.48xlarge", node_pool="train",
             pricing_category=pricing, owner="ml-platform")


def _llama(store: Store, labels: dict[str, str] | None = None, **kw: object) -> None:
    _node(store, "n1", str(kw.pop("pricing", "on-demand")))
    add_workload(store.con, "w1", "n1", 8, T0, None, owner_kind="Job", owner_name="llama-ft", name="llama-ft-0",
                 labels={"run": "llama-ft", "team": "nlp", "checkpoint-interval": "30m"} if labels is None else labels,
                 **kw)  # type: ignore[arg-type]


def test_checkpointed_runs_on_demand_are_priced_on_spot(store: Store) -> None:
    _llama(store)
    _node(store, "n2")
    _node(store, "n3")
    for wid, node in (("b0", "n2"), ("b1", "n3")):
        add_workload(store.con, wid, node, 8, T0, None, labels={"run": "big", "team": "nlp"},
                     owner_kind="PyTorchJob", owner_name="big", name=f"big-{wid}",
                     annotations={"training.example.com/checkpoint-interval": "1h"})
    res = findings(store.con, W, "spot-candidate")
    by = {f.scope: f for f in res.findings}
    f = by["llama-ft"]
    assert (f.scope_kind, f.owner, f.pool, f.confidence) == ("run", "nlp", "run:llama-ft", "high")
    assert f.monthly_saving == pytest.approx(D("1849.54038") * M, abs=TOL)
    assert f.monthly_cost == pytest.approx(D("2359.68") * M, abs=TOL)
    assert f.monthly_waste == pytest.approx((D("2359.68") - D("503.8416")) * M, abs=TOL)
    assert f.pool_cost == pytest.approx(D("2359.68") * M, abs=TOL)
    e = f.evidence
    assert (e["spot_ratio"], e["spot_ratio_basis"]) == (D("20.9934") / D("98.32"), "instance")
    assert e["spot_discount"] == 1 - D("20.9934") / D("98.32")
    assert e["spot_price_rows"] == [
        "aws p5.48xlarge us-east-1: spot $20.9934/h / on-demand $98.32/h = 0.2135"]
    assert len(e["spot_price_sources"]) == 1 and "skypilot-catalog" in e["spot_price_sources"][0]
    assert (e["checkpoint_minutes"], e["checkpoint_hint"], e["expected_interruptions"]) == (
        30.0, "checkpoint-interval=30m", pytest.approx(1.2))
    assert f.recommendation.startswith("Schedule run llama-ft (1 workload(s)) on spot capacity instead of train")
    assert "$2,359.68 x (1 - 0.2135) - 1.200 interruptions x 0.250 h" in f.saving_formula
    gang = by["big"]
    assert gang.evidence["average_nodes"] == 2.0 and gang.evidence["expected_interruptions"] == pytest.approx(2.4)
    assert gang.monthly_saving == pytest.approx(D("3661.29264") * M, abs=TOL)
    assert [x.scope for x in res.findings] == ["big", "llama-ft"]


def test_work_that_cannot_move_to_spot_stays_silent(store: Store) -> None:
    """Each on its own node: no checkpoint, checkpoint off, already on spot, serving, a lone pod (not training)."""
    con = store.con
    for node, pricing in (("n1", "on-demand"), ("n2", "on-demand"), ("n3", "spot"), ("n4", "on-demand"),
                          ("n5", "on-demand")):
        _node(store, node, pricing)
    add_workload(con, "w1", "n1", 8, T0, None, labels={"run": "a"}, owner_kind="Job")
    add_workload(con, "w2", "n2", 8, T0, None, labels={"run": "b", "checkpoint": "false"}, owner_kind="Job")
    add_workload(con, "w3", "n3", 8, T0, None, labels={"run": "c", "checkpoint-interval": "30m"}, owner_kind="Job")
    add_workload(con, "w4", "n4", 8, T0, None, labels={"model": "llama-70b", "checkpoint": "true"},
                 owner_kind="ReplicaSet", owner_name="vllm-7f9")
    add_workload(con, "w5", "n5", 8, T0, None, labels={"checkpoint-interval": "30m"})
    res = findings(con, W, "spot-candidate")
    assert [f.scope for f in res.findings] == [] and res.ran == ["spot-candidate"]


def test_skipped_without_an_inventory(store: Store) -> None:
    res = findings(store.con, W, "spot-candidate")
    assert res.findings == [] and [(s.rule, s.reason) for s in res.skipped] == [
        ("spot-candidate", "no GPU node inventory (aifinops ingest inventory / kubernetes)")]


def test_thresholds_and_prices_change_the_saving(store: Store) -> None:
    _llama(store)
    # 10x the interruptions: 12 x 0.25 h x $20.9934/h = $62.9802 of re-runs
    [busy] = findings(store.con, W, "spot-candidate", interruptions_per_hour=0.5).findings
    assert busy.monthly_saving == pytest.approx((D("2359.68") - D("503.8416") - D("62.9802")) * M, abs=TOL)
    # so many interruptions that re-running costs more than spot saves: silent
    assert findings(store.con, W, "spot-candidate", interruptions_per_hour=200).findings == []
    # your own prices: ratio 1.6 / 4 = 0.4 -> spot $943.872; overhead 1.2 x 0.25 x 943.872 / 24 = $11.7984
    [own] = findings(store.con, W, "spot-candidate", prices={"H100": {"on_demand": 4, "spot": "1.6"}}).findings
    assert own.evidence["spot_ratio_basis"] == "override"
    assert own.monthly_saving == pytest.approx((D("2359.68") - D("943.872") - D("11.7984")) * M, abs=TOL)
    assert findings(store.con, W, "spot-candidate", min_monthly_saving=10 ** 6).findings == []


def test_an_unstated_interval_and_a_slurm_requeue(store: Store) -> None:
    _llama(store, {"run": "llama-ft", "checkpoint": "enabled"})
    [f] = findings(store.con, W, "spot-candidate", default_checkpoint_minutes=60).findings
    # 1.2 interruptions x 0.5 h x $20.9934/h = $12.59604
    assert (f.confidence, f.evidence["checkpoint_interval_stated"]) == ("medium", False)
    assert f.monthly_saving == pytest.approx((D("2359.68") - D("503.8416") - D("12.59604")) * M, abs=TOL)
    _node(store, "s1")
    add_workload(store.con, "4103", "s1", 8, T0, None, source="slurm", kind="slurm-job", phase="REQUEUED",
                 name="pretrain", namespace=None, annotations={"slurm.state": "REQUEUED"})
    slurm = next(x for x in findings(store.con, W, "spot-candidate").findings if x.scope_kind == "workload")
    assert (slurm.scope, slurm.pool, slurm.confidence) == ("/pretrain", "workload:4103", "low")
    assert slurm.recommendation.startswith("Submit workload /pretrain to a spot-backed partition with --requeue")


@pytest.mark.parametrize(("key", "value", "minutes"), [
    ("checkpoint-interval", "30m", 30.0), ("checkpoint-every", "1h30m", 90.0), ("checkpoint", "900s", 15.0),
    ("checkpoint", "PT45M", 45.0), ("checkpoint-interval", "20", 20.0), ("checkpoint", "20", None),
    ("checkpoint", "s3://bucket/ckpt", None), ("checkpoint", "true", None), ("checkpoint", "2 hours", 120.0),
])
def test_checkpoint_durations(key: str, value: str, minutes: float | None) -> None:
    assert duration_minutes(key, value) == minutes
