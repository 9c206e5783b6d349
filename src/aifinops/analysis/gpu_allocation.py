"""GPU cost allocation: every dollar a GPU node cost in an hour, split between the workloads that held its
GPUs (and, when configured, its CPUs and memory), ``__idle__`` (nobody held it) and ``__shared__``.

The steps, in order (OpenCost-style, written as one SQL statement so that it runs in the engine):

1. Buckets: the window cut into hours (the last one may be shorter).
2. Node cost per bucket, from the first of:
   a. the node's bill: each FOCUS charge of its ``ResourceId``, prorated by how much of the charge period
      falls in the bucket (``EffectiveCost``: what was really paid, discounts and commitments included).
      An hour the bill does not charge, before the ledger ends, is a stopped instance: no cost and no
      capacity (``cost_source`` = stopped), so a stopped GPU is never counted as an idle one;
   b. the inventory's ``hourly_price``;
   c. an on-prem TCO rule (``onprem_tco``): purchase price over the node's life + power x $/kWh x PUE, plus
      overhead (power is the rule's ``power_kw``, else the GPUs at their TDP);
   d. the ``gpu_prices`` table ($ per GPU-hour by GPU model) x the node's GPUs;
   else 0 (``cost_source`` = none).
3. CPU and memory: ``allocation.cpu_share`` and ``memory_share`` of the node cost pay for its CPUs and
   memory, allocated by CPU and memory requests over the node's ``cpu_cores`` / ``memory_mib`` (or over the
   requests when capacity is unknown). The rest is the GPUs' pool. Default 0 and 0: on GPU instances CPU
   and memory come with the GPUs and cannot be bought without them, so the whole instance is GPU cost.
4. Held GPU-hours per workload, node and bucket: ``gpu_share`` (GPU-equivalents: a MIG slice is g/7, a
   time-sliced replica 1/replicas, a fraction its fraction; see ``model.gpu.gpu_share``) x the hours of the
   bucket it ran. A Slurm job on several nodes (``gpu[01-02]``) holds an equal part on each.
5. A workload's GPU cost = the GPU pool x held / capacity (gpu_count x bucket hours). When the workloads
   on a node hold more than its capacity (over-commit), they share the pool in proportion instead.
6. Activity while held, from telemetry in the bucket: the workload's own samples (pod and namespace, or the
   Slurm job id that dcgm-exporter's ``hpc_job`` label carries), else — only on a node whose samples name no
   pod or job at all (nvidia-smi, NVML on bare metal) — the node's average (``activity_scope`` = node).
   SM_ACTIVE first, then GR_ENGINE_ACTIVE, then GPU_UTIL (which overstates: it says only that a kernel
   ran). A sample is the mean of the bucket's samples; an hour without samples is unknown, not idle.
7. Cost by use (``gpuCostByUse``): the same workloads' GPU cost on a node and bucket, re-split in
   proportion to GPU-hours x activity (a workload without telemetry counts as fully used). Same total as
   ``gpuCost``: a second view, not more money.
8. Energy: GPU-hours x the mean power of the workload's samples; without power samples, GPU-hours x TDP x
   activity (``energy_estimated``). Idle GPUs: idle GPU-hours x the mean power of samples naming no
   workload. Carbon = kWh x the region's grid intensity (``carbon``).
9. ``__idle__`` = node cost - the allocated costs, computed by subtraction in exact decimals per
   component, so that allocated + idle = node cost exactly in every bucket. Allocated amounts are rounded
   down to 1e-12 $ so that the rounding dust lands in idle and idle is never negative.
10. ``share_idle`` moves idle onto the node's workloads (weighted by their cost, or evenly), per node and
    hour; ``owner`` keeps it a line named for the node pool's owner.
11. Shared workloads (``share_namespaces``, ``share_labels``: kube-system, monitoring...) keep their own
    costs on a ``__shared__`` line only when nothing else ran that hour; otherwise their cost (idle share
    included) is spread over the other workloads of that hour fleet-wide (``share_split`` weighted by
    their cost, or even) as ``sharedCost``, and the line keeps its hours at no cost.

So: allocated + idle + shared = the fleet's cost, exactly, for every policy and grouping. Workloads on nodes
the inventory does not know are counted in ``unmatched_workloads`` (their GPUs have no cost to share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import duckdb

from ..config import AllocationSettings, CarbonSettings, Settings, TcoRule
from ..model.checks import sql_str
from ..model.gpu import hostlist_sql, tdp_table
from .windows import Window, within

IDLE = "__idle__"
SHARED = "__shared__"
UNALLOCATED = "__unallocated__"
MONEY = "DECIMAL(38, 12)"
SHARE_IDLE = ("none", "weighted", "even", "owner")
HOURS_PER_YEAR = 8766  # 365.25 days
COST_COLUMNS = ("gpuCost", "cpuCost", "ramCost", "gpuCostIdle", "cpuCostIdle", "ramCostIdle", "sharedCost")


@dataclass(frozen=True)
class Costing:
    """Where node cost comes from when no bill covers a node, and the tables that energy and carbon use."""

    gpu_prices: dict[str, Decimal] = field(default_factory=dict)
    tco: tuple[TcoRule, ...] = ()
    tdp_w: dict[str, float] = field(default_factory=tdp_table)
    carbon: CarbonSettings = field(default_factory=CarbonSettings)

    @classmethod
    def from_settings(cls, settings: Settings | None, gpu_prices: dict[str, Decimal] | None = None) -> Costing:
        s = settings or Settings()
        return cls(gpu_prices=dict(s.gpu_prices if gpu_prices is None else gpu_prices), tco=tuple(s.onprem_tco),
                   tdp_w=tdp_table(s.gpu_tdp_w), carbon=s.carbon)


@dataclass(frozen=True)
class AllocationResult:
    rows: list[dict[str, object]]
    node_cost: object  # Decimal: the fleet's cost in the window
    unmatched_workloads: int


def options_for(settings: Settings | None = None, **overrides: object) -> AllocationSettings:
    """The allocation settings of ``settings`` with the given flags (those not None) applied, validated."""
    base = (settings or Settings()).allocation
    given = {k: v for k, v in overrides.items() if v is not None}
    policy = given.get("share_idle")
    if policy is not None and policy not in SHARE_IDLE:
        raise ValueError(f"unknown share-idle policy {policy!r}: use {', '.join(SHARE_IDLE)}")
    split = given.get("share_split")
    if split is not None and split not in ("weighted", "even"):
        raise ValueError(f"unknown share-split {split!r}: use weighted or even")
    return AllocationSettings.model_validate({**base.model_dump(), **given})


# -- SQL pieces --------------------------------------------------------------------------------------------

def _floor12(expr: str) -> str:
    """Round an amount toward zero at 1e-12 $: a share never exceeds what there is to share."""
    return f"(CAST({expr} AS DECIMAL(38, 15)) - CAST({expr} AS DECIMAL(38, 15)) % 0.000000000001)"


def _values(rows: list[str], empty: str) -> str:
    return "VALUES " + ", ".join(rows) if rows else f"SELECT {empty} WHERE false"


def price_rows(gpu_prices: dict[str, Decimal] | None) -> str:
    """The price table as a SQL row source (pattern, price); empty when there is none."""
    rows = [f"({sql_str(str(k))}, CAST({Decimal(str(v))} AS {MONEY}))" for k, v in (gpu_prices or {}).items()]
    return _values(rows, f"NULL::VARCHAR, NULL::{MONEY}")


def _tco_rows(rules: tuple[TcoRule, ...]) -> str:
    rows = []
    for r in rules:
        capex = Decimal(r.node_price) / Decimal(str(r.years * HOURS_PER_YEAR))
        kwh = Decimal(r.kwh_price) * Decimal(str(r.pue))
        power = "NULL::DOUBLE" if r.power_kw is None else f"{float(r.power_kw)!r}::DOUBLE"
        pool = "NULL::VARCHAR" if r.node_pool is None else sql_str(r.node_pool)
        rows.append(f"({sql_str(r.match)}, {pool}, {float(capex)!r}::DOUBLE, {power}, {float(kwh)!r}::DOUBLE, "
                    f"{1 + r.overhead_pct / 100.0!r}::DOUBLE)")
    return _values(rows, "NULL::VARCHAR, NULL::VARCHAR, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE")


def _pairs(table: dict[str, float], empty: str) -> str:
    return _values([f"({sql_str(k)}, {float(v)!r}::DOUBLE)" for k, v in table.items()], empty)


def _longest(table: str, value: str, col: str) -> str:
    """SQL: the ``col`` of the ``table`` row whose pattern the (upper-cased) value contains, longest first."""
    return (f"(SELECT arg_max(x.{col}, length(x.pattern)) FROM {table} x "
            f"WHERE upper(coalesce({value}, '')) LIKE '%' || upper(x.pattern) || '%')")


_METRICS = ("sm", "gr", "ut", "pw")
_SUMS = ", ".join(f"sum(s_{m}) AS s_{m}, sum(n_{m}) AS n_{m}" for m in _METRICS) + ", sum(n) AS n"


def _activity(a: str) -> str:
    return (f"coalesce({a}.s_sm / nullif({a}.n_sm, 0), {a}.s_gr / nullif({a}.n_gr, 0), "
            f"{a}.s_ut / nullif({a}.n_ut, 0))")


def _metric(a: str) -> str:
    return (f"CASE WHEN {a}.n_sm > 0 THEN 'sm_active' WHEN {a}.n_gr > 0 THEN 'gr_engine_active' "
            f"WHEN {a}.n_ut > 0 THEN 'gpu_util' END")


def _shared_predicate(opts: AllocationSettings) -> str:
    terms = []
    if opts.share_namespaces:
        terms.append(f"coalesce(w.namespace, '') IN ({', '.join(sql_str(n) for n in opts.share_namespaces)})")
    terms += [f"w.labels[{sql_str(k)}] = {sql_str(v)}" for k, v in opts.share_labels.items()]
    return "(" + " OR ".join(terms) + ")" if terms else "false"


def running_sql(n: str, bucket: str, bucket_end: str) -> str:
    """SQL: whether node ``n`` (a row with ``resource_id``) was there in [bucket, bucket_end): a node whose bill
    charges it in that time, or any hour of a node without a bill, or any hour after the ledger ends (bills
    arrive late). A billed node its bill does not charge, before the ledger ends, was stopped."""
    billed = f'EXISTS (SELECT 1 FROM focus_charges c WHERE c."ResourceId" = {n}.resource_id)'
    return (f"({n}.resource_id IS NULL OR NOT {billed} "
            f"OR {bucket} >= (SELECT coalesce(max(\"ChargePeriodEnd\"), '-infinity'::TIMESTAMP) FROM focus_charges) "
            f'OR EXISTS (SELECT 1 FROM focus_charges c WHERE c."ResourceId" = {n}.resource_id '
            f'AND c."ChargePeriodStart" < {bucket_end} AND c."ChargePeriodEnd" > {bucket}))')


def _cost_ctes(costing: Costing, opts: AllocationSettings) -> str:
    """Steps 1-3: hours, nodes and what each node cost per hour, split into GPU, CPU and memory pools."""
    carbon_default = "NULL::DOUBLE" if costing.carbon.default_g_per_kwh is None else \
        f"{float(costing.carbon.default_g_per_kwh)!r}::DOUBLE"
    def rule(f: str) -> str:  # a field of the node's TCO rule (a struct column named like the rules CTE)
        return f"struct_extract(tco, '{f}')"

    tco_hour = (f"({rule('capex_hour')} + coalesce({rule('power_kw')}, gpu_count * tdp_w / 1000.0, 0) "
                f"* {rule('kwh_cost')}) * {rule('factor')}")
    cpu, mem = float(opts.cpu_share), float(opts.memory_share)
    return f"""
