"""duplicate-runs by hand.

Window 00:00..10:00 (month factor 730.5 / 10 = 73.05). n1: 8 GPUs at $16/h ($2 per GPU-hour).

  unit               team    GPUs  hours   fingerprint (labels / annotations)       outcome    cost
  run r1             nlp     4     00..02  config-hash=c1, data_hash=d1             Succeeded  16   first
  run r2             vision  4     01..04  config-hash=c1, data_hash=d1             Succeeded  24   repeat
  job default/eval   vision  2     05..08  config_hash=c1, data-hash=d1 (annot.)    Running    12   repeat
  run r3             vision  2     05..08  config-hash=c2                           Succeeded  12   alone
  run r0             nlp     2     08..10  config-hash=c1, data_hash=d1             Failed      8   not counted

  fingerprint config-hash=c1;data-hash=d1: 3 units, repeats r2 + eval = $36 in the window (vision: all of it);
  teams nlp, vision; pool duplicate:<fingerprint> at the group's 16 + 24 + 12 = $52.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from waste_fixtures import T0, add_node, add_workload, findings, window

from aifinops.store.connection import Store
from aifinops.waste.engine import DATA

D = Decimal
RULE = "duplicate-runs"
W = window(10)
M = D("73.05")
FP = {"config-hash": "c1", "data_hash": "d1"}


def h(x: float):
    return T0 + timedelta(hours=x)


def _scenario(store: Store) -> None:
    add_node(store.con, "n1", 8, "16")
    add_workload(store.con, "a1", "n1", 4, h(0), h(2), labels={"run": "r1", "team": "nlp", **FP}, phase="Succeeded")
    add_workload(store.con, "a2", "n1", 4, h(1), h(4), labels={"run": "r2", "team": "vision", **FP},
                 phase="Succeeded")
    add_workload(store.con, "a3", "n1", 2, h(5), h(8), labels={"team": "vision"}, owner_kind="Job", owner_name="eval",
                 annotations={"config_hash": "c1", "data-hash": "d1"}, name="eval-x7k2p")
    add_workload(store.con, "a4", "n1", 2, h(5), h(8), labels={"run": "r3", "team": "vision", "config-hash": "c2"},
                 phase="Succeeded")
    add_workload(store.con, "a5", "n1", 2, h(8), h(10), labels={"run": "r0", "team": "nlp", **FP}, phase="Failed")


def test_repeats_of_one_fingerprint_are_waste(store: Store) -> None:
    _scenario(store)
    [f] = findings(store.con, W, RULE).findings
    assert f.scope == "config-hash=c1;data-hash=d1" and f.scope_kind == "run"
    assert f.monthly_waste == f.monthly_saving == D(36) * M
    assert f.monthly_cost == D(52) * M
    assert f.pool == "duplicate:config-hash=c1;data-hash=d1" and f.pool_cost == D(52) * M
    assert f.owner == "vision" and f.confidence == "high"
    ev = f.evidence
    assert ev["teams"] == ["nlp", "vision"] and ev["runs"] == 3
    assert ev["first_run"]["run"] == "run r1" and ev["first_run"]["cost_in_window"] == D(16)
    assert [(r["run"], r["cost_in_window"]) for r in ev["repeats"]] == [("run r2", D(24)), ("default/eval", D(12))]
    assert ev["repeat_cost_in_window"] == D(36)
    assert f.recommendation.startswith("Reuse the output of run r1")
    assert "across teams nlp, vision" in f.recommendation


def test_one_repeat_run_saves_out_of_its_own_pool(store: Store) -> None:
    """Only r1 and r2 share the fingerprint: the repeat is one run, so the pool is run:r2 (its $24)."""
    add_node(store.con, "n1", 8, "16")
    add_workload(store.con, "a1", "n1", 4, h(0), h(2), labels={"run": "r1", "team": "nlp", **FP}, phase="Succeeded")
    add_workload(store.con, "a2", "n1", 4, h(1), h(4), labels={"run": "r2", "team": "nlp", **FP}, phase="Succeeded")
    [f] = findings(store.con, W, RULE).findings
    assert f.pool == "run:r2" and f.pool_cost == D(24) * M and f.monthly_saving == D(24) * M
    assert "cache the step by its fingerprint" in f.recommendation


def test_same_name_without_fingerprint_and_distinct_fingerprints_are_silent(store: Store) -> None:
    """Two jobs with the same name less a random suffix (a nightly retraining) and two runs with different
    configurations are not duplicates; neither are a failed run and its successful retry of one run."""
    add_node(store.con, "n1", 8, "16")
    add_workload(store.con, "j1", "n1", 2, h(0), h(2), owner_kind="Job", owner_name="nightly-abcde",
                 phase="Succeeded")
    add_workload(store.con, "j2", "n1", 2, h(3), h(5), owner_kind="Job", owner_name="nightly-fghij",
                 phase="Succeeded")
    add_workload(store.con, "r1", "n1", 2, h(0), h(2), labels={"run": "x", "config-hash": "c1"}, phase="Succeeded")
    add_workload(store.con, "r2", "n1", 2, h(2), h(4), labels={"run": "y", "config-hash": "c2"}, phase="Succeeded")
    add_workload(store.con, "z1", "n1", 2, h(4), h(6), labels={"run": "z", "config-hash": "c3"}, phase="Failed")
    add_workload(store.con, "z2", "n1", 2, h(6), h(8), labels={"run": "z", "config-hash": "c3"}, phase="Succeeded")
    assert findings(store.con, W, RULE).findings == []


def test_skipped_without_data(store: Store) -> None:
    result = findings(store.con, W, RULE)
    assert result.findings == [] and [s.reason for s in result.skipped] == [DATA["gpu_nodes"][1]]


def test_options_change_the_outcome(store: Store) -> None:
    """explicit_only off: the two nightly jobs (2 GPUs x 2 h = $8 each) match by name, low confidence. With only
    data-hash as the key, r3 (no data hash) drops out and nothing changes for the c1 group; with only
    config-hash, r0's failure still does not count; a high minimum silences it."""
    add_node(store.con, "n2", 8, "16")
    add_workload(store.con, "j1", "n2", 2, h(0), h(2), owner_kind="Job", owner_name="nightly-abcde",
                 phase="Succeeded")
    add_workload(store.con, "j2", "n2", 2, h(3), h(5), owner_kind="Job", owner_name="nightly-fghij",
                 phase="Succeeded")
    [f] = findings(store.con, W, RULE, explicit_only=False).findings
    assert f.scope == "name=default/nightly;gpus=2" and f.confidence == "low"
    assert f.monthly_saving == D(8) * M and f.pool == "workload:j2"
    assert findings(store.con, W, RULE).findings == []

    _scenario(store)
    [g] = findings(store.con, W, RULE, fingerprint_keys=["data-hash", "data_hash"]).findings
    assert g.scope == "data-hash=d1" and g.monthly_saving == D(36) * M and g.confidence == "medium"
    assert findings(store.con, W, RULE, min_monthly_saving=5000).findings == []
