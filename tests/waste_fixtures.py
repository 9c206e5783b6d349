"""Builders for waste-rule scenarios: rows written straight into a store, so each test states its numbers.

Times are naive UTC. Every builder takes the store's connection and returns nothing; amounts are exact
strings or numbers. Scenarios are small enough that the expected findings are computed by hand in the
test's docstring.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from aifinops.analysis.windows import Window
from aifinops.config import Settings
from aifinops.waste import RunResult, run

T0 = datetime(2026, 10, 1)


def window(hours: float, start: datetime = T0) -> Window:
    return Window(start, start + timedelta(hours=hours))


def add_node(con: duckdb.DuckDBPyConnection, node: str, gpus: int, hourly_price: str | Decimal | None,
             gpu_model: str = "NVIDIA H100 80GB HBM3", node_pool: str | None = "pool-a", owner: str | None = None,
             pricing_category: str | None = "on-demand", region: str | None = "us-east-1",
             instance_type: str | None = None, provider: str | None = None, resource_id: str | None = None) -> None:
    con.execute(
        "INSERT INTO gpu_nodes (node, gpu_count, gpu_model, hourly_price, node_pool, owner, pricing_category, region, "
        "instance_type, provider, resource_id, _batch_id, _file, _row) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 't', 0)",
        [node, gpus, gpu_model, None if hourly_price is None else str(hourly_price), node_pool, owner,
         pricing_category, region, instance_type, provider, resource_id])


def add_workload(con: duckdb.DuckDBPyConnection, wid: str, node: str | None, gpus: float, start: datetime | None,
                 end: datetime | None, labels: dict[str, str] | None = None, phase: str = "Running",
                 owner_kind: str | None = None, owner_name: str | None = None, namespace: str | None = "default",
                 name: str | None = None, source: str = "kubernetes", gpu_resource: str = "nvidia.com/gpu",
                 annotations: dict[str, str] | None = None, kind: str = "pod", batch: int = 1) -> None:
    con.execute(
        "INSERT INTO workloads (workload_id, name, namespace, source, kind, node, gpu_count, gpu_share, gpu_resource, "
        "start_ts, end_ts, labels, annotations, phase, owner_kind, owner_name, _batch_id, _file, _row) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 't', 0)",
        [wid, name or wid, namespace, source, kind, node, gpus, gpus, gpu_resource, start, end, labels or {},
         annotations or {}, phase, owner_kind, owner_name, batch])


def add_activity(con: duckdb.DuckDBPyConnection, node: str, gpu_index: int, start: datetime, hours: float,
                 sm_active: float | Iterable[float], pod: str | None = None, namespace: str | None = "default",
                 every_s: int = 60, fb_used_mib: float | None = None, fb_total_mib: float = 81920,
                 gpu_model: str = "NVIDIA H100 80GB HBM3", instance: str | None = None,
                 profile: str | None = None) -> None:
    """DCGM-like samples every ``every_s`` seconds for ``hours``: one SM activity for all, or one per hour."""
    n = int(hours * 3600 // every_s)
    acts = [float(a) for a in sm_active] if not isinstance(sm_active, int | float) else [float(sm_active)]
    act = f"$acts[CAST(i * {every_s} // 3600 AS BIGINT) + 1]" if len(acts) > 1 else "$acts[1]"
    con.execute(
        "INSERT INTO gpu_samples (ts, node, gpu, gpu_index, gpu_model, gpu_instance_id, gpu_instance_profile, "
        "namespace, pod, sm_active, fb_used_mib, fb_free_mib, source, _batch_id, _file, _row) "
        f"SELECT $start + to_seconds(i * {every_s}), $node, $gpu, $idx, $model, $inst, $profile, $ns, $pod, {act}, "
        "$used, $total - $used, 'dcgm', 1, 't', i FROM range($n) r(i)",
        {"start": start, "node": node, "gpu": f"{node}/{gpu_index}", "idx": gpu_index, "model": gpu_model,
         "inst": instance, "profile": profile, "ns": namespace if pod else None, "pod": pod, "acts": acts,
         "used": fb_used_mib, "total": fb_total_mib, "n": n})


def add_requests(con: duckdb.DuckDBPyConnection, rows: Iterable[dict[str, Any]], source: str = "test") -> None:
    """LLM requests: each dict names columns of ``llm_requests`` (``ts``, ``provider``, ``request_model``,
    ``input_tokens``, ``output_tokens``, ``feature``, ``team``, ...); ``request_id`` defaults to its index."""
    for i, r in enumerate(rows):
        r = {"request_id": f"r{i}", "source": source, "requests": 1, "status": "ok", "tier": "standard", **r}
        cols = ", ".join(f'"{c}"' for c in r)
        con.execute(f"INSERT INTO llm_requests ({cols}, _batch_id, _file, _row) "
                    f"VALUES ({', '.join('?' for _ in r)}, 1, 't', {i})", list(r.values()))


def add_charge(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, cost: str | Decimal,
               **columns: Any) -> None:
    """One FOCUS charge (EffectiveCost = BilledCost = ``cost``); other FOCUS columns as keywords
    (``ResourceId``, ``ServiceName``, ``ServiceCategory``, ``Tags`` as a dict, ``ConsumedQuantity``...)."""
    base = {"ChargePeriodStart": start, "ChargePeriodEnd": end, "BilledCost": str(cost), "EffectiveCost": str(cost),
            "ListCost": str(cost), "ContractedCost": str(cost), "BillingCurrency": "USD", "ChargeCategory": "Usage",
            "ProviderName": "AWS", "BillingAccountId": "acct-1",
            "BillingPeriodStart": datetime(start.year, start.month, 1), "Tags": {}, **columns}
    cols = ", ".join(f'"{c}"' for c in base)
    con.execute(f"INSERT INTO focus_charges ({cols}, _batch_id, _file, _row) "
                f"VALUES ({', '.join('?' for _ in base)}, 1, 't', 0)", list(base.values()))


def findings(con: duckdb.DuckDBPyConnection, w: Window, rule: str, settings: Settings | None = None,
             **options: Any) -> RunResult:
    """Run one rule (with ``options`` as its thresholds) over ``w``."""
    s = settings or Settings()
    if options:
        s = s.model_copy(update={"waste": s.waste.model_copy(update={"rules": {**s.waste.rules, rule: options}})})
    return run(con, w, s, only=[rule])