gpu_prices(pattern, price) AS ({price_rows(costing.gpu_prices)}),
tdp(pattern, watts) AS ({_pairs(costing.tdp_w, "NULL::VARCHAR, NULL::DOUBLE")}),
tco(pattern, pool, capex_hour, power_kw, kwh_cost, factor) AS ({_tco_rows(costing.tco)}),
intensity(pattern, g) AS ({_pairs(costing.carbon.g_per_kwh, "NULL::VARCHAR, NULL::DOUBLE")}),
hours AS (
  SELECT bucket, least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP) AS bucket_end,
         (epoch(least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP)) - epoch(bucket)) / 3600.0 AS bucket_hours
  FROM (SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 HOUR)) AS bucket)
), inventory AS (
  -- one row per node: a node listed twice in one file counts once (its last row)
  SELECT * FROM gpu_nodes WHERE gpu_count > 0
  QUALIFY row_number() OVER (PARTITION BY node ORDER BY _batch_id DESC, _row DESC) = 1
), nodes AS (
  SELECT n.node, n.gpu_count, n.gpu_model, n.resource_id, n.hourly_price, n.owner, n.node_pool, n.region,
         n.cpu_cores, n.memory_mib,
         {_longest("tdp", "n.gpu_model", "watts")} AS tdp_w,
         {_longest("gpu_prices", "n.gpu_model", "price")} AS per_gpu,
         -- the longest matching rule; a rule for the node's pool beats any rule without one
         (SELECT arg_max(struct_pack(capex_hour := x.capex_hour, power_kw := x.power_kw, kwh_cost := x.kwh_cost,
                                     factor := x.factor),
                         length(x.pattern) + CASE WHEN x.pool IS NULL THEN 0 ELSE 1000 END)
          FROM tco x WHERE upper(coalesce(n.gpu_model, '')) LIKE '%' || upper(x.pattern) || '%'
                       AND (x.pool IS NULL OR x.pool = n.node_pool)) AS tco,
         coalesce((SELECT x.g FROM intensity x WHERE x.pattern = n.region), {carbon_default}) AS carbon_g
  FROM inventory n
), bill AS (
  SELECT n.node, h.bucket,
         -- a charge inside the bucket counts whole (exactly); one that spans buckets is prorated by time
         sum(CASE WHEN c."ChargePeriodStart" >= h.bucket AND c."ChargePeriodEnd" <= h.bucket_end
                  THEN c."EffectiveCost"
                  ELSE CAST(CAST(c."EffectiveCost" AS DOUBLE)
                            * (epoch(least(c."ChargePeriodEnd", h.bucket_end))
                               - epoch(greatest(c."ChargePeriodStart", h.bucket)))
                            / (epoch(c."ChargePeriodEnd") - epoch(c."ChargePeriodStart")) AS {MONEY}) END) AS cost
  FROM nodes n
  JOIN focus_charges c ON c."ResourceId" = n.resource_id
  JOIN hours h ON c."ChargePeriodStart" < h.bucket_end AND c."ChargePeriodEnd" > h.bucket
  GROUP BY ALL
), node_cost AS (
  -- A node with a bill runs in the hours its bill charges; an hour without a charge before the ledger ends
  -- is a stopped instance (no cost, no capacity: its GPUs were not there to be idle). After the ledger
  -- ends (bills arrive late) and for nodes without any bill, the price applies.
  SELECT *, CASE WHEN running THEN bucket_hours ELSE 0 END AS cap_hours,
         CAST(CASE WHEN bill_cost IS NOT NULL THEN bill_cost WHEN NOT running THEN 0
                   ELSE coalesce(CASE WHEN bucket_hours = 1 THEN hourly_price ELSE hourly_price * bucket_hours END,
                                 {tco_hour} * bucket_hours, per_gpu * gpu_count * bucket_hours, 0) END
              AS {MONEY}) AS cost,
         CASE WHEN bill_cost IS NOT NULL THEN 'bill' WHEN NOT running THEN 'stopped'
              WHEN hourly_price IS NOT NULL THEN 'price' WHEN tco IS NOT NULL THEN 'tco'
              WHEN per_gpu IS NOT NULL THEN 'price table' ELSE 'none' END AS cost_source
  FROM (SELECT n.*, h.bucket, h.bucket_end, h.bucket_hours, b.cost AS bill_cost,
               {running_sql("n", "h.bucket", "h.bucket_end")} AS running
        FROM nodes n CROSS JOIN hours h LEFT JOIN bill b ON b.node = n.node AND b.bucket = h.bucket)
), pools AS (
  SELECT *, cost - cpu_pool - ram_pool AS gpu_pool FROM (
    SELECT *, CAST({_floor12(f"CAST(cost AS DOUBLE) * {cpu!r}")} AS {MONEY}) AS cpu_pool,
              CAST({_floor12(f"CAST(cost AS DOUBLE) * {mem!r}")} AS {MONEY}) AS ram_pool
    FROM node_cost)
)"""


def _allocation_ctes(costing: Costing, opts: AllocationSettings) -> str:
    """Steps 4-9: workloads per node and hour, their activity, costs, cost by use, energy; idle rows."""
    want = ["w.gpu_share > 0"]
    if opts.cpu_share > 0:
        want.append("w.cpu_request > 0")
    if opts.memory_share > 0:
        want.append("w.memory_request_mib > 0")
    scopes = ("ap", "aj", "nt")
    has = {"ap": "ap.n > 0", "aj": "aj.n > 0", "nt": "nt.n > 0 AND NOT nt.labelled"}
    pick = " ".join(f"WHEN {has[s]} THEN '{name}'" for s, name in zip(scopes, ("pod", "job", "node"), strict=True))
    act = " ".join(f"WHEN {has[s]} THEN {_activity(s)}" for s in scopes)
    metric = " ".join(f"WHEN {has[s]} THEN {_metric(s)}" for s in scopes)
    power = " ".join(f"WHEN {has[s]} THEN {s}.s_pw / nullif({s}.n_pw, 0)" for s in scopes)
    per_node = "WINDOW w AS (PARTITION BY node, bucket)"
    used = "gpu_hours * coalesce(activity, 1.0)"
    return f"""{_cost_ctes(costing, opts)},
