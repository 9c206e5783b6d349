"""GPU utilisation: how busy the fleet's GPUs were, how much of it sat idle, and how fragmented it is.

One SQL statement, run in DuckDB. It reads ``gpu_samples`` once (``NOT _superseded``: ingest marks a repeated
observation) and reduces it to one row per *series* and hour (GPU, MIG instance, pod, container, job) — about
240 samples become one row at a 15 s scrape — so everything after that works on a small table. The steps:

1. **Cells** are (physical GPU, hour): fine enough to see a day's shape, coarse enough to stay small. A cell's
   activity is the mean of its samples in that hour of the preferred metric: ``sm_active`` (the share of
   SMs busy), else ``gr_engine_active``, else ``gpu_util``. ``gpu_util`` overstates: it only says that some
   kernel was running, so a GPU running one small kernel all the time reads 100 %. Each row says which
   metrics it rests on (``activity_metric``). A cell with samples counts as one telemetry GPU-hour.
2. **Time-sliced pods** sharing a GPU each get their own series with the GPU's values repeated, so a plain
   mean would count the hours two pods shared twice. Series of one GPU whose time spans overlap are copies
   of one signal: each group of overlapping series counts once, through the series with the most samples.
   This is exact when replicas run side by side or one runs within another; when two overlap only in part,
   the cell takes the longer one's span. (Averaging per sample time first would be exact, but it groups
   every sample by its time: about 4x slower, and a hash table as large as the samples.)
3. **MIG**: a GPU with only per-instance series (``gpu_instance_id`` set) is as busy as the sum over its
   instances of instance activity x the instance's slice share (profile ``<g>g.<mem>gb`` -> g / slices of the
   model, ``model.gpu.mig_slices``); slices no reporting instance holds compute nothing and add 0. An
   instance without a readable profile leaves its GPU's activity unknown. GPU-level activity, when there is
   some, is used as it is.
4. **Capacity** is the inventory (``gpu_nodes``): gpu_count GPUs per node for every hour the node was there
   (a billed node its bill does not charge in an hour, before the ledger ends, was stopped, as
   ``gpu_allocation`` says); ``gpus`` is that count (none for label groups, which hold GPU-hours, not GPUs).
   **Allocation** is the rule of ``gpu_allocation``: a workload holds ``gpu_share`` GPU-equivalents on its
   node for the part of the hour it ran; unallocated = capacity - held, never below 0. Workloads on nodes
   the inventory does not know are left out (they have no capacity to be part of).
5. **Placement**: a workload's series (its pod and namespace, or its Slurm job id, on a GPU of its node)
   show which GPUs it used in an hour; its share is spread evenly over them (at most 1 per GPU). Its own
   samples give its activity there (for a MIG pod, its instance's). Allocated idle GPU-hours are placed
   GPU-hours below ``idle_threshold``; ``idleGpuHours`` = unallocated + allocated idle.
6. **Unknown is not zero**: GPUs and hours without samples count in ``unknownGpuHours`` and in no activity
   figure; ``meanActivity`` and ``shareBelow5/30/50`` are over ``telemetryGpuHours`` only, time-weighted.
7. **Fragmentation**, ``partlyAllocatedGpus``: the mean number of GPUs held with 0 < share < 1 over the
   period (time-weighted, so a pod that leaves mid-hour is not a fragment). When every workload on a node
   that hour is placed, it is counted exactly per GPU (``fragmentation_basis`` ``telemetry``). Otherwise it is
   a lower bound from the node's held GPU-equivalents: when they are not a whole number, at least one GPU
   is partly held (``bound``; a node holding 0.5 + 0.5 may be two half-used GPUs, and counts 0). A row
   with any bounded node-hour is ``bound``; a row where nothing was held has no basis.

Groups (``by``): ``node``, ``gpu_model``, ``node_pool`` (inventory columns), or ``label:KEY``: the label value
of the workloads holding the GPUs, weighted by their placed GPU-hours, with workloads lacking the label in
``__unallocated__`` and the unallocated GPU-hours as ``__idle__`` (the names ``allocation`` uses; its
telemetry is the GPUs no workload held on nodes where placement is complete; it carries the fleet's
fragmentation, since a partly held GPU's free part is unallocated capacity). So the rows of a period add
up to the fleet: gpuHours sum to the capacity unless a node is over-committed.
"""

