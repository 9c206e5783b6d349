"""Cluster GPU capacity per day: available vs allocated GPU-hours, the unallocated share, fractional sharing,
and what the allocated and unallocated hours cost at a price table.

This is the view for traces and schedulers that say how much each workload asked for but not on which node
(the Alibaba GPU-sharing trace has no pod -> node column): the fleet is one pool. Capacity is every GPU in
the inventory for the whole day (the inventory has no validity dates yet). Allocation uses the same
``gpu_share`` rule as the per-node allocation. A day's cost is capacity x the fleet's average $ per GPU-hour
from the price table (each node's GPU model priced by ``gpu_prices``), so allocated + unallocated cost =
the pool's cost; a group's allocated cost is its GPU-hours x that average.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from ..model.checks import sql_str
from .gpu_allocation import price_rows
from .windows import Window


def daily_capacity(con: duckdb.DuckDBPyConnection, window: Window, by: str | None = None,
                   gpu_prices: dict[str, Decimal] | None = None) -> list[dict[str, object]]:
    """One row per day (and per ``by`` group: ``label:KEY`` or ``namespace``): GPU-hours available,
    allocated, unallocated and their share; GPU-hours held by fractional workloads; and costs."""
    if by is None:
        group = "'all'"
    elif by.startswith("label:"):
        group = f"coalesce(w.labels[{sql_str(by[6:])}], '(none)')"
    elif by == "namespace":
        group = "coalesce(w.namespace, '(none)')"
    else:
        raise ValueError(f"unknown grouping {by!r}: use label:KEY or namespace")
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
                        - epoch(greatest(w.start_ts, d.day))) / 3600.0 AS gpu_hours
  FROM workloads w
  JOIN days d ON w.start_ts < d.day + INTERVAL 1 DAY AND coalesce(w.end_ts, $end::TIMESTAMP) > d.day
  WHERE w.gpu_share > 0
),
per_group AS (
  SELECT day, grp, sum(gpu_hours) AS allocated,
         sum(gpu_hours) FILTER (WHERE gpu_share <> floor(gpu_share)) AS fractional
  FROM held GROUP BY ALL
),
per_day AS (SELECT day, sum(allocated) AS allocated_day FROM per_group GROUP BY day)
SELECT d.day, g.grp,
       p.gpus * (epoch(least(d.day + INTERVAL 1 DAY, $end::TIMESTAMP)) - epoch(d.day)) / 3600.0 AS available,
       coalesce(g.allocated, 0) AS allocated, coalesce(g.fractional, 0) AS fractional,
       coalesce(pd.allocated_day, 0) AS allocated_day, p.avg_price
FROM days d CROSS JOIN pool p
LEFT JOIN per_group g ON g.day = d.day
LEFT JOIN per_day pd ON pd.day = d.day
ORDER BY d.day, g.grp
"""
    rows = con.execute(sql, {"start": window.start, "end": window.end}).fetchall()
    out = []
    for day, grp, available, allocated, fractional, allocated_day, avg_price in rows:
        available = available or 0.0
        unallocated = max(available - allocated_day, 0.0)
        price = avg_price or 0.0
        out.append({
            "day": day, "group": grp if by else None, "availableGpuHours": available,
            "allocatedGpuHours": allocated, "fractionalGpuHours": fractional,
            "unallocatedGpuHours": unallocated if (by is None or grp is None) else None,
            "unallocatedShare": (unallocated / available) if available and by is None else None,
            "allocatedCost": allocated * price, "unallocatedCost": unallocated * price if by is None else None,
            "overcommitted": allocated_day > available,
        })
    return out
