"""idle-dev-environment by hand.

Window 00:00..10:00 (month factor 730.5 / 10 = 73.05).

  n1: 1 GPU at $4/h. jhub/jupyter-alice (JupyterHub labels, team ml) holds it 00:00..10:00.
      activity by hour: 0.6 0.6 | 0.01 x5 (02..07) | 0.5 | 0 0 (08..10)
      -> idle stretches of 5 h and 2 h: idle cost 7 x $4 = $28;
         a 1 h culler saves (5 - 1) + (2 - 1) = 5 h x $4 = $20 in the window.
  n2: 1 GPU at $2/h. kubeflow-bob/nb-bob-0 (label notebook-name, owner StatefulSet nb-bob, team vision) holds it
      00:00..10:00; activity 0 for 00..04 and 06..10, no telemetry 04..06 (unknown, not idle)
      -> two stretches of 4 h: idle $16; saving (3 + 3) h x $2 = $12; telemetry on 8 of 10 h: medium.
  n3: 1 GPU at $3/h. research/train-llm (a training pod, not a dev environment) idle all along: not reported.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from waste_fixtures import T0, add_activity, add_node, add_workload, findings, window

from aifinops.store.connection import Store
from aifinops.waste.engine import DATA, RuleError

D = Decimal
RULE = "idle-dev-environment"
W = window(10)
ALICE = [0.6, 0.6, 0.01, 0.01, 0.01, 0.01, 0.01, 0.5, 0.0, 0.0]


def h(x: float):
    return T0 + timedelta(hours=x)


def _alice(store: Store, activity: list[float]) -> None:
    add_node(store.con, "n1", 1, "4")
    add_workload(store.con, "alice-uid", "n1", 1, h(0), h(10), name="jupyter-alice", namespace="jhub",
                 labels={"component": "singleuser-server", "app": "jupyterhub", "team": "ml"})
    add_activity(store.con, "n1", 0, h(0), 10, activity, pod="jupyter-alice", namespace="jhub", every_s=600)


def _scenario(store: Store) -> None:
    _alice(store, ALICE)
    add_node(store.con, "n2", 1, "2")
    add_workload(store.con, "bob-uid", "n2", 1, h(0), h(10), name="nb-bob-0", namespace="kubeflow-bob",
                 owner_kind="StatefulSet", owner_name="nb-bob", labels={"notebook-name": "nb-bob", "team": "vision"})
    for start in (0, 6):
        add_activity(store.con, "n2", 0, h(start), 4, 0.0, pod="nb-bob-0", namespace="kubeflow-bob", every_s=600)
    add_node(store.con, "n3", 1, "3")
    add_workload(store.con, "train-uid", "n3", 1, h(0), h(10), name="train-llm", namespace="research",
                 owner_kind="Job", owner_name="train-llm", labels={"team": "research"})
    add_activity(store.con, "n3", 0, h(0), 10, 0.0, pod="train-llm", namespace="research", every_s=600)


def test_idle_stretches_priced_with_a_culler(store: Store) -> None:
    _scenario(store)
    result = findings(store.con, W, RULE)
    by = {f.scope: f for f in result.findings}
    assert set(by) == {"jhub/jupyter-alice", "kubeflow-bob/nb-bob"}

    alice = by["jhub/jupyter-alice"]
    assert alice.monthly_cost == D(40) * D("73.05")
    assert alice.monthly_waste == D(28) * D("73.05")
    assert alice.monthly_saving == D(20) * D("73.05") == D("1461")
    assert alice.owner == "ml" and alice.confidence == "high"
    assert alice.pool == "workload:alice-uid" and alice.pool_cost == D(40) * D("73.05")
    assert alice.evidence["idle_stretches"] == 2
    assert alice.evidence["longest_stretch_hours"] == 5.0
    assert alice.evidence["idle_hours"] == 7.0 and alice.evidence["hours_after_cull"] == 5.0
    assert "JupyterHub idle-culler" in alice.recommendation and "cull.timeout: 3600" in alice.recommendation
    assert "2 stretch(es) (2 longer than 1 h), the longest 5.0 h" in alice.recommendation

    bob = by["kubeflow-bob/nb-bob"]
    assert bob.monthly_waste == D(16) * D("73.05")
    assert bob.monthly_saving == D(12) * D("73.05")
    assert bob.confidence == "medium" and bob.evidence["telemetry_coverage"] == 0.8
    assert bob.evidence["idle_stretches"] == 2 and bob.evidence["longest_stretch_hours"] == 4.0
    assert "Kubeflow notebook culling" in bob.recommendation and "CULL_IDLE_TIME=60" in bob.recommendation
    assert bob.owner == "vision"


def test_short_idle_spells_and_busy_or_unseen_pods_are_silent(store: Store) -> None:
    """A notebook whose idle spells never outlast the culler's hour (0.6, 0.01, 0.6, 0.01, ...) saves nothing;
    a dev pod without telemetry is unknown, not idle; a busy dev pod is not idle at all."""
    _alice(store, [0.6, 0.01] * 5)
    add_node(store.con, "n2", 1, "2")
    add_workload(store.con, "dark", "n2", 1, h(0), h(10), name="sandbox-x", namespace="dev")
    add_node(store.con, "n3", 1, "2")
    add_workload(store.con, "busy", "n3", 1, h(0), h(10), name="dev-busy", namespace="team-dev")
    add_activity(store.con, "n3", 0, h(0), 10, 0.9, pod="dev-busy", namespace="team-dev", every_s=600)
    assert findings(store.con, W, RULE).findings == []


def test_skipped_without_data(store: Store) -> None:
    result = findings(store.con, W, RULE)
    assert result.findings == [] and result.ran == []
    assert [(s.rule, s.reason) for s in result.skipped] == [(RULE, DATA["gpu_nodes"][1])]


@pytest.mark.parametrize(("options", "saving"), [
    ({"cull_after_hours": 3}, D(2 * 4)),  # (5 - 3) + 0 hours x $4
    ({"cull_after_hours": 0.5}, D(6 * 4)),  # 4.5 + 1.5 hours x $4
    ({"idle_activity": 0.005}, D(1 * 4)),  # only the two 0.0 hours are idle: one stretch of 2 h
])
def test_thresholds_change_the_saving(store: Store, options: dict, saving: Decimal) -> None:
    _alice(store, ALICE)
    [f] = findings(store.con, W, RULE, **options).findings
    assert f.monthly_saving == saving * D("73.05")
    if options.get("cull_after_hours") == 3:
        assert f.evidence["stretches_longer_than_cull"] == 1 and "(1 longer than 3 h)" in f.recommendation


def test_dev_patterns_are_options(store: Store) -> None:
    """The training pod becomes a dev environment when the name pattern says so (case-insensitive); an unknown
    key and a pattern that is not a regular expression are errors."""
    _scenario(store)
    result = findings(store.con, W, RULE, name_pattern="^TRAIN-", dev_labels=[])
    [f] = result.findings
    assert f.scope == "research/train-llm" and f.monthly_saving == D(9 * 3) * D("73.05")
    assert "idle culler" in f.recommendation
    with pytest.raises(RuleError, match="idle-dev-environment"):
        findings(store.con, W, RULE, cull_after=2)
    with pytest.raises(RuleError, match="name_pattern: Value error, not a regular expression"):
        findings(store.con, W, RULE, name_pattern="(notebook")