from __future__ import annotations

import duckdb

from ..model.checks import sql_ident
from ..model.gpu import DEFAULT_MIG_SLICES, MIG_SLICES, hostlist_sql
from .gpu_allocation import running_sql
from .windows import Window

# OpenCost's names, as gpu_allocation uses them: the unallocated GPU-hours are the __idle__ line, and a
# workload (or node) without the grouping's label or column is __unallocated__.
IDLE = "__idle__"
NO_LABEL = "__unallocated__"
GROUPS = ("node", "gpu_model", "node_pool")
ACCUMULATE = ("hour", "day", "window")
EPS = 1e-9  # float shares (1/7 x 7) are whole within this

_SLICES = "CASE " + " ".join(
    f"WHEN upper(coalesce(i.gpu_model, n.gpu_model, '')) LIKE '%{m}%' THEN {s}"
    for m, s in sorted(MIG_SLICES.items(), key=lambda kv: -len(kv[0]))) + f" ELSE {DEFAULT_MIG_SLICES} END"


def _metric(flag: str) -> str:
    """The metrics a row rests on, best first; ``flag`` is a boolean SQL template over ``{m}`` (1, 2, 3)."""
    names = ("sm_active", "gr_engine_active", "gpu_util")
    parts = ", ".join(f"CASE WHEN bool_or({flag.format(m=i + 1)}) THEN '{n}' END" for i, n in enumerate(names))
    return f"nullif(concat_ws(',', {parts}), '')"


_BASIS = "CASE WHEN bool_or(basis = 'bound') THEN 'bound' WHEN bool_or(basis = 'telemetry') THEN 'telemetry' END"

