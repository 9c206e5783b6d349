"""Savings never double count: whatever findings overlap, reconciled savings out of one pool never exceed the
pool's cost, never exceed a finding's own saving, never go negative, and do not depend on the order the
rules reported them in."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from aifinops.waste import Finding, reconcile

money = st.decimals(min_value=Decimal("0"), max_value=Decimal("50000"), places=2, allow_nan=False,
                    allow_infinity=False)
pool_costs = {"endpoint:a": Decimal("1000"), "run:b": Decimal("250.5"), "node_pool:c": Decimal("0.01")}
finding = st.tuples(st.sampled_from([*pool_costs, None]), money, st.integers(0, 10**6),
                    st.sampled_from(["open", "accepted", "dismissed"]))


def _finding(pool: str | None, saving: Decimal, n: int, status: str) -> Finding:
    return Finding(rule=f"rule-{n % 5}", scope_kind="workload", scope=f"s{n}", owner=None, evidence={},
                   monthly_cost=saving, monthly_waste=saving, monthly_saving=saving, recommendation="",
                   assumptions=[], saving_formula="", pool=pool, pool_cost=pool_costs.get(pool or ""),
                   status=status)


@given(st.lists(finding, max_size=12, unique_by=lambda t: t[2]))
def test_reconciled_savings_fit_their_pools(items: list) -> None:
    found = reconcile([_finding(*t) for t in items])
    for f in found:
        assert Decimal(0) <= f.achievable_saving <= f.monthly_saving
        if f.status == "dismissed":
            assert f.achievable_saving == 0
    for pool, cost in pool_costs.items():
        assert sum((f.achievable_saving for f in found if f.pool == pool), Decimal(0)) <= cost
    again = reconcile([_finding(*t) for t in reversed(items)])
    assert sorted((f.id, f.achievable_saving) for f in found) == sorted((f.id, f.achievable_saving) for f in again)


def test_two_changes_to_one_endpoint_compose() -> None:
    """Scale-to-zero saves $600 of a $1,000/month endpoint and a smaller GPU $500. Doing both saves
    600 + 500 x (1000 - 600) / 1000 = $800, not $1,100: the second applies to what the first leaves."""
    a = _finding("endpoint:a", Decimal(600), 1, "open")
    b = _finding("endpoint:a", Decimal(500), 2, "open")
    c = _finding(None, Decimal(70), 3, "open")
    reconcile([b, a, c])
    assert (a.achievable_saving, b.achievable_saving, c.achievable_saving) == (Decimal(600), Decimal(200),
                                                                               Decimal(70))


def test_a_commitment_comes_before_the_workloads_on_its_node_pool() -> None:
    """A savings plan saves $3,000 of a $10,000 node pool; a run on it would save $1,000 on spot at list price.
    After the commitment, 70% of the pool's dollars are left, so moving the run saves $700; a workload on
    another pool keeps its whole saving."""
    commit = Finding(rule="commitment-coverage", scope_kind="node_pool", scope="p", owner=None, evidence={},
                     monthly_cost=Decimal(10000), monthly_waste=Decimal(0), monthly_saving=Decimal(3000),
                     recommendation="", assumptions=[], saving_formula="", pool="node_pool:p",
                     pool_cost=Decimal(10000))
    spot = _finding("run:b", Decimal(200), 7, "open")
    spot.pool_cost = Decimal(1000)
    other = _finding("endpoint:a", Decimal(100), 8, "open")
    reconcile([commit, spot, other], {"run:b": "node_pool:p", "endpoint:a": "node_pool:q"})
    assert (commit.achievable_saving, spot.achievable_saving, other.achievable_saving) == (
        Decimal(3000), Decimal(140), Decimal(100))


def test_a_run_not_run_saves_everything_once() -> None:
    """Skipping a retraining cycle without gain (run:c, $400) saves all of it; a failed attempt of the same run
    without checkpoints ($150) then saves nothing more, unless the retraining finding is dismissed."""
    skip = _finding("retraining:m", Decimal(400), 9, "open")
    skip.pool_cost, skip.covers = Decimal(900), ["run:c"]
    failed = _finding("run:c", Decimal(150), 10, "open")
    failed.pool_cost = Decimal(400)
    reconcile([skip, failed])
    assert (skip.achievable_saving, failed.achievable_saving) == (Decimal(400), Decimal(0))
    skip.status = "dismissed"
    reconcile([skip, failed])
    assert (skip.achievable_saving, failed.achievable_saving) == (Decimal(0), Decimal(150))
