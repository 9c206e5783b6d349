"""The inventory source: a hand-written node list, the Alibaba openb node list, restatement and bad rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.inventory import InventorySource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIXTURES = Path(__file__).parent / "fixtures"
NODES = FIXTURES / "inventory" / "nodes.csv"
OPENB_NODES = FIXTURES / "alibaba" / "openb_nodes_slice.csv"


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


COLS = ("node, gpu_model, gpu_count, instance_type, provider, resource_id, pricing_category, node_pool, region, "
        "owner, hourly_price, labels")


def test_hand_written_inventory(store):
    res = ingest(store, InventorySource(), [NODES])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (3, 3, 0)
    rows = store.con.execute(f"SELECT {COLS} FROM gpu_nodes ORDER BY node").fetchall()
    assert rows == [
        ("gpu-a-0", "H100", 8, "p5.48xlarge", "AWS", "arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b2c3d4e5f60001",
         "on-demand", "train", "us-east-1", "ml-platform", Decimal("98.32"), {"rack": "r1"}),
        ("gpu-a-1", "H100", 8, "p5.48xlarge", "AWS", "arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b2c3d4e5f60002",
         "spot", "train", "us-east-1", "ml-platform", Decimal("39.33"), {"rack": "r1"}),
        ("gpu-b-0", "A100", 8, "p4d.24xlarge", "AWS", "arn:aws:ec2:us-west-2:123456789012:instance/i-0a1b2c3d4e5f60003",
         "reserved", "serve", "us-west-2", "search", Decimal("21.96"), {}),
    ]


def test_openb_node_list(store):
    res = ingest(store, InventorySource(preset="alibaba-openb-nodes"), [OPENB_NODES])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (31, 31, 0)
    raw = duckdb.sql(f"SELECT model, sum(gpu), count(*) FROM read_csv('{OPENB_NODES}') GROUP BY ALL ORDER BY ALL") \
        .fetchall()
    got = store.con.execute("SELECT gpu_model, sum(gpu_count), count(*) FROM gpu_nodes GROUP BY ALL ORDER BY ALL") \
        .fetchall()
    assert got == raw
    assert ("T4", 22, 10) in got and (None, 0, 5) in got
    assert store.con.execute("SELECT DISTINCT pricing_category, provider FROM gpu_nodes").fetchall() == \
        [("on-prem", None)]
    assert store.con.execute("SELECT node, gpu_count, gpu_model, cpu_cores, memory_mib, labels FROM gpu_nodes "
                             "WHERE _row IN (2, 8) ORDER BY _row").fetchall() == [
        ("openb-node-0050", 0, None, 32.0, 262144.0, {"cpu_milli": "32000", "memory_mib": "262144"}),
        ("openb-node-0350", 2, "T4", 104.0, 524288.0, {"cpu_milli": "104000", "memory_mib": "524288"}),
    ]


def test_newer_file_replaces_a_node(store):
    ingest(store, InventorySource(), [NODES])
    res = ingest(store, InventorySource(), [FIXTURES / "inventory" / "nodes_v2.csv"])
    assert (res.rows_loaded, res.rows_replaced, res.replaced_batches) == (1, 1, [1])
    assert store.con.execute("SELECT node, pricing_category, hourly_price, _batch_id FROM gpu_nodes ORDER BY node") \
        .fetchall() == [("gpu-a-0", "on-demand", Decimal("98.32"), 1), ("gpu-a-1", "on-demand", Decimal("98.32"), 2),
                        ("gpu-b-0", "reserved", Decimal("21.96"), 1)]
    assert store.con.execute("SELECT batch_id, status FROM batches ORDER BY 1").fetchall() == \
        [(1, "partly replaced"), (2, "loaded")]
    assert store.con.execute("SELECT key FROM restatements").fetchall() == [('{"node": "gpu-a-1"}',)]


def test_cpu_and_memory_capacity_are_numbers(store, tmp_path):
    p = tmp_path / "nodes.csv"
    p.write_text("node,gpu_count,cpu_cores,memory_mib\nn1,8,192,2097152\nn2,8,lots,1\n")
    res = ingest(store, InventorySource(), [p])
    assert (res.rows_loaded, res.rows_quarantined) == (1, 1)
    got = store.con.execute("SELECT node, cpu_cores, memory_mib FROM gpu_nodes").fetchall()
    assert got == [("n1", 192.0, 2097152.0)]
    assert store.con.execute("SELECT \"column\", reason FROM quarantine_errors").fetchall() == [
        ("cpu_cores", "not a number: 'lots'")]


def test_bad_nodes_are_quarantined(store):
    res = ingest(store, InventorySource(), [FIXTURES / "inventory" / "nodes_bad.csv"])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (6, 1, 5)
    assert store.con.execute("SELECT node FROM gpu_nodes").fetchall() == [("ok-0",)]
    assert store.con.execute("SELECT row_number, \"column\", reason FROM quarantine_errors ORDER BY 1").fetchall() == [
        (2, "node", "node must not be empty"),
        (3, "gpu_count", "gpu_count must not be negative: '-1'"),
        (4, "pricing_category", "not one of on-demand, spot, reserved, on-prem: 'preemptible'"),
        (5, "hourly_price", "hourly_price must not be negative: '-2'"),
        (6, "gpu_count", "not a number: 'two'"),
    ]


def test_a_file_without_node_column_is_refused(tmp_path, store):
    f = tmp_path / "x.csv"
    f.write_text("host,gpus\na,1\n")
    with pytest.raises(IngestError, match="not an inventory file: no column 'node'"):
        ingest(store, InventorySource(), [f])


def test_unknown_preset_is_named():
    with pytest.raises(SourceError, match="preset"):
        InventorySource(preset="nope")


def test_parquet_inventory_with_typed_columns(tmp_path, store):
    f = tmp_path / "nodes.parquet"
    duckdb.sql("SELECT 'n1' AS NODE, 4 AS gpu_count, 'L40S' AS gpu_model, 'ON-PREM' AS pricing_category, "
               "1.5::DECIMAL(10, 2) AS hourly_price, '' AS region").write_parquet(str(f))
    assert ingest(store, InventorySource(), [f]).rows_loaded == 1
    assert store.con.execute("SELECT node, gpu_count, gpu_model, pricing_category, hourly_price, region, labels "
                             "FROM gpu_nodes").fetchall() == [("n1", 4, "L40S", "on-prem", Decimal("1.5"), None, None)]


def test_preset_on_another_file_is_refused(store):
    with pytest.raises(IngestError, match="not a alibaba-openb-nodes file: no column"):
        ingest(store, InventorySource(preset="alibaba-openb-nodes"), [NODES])