_SQL = """
WITH hours AS (
  SELECT bucket, least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP) AS bucket_end, {period} AS period,
         (epoch(least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP)) - epoch(bucket)) / 3600 AS bh
  FROM (SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 HOUR)) AS bucket)
), periods AS (
  SELECT period, min(bucket) AS p_start, max(bucket_end) AS p_end, sum(bh) AS p_hours FROM hours GROUP BY period
), nodes AS (
  -- one row per node (a node listed twice in one file counts once), as in gpu_allocation
  SELECT node, gpu_count, gpu_model, node_pool, resource_id FROM gpu_nodes WHERE gpu_count > 0
  QUALIFY row_number() OVER (PARTITION BY node ORDER BY _batch_id DESC, _row DESC) = 1
), node_hours AS (
  -- the hours a node was there: a billed node that its bill does not charge, before the ledger ends, was
  -- stopped (gpu_allocation's rule), so its GPUs are no capacity and no idle
  SELECT n.node, h.bucket, {running} AS running
  FROM nodes n CROSS JOIN hours h
), series AS MATERIALIZED (
  -- the one scan of gpu_samples: a row per series (GPU, MIG instance, pod, container, job) and hour
  SELECT gpu, gpu_instance_id AS inst, time_bucket(INTERVAL 1 HOUR, ts, $start::TIMESTAMP) AS bucket,
         namespace, pod, container, job,
         any_value(node) AS node, any_value(gpu_model) AS gpu_model, any_value(gpu_instance_profile) AS profile,
         min(ts) AS lo, max(ts) AS hi,
         sum(sm_active) AS s1, count(sm_active) AS n1, sum(gr_engine_active) AS s2, count(gr_engine_active) AS n2,
         sum(gpu_util) AS s3, count(gpu_util) AS n3
  FROM gpu_samples
  WHERE ts >= $start::TIMESTAMP AND ts < $end::TIMESTAMP AND NOT _superseded
  GROUP BY ALL
), ranked AS (
  -- the preferred metric of each (GPU, instance, hour): m = 1 sm_active, 2 gr_engine_active, 3 gpu_util
  SELECT *, CASE WHEN sum(n1) OVER c > 0 THEN 1 WHEN sum(n2) OVER c > 0 THEN 2 WHEN sum(n3) OVER c > 0 THEN 3 END AS m
  FROM series WINDOW c AS (PARTITION BY gpu, inst, bucket)
), valued AS (
  SELECT gpu, inst, bucket, node, gpu_model, profile, m, lo, hi,
         CASE m WHEN 1 THEN s1 WHEN 2 THEN s2 ELSE s3 END AS s, CASE m WHEN 1 THEN n1 WHEN 2 THEN n2 ELSE n3 END AS n
  FROM ranked WHERE m IS NOT NULL
), spans AS (
  SELECT *, max(hi) OVER (PARTITION BY gpu, inst, bucket ORDER BY lo, hi
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_hi
  FROM valued WHERE n > 0
), islands AS (
  -- series whose spans overlap repeat one signal (time-sliced pods): one island each
  SELECT *, sum(CASE WHEN prev_hi IS NULL OR lo > prev_hi THEN 1 ELSE 0 END)
              OVER (PARTITION BY gpu, inst, bucket ORDER BY lo, hi ROWS UNBOUNDED PRECEDING) AS island
  FROM spans
), instances AS (
  -- an island counts once, through its series with the most samples
  SELECT gpu, inst, bucket, any_value(node) AS node, any_value(gpu_model) AS gpu_model,
         any_value(profile) AS profile, max(m) AS m, sum(s) / sum(n) AS activity
  FROM (SELECT gpu, inst, bucket, island, any_value(node) AS node, any_value(gpu_model) AS gpu_model,
               any_value(profile) AS profile, max(m) AS m, arg_max(s, n) AS s, max(n) AS n
        FROM islands GROUP BY gpu, inst, bucket, island)
  GROUP BY gpu, inst, bucket
), cells AS (
  -- GPU-level activity when there is some, else the MIG instances weighted by their slice share
  SELECT i.gpu, i.bucket, any_value(i.node) AS node,
         CASE WHEN bool_or(i.inst IS NULL) THEN any_value(i.activity) FILTER (WHERE i.inst IS NULL)
              WHEN count(*) = count(i.slice) THEN sum(i.activity * i.slice) END AS activity,
         CASE WHEN bool_or(i.inst IS NULL) THEN any_value(i.m) FILTER (WHERE i.inst IS NULL) ELSE max(i.m) END AS m
  FROM (SELECT i.*, TRY_CAST(regexp_extract(i.profile, '([0-9]+)g[.]', 1) AS INTEGER) / {slices} AS slice
        FROM instances i LEFT JOIN nodes n ON n.node = i.node) i
  GROUP BY i.gpu, i.bucket
), telemetry AS (
  SELECT c.*, h.period, h.bh FROM cells c JOIN hours h USING (bucket) JOIN nodes USING (node)
  WHERE c.activity IS NOT NULL
), workload_nodes AS (
  -- a Slurm job on gpu[01-02] holds an equal part on each node; no start: it began before the data
  SELECT *, unnest(hl) AS on_node, len(hl) AS n_nodes
  FROM (SELECT w.rowid AS wid, w.*, {hostlist} AS hl FROM workloads w WHERE w.gpu_share > 0 AND w.node IS NOT NULL)
), held AS (
  SELECT w.wid * 1024 + list_position(w.hl, w.on_node) AS wid, w.workload_id, w.name, w.namespace,
         w.on_node AS node, w.labels, w.gpu_share / w.n_nodes AS gpu_share, h.bucket, h.period,
         greatest(coalesce(w.start_ts, h.bucket), h.bucket) AS t0,
         least(coalesce(w.end_ts, $end::TIMESTAMP), h.bucket_end) AS t1,
         w.gpu_share / w.n_nodes * (epoch(least(coalesce(w.end_ts, $end::TIMESTAMP), h.bucket_end))
                                    - epoch(greatest(coalesce(w.start_ts, h.bucket), h.bucket))) / 3600 AS gpu_hours
  FROM workload_nodes w JOIN nodes n ON n.node = w.on_node
  JOIN hours h ON coalesce(w.start_ts, $start::TIMESTAMP) < h.bucket_end
              AND coalesce(w.end_ts, $end::TIMESTAMP) > h.bucket
), keyed AS (
  SELECT wid, node, bucket, 'pod:' || coalesce(namespace, '') || '/' || name AS key FROM held WHERE name IS NOT NULL
  UNION ALL
  SELECT wid, node, bucket, 'job:' || workload_id FROM held
), matched AS (
  SELECT k.wid, s.gpu, s.bucket, sum(s.s1) AS s1, sum(s.n1) AS n1, sum(s.s2) AS s2, sum(s.n2) AS n2,
         sum(s.s3) AS s3, sum(s.n3) AS n3
  FROM (SELECT *, CASE WHEN job IS NOT NULL THEN 'job:' || job
                       WHEN pod IS NOT NULL THEN 'pod:' || coalesce(namespace, '') || '/' || pod END AS key
        FROM series) s
  JOIN keyed k ON k.node = s.node AND k.bucket = s.bucket AND k.key = s.key
  GROUP BY k.wid, s.gpu, s.bucket
), placed AS (
  -- a workload's share spread over the GPUs its series show that hour, at most one GPU each
  SELECT *, part * (epoch(t1) - epoch(t0)) / 3600 AS placed_hours
  FROM (SELECT h.*, m.gpu, least(h.gpu_share / count(*) OVER (PARTITION BY m.wid, m.bucket), 1) AS part,
               CASE WHEN m.n1 > 0 THEN 1 WHEN m.n2 > 0 THEN 2 WHEN m.n3 > 0 THEN 3 END AS m,
               CASE WHEN m.n1 > 0 THEN m.s1 / m.n1 WHEN m.n2 > 0 THEN m.s2 / m.n2 WHEN m.n3 > 0 THEN m.s3 / m.n3 END
                 AS activity
        FROM matched m JOIN held h ON h.wid = m.wid AND h.bucket = m.bucket)
), gpu_steps AS (
  -- exact: the share held on each placed GPU, step by step through the hour
  SELECT node, gpu, bucket, t, lead(t) OVER s AS t_next, sum(sum(d)) OVER s AS level
  FROM (SELECT node, gpu, bucket, t0 AS t, part AS d FROM placed
        UNION ALL SELECT node, gpu, bucket, t1, -part FROM placed)
  GROUP BY node, gpu, bucket, t WINDOW s AS (PARTITION BY gpu, bucket ORDER BY t)
), node_steps AS (
  -- bound: the GPU-equivalents held on each node, step by step through the hour
  SELECT node, bucket, t, lead(t) OVER s AS t_next, sum(sum(d)) OVER s AS level
  FROM (SELECT node, bucket, t0 AS t, gpu_share AS d FROM held
        UNION ALL SELECT node, bucket, t1, -gpu_share FROM held)
  GROUP BY node, bucket, t WINDOW s AS (PARTITION BY node, bucket ORDER BY t)
), nh AS (
  SELECT n.node, n.gpu_count, n.gpu_model, n.node_pool, h.bucket, h.period, h.bh,
         n.gpu_count * h.bh * nr.running::INTEGER AS capacity, coalesce(hd.held, 0) AS held,
         greatest(n.gpu_count * h.bh * nr.running::INTEGER - coalesce(hd.held, 0), 0) AS unallocated,
         coalesce(c.cells, 0) * h.bh AS telemetry, greatest(n.gpu_count - coalesce(c.cells, 0), 0) * h.bh AS unknown,
         c.act * h.bh AS act_hours, c.b5 * h.bh AS b5, c.b30 * h.bh AS b30, c.b50 * h.bh AS b50,
         coalesce(p.held_idle, 0) AS held_idle, c.m1, c.m2, c.m3,
         CASE WHEN coalesce(hd.n, 0) = 0 THEN NULL WHEN coalesce(p.n, 0) = hd.n THEN 'telemetry' ELSE 'bound' END
           AS basis,
         CASE WHEN coalesce(p.n, 0) = coalesce(hd.n, 0) THEN coalesce(ge.hours, 0) ELSE coalesce(ne.hours, 0) END
           AS partly_hours
  FROM nodes n CROSS JOIN hours h JOIN node_hours nr ON nr.node = n.node AND nr.bucket = h.bucket
  LEFT JOIN (SELECT node, bucket, sum(gpu_hours) AS held, count(*) AS n FROM held GROUP BY ALL) hd
    ON hd.node = n.node AND hd.bucket = h.bucket
  LEFT JOIN (SELECT node, bucket, count(DISTINCT wid) AS n,
                    sum(placed_hours) FILTER (WHERE activity < $threshold) AS held_idle FROM placed GROUP BY ALL) p
    ON p.node = n.node AND p.bucket = h.bucket
  LEFT JOIN (SELECT node, bucket, count(*) AS cells, sum(activity) AS act,
                    count(*) FILTER (WHERE activity < 0.05) AS b5, count(*) FILTER (WHERE activity < 0.30) AS b30,
                    count(*) FILTER (WHERE activity < 0.50) AS b50,
                    bool_or(m = 1) AS m1, bool_or(m = 2) AS m2, bool_or(m = 3) AS m3 FROM telemetry GROUP BY ALL) c
    ON c.node = n.node AND c.bucket = h.bucket
  LEFT JOIN (SELECT node, bucket, sum(epoch(t_next) - epoch(t)) / 3600 AS hours FROM gpu_steps
             WHERE level > {eps} AND level < 1 - {eps} GROUP BY ALL) ge ON ge.node = n.node AND ge.bucket = h.bucket
  LEFT JOIN (SELECT node, bucket, sum(epoch(t_next) - epoch(t)) / 3600 AS hours FROM node_steps
             WHERE level > {eps} AND abs(level - round(level)) > {eps} GROUP BY ALL) ne
    ON ne.node = n.node AND ne.bucket = h.bucket
)"""

