"""The GPU waste rules on real data: the slice of Alibaba's GPU-sharing trace (tests/fixtures/alibaba, 331 pods
and 31 nodes over about 150 days), checked against a direct computation on the raw files written here.

The trace says what each pod asked for, not where it ran, so ``idle-gpu-capacity`` works in capacity mode:
each hour, idle GPUs = the nodes' GPUs - the GPU-equivalents the pods held (a fractional pod holds
gpu_milli / 1000 of one GPU). The trace has no utilisation telemetry, so ``underused-gpu`` has nothing to
judge and says so.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
from test_gpu_capacity import DAYS, FIX, PRICES, WINDOW, cluster  # noqa: F401  (fixture)

from aifinops.config import Settings
from aifinops.waste import run


def raw_idle() -> tuple[float, float, float, float]:
    """(idle GPU-hours, fewest idle GPUs in an hour, average $ per GPU-hour, GPUs) from the raw CSVs."""
    con = duckdb.connect()
    gpus, weighted = con.execute(f"""
        SELECT sum(gpu), sum(gpu * CASE WHEN model LIKE '%V100%' THEN 2.48 WHEN model LIKE '%T4%' THEN 0.53
                                        WHEN model LIKE '%P100%' THEN 1.46 WHEN model LIKE '%A10%' THEN 1.00
                                        WHEN model LIKE '%G2%' THEN 1.10 WHEN model LIKE '%G3%' THEN 1.20 ELSE 0 END)
        FROM read_csv('{FIX / "openb_nodes_slice.csv"}', header = true) WHERE gpu > 0""").fetchone()
    idle, fewest = con.execute(f"""
        WITH pods AS (
          SELECT CASE WHEN num_gpu = 1 THEN gpu_milli / 1000.0 ELSE num_gpu END AS share, scheduled_time AS s,
                 CASE WHEN deletion_time > 0 THEN deletion_time ELSE {DAYS * 86400} END AS e
          FROM read_csv('{FIX / "openb_pods_slice.csv"}', header = true)
          WHERE scheduled_time IS NOT NULL AND num_gpu > 0
        ), hours AS (SELECT range AS h FROM range({DAYS * 24})),
        held AS (
          SELECT h, sum(share * greatest(0, least(e, (h + 1) * 3600) - greatest(s, h * 3600)) / 3600) AS held
          FROM hours LEFT JOIN pods ON s < (h + 1) * 3600 AND e > h * 3600 GROUP BY h
        )
        SELECT sum(greatest({gpus} - coalesce(held, 0), 0)), min(greatest({gpus} - coalesce(held, 0), 0))
        FROM held""").fetchone()
    return float(idle), float(fewest), float(weighted) / gpus, float(gpus)


def test_idle_capacity_matches_the_raw_trace(cluster) -> None:  # noqa: F811
    idle, fewest, price, gpus = raw_idle()
    res = run(cluster.con, WINDOW, Settings(gpu_prices=PRICES), only=["idle-gpu-capacity"])
    [f] = res.findings
    e = f.evidence
    assert (f.scope, e["mode"], e["gpus"]) == ("fleet", "capacity", gpus)
    assert e["idle_gpu_hours"] == pytest.approx(idle, abs=1e-3)
    assert e["min_idle_gpus_in_an_hour"] == pytest.approx(fewest, abs=1e-9)
    assert e["idle_share"] == pytest.approx(idle / (gpus * DAYS * 24), abs=1e-4)
    assert float(e["price_per_gpu_hour"]) == pytest.approx(price, rel=1e-9)
    hours = DAYS * 24
    assert float(f.monthly_waste) == pytest.approx(idle * price * 730.5 / hours, rel=1e-9)
    # removable: the fewest idle GPUs in any hour, in whole nodes of the largest node (8 GPUs)
    removable = int(fewest // e["gpus_per_node"]) * e["gpus_per_node"]
    assert float(f.monthly_saving) == pytest.approx(removable * price * 730.5, rel=1e-9)
    assert f.monthly_saving > Decimal(0)


def test_underused_gpu_has_no_telemetry_to_judge(cluster) -> None:  # noqa: F811
    res = run(cluster.con, WINDOW, Settings(gpu_prices=PRICES), only=["underused-gpu"])
    assert res.findings == [] and res.skipped[0].reason.startswith("no GPU telemetry")
