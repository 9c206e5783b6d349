"""Cluster GPU capacity per day: available vs allocated GPU-hours, the unallocated share, fractional sharing,
and what the allocated and unallocated hours cost at a price table.

This is the view for traces and schedulers that say how much each workload asked for but not on which node
(the Alibaba GPU-sharing trace has no pod -> node column): the fleet is one pool. Capacity is every GPU in
the inventory for the whole day (the inventory has no validity dates yet). Allocation uses the same
``gpu_share`` rule as the per-node allocation. A day's cost is capacity x the fleet's average $ per GPU-hour
from the price table (each node's GPU model priced by ``gpu_prices``), so allocated + unallocated cost =
the pool's cost; a group's allocated cost is its GPU-hours x that average. Grouping by ``workload`` gives the
cost of each pod; ``accumulate="window"`` sums each group over the whole window instead of per day.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from ..model.checks import sql_str
from .gpu_allocation import UNALLOCATED, price_rows
from .windows import Window


def daily_capacity(con: duckdb.DuckDBPyConnection, window: Window, by: str | None = None,
                   gpu_prices: dict[str, Decimal] | None = None, accumulate: str = "day") -> list[dict[str, object]]:
    """One row per day (or one for the window, ``accumulate="window"``) and per ``by`` group (``label:KEY``,
    ``namespace`` or ``workload``): GPU-hours available, allocated, unallocated and their share; GPU-hours held
    by fractional workloads; and costs. Unallocated figures are the pool's, so they are given only without
    ``by``."""
    if by is None:
        group = "'all'"
    elif by.startswith("label:"):
        group = f"coalesce(w.labels[{sql_str(by[6:])}], '{UNALLOCATED}')"
    elif by == "namespace":
        group = f"coalesce(w.namespace, '{UNALLOCATED}')"
    elif by == "workload":
        group = "coalesce(w.name, w.workload_id)"
    else:
        raise ValueError(f"unknown grouping {by!r}: use label:KEY, namespace or workload")
    if accumulate not in ("day", "window"):
        raise ValueError(f"unknown accumulate {accumulate!r}: use day or window")
    period = "pd.day" if accumulate == "day" else "$start::TIMESTAMP"
    pooled = "true" if by is None else "false"
    sql = f"""
WITH gpu_prices(pattern, price) AS ({price_rows(gpu_prices)}),
days AS (SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 DAY)) AS day),
priced_nodes AS (
  SELECT n.node, n.gpu_count,
         (SELECT arg_max(p.price, length(p.pattern)) FROM gpu_prices p
          WHERE upper(coalesce(n.gpu_model, '')) LIKE '%' || upper(p.pattern) || '%') AS per_gpu
  FROM gpu_nodes n WHERE n.gpu_count > 0
),
pool AS (
  SELECT sum(gpu_count) AS gpus,
         CAST(sum(gpu_count * coalesce(per_gpu, 0)) AS DOUBLE) / nullif(sum(gpu_count), 0) AS avg_price
  FROM priced_nodes
),
held AS (
  SELECT d.day, {group} AS grp, w.gpu_share,
         w.gpu_share * (epoch(least(coalesce(w.end_ts, $end::TIMESTAMP), d.day + INTERVAL 1 DAY,
                                    $end::TIMESTAMP))
                        - epoch(greatest(coalesce(w.start_ts, d.day), d.day))) / 3600.0 AS gpu_hours
  FROM workloads w
  -- a workload without a start began before the data (model.gpu); without an end it still runs
  JOIN days d ON coalesce(w.start_ts, $start::TIMESTAMP) < d.day + INTERVAL 1 DAY
             AND coalesce(w.end_ts, $end::TIMESTAMP) > d.day
  WHERE w.gpu_share > 0
),
per_group AS (
  SELECT day, grp, sum(gpu_hours) AS allocated,
         sum(gpu_hours) FILTER (WHERE gpu_share <> floor(gpu_share)) AS fractional
  FROM held GROUP BY ALL
),
per_day AS (
  SELECT d.day, p.gpus * (epoch(least(d.day + INTERVAL 1 DAY, $end::TIMESTAMP)) - epoch(d.day)) / 3600.0 AS available,
         coalesce((SELECT sum(allocated) FROM per_group g WHERE g.day = d.day), 0) AS allocated_day
  FROM days d CROSS JOIN pool p
),
rows AS (
  SELECT {period} AS day, g.grp, coalesce(g.allocated, 0) AS allocated, coalesce(g.fractional, 0) AS fractional,
         pd.available, pd.allocated_day, p.avg_price
  FROM per_day pd CROSS JOIN pool p
  LEFT JOIN per_group g ON g.day = pd.day
  WHERE {pooled} OR g.grp IS NOT NULL
)
SELECT day, CASE WHEN {pooled} THEN NULL ELSE grp END AS "group",
       CASE WHEN {pooled} THEN sum(available) END AS "availableGpuHours",
       sum(allocated) AS "allocatedGpuHours", sum(fractional) AS "fractionalGpuHours",
       CASE WHEN {pooled} THEN sum(greatest(available - allocated_day, 0)) END AS "unallocatedGpuHours",
       CASE WHEN {pooled} THEN sum(greatest(available - allocated_day, 0)) / nullif(sum(available), 0)
            END AS "unallocatedShare",
       sum(allocated) * coalesce(any_value(avg_price), 0) AS "allocatedCost",
       CASE WHEN {pooled} THEN sum(greatest(available - allocated_day, 0)) * coalesce(any_value(avg_price), 0)
            END AS "unallocatedCost",
       bool_or(allocated_day > available) AS overcommitted
FROM rows GROUP BY ALL ORDER BY day, "group"
"""
    cur = con.execute(sql, {"start": window.start, "end": window.end})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