_BY_NODE = """
SELECT p.p_start AS start, p.p_end AS "end", {key} AS {name}, sum(gpu_count) // count(DISTINCT bucket) AS gpus,
       sum(capacity) AS "gpuHours", sum(held) AS "allocatedGpuHours", sum(unallocated) AS "unallocatedGpuHours",
       sum(telemetry) AS "telemetryGpuHours", sum(unknown) AS "unknownGpuHours",
       sum(act_hours) / nullif(sum(telemetry), 0) AS "meanActivity",
       sum(b5) / nullif(sum(telemetry), 0) AS "shareBelow5", sum(b30) / nullif(sum(telemetry), 0) AS "shareBelow30",
       sum(b50) / nullif(sum(telemetry), 0) AS "shareBelow50", sum(unallocated) + sum(held_idle) AS "idleGpuHours",
       sum(partly_hours) / any_value(p.p_hours) AS "partlyAllocatedGpus",
       {basis} AS fragmentation_basis, {metric_nh} AS activity_metric
FROM nh JOIN periods p USING (period)
GROUP BY ALL ORDER BY start, {name}
"""

_BY_LABEL = """
, lab AS (
  SELECT period, coalesce(labels[$label], '{none}') AS grp, sum(gpu_hours) AS held,
         NULL::DOUBLE AS telemetry, NULL::DOUBLE AS act_hours, NULL::DOUBLE AS b5, NULL::DOUBLE AS b30,
         NULL::DOUBLE AS b50, NULL::DOUBLE AS idle, NULL::INTEGER AS m
  FROM held GROUP BY ALL
  UNION ALL
  SELECT period, coalesce(labels[$label], '{none}'), 0, placed_hours * (activity IS NOT NULL)::INTEGER,
         placed_hours * activity, placed_hours * (activity < 0.05)::INTEGER, placed_hours * (activity < 0.30)::INTEGER,
         placed_hours * (activity < 0.50)::INTEGER, placed_hours * (activity < $threshold)::INTEGER, m
  FROM placed
), free_cells AS (
  -- GPUs no workload held, on node-hours where every workload is placed (else which GPUs are free is unknown)
  SELECT t.* FROM telemetry t JOIN nh ON nh.node = t.node AND nh.bucket = t.bucket
  WHERE nh.basis IS DISTINCT FROM 'bound'
    AND NOT EXISTS (SELECT 1 FROM placed p WHERE p.gpu = t.gpu AND p.bucket = t.bucket)
), free AS (
  SELECT period, sum(unallocated) AS unallocated, sum(partly_hours) AS partly_hours, {basis} AS fragmentation_basis
  FROM nh GROUP BY period
), free_tele AS (
  SELECT period, sum(bh) AS telemetry, sum(bh * activity) AS act_hours,
         sum(bh) FILTER (WHERE activity < 0.05) AS b5, sum(bh) FILTER (WHERE activity < 0.30) AS b30,
         sum(bh) FILTER (WHERE activity < 0.50) AS b50, {metric} AS metric
  FROM free_cells GROUP BY period
)
SELECT p.p_start AS start, p.p_end AS "end", l.grp AS {name}, NULL::BIGINT AS gpus, sum(l.held) AS "gpuHours",
       sum(l.held) AS "allocatedGpuHours", 0::DOUBLE AS "unallocatedGpuHours",
       coalesce(sum(l.telemetry), 0) AS "telemetryGpuHours",
       greatest(sum(l.held) - coalesce(sum(l.telemetry), 0), 0) AS "unknownGpuHours",
       sum(l.act_hours) / nullif(sum(l.telemetry), 0) AS "meanActivity",
       sum(l.b5) / nullif(sum(l.telemetry), 0) AS "shareBelow5",
       sum(l.b30) / nullif(sum(l.telemetry), 0) AS "shareBelow30",
       sum(l.b50) / nullif(sum(l.telemetry), 0) AS "shareBelow50", coalesce(sum(l.idle), 0) AS "idleGpuHours",
       NULL::DOUBLE AS "partlyAllocatedGpus", NULL::VARCHAR AS fragmentation_basis,
       {metric} AS activity_metric
FROM lab l JOIN periods p USING (period) GROUP BY ALL
UNION ALL
SELECT p.p_start, p.p_end, '{unallocated}', NULL, f.unallocated, 0::DOUBLE, f.unallocated, coalesce(t.telemetry, 0),
       greatest(f.unallocated - coalesce(t.telemetry, 0), 0), t.act_hours / nullif(t.telemetry, 0),
       coalesce(t.b5, 0) / nullif(t.telemetry, 0), coalesce(t.b30, 0) / nullif(t.telemetry, 0),
       coalesce(t.b50, 0) / nullif(t.telemetry, 0), f.unallocated, f.partly_hours / p.p_hours, f.fragmentation_basis,
       t.metric
FROM free f JOIN periods p USING (period) LEFT JOIN free_tele t USING (period)
ORDER BY start, {name}
"""


