"""Cluster capacity on real data: a slice of the Alibaba GPU-sharing trace (tests/fixtures/alibaba, 331 pods,
31 nodes), checked against a direct DuckDB computation on the raw files written independently here."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aifinops.analysis.gpu_capacity import daily_capacity
from aifinops.analysis.windows import Window
from aifinops.sources.inventory import InventorySource
from aifinops.sources.workloads_csv import WorkloadsCsvSource
from aifinops.store.ingest import ingest

FIX = Path(__file__).parent / "fixtures" / "alibaba"
ORIGIN = datetime(2023, 1, 1)
DAYS = 150  # the trace spans about 150 days
WINDOW = Window(ORIGIN, ORIGIN + timedelta(days=DAYS))
PRICES = {"V100": Decimal("2.48"), "T4": Decimal("0.53"), "P100": Decimal("1.46"), "A10": Decimal("1.00"),
          "G2": Decimal("1.10"), "G3": Decimal("1.20")}


@pytest.fixture
def cluster(store):
    ingest(store, InventorySource(preset="alibaba-openb-nodes"), [FIX / "openb_nodes_slice.csv"])
    ingest(store, WorkloadsCsvSource(preset="alibaba-openb"), [FIX / "openb_pods_slice.csv"])
    return store


def raw_allocated(group: str) -> dict[tuple[int, str], float]:
    """GPU-hours per day and group straight from the raw CSV, by the upstream README's rule."""
    con = duckdb.connect()
    rows = con.execute(f"""
        WITH pods AS (
          SELECT qos, CASE WHEN num_gpu = 1 THEN gpu_milli / 1000.0 ELSE num_gpu END AS share,
                 scheduled_time AS s, CASE WHEN deletion_time > 0 THEN deletion_time ELSE {DAYS * 86400} END AS e
          FROM read_csv('{FIX / "openb_pods_slice.csv"}', header = true)
          WHERE scheduled_time IS NOT NULL AND num_gpu > 0
        ), days AS (SELECT range AS d FROM range({DAYS}))
        SELECT d, {group},
               sum(share * greatest(0, least(e, (d + 1) * 86400, {DAYS * 86400}) - greatest(s, d * 86400)) / 3600)
        FROM pods CROSS JOIN days GROUP BY ALL""").fetchall()
    return {(d, g): v for d, g, v in rows if v}


def test_allocated_per_day_matches_the_raw_trace(cluster) -> None:
    rows = daily_capacity(cluster.con, WINDOW)
    raw = raw_allocated("'all'")
    assert len(rows) == DAYS
    assert sum(r["allocatedGpuHours"] for r in rows) > 30_000  # a busy trace (35,995 GPU-hours), not an empty window
    for r in rows:
        day = (r["day"] - ORIGIN).days
        assert r["allocatedGpuHours"] == pytest.approx(raw.get((day, "all"), 0.0), rel=1e-9)


def test_allocated_per_qos_matches_the_raw_trace(cluster) -> None:
    rows = daily_capacity(cluster.con, WINDOW, by="label:qos")
    got = {((r["day"] - ORIGIN).days, r["group"]): r["allocatedGpuHours"] for r in rows if r["group"]}
    raw = raw_allocated("qos")
    assert got.keys() == raw.keys()
    for key, value in raw.items():
        assert got[key] == pytest.approx(value, rel=1e-9)


def test_available_unallocated_and_costs(cluster) -> None:
    con = duckdb.connect()
    gpus, weighted = con.execute(f"""
        SELECT sum(gpu), sum(gpu * CASE WHEN model LIKE '%V100%' THEN 2.48 WHEN model LIKE '%T4%' THEN 0.53
                                        WHEN model LIKE '%P100%' THEN 1.46 WHEN model LIKE '%A10%' THEN 1.00
                                        WHEN model LIKE '%G2%' THEN 1.10 WHEN model LIKE '%G3%' THEN 1.20 ELSE 0 END)
        FROM read_csv('{FIX / "openb_nodes_slice.csv"}', header = true) WHERE gpu > 0""").fetchone()
    avg_price = float(weighted) / gpus
    rows = daily_capacity(cluster.con, WINDOW, gpu_prices=PRICES)
    for r in rows:
        assert r["availableGpuHours"] == pytest.approx(gpus * 24)
        assert r["unallocatedGpuHours"] == pytest.approx(max(gpus * 24 - r["allocatedGpuHours"], 0))
        assert r["unallocatedShare"] == pytest.approx(r["unallocatedGpuHours"] / (gpus * 24))
        # allocated + unallocated cost = the pool's cost (when not over-committed)
        if not r["overcommitted"]:
            assert r["allocatedCost"] + r["unallocatedCost"] == pytest.approx(gpus * 24 * avg_price)
    assert any(r["fractionalGpuHours"] > 0 for r in rows)  # GPU-sharing pods (gpu_milli < 1000) exist