workload_nodes AS (
  SELECT *, unnest(hl) AS on_node, len(hl) AS n_nodes
  FROM (SELECT w.*, {hostlist_sql("w.node")} AS hl, {_shared_predicate(opts)} AS is_shared FROM workloads w
        WHERE w.node IS NOT NULL AND ({" OR ".join(want)}))
), held AS (
  SELECT w.workload_id, w.name, w.namespace, w.on_node AS node, w.labels, w.is_shared, h.bucket,
         (epoch(least(coalesce(w.end_ts, $end::TIMESTAMP), h.bucket_end))
          - epoch(greatest(coalesce(w.start_ts, h.bucket), h.bucket))) / 3600.0 AS hrs,
         coalesce(w.gpu_share, 0) / w.n_nodes AS gpu_share, coalesce(w.cpu_request, 0) / w.n_nodes AS cpu_req,
         coalesce(w.memory_request_mib, 0) / w.n_nodes AS mem_req
  FROM workload_nodes w
  -- a workload without a start began before the data (model.gpu); without an end it still runs
  JOIN hours h ON coalesce(w.start_ts, $start::TIMESTAMP) < h.bucket_end
              AND coalesce(w.end_ts, $end::TIMESTAMP) > h.bucket
  WHERE w.on_node IN (SELECT node FROM nodes)
), sample_groups AS (
  -- one scan of the samples; a sample ingested twice counts once (ingest marks the older copy superseded)
  SELECT node, time_bucket(INTERVAL 1 HOUR, ts, $start::TIMESTAMP) AS bucket, pod,
         coalesce(namespace, '') AS namespace, job, count(*) AS n,
         sum(sm_active) AS s_sm, count(sm_active) AS n_sm, sum(gr_engine_active) AS s_gr,
         count(gr_engine_active) AS n_gr, sum(gpu_util) AS s_ut, count(gpu_util) AS n_ut,
         sum(power_w) AS s_pw, count(power_w) AS n_pw
  FROM gpu_samples
  WHERE ts >= $start::TIMESTAMP AND ts < $end::TIMESTAMP AND NOT _superseded AND node IN (SELECT node FROM nodes)
  GROUP BY ALL
), act_pod AS (
  SELECT node, bucket, pod, namespace, {_SUMS} FROM sample_groups WHERE pod IS NOT NULL GROUP BY ALL
), act_job AS (
  SELECT node, bucket, job, {_SUMS} FROM sample_groups WHERE job IS NOT NULL GROUP BY ALL
), node_tel AS (
  SELECT node, bucket, bool_or(pod IS NOT NULL OR job IS NOT NULL) AS labelled, {_SUMS},
         sum(s_pw) FILTER (WHERE pod IS NULL AND job IS NULL)
           / nullif(sum(n_pw) FILTER (WHERE pod IS NULL AND job IS NULL), 0) AS free_power_w
  FROM sample_groups GROUP BY ALL
), alloc AS (
  SELECT hd.*, p.gpu_count, p.cpu_cores, p.memory_mib, p.cap_hours, p.owner, p.node_pool, p.cost_source,
         p.gpu_pool, p.cpu_pool, p.ram_pool, p.tdp_w, p.carbon_g,
         hd.gpu_share * hd.hrs AS gpu_hours, hd.cpu_req * hd.hrs AS cpu_hours, hd.mem_req * hd.hrs AS mem_hours,
         CASE {pick} END AS activity_scope, CASE {act} END AS activity, CASE {metric} END AS activity_metric,
         CASE {power} END AS power_w
  FROM held hd JOIN pools p ON p.node = hd.node AND p.bucket = hd.bucket
  LEFT JOIN act_pod ap ON ap.node = hd.node AND ap.bucket = hd.bucket AND ap.pod = hd.name
                       AND ap.namespace = coalesce(hd.namespace, '')
  LEFT JOIN act_job aj ON aj.node = hd.node AND aj.bucket = hd.bucket AND aj.job = hd.workload_id
  LEFT JOIN node_tel nt ON nt.node = hd.node AND nt.bucket = hd.bucket
), priced AS (
  SELECT *,
         CASE WHEN gpu_hours > 0 AND gpu_pool <> 0 THEN CAST({_floor12(
             "CAST(gpu_pool AS DOUBLE) * gpu_hours / greatest(gpu_count * cap_hours, node_gpu)")}
              AS {MONEY}) ELSE 0 END AS gpu_cost,
         CASE WHEN cpu_hours > 0 AND cpu_pool <> 0 THEN CAST({_floor12(
             "CAST(cpu_pool AS DOUBLE) * cpu_hours / greatest(coalesce(cpu_cores * cap_hours, 0), node_cpu)")}
              AS {MONEY}) ELSE 0 END AS cpu_cost,
         CASE WHEN mem_hours > 0 AND ram_pool <> 0 THEN CAST({_floor12(
             "CAST(ram_pool AS DOUBLE) * mem_hours / greatest(coalesce(memory_mib * cap_hours, 0), node_mem)")}
              AS {MONEY}) ELSE 0 END AS ram_cost,
         CASE WHEN power_w IS NOT NULL THEN gpu_hours * power_w / 1000.0
              WHEN activity IS NOT NULL THEN gpu_hours * tdp_w * activity / 1000.0 END AS energy_kwh,
         power_w IS NULL AND activity IS NOT NULL AND tdp_w IS NOT NULL AS energy_estimated
  FROM (SELECT *, sum(gpu_hours) OVER w AS node_gpu, sum(cpu_hours) OVER w AS node_cpu,
               sum(mem_hours) OVER w AS node_mem FROM alloc {per_node})
), use1 AS (
  SELECT *, sum({used}) OVER w AS node_used, sum(gpu_cost) OVER w AS node_alloc,
         row_number() OVER (PARTITION BY node, bucket ORDER BY {used} DESC, workload_id) AS use_rank
  FROM priced {per_node}
), use2 AS (
  SELECT *, CASE WHEN node_used > 0 THEN CAST({_floor12(f"CAST(node_alloc AS DOUBLE) * {used} / node_used")}
                                              AS {MONEY}) ELSE gpu_cost END AS by_use0
  FROM use1
), used AS (
  -- the largest user absorbs the rounding dust, so that by use and by allocation have the same total
  SELECT *, CASE WHEN use_rank = 1 THEN node_alloc - (sum(by_use0) OVER w - by_use0) ELSE by_use0 END AS by_use
  FROM use2 {per_node}
), base AS (
  SELECT bucket, node, CASE WHEN is_shared THEN 'shared' ELSE 'workload' END AS kind,
         coalesce(name, workload_id) AS name, workload_id, namespace, labels, owner, node_pool, cost_source,
         gpu_hours, cpu_hours, mem_hours, gpu_cost, cpu_cost, ram_cost, by_use, activity, activity_metric,
         activity_scope, energy_kwh, energy_estimated, energy_kwh * carbon_g / 1000.0 AS co2e_kg
  FROM used
  UNION ALL
  SELECT p.bucket, p.node, 'idle', '{IDLE}', NULL, NULL, NULL, p.owner, p.node_pool, p.cost_source,
         greatest(p.gpu_count * p.cap_hours - coalesce(sum(u.gpu_hours), 0), 0),
         greatest(coalesce(p.cpu_cores * p.cap_hours, 0) - coalesce(sum(u.cpu_hours), 0), 0),
         greatest(coalesce(p.memory_mib * p.cap_hours, 0) - coalesce(sum(u.mem_hours), 0), 0),
         p.gpu_pool - coalesce(sum(u.gpu_cost), 0), p.cpu_pool - coalesce(sum(u.cpu_cost), 0),
         p.ram_pool - coalesce(sum(u.ram_cost), 0), p.gpu_pool - coalesce(sum(u.gpu_cost), 0), NULL, NULL, NULL,
         greatest(p.gpu_count * p.cap_hours - coalesce(sum(u.gpu_hours), 0), 0) * any_value(nt.free_power_w)
           / 1000.0, false,
         greatest(p.gpu_count * p.cap_hours - coalesce(sum(u.gpu_hours), 0), 0) * any_value(nt.free_power_w)
           / 1000.0 * p.carbon_g / 1000.0
  FROM pools p LEFT JOIN used u ON u.node = p.node AND u.bucket = p.bucket
  LEFT JOIN node_tel nt ON nt.node = p.node AND nt.bucket = p.bucket
  GROUP BY p.bucket, p.node, p.owner, p.node_pool, p.cost_source, p.gpu_count, p.cap_hours, p.cpu_cores,
           p.memory_mib, p.gpu_pool, p.cpu_pool, p.ram_pool, p.carbon_g
)"""


def _share_idle_ctes(policy: str) -> str:
    """Step 10, per node and hour and per component (GPU, CPU, memory): a workload row gains its share of the
    idle; the idle row keeps what was not shared (all of it when no workload ran, and the rounding dust)."""
    parts = {"gpu": "gpu_cost", "cpu": "cpu_cost", "ram": "ram_cost"}
    windows = ", ".join(
        f"max(CASE WHEN kind = 'idle' THEN {c} END) OVER w AS idle_{k}, "
        f"sum(CASE WHEN kind <> 'idle' THEN {c} END) OVER w AS used_{k}" for k, c in parts.items())
    shares = []
    for k, c in parts.items():
        if policy == "weighted":
            s = f"CASE WHEN used_{k} > 0 THEN {_floor12(f'idle_{k} * {c} / used_{k}')} ELSE 0 END"
        elif policy == "even":
            s = _floor12(f"idle_{k} / node_n")
        else:
            s = "0"
        shares.append(f"CAST(CASE WHEN kind = 'idle' THEN 0 ELSE {s} END AS {MONEY}) AS {k}_idle")
    keep = ", ".join(f"CASE WHEN kind = 'idle' THEN {c} - sum({k}_idle) OVER w ELSE {c} END AS {c}"
                     for k, c in parts.items())
    return f""", idle_w AS (
  SELECT *, {windows}, count(*) FILTER (WHERE kind <> 'idle') OVER w AS node_n
  FROM base WINDOW w AS (PARTITION BY bucket, node)
), idle_s AS (
  SELECT *, {", ".join(shares)} FROM idle_w
), idle_shared AS (
  SELECT * REPLACE ({keep}, CASE WHEN kind = 'idle' THEN gpu_cost - sum(gpu_idle) OVER w ELSE by_use END AS by_use)
  FROM idle_s WINDOW w AS (PARTITION BY bucket, node)
)"""


def _share_shared_ctes(split: str) -> str:
    """Step 11, per hour across the fleet: the shared rows' total goes to the other workloads of that hour."""
    own = "gpu_cost + cpu_cost + ram_cost + gpu_idle + cpu_idle + ram_idle"
    weighted = f"recv_total > 0 AND {'true' if split == 'weighted' else 'false'}"
    return f""", sh AS (
  SELECT *, sum(own_total) FILTER (WHERE kind = 'shared') OVER b AS shared_total,
         count(*) FILTER (WHERE kind = 'workload') OVER b AS n_recv,
         sum(own_total) FILTER (WHERE kind = 'workload') OVER b AS recv_total,
         row_number() OVER (PARTITION BY bucket, kind ORDER BY own_total DESC, node, name, workload_id) AS recv_rank
  FROM (SELECT *, {own} AS own_total FROM idle_shared) WINDOW b AS (PARTITION BY bucket)
), sp AS (
  SELECT *, CAST(CASE WHEN kind = 'workload' AND n_recv > 0 AND shared_total IS NOT NULL THEN
                   CASE WHEN {weighted} THEN {_floor12("CAST(shared_total AS DOUBLE) * own_total / recv_total")}
                        ELSE {_floor12("CAST(shared_total AS DOUBLE) / n_recv")} END
                 ELSE 0 END AS {MONEY}) AS shared0,
         kind = 'shared' AND n_recv > 0 AS spread
  FROM sh
), spread AS (
  SELECT *, CASE WHEN kind = 'workload' AND recv_rank = 1 AND n_recv > 0 AND shared_total IS NOT NULL
                 THEN shared_total - (sum(shared0) OVER b - shared0) ELSE shared0 END AS shared_cost
  FROM sp WINDOW b AS (PARTITION BY bucket)
)"""