def utilization_sql(by: str, accumulate: str = "day") -> str:
    """The statement for one grouping and period (see the module docstring); binds $start, $end, $threshold
    and, for ``label:KEY``, $label."""
    if accumulate not in ACCUMULATE:
        raise ValueError(f"unknown accumulate {accumulate!r}: use hour, day or window")
    period = {"hour": "bucket", "day": "date_trunc('day', bucket)", "window": "$start::TIMESTAMP"}[accumulate]
    name = sql_ident(by)
    if by.startswith("label:") and by[6:]:
        sql = _SQL + _BY_LABEL.replace("{none}", NO_LABEL).replace("{unallocated}", IDLE)
    elif by in GROUPS:
        key = "node" if by == "node" else f"coalesce({by}, '{NO_LABEL}')"
        sql = _SQL + _BY_NODE.replace("{key}", key).replace("{metric_nh}", _metric("m{m}"))
    else:
        raise ValueError(f"unknown --by {by!r}: use node, gpu_model, node_pool or label:KEY")
    return (sql.replace("{period}", period).replace("{slices}", _SLICES).replace("{eps}", repr(EPS))
            .replace("{running}", running_sql("n", "h.bucket", "h.bucket_end"))
            .replace("{hostlist}", hostlist_sql("w.node"))
            .replace("{basis}", _BASIS).replace("{metric}", _metric("m = {m}")).replace("{name}", name))


def utilization(con: duckdb.DuckDBPyConnection, window: Window, by: str = "node", accumulate: str = "day",
                idle_threshold: float = 0.05) -> list[dict[str, object]]:
    """Utilisation, idle and fragmentation per ``by`` group and period over ``window`` (a bounded window:
    one cell per GPU and hour). Keys are camelCase like OpenCost's (``gpuHours``, ``idleGpuHours``, ...)."""
    if not 0 <= idle_threshold <= 1:
        raise ValueError(f"idle threshold {idle_threshold} is not an activity ratio between 0 and 1")
    params: dict[str, object] = {"start": window.start, "end": window.end, "threshold": idle_threshold}
    if by.startswith("label:"):
        params["label"] = by[6:]
    cur = con.execute(utilization_sql(by, accumulate), params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
