"""``idle-gpu-capacity``: GPUs that no workload held, per node pool.

Two ways to see it, chosen by the data:

- **placement** (workloads name their node, as Kubernetes and Slurm do): the allocation's ``__idle__`` lines,
  i.e. the node cost that no workload held, summed per node pool (``node_pool``, else the GPU model);
- **capacity** (a trace that says what each workload asked for but not where it ran, as Alibaba's does):
  the pool is the whole fleet; each hour, idle GPUs = the inventory's GPUs - the GPU-equivalents the
  workloads held, priced at the fleet's average $ per GPU-hour (``gpu_capacity``'s rule).

Waste is all of the idle cost. The saving is what removing the capacity that was idle in *every* hour
saves: the fewest idle GPUs of any hour, less ``headroom_gpus``, rounded down to whole nodes of the pool's
size, x the window's hours x the pool's $ per GPU-hour. Idle capacity that comes and goes needs an
autoscaler; ``autoscale_capture`` (default 0: none) credits that share of the rest of the idle cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from pydantic import Field

from ...analysis.gpu_allocation import price_rows
from ..engine import Finding, Rule, RuleContext, rules


@rules.register("idle-gpu-capacity")
class IdleGpuCapacity(Rule):
    title = "Idle GPU capacity"
    targets = "GPU nodes sized for peak and left running while no workload holds their GPUs"
    needs = ("gpu_nodes",)

    class Options(Rule.Options):
        #: idle GPUs to keep as headroom in every pool (not counted as removable)
        headroom_gpus: int = Field(0, ge=0)
        #: share of the idle cost above the always-idle floor that an autoscaler is assumed to recover
        autoscale_capture: float = Field(0.0, ge=0, le=1)
        #: pools whose idle cost is below this ($ per month) are not reported
        min_monthly_waste: Decimal = Field(Decimal(50), ge=0)
        #: placement or capacity; auto: capacity when most GPU workloads name no known node
        mode: Literal["auto", "placement", "capacity"] = "auto"

    def _mode(self, ctx: RuleContext) -> str:
        if self.options.mode != "auto":
            return self.options.mode
        placed, total = ctx.con.execute(
            "SELECT count(*) FILTER (WHERE node IN (SELECT node FROM gpu_nodes)), count(*) FROM workloads "
            "WHERE gpu_share > 0").fetchone()
        return "capacity" if total and placed * 2 < total else "placement"

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        mode = self._mode(ctx)
        rows = self._placement(ctx) if mode == "placement" else self._capacity(ctx)
        o = self.options
        for r in rows:
            idle_hours, idle_cost = float(r["idle_gpu_hours"] or 0), Decimal(r["idle_cost"] or 0)
            monthly_waste = ctx.monthly(idle_cost)
            if idle_hours <= 0 or monthly_waste < o.min_monthly_waste:
                continue
            per_node = max(int(r["gpus_per_node"] or 1), 1)
            floor_gpus = max(float(r["min_idle_gpus"] or 0) - o.headroom_gpus, 0.0)
            removable_nodes = math.floor(floor_gpus / per_node + 1e-9)
            removable = removable_nodes * per_node
            price = idle_cost / Decimal(repr(idle_hours))  # $ per idle GPU-hour of the pool
            floor_saving = min(Decimal(removable) * Decimal(repr(ctx.hours)) * price, idle_cost)
            saving = floor_saving + Decimal(repr(o.autoscale_capture)) * (idle_cost - floor_saving)
            pool = r["pool"]
            if removable_nodes:
                change = (f"Remove {removable_nodes} node(s) ({removable} GPUs) from {pool}: at least "
                          f"{r['min_idle_gpus']:g} of its {r['gpus']} GPUs were idle in every hour of the window")
            elif floor_gpus >= 1:
                change = (f"Consolidate {pool}: at least {r['min_idle_gpus']:g} of its {r['gpus']} GPUs were idle in "
                          f"every hour, fewer than one {per_node}-GPU node; pack workloads onto fewer nodes or use "
                          "smaller instances")
            else:
                change = (f"Let an autoscaler size {pool} to demand: its idle GPUs come and go (fewest idle in any "
                          f"hour: {r['min_idle_gpus']:g}), so no node can be removed outright")
            yield Finding(
                rule=self.kind, scope_kind="node_pool", scope=pool, owner=r["owner"],
                evidence={"mode": mode, "gpus": r["gpus"], "gpus_per_node": per_node,
                          "idle_gpu_hours": round(idle_hours, 3), "capacity_gpu_hours": round(float(r["capacity"]), 3),
                          "idle_share": round(idle_hours / float(r["capacity"]), 4) if r["capacity"] else None,
                          "idle_cost_in_window": idle_cost, "min_idle_gpus_in_an_hour": r["min_idle_gpus"],
                          "median_idle_gpus": r["median_idle_gpus"], "peak_idle_gpus": r["max_idle_gpus"],
                          "price_per_gpu_hour": price},
                monthly_cost=ctx.monthly(r["pool_cost"]), monthly_waste=monthly_waste,
                monthly_saving=ctx.monthly(saving), recommendation=change,
                assumptions=[f"capacity idle in every hour of the window ({ctx.window}) stays idle",
                             f"{o.headroom_gpus} idle GPU(s) kept as headroom",
                             f"nodes of {per_node} GPUs are removed whole; workloads consolidate onto the rest",
                             f"an autoscaler recovers {o.autoscale_capture:.0%} of the remaining idle cost"],
                saving_formula=(f"{removable} GPUs x {ctx.hours:,.1f} h x ${price:,.4f}/GPU-h = ${floor_saving:,.2f}"
                                f" + {o.autoscale_capture:g} x (idle ${idle_cost:,.2f} - ${floor_saving:,.2f}), "
                                f"x {ctx.month_factor:.4f} to a month"),
                confidence="high" if removable_nodes else "low",
                pool=f"node_pool:{pool}", pool_cost=ctx.monthly(r["pool_cost"]))

    def _placement(self, ctx: RuleContext) -> list[dict]:
        alloc = ctx.allocation()
        return ctx.rows(f"""