def allocation_sql(costing: Costing | None = None, opts: AllocationSettings | None = None) -> str:
    """The hourly allocation statement (parameters ``$start``, ``$end``): one row per workload, node and hour,
    plus an ``__idle__`` row per node and hour; see the module docstring for the rule."""
    costing, opts = costing or Costing(), opts or AllocationSettings()

    def zero(c: str) -> str:  # a shared row whose cost was spread keeps its hours, not its cost
        return f"CASE WHEN spread THEN 0 ELSE {c} END"

    return f"""WITH {_allocation_ctes(costing, opts)}{_share_idle_ctes(opts.share_idle)}{_share_shared_ctes(
        opts.share_split)}
SELECT bucket, node, kind, name, workload_id, namespace, labels, owner, node_pool, cost_source,
       gpu_hours AS "gpuHours", cpu_hours AS "cpuCoreHours", mem_hours * 1048576.0 AS "ramByteHours",
       {zero("gpu_cost")} AS "gpuCost", {zero("cpu_cost")} AS "cpuCost", {zero("ram_cost")} AS "ramCost",
       {zero("gpu_idle")} AS "gpuCostIdle", {zero("cpu_idle")} AS "cpuCostIdle", {zero("ram_idle")} AS "ramCostIdle",
       shared_cost AS "sharedCost", {zero("by_use")} AS "gpuCostByUse", activity, activity_metric, activity_scope,
       energy_kwh AS "energyKwh", energy_estimated, co2e_kg AS "co2eKg"
FROM spread"""