EXAMPLE = Path(__file__).parent.parent / "examples" / "alibaba-openb" / "aifinops.yaml"


def documented_prices() -> dict[str, Decimal]:
    """The price table the README documents for the trace (examples/alibaba-openb/aifinops.yaml)."""
    import yaml

    return {k: Decimal(str(v)) for k, v in yaml.safe_load(EXAMPLE.read_text())["gpu_prices"].items()}


def test_cost_per_pod_and_per_qos_at_the_documented_price_table(cluster) -> None:
    """A pod's cost = its GPU-hours x the fleet's mean $ per GPU-hour at the documented table (the trace does not
    say which node a pod ran on), computed here straight from the raw files."""
    prices = documented_prices()
    con = duckdb.connect()
    case = " ".join(f"WHEN model LIKE '%{k}%' THEN {v}" for k, v in prices.items())
    nodes = FIX / "openb_nodes_slice.csv"
    avg = con.execute(f"SELECT sum(gpu * CASE {case} ELSE 0 END) / sum(gpu) FROM read_csv('{nodes}', header = true) "
                      "WHERE gpu > 0").fetchone()[0]
    raw = dict(con.execute(f"""
        SELECT name, CASE WHEN num_gpu = 1 THEN gpu_milli / 1000.0 ELSE num_gpu END
                     * (CASE WHEN deletion_time > 0 THEN deletion_time ELSE {DAYS * 86400} END - scheduled_time) / 3600
        FROM read_csv('{FIX / "openb_pods_slice.csv"}', header = true)
        WHERE scheduled_time IS NOT NULL AND num_gpu > 0""").fetchall())
    pods = daily_capacity(cluster.con, WINDOW, by="workload", gpu_prices=prices, accumulate="window")
    got = {r["group"]: r for r in pods}
    assert got.keys() == raw.keys() and len(got) > 250
    for name, hours in raw.items():
        assert got[name]["allocatedGpuHours"] == pytest.approx(hours, rel=1e-9)
        assert got[name]["allocatedCost"] == pytest.approx(hours * float(avg), rel=1e-9)
    qos = {r["group"]: r["allocatedCost"] for r in daily_capacity(cluster.con, WINDOW, by="label:qos",
                                                                  gpu_prices=prices, accumulate="window")}
    by_qos = raw_allocated("qos")
    for q in qos:
        assert qos[q] == pytest.approx(sum(v for (_, g), v in by_qos.items() if g == q) * float(avg), rel=1e-9)
    whole = daily_capacity(cluster.con, WINDOW, gpu_prices=prices, accumulate="window")
    assert len(whole) == 1 and whole[0]["allocatedCost"] == pytest.approx(sum(qos.values()), rel=1e-9)
    assert whole[0]["allocatedCost"] + whole[0]["unallocatedCost"] == pytest.approx(
        whole[0]["availableGpuHours"] * float(avg), rel=1e-9)


def test_unknown_grouping(cluster) -> None:
    with pytest.raises(ValueError, match="unknown grouping"):
        daily_capacity(cluster.con, WINDOW, by="colour")
    with pytest.raises(ValueError, match="unknown accumulate"):
        daily_capacity(cluster.con, WINDOW, accumulate="week")


def test_cli(cluster, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app

    db = cluster.path
    cluster.close()
    cfg = tmp_path / "aifinops.yaml"
    cfg.write_text("gpu_prices: {V100: 2.48, T4: 0.53, P100: 1.46}\n")
    res = CliRunner().invoke(app, ["--db", str(db), "--config", str(cfg), "gpu", "capacity", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert rows[0]["day"].startswith("2023-01-01") and len(rows) >= DAYS - 5
    assert sum(r["allocatedGpuHours"] for r in rows) > 30_000 and all(r["allocatedCost"] >= 0 for r in rows)


def test_cli_cost_per_qos_over_the_window_with_the_example_config(cluster) -> None:
    import json

    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app

    db = cluster.path
    cluster.close()
    res = CliRunner().invoke(app, ["--db", str(db), "--config", str(EXAMPLE), "gpu", "capacity", "--by", "label:qos",
                                   "--accumulate", "window", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["group"] for r in rows} >= {"LS", "BE"} and all(r["allocatedCost"] > 0 for r in rows)
    assert len({r["day"] for r in rows}) == 1
