"""Money is conserved: for any ledger, every grouping sums to the total, exactly, and a batch's money
as read equals what was loaded plus what was quarantined."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path

from helpers import write_focus_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifinops.analysis import costs
from aifinops.analysis.layers import load_rules
from aifinops.analysis.windows import parse_window
from aifinops.sources.base import sources
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

money = st.decimals(min_value=Decimal("-5000"), max_value=Decimal("100000"), places=10,
                    allow_nan=False, allow_infinity=False)
tag_value = st.sampled_from(["search", "recsys", "ml-platform", "mlplatform", ""])
charge = st.fixed_dictionaries({
    "EffectiveCost": money,
    "BilledCost": money,
    "ProviderName": st.sampled_from(["AWS", "Google Cloud", "Microsoft"]),
    "ServiceName": st.sampled_from(["Amazon Bedrock", "Compute Engine", "Amazon Simple Storage Service"]),
    "ChargeCategory": st.sampled_from(["Usage", "Credit", "Tax", "Purchase"]),
    "team": st.one_of(st.none(), tag_value),
    "day": st.integers(min_value=1, max_value=30),
    "bad": st.booleans(),  # a few rows carry a non-numeric cost and must be quarantined, not lost
})
DIMENSIONS = ["ProviderName", "ServiceName", "tag:team", "layer", "day", "ChargeCategory"]
counter = itertools.count()


def _row(c: dict) -> dict:
    tags = None if c["team"] is None else json.dumps({"team": c["team"]})
    start = f"2026-10-{c['day']:02d}T00:00:00Z"
    return {
        "EffectiveCost": "n/a" if c["bad"] else str(c["EffectiveCost"]), "BilledCost": str(c["BilledCost"]),
        "ProviderName": c["ProviderName"], "ServiceName": c["ServiceName"], "ChargeCategory": c["ChargeCategory"],
        "Tags": tags, "ChargePeriodStart": start, "ChargePeriodEnd": f"2026-10-{c['day']:02d}T01:00:00Z",
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(charges=st.lists(charge, min_size=1, max_size=40), dims=st.lists(st.sampled_from(DIMENSIONS), max_size=3,
                                                                       unique=True))
def test_every_grouping_sums_to_the_total(tmp_path: Path, charges: list[dict], dims: list[str]) -> None:
    n = next(counter)
    path = write_focus_csv(tmp_path / f"l{n}.csv", [_row(c) for c in charges])
    with Store(tmp_path / f"s{n}.duckdb") as store:
        res = ingest(store, sources.get("focus")(), [path])
        good = [c for c in charges if not c["bad"]]
        bad = [c for c in charges if c["bad"]]
        assert (res.rows_loaded, res.rows_quarantined) == (len(good), len(bad))
        billed = res.money["BilledCost"]
        assert billed["read"] == billed["loaded"] + billed["quarantined"] == sum(c["BilledCost"] for c in charges)
        assert billed["quarantined"] == sum((c["BilledCost"] for c in bad), Decimal(0))
        expected = sum((c["EffectiveCost"] for c in good), Decimal(0))
        t = store.ibis().table("focus_charges")
        w = parse_window("2026-10", None)
        rows = costs.cost_by(t, costs.parse_by(",".join(dims)), w, rules=load_rules()).to_pyarrow().to_pylist()
        assert sum((r["cost"] for r in rows), Decimal(0)) == expected
        assert sum(r["charges"] for r in rows) == len(good)