WITH a AS (
  SELECT coalesce(node_pool, gpu_model, 'default') AS pool, bucket, node, kind, owner, "gpuHours" AS h,
         "gpuCost" + "cpuCost" + "ramCost" + "gpuCostIdle" + "cpuCostIdle" + "ramCostIdle" AS cost, node_gpus,
         (epoch(least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP)) - epoch(bucket)) / 3600 AS bh
  FROM {alloc}
), hourly AS (
  SELECT pool, bucket, sum(h) FILTER (WHERE kind = 'idle') / any_value(bh) AS idle_gpus
  FROM a GROUP BY pool, bucket
), hours AS (SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 HOUR)) AS bucket),
every_hour AS (
  -- an hour without a row for the pool (nodes stopped or not there) had no idle GPUs in it
  SELECT p.pool, coalesce(h2.idle_gpus, 0) AS idle_gpus
  FROM (SELECT DISTINCT pool FROM a) p CROSS JOIN hours h
  LEFT JOIN hourly h2 ON h2.pool = p.pool AND h2.bucket = h.bucket
), pools AS (
  SELECT a.pool, sum(a.h) FILTER (WHERE kind = 'idle') AS idle_gpu_hours,
         sum(a.cost) FILTER (WHERE kind = 'idle') AS idle_cost, sum(a.cost) AS pool_cost,
         mode(a.owner) AS owner
  FROM a GROUP BY a.pool
), sizes AS (
  SELECT coalesce(node_pool, gpu_model, 'default') AS pool, sum(gpu_count) AS gpus, max(gpu_count) AS gpus_per_node
  FROM (SELECT * FROM gpu_nodes WHERE gpu_count > 0
        QUALIFY row_number() OVER (PARTITION BY node ORDER BY _batch_id DESC, _row DESC) = 1) GROUP BY 1
)
SELECT p.*, s.gpus, s.gpus_per_node, s.gpus * $hours AS capacity,
       (SELECT min(idle_gpus) FROM every_hour e WHERE e.pool = p.pool) AS min_idle_gpus,
       (SELECT median(idle_gpus) FROM every_hour e WHERE e.pool = p.pool) AS median_idle_gpus,
       (SELECT max(idle_gpus) FROM every_hour e WHERE e.pool = p.pool) AS max_idle_gpus
FROM pools p JOIN sizes s USING (pool) ORDER BY idle_cost DESC""", {"hours": ctx.hours})

    def _capacity(self, ctx: RuleContext) -> list[dict]:
        return ctx.rows(f"""
WITH gpu_prices(pattern, price) AS ({price_rows(ctx.settings.gpu_prices)}),
nodes AS (
  SELECT n.node, n.gpu_count, n.owner,
         (SELECT arg_max(p.price, length(p.pattern)) FROM gpu_prices p
          WHERE upper(coalesce(n.gpu_model, '')) LIKE '%' || upper(p.pattern) || '%') AS per_gpu
  FROM (SELECT * FROM gpu_nodes WHERE gpu_count > 0
        QUALIFY row_number() OVER (PARTITION BY node ORDER BY _batch_id DESC, _row DESC) = 1) n
), fleet AS (
  SELECT sum(gpu_count) AS gpus, max(gpu_count) AS gpus_per_node, mode(owner) AS owner,
         CAST(sum(gpu_count * coalesce(per_gpu, 0)) AS DOUBLE) / nullif(sum(gpu_count), 0) AS price
  FROM nodes
), hours AS (
  SELECT bucket, (epoch(least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP)) - epoch(bucket)) / 3600 AS bh
  FROM (SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 HOUR)) AS bucket)
), held AS (
  SELECT h.bucket, sum(w.gpu_share * (epoch(least(coalesce(w.end_ts, $end::TIMESTAMP), h.bucket + INTERVAL 1 HOUR))
                                      - epoch(greatest(coalesce(w.start_ts, h.bucket), h.bucket))) / 3600) AS held
  FROM workloads w JOIN hours h ON coalesce(w.start_ts, $start::TIMESTAMP) < h.bucket + INTERVAL 1 HOUR
                               AND coalesce(w.end_ts, $end::TIMESTAMP) > h.bucket
  WHERE w.gpu_share > 0 GROUP BY h.bucket
), hourly AS (
  SELECT h.bucket, h.bh, f.gpus * h.bh AS capacity,
         greatest(f.gpus * h.bh - coalesce(d.held, 0), 0) AS idle_hours,
         greatest(f.gpus * h.bh - coalesce(d.held, 0), 0) / h.bh AS idle_gpus
  FROM hours h CROSS JOIN fleet f LEFT JOIN held d USING (bucket)
)
SELECT 'fleet' AS pool, f.owner, f.gpus, f.gpus_per_node, sum(capacity) AS capacity,
       sum(idle_hours) AS idle_gpu_hours, CAST(sum(idle_hours) * any_value(f.price) AS DECIMAL(38, 12))
         AS idle_cost,
       CAST(sum(capacity) * any_value(f.price) AS DECIMAL(38, 12)) AS pool_cost,
       min(idle_gpus) AS min_idle_gpus, median(idle_gpus) AS median_idle_gpus, max(idle_gpus) AS max_idle_gpus
FROM hourly CROSS JOIN fleet f GROUP BY f.owner, f.gpus, f.gpus_per_node""")
