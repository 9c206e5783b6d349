"""GPU cost allocation: every GPU-hour a node cost, split between the workloads that held its GPUs and
``__idle__`` (unallocated: no workload held it).

The steps, in order (OpenCost-style, written as one SQL statement so that it runs in the engine):

1. Buckets: the window cut into hours.
2. Node cost per bucket: the node's bill first — each FOCUS charge of its ``ResourceId`` prorated by
   how much of the charge period falls in the bucket (EffectiveCost: what was really paid, discounts
   and commitments included) — else the inventory's ``hourly_price``. The whole instance cost counts as
   GPU cost: on GPU instances CPU and memory come with the GPUs and cannot be bought without them.
3. Held GPU-hours per workload and bucket: ``gpu_share`` (GPU-equivalents: a MIG slice is g/7, a
   time-sliced replica 1/replicas, a fraction its fraction) x the hours of the bucket it ran.
4. A workload's cost = node cost x held / capacity (gpu_count x bucket hours). When the workloads on a
   node hold more than its capacity (over-commit), they share the node cost in proportion instead.
5. ``__idle__`` = node cost - the allocated costs, computed by subtraction in exact decimals, so that
   allocated + idle = node cost exactly in every bucket. Allocated costs are rounded down to 1e-12 $ so
   that the rounding dust lands in idle and idle is never negative.

Workloads holding GPUs on a node the inventory does not know are counted in ``unmatched_workloads`` (their
GPUs have no cost to share), so nothing silently disappears.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from ..model.checks import sql_str
from .windows import Window

IDLE = "__idle__"
MONEY = "DECIMAL(38, 12)"


@dataclass(frozen=True)
class AllocationResult:
    rows: list[dict[str, object]]
    node_cost: object  # Decimal: the fleet's cost in the window
    unmatched_workloads: int


_ALLOCATION_SQL = """
WITH gpu_prices(pattern, price) AS (
  {prices}
), hours AS (
  SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 HOUR)) AS bucket
), nodes AS (
  SELECT node, gpu_count, gpu_model, resource_id, hourly_price, owner, node_pool
  FROM gpu_nodes WHERE gpu_count > 0
), bill AS (
  SELECT n.node, h.bucket,
         -- a charge inside the bucket counts whole (exactly); one that spans buckets is prorated by time
         sum(CASE WHEN c."ChargePeriodStart" >= h.bucket AND c."ChargePeriodEnd" <= h.bucket + INTERVAL 1 HOUR
                  THEN c."EffectiveCost"
                  ELSE CAST(CAST(c."EffectiveCost" AS DOUBLE)
                            * (epoch(least(c."ChargePeriodEnd", h.bucket + INTERVAL 1 HOUR))
                               - epoch(greatest(c."ChargePeriodStart", h.bucket)))
                            / (epoch(c."ChargePeriodEnd") - epoch(c."ChargePeriodStart")) AS {MONEY}) END) AS cost
  FROM nodes n
  JOIN focus_charges c ON c."ResourceId" = n.resource_id
  JOIN hours h ON c."ChargePeriodStart" < h.bucket + INTERVAL 1 HOUR AND c."ChargePeriodEnd" > h.bucket
  GROUP BY ALL
), table_price AS (
  -- the price table's entry for the node's GPU model: the longest pattern the model name contains
  SELECT n.node, arg_max(p.price, length(p.pattern)) AS per_gpu
  FROM nodes n JOIN gpu_prices p ON upper(n.gpu_model) LIKE '%' || upper(p.pattern) || '%'
  GROUP BY n.node
), node_cost AS (
  SELECT n.node, h.bucket, n.gpu_count, n.gpu_model, n.owner, n.node_pool,
         CAST(coalesce(b.cost, n.hourly_price, tp.per_gpu * n.gpu_count) AS {MONEY}) AS cost,
         CASE WHEN b.cost IS NOT NULL THEN 'bill' WHEN n.hourly_price IS NOT NULL THEN 'price'
              WHEN tp.per_gpu IS NOT NULL THEN 'price table' ELSE 'none' END AS cost_source
  FROM nodes n CROSS JOIN hours h LEFT JOIN bill b ON b.node = n.node AND b.bucket = h.bucket
  LEFT JOIN table_price tp ON tp.node = n.node
), held AS (
  SELECT w.workload_id, w.name, w.namespace, w.node, w.labels, h.bucket,
         w.gpu_share * (epoch(least(coalesce(w.end_ts, $end::TIMESTAMP), h.bucket + INTERVAL 1 HOUR))
                        - epoch(greatest(w.start_ts, h.bucket))) / 3600.0 AS gpu_hours
  FROM workloads w
  JOIN hours h ON w.start_ts < h.bucket + INTERVAL 1 HOUR AND coalesce(w.end_ts, $end::TIMESTAMP) > h.bucket
  WHERE w.gpu_share > 0 AND w.node IS NOT NULL
), samples AS (
  -- a sample ingested twice counts once: ingest marks the older copy superseded
  SELECT * FROM gpu_samples
  WHERE ts >= $start::TIMESTAMP AND ts < $end::TIMESTAMP AND pod IS NOT NULL AND NOT _superseded
), activity AS (
  -- SM_ACTIVE first, then GR_ENGINE_ACTIVE, then GPU_UTIL (which overstates: it says only that a kernel ran)
  SELECT node, pod, coalesce(namespace, '') AS namespace,
         $start::TIMESTAMP + to_hours(CAST(floor((epoch(ts) - epoch($start::TIMESTAMP)) / 3600) AS BIGINT)) AS bucket,
         coalesce(avg(sm_active), avg(gr_engine_active), avg(gpu_util)) AS activity,
         CASE WHEN count(sm_active) > 0 THEN 'sm_active' WHEN count(gr_engine_active) > 0 THEN 'gr_engine_active'
              WHEN count(gpu_util) > 0 THEN 'gpu_util' END AS activity_metric
  FROM samples GROUP BY ALL
), alloc AS (
  SELECT hd.*, nc.cost AS node_cost, nc.gpu_count, nc.owner, nc.node_pool, nc.cost_source,
         a.activity, a.activity_metric,
         sum(hd.gpu_hours) OVER (PARTITION BY hd.node, hd.bucket) AS node_held
  FROM held hd JOIN node_cost nc ON nc.node = hd.node AND nc.bucket = hd.bucket
  LEFT JOIN activity a ON a.node = hd.node AND a.pod = hd.name AND a.namespace = coalesce(hd.namespace, '')
                       AND a.bucket = hd.bucket
), shares AS (
  SELECT *, CAST(CAST(node_cost AS DOUBLE) * gpu_hours / greatest(gpu_count, node_held) AS DECIMAL(38, 15)) AS exact
  FROM alloc
), priced AS (
  -- rounded down to 1e-12: the remainder stays in __idle__, which therefore never goes negative
  SELECT *, CAST(exact - exact % 0.000000000001 AS {MONEY}) AS gpu_cost FROM shares
)
SELECT bucket, node, coalesce(name, workload_id) AS name, workload_id, namespace, labels, gpu_hours AS "gpuHours",
       gpu_cost AS "gpuCost", activity, activity_metric, cost_source, owner, node_pool