def fleet_cost(con: duckdb.DuckDBPyConnection, window: Window, costing: Costing | None = None) -> object:
    """The GPU nodes' cost in the window (Decimal): what allocated + idle + shared must add up to."""
    sql = f"WITH {_cost_ctes(costing or Costing(), AllocationSettings())} SELECT coalesce(sum(cost), 0) FROM node_cost"
    return con.execute(sql, {"start": window.start, "end": window.end}).fetchone()[0]


def allocate(con: duckdb.DuckDBPyConnection, window: Window, settings: Settings | None = None, *,
             gpu_prices: dict[str, Decimal] | None = None, **options: object) -> AllocationResult:
    """Hourly allocation over ``window``: one row per workload, node and hour, and the idle rows."""
    costing = Costing.from_settings(settings, gpu_prices)
    opts = options_for(settings, **options)
    params = {"start": window.start, "end": window.end}
    cur = con.execute(f"SELECT * FROM ({allocation_sql(costing, opts)}) ORDER BY bucket, node, name, workload_id",
                      params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return AllocationResult(rows, fleet_cost(con, window, costing), unmatched_workloads(con, window))


def gpu_data_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """(first, last exclusive) instant of GPU workloads or samples: where an hourly allocation has anything."""
    return con.execute(
        "SELECT least((SELECT min(start_ts) FROM workloads WHERE gpu_share > 0), "
        "(SELECT min(ts) FROM gpu_samples WHERE NOT _superseded)), "
        "greatest((SELECT max(coalesce(end_ts, start_ts)) FROM workloads), "
        "(SELECT max(ts) FROM gpu_samples WHERE NOT _superseded) + INTERVAL 1 HOUR)").fetchall()[0]


def within_gpu_data(con: duckdb.DuckDBPyConnection, window: Window) -> Window:
    """``window`` cut to where GPU workloads or samples exist: the allocation is hourly, so ``all`` (from 1970)
    would otherwise build half a million empty hours before finding the first node."""
    first, last = gpu_data_span(con)
    return within(window, first, last) if first is not None else Window(window.start, window.start)


def unmatched_workloads(con: duckdb.DuckDBPyConnection, window: Window) -> int:
    """Workloads holding GPUs in the window on a node the inventory does not know (or on no node)."""
    return con.execute(
        f"SELECT count(*) FROM (SELECT w.node, {hostlist_sql('w.node')} AS hl FROM workloads w "
        "WHERE w.gpu_share > 0 AND coalesce(w.start_ts, $start::TIMESTAMP) < $end::TIMESTAMP "
        "AND coalesce(w.end_ts, $end::TIMESTAMP) > "
        "$start::TIMESTAMP) WHERE node IS NULL OR NOT list_has_all((SELECT list(node) FROM gpu_nodes), hl)",
        {"start": window.start, "end": window.end}).fetchone()[0]


_DIMENSIONS = "node, namespace, workload, node_pool, owner or label:KEY"


def _group_keys(by: list[str], share_idle: str) -> list[str]:
    idle_key = f"coalesce(owner, '{IDLE}')" if share_idle == "owner" else f"'{IDLE}'"
    special = f"WHEN kind = 'idle' THEN {idle_key} WHEN kind = 'shared' THEN '{SHARED}'"
    keys = []
    for i, dim in enumerate(by):
        if dim.startswith("label:") and dim[6:]:
            keys.append(f"CASE {special} ELSE coalesce(labels[{sql_str(dim[6:])}], '{UNALLOCATED}') END AS k{i}")
        elif dim == "owner":
            keys.append(f"CASE {special} ELSE coalesce(owner, '') END AS k{i}")
        elif dim in ("namespace", "node_pool"):
            keys.append(f"CASE {special} ELSE coalesce({dim}, '') END AS k{i}")
        elif dim == "node":
            keys.append(f"node AS k{i}")
        elif dim == "workload":
            keys.append(f"CASE {special} ELSE name END AS k{i}")
        else:
            raise ValueError(f"unknown aggregate {dim!r}: use {_DIMENSIONS}")
    return keys


def aggregate(con: duckdb.DuckDBPyConnection, window: Window, by: list[str], idle_threshold: float | None = None,
              accumulate: str = "window", share_idle: str | None = None,
              gpu_prices: dict[str, Decimal] | None = None, settings: Settings | None = None,
              share_namespaces: list[str] | None = None, share_labels: dict[str, str] | None = None,
              share_split: str | None = None) -> list[dict[str, object]]:
    """The allocation summed over the window, grouped OpenCost-style by ``node``, ``namespace``, ``workload``,
    ``node_pool``, ``owner`` or ``label:KEY``; ``__idle__`` and ``__shared__`` stay their own lines.

    Columns follow OpenCost's names (``gpuHours``, ``cpuCoreHours``, ``ramByteHours``, ``gpuCost``, ``cpuCost``,
    ``ramCost``, ``gpuCostIdle``, ``sharedCost``, ``gpuEfficiency``, ``totalCost``) plus the two other kinds of
    idle: ``gpuCostAllocatedIdle`` (held at an activity below ``idle_threshold``) and ``gpuCostInefficiency``
    (the unused part, 1 - activity, of GPUs held above it); ``gpuCostUnallocated``, the unallocated idle in the
    group (the ``__idle__`` line, or the owner's line with ``share_idle="owner"``: one call gives a team's
    idle of all three kinds); ``gpuCostByUse`` (the cost weighted by use);
    ``energyKwh`` (``energyEstimatedKwh`` of it from TDP x activity) and ``co2eKg``. ``gpuEfficiency`` is used
    / allocated GPU-hours over the hours with telemetry (NULL without any). ``accumulate`` is ``window`` (one
    row per group, OpenCost's ``accumulate=true``), ``hour`` or ``day`` (a row per group and period)."""
    if accumulate not in ("window", "hour", "day"):
        raise ValueError(f"unknown accumulate {accumulate!r}: use window, hour or day")
    opts = options_for(settings, idle_threshold=idle_threshold, share_idle=share_idle,
                       share_namespaces=share_namespaces, share_labels=share_labels, share_split=share_split)
    keys = _group_keys(by, opts.share_idle)
    names = by or ["total"]
    if accumulate != "window":
        keys.insert(0, f"date_trunc('{accumulate}', bucket) AS period")
        names = ["start", *names]
    select = ", ".join(keys) or "'total' AS k0"
    held = "kind <> 'idle' AND activity IS NOT NULL"
    total = " + ".join(f'"{c}"' for c in COST_COLUMNS)
    sums = ["gpuHours", "cpuCoreHours", "ramByteHours", *COST_COLUMNS]
    cur = con.execute(
        f"""SELECT {select}, {", ".join(f'sum("{c}") AS "{c}"' for c in sums)}, sum({total}) AS "totalCost",
               sum("gpuCostByUse") AS "gpuCostByUse",
               sum("gpuHours" * activity) FILTER (WHERE {held}) / sum("gpuHours") FILTER (WHERE {held})
                 AS "gpuEfficiency",
               coalesce(sum("gpuCost") FILTER (WHERE {held} AND activity < $threshold), 0) AS "gpuCostAllocatedIdle",
               coalesce(sum(CAST("gpuCost" * (1 - activity) AS {MONEY}))
                        FILTER (WHERE {held} AND activity >= $threshold), 0) AS "gpuCostInefficiency",
               coalesce(sum("gpuCost") FILTER (WHERE kind = 'idle'), 0) AS "gpuCostUnallocated",
               sum("energyKwh") AS "energyKwh", coalesce(sum("energyKwh") FILTER (WHERE energy_estimated), 0)
                 AS "energyEstimatedKwh", sum("co2eKg") AS "co2eKg"
            FROM ({allocation_sql(Costing.from_settings(settings, gpu_prices), opts)}) GROUP BY ALL
            ORDER BY {"1, " if accumulate != "window" else ""}"totalCost" DESC, 1""",
        {"start": window.start, "end": window.end, "threshold": opts.idle_threshold},
    )
    cols = [d[0] for d in cur.description]
    n = len(names)
    return [{**dict(zip(names, r[:n], strict=True)), **dict(zip(cols[n:], r[n:], strict=True))}
            for r in cur.fetchall()]