FROM priced
UNION ALL
SELECT nc.bucket, nc.node, '{IDLE}', NULL, NULL, NULL,
       greatest(nc.gpu_count - coalesce(sum(p.gpu_hours), 0), 0),
       nc.cost - coalesce(sum(p.gpu_cost), 0), 0.0, NULL, nc.cost_source, nc.owner, nc.node_pool
FROM node_cost nc LEFT JOIN priced p ON p.node = nc.node AND p.bucket = nc.bucket
GROUP BY nc.bucket, nc.node, nc.gpu_count, nc.cost, nc.cost_source, nc.owner, nc.node_pool
"""


def allocation_sql(gpu_prices: dict[str, Decimal] | None = None) -> str:
    """The hourly allocation statement. ``gpu_prices`` (GPU model pattern -> $ per GPU-hour) prices nodes
    that neither a bill nor an inventory ``hourly_price`` covers; without it they cost 0 (``cost_source``
    says ``none``)."""
    return (_ALLOCATION_SQL.replace("{prices}", price_rows(gpu_prices)).replace("{MONEY}", MONEY)
            .replace("{IDLE}", IDLE))


def price_rows(gpu_prices: dict[str, Decimal] | None) -> str:
    """The price table as a SQL row source (pattern, price); empty when there is none."""
    rows = [f"({sql_str(str(k))}, CAST({Decimal(str(v))} AS {MONEY}))" for k, v in (gpu_prices or {}).items()]
    return "VALUES " + ", ".join(rows) if rows else f"SELECT NULL::VARCHAR, NULL::{MONEY} WHERE false"


def allocate(con: duckdb.DuckDBPyConnection, window: Window,
             gpu_prices: dict[str, Decimal] | None = None) -> AllocationResult:
    """Hourly GPU allocation over ``window`` (see the module docstring for the rule)."""
    params = {"start": window.start, "end": window.end}
    sql = allocation_sql(gpu_prices)
    rows = con.execute(f"SELECT * FROM ({sql}) ORDER BY bucket, node, name", params)
    names = [d[0] for d in rows.description]
    out = [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
    total = _fleet_cost(con, params, sql)
    unmatched = con.execute(
        "SELECT count(*) FROM workloads w WHERE w.gpu_share > 0 AND (w.node IS NULL OR w.node NOT IN "
        "(SELECT node FROM gpu_nodes)) AND w.start_ts < $end::TIMESTAMP "
        "AND coalesce(w.end_ts, $end::TIMESTAMP) > $start::TIMESTAMP", params,
    ).fetchone()[0]
    return AllocationResult(out, total, unmatched)


def _fleet_cost(con: duckdb.DuckDBPyConnection, params: dict[str, datetime], sql: str) -> object:
    head = sql[: sql.index("), held AS")] + ") SELECT coalesce(sum(cost), 0) FROM node_cost"
    return con.execute(head, params).fetchone()[0]


SHARE_IDLE = ("none", "weighted", "even", "owner")


def _floor12(expr: str) -> str:
    """Round a non-negative amount down to 1e-12 $: shared amounts never exceed what there is to share."""
    return f"(CAST({expr} AS DECIMAL(38, 15)) - CAST({expr} AS DECIMAL(38, 15)) % 0.000000000001)"


def shared_sql(policy: str, gpu_prices: dict[str, Decimal] | None = None) -> str:
    """The hourly allocation with idle shared by ``policy`` (OpenCost's ``shareIdle``), per node and hour:

    - ``none``: idle stays its own line;
    - ``weighted``: each workload on the node gets idle in proportion to its gpuCost that hour;
    - ``even``: each workload on the node that hour gets an equal part;
    - ``owner``: idle stays a line, but it carries the node pool owner's name, so that grouping by owner
      or by a team label charges it to the team that owns the nodes.

    A workload row gains ``gpuCostIdle``; the idle row keeps what was not shared (all of it when no workload
    ran, and the rounding dust otherwise), so totalCost still adds up to the node cost exactly."""
    if policy not in SHARE_IDLE:
        raise ValueError(f"unknown share-idle policy {policy!r}: use {', '.join(SHARE_IDLE)}")
    weighted = _floor12('node_idle * "gpuCost" / node_used')
    share = {
        "weighted": f"CASE WHEN node_used > 0 THEN {weighted} ELSE 0 END",
        "even": _floor12("node_idle / node_n"),
    }.get(policy, "0")
    return f"""
WITH a AS ({allocation_sql(gpu_prices)}), g AS (
  SELECT *, max(CASE WHEN name = '{IDLE}' THEN "gpuCost" END) OVER w AS node_idle,
         sum(CASE WHEN name <> '{IDLE}' THEN "gpuCost" END) OVER w AS node_used,
         count(*) FILTER (WHERE name <> '{IDLE}') OVER w AS node_n
  FROM a WINDOW w AS (PARTITION BY bucket, node)
), s AS (
  SELECT *, CAST(CASE WHEN name = '{IDLE}' THEN 0 ELSE {share} END AS {MONEY}) AS "gpuCostIdle" FROM g
)
SELECT * REPLACE (CASE WHEN name = '{IDLE}' THEN "gpuCost" - sum("gpuCostIdle") OVER (PARTITION BY bucket, node)
                       ELSE "gpuCost" END AS "gpuCost")
FROM s"""


def aggregate(con: duckdb.DuckDBPyConnection, window: Window, by: list[str],
              idle_threshold: float = 0.05, accumulate: str = "window",
              share_idle: str = "none", gpu_prices: dict[str, Decimal] | None = None) -> list[dict[str, object]]:
    """The allocation summed over the window, grouped OpenCost-style by ``node``, ``namespace``, ``workload``,
    ``node_pool``, ``owner`` or ``label:KEY``; ``__idle__`` (unallocated) stays its own line.

    Columns follow OpenCost's names (``gpuHours``, ``gpuCost``, ``gpuEfficiency``, ``totalCost``) plus the
    two other kinds of idle: ``gpuCostAllocatedIdle`` (held at an activity below ``idle_threshold``) and
    ``gpuCostInefficiency`` (the unused part, 1 - activity, of GPUs held above it). ``gpuEfficiency`` is
    used / allocated GPU-hours over the hours with telemetry (NULL without any). ``accumulate`` is ``window``
    (one row per group, OpenCost's ``accumulate=true``), ``hour`` or ``day`` (a row per group and period)."""
    if accumulate not in ("window", "hour", "day"):
        raise ValueError(f"unknown accumulate {accumulate!r}: use window, hour or day")
    source = shared_sql(share_idle, gpu_prices)
    idle_key = f"coalesce(owner, '{IDLE}')" if share_idle == "owner" else f"'{IDLE}'"
    keys = []
    for i, dim in enumerate(by):
        if dim.startswith("label:"):
            keys.append(f"CASE WHEN name = '{IDLE}' THEN {idle_key} "
                        f"ELSE coalesce(labels[{sql_str(dim[6:])}], '__unallocated__') END AS k{i}")
        elif dim == "owner":
            keys.append(f"CASE WHEN name = '{IDLE}' THEN {idle_key} ELSE coalesce(owner, '') END AS k{i}")
        elif dim in ("node", "namespace", "node_pool"):
            keys.append(f"coalesce({dim}, CASE WHEN name = '{IDLE}' THEN '{IDLE}' ELSE '' END) AS k{i}")
        elif dim == "workload":
            keys.append(f"name AS k{i}")
        else:
            raise ValueError(f"unknown aggregate {dim!r}: use node, namespace, workload, node_pool, owner or label:KEY")
    names = by or ["total"]
    if accumulate != "window":
        keys.insert(0, f"date_trunc('{accumulate}', bucket) AS period")
        names = ["start", *names]
    select = ", ".join(keys) or "'total' AS k0"
    held = f"name <> '{IDLE}' AND activity IS NOT NULL"
    rows = con.execute(
        f"""SELECT {select}, sum("gpuHours"), sum("gpuCost"), sum("gpuCostIdle"), sum("gpuCost" + "gpuCostIdle"),
               sum("gpuHours" * activity) FILTER (WHERE {held}) / sum("gpuHours") FILTER (WHERE {held}),
               coalesce(sum("gpuCost") FILTER (WHERE {held} AND activity < $threshold), 0),
               coalesce(sum(CAST("gpuCost" * (1 - activity) AS {MONEY}))
                        FILTER (WHERE {held} AND activity >= $threshold), 0)
            FROM ({source}) GROUP BY ALL
            ORDER BY {"1, " if accumulate != "window" else ""}{len(names) + 4} DESC""",
        {"start": window.start, "end": window.end, "threshold": idle_threshold},
    ).fetchall()
    n = len(names)
    return [{**dict(zip(names, r[:n], strict=True)), "gpuHours": r[n], "gpuCost": r[n + 1], "gpuCostIdle": r[n + 2],
             "gpuEfficiency": r[n + 4], "gpuCostAllocatedIdle": r[n + 5], "gpuCostInefficiency": r[n + 6],
             "totalCost": r[n + 3]} for r in rows]


