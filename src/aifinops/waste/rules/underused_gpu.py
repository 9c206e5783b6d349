"""``underused-gpu``: workloads that hold whole GPUs and keep them mostly unused.

Per workload group (the pods of one owner — a Deployment across its rollouts, a Job — or a lone pod / Slurm job),
over the GPU-hours with telemetry: activity = used / held GPU-hours (SM_ACTIVE first, as the allocation
measures it). A group holding at least ``min_gpu_hours`` of whole GPUs at activity below ``max_activity``
is reported with the cheapest change that still fits its work at ``target_activity``:

- more than one GPU per workload: fewer GPUs, ``ceil(gpus x activity / target_activity)``, but never fewer than
  its memory needs: ``ceil(gpus x peak framebuffer / GPU memory)`` (a model sharded over 4 GPUs because its
  weights fill them is memory-bound, however idle its SMs);
- one GPU of a MIG-capable model (A100, H100, H200, B200, A30): the smallest MIG profile (1g, 2g, 3g, 4g of
  7 slices; A30: 1g, 2g of 4) whose compute share holds ``activity / target_activity`` and whose memory holds
  the peak framebuffer use seen (MIG memory slices are 1/8 of the GPU's memory);
- any other GPU: time-slicing, sharing it between ``floor(target_activity / activity)`` workloads (at most
  ``max_replicas``, and at most as many as fit its memory at the peak framebuffer seen).

Saving = the group's GPU cost x (1 - new GPU share / current share). Confidence is high when telemetry covers
at least 90% of the held hours and activity is under half the threshold, low under 50% coverage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...model.gpu import DEFAULT_MIG_SLICES, MIG_SLICES
from ..engine import Finding, Rule, RuleContext, rules

MIG_PROFILES = {7: (1, 2, 3, 4, 7), 4: (1, 2, 4)}


def _mig_slices(model: str | None) -> int | None:
    name = (model or "").upper()
    for m, s in sorted(MIG_SLICES.items(), key=lambda kv: -len(kv[0])):
        if m in name:
            return s
    return None


@rules.register("underused-gpu")
class UnderusedGpu(Rule):
    title = "Under-used GPUs"
    targets = "Whole GPUs held by workloads that use a fraction of them: a MIG slice, time-slicing or fewer GPUs fit"
    needs = ("gpu_nodes", "workloads", "gpu_samples")

    class Options(Rule.Options):
        #: activity (SM active) below which held GPUs are under-used
        max_activity: float = Field(0.3, gt=0, le=1)
        #: activity the right-sized GPU share should run at
        target_activity: float = Field(0.7, gt=0, le=1)
        #: GPU-hours with telemetry a group must have held to be judged
        min_gpu_hours: float = Field(24.0, ge=0)
        #: at most this many workloads share one GPU by time-slicing
        max_replicas: int = Field(4, ge=2)
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        wl = ctx.workloads()
        pools = ctx.pool_costs()
        rows = ctx.rows(f"""
WITH g AS (
  SELECT workload_group AS grp,
         any_value(namespace) AS namespace, any_value(owner_kind) AS owner_kind, mode(team) AS team,
         count(*) AS workloads, max(gpu_share) AS gpus, mode(gpu_model) AS gpu_model,
         sum(gpu_cost) AS gpu_cost, sum(cost) AS cost, sum(gpu_hours) AS gpu_hours, sum(seen_hours) AS seen_hours,
         sum(used_hours) AS used_hours, sum(used_hours) / nullif(sum(seen_hours), 0) AS activity,
         list(DISTINCT pool) AS pools, list(DISTINCT namespace || '/' || name) AS pods
  FROM {wl} WHERE gpu_share >= 1 AND gpu_share = floor(gpu_share) AND seen_hours > 0
  GROUP BY 1
), mem AS (
  SELECT coalesce(s.namespace, '') || '/' || s.pod AS pod, max(s.fb_used_mib) AS peak_mib,
         max(s.fb_used_mib + s.fb_free_mib) AS total_mib
  FROM gpu_samples s WHERE NOT s._superseded AND s.ts >= $start::TIMESTAMP AND s.ts < $end::TIMESTAMP
    AND s.pod IS NOT NULL AND s.gpu_instance_id IS NULL GROUP BY 1
)
SELECT g.*, (SELECT max(peak_mib) FROM mem WHERE list_contains(g.pods, mem.pod)) AS peak_mib,
       (SELECT max(total_mib) FROM mem WHERE list_contains(g.pods, mem.pod)) AS total_mib,
       CASE WHEN len(g.pools) = 1 THEN (SELECT cost FROM {pools} p WHERE p.pool = g.pools[1]) END AS pool_cost
FROM g WHERE g.activity < $max AND g.seen_hours >= $min_hours ORDER BY g.gpu_cost DESC""",
                        {"max": o.max_activity, "min_hours": o.min_gpu_hours})
        for r in rows:
            finding = self._finding(ctx, r)
            if finding and finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding | None:
        o = self.options
        gpus, act = float(r["gpus"]), float(r["activity"] or 0)
        need = act / o.target_activity  # GPUs' worth of compute the work needs
        slices = _mig_slices(r["gpu_model"])
        mem_share = float(r["peak_mib"]) / float(r["total_mib"]) if r["peak_mib"] and r["total_mib"] else None
        if gpus > 1:
            new = max(math.ceil(gpus * need - 1e-9), math.ceil(gpus * (mem_share or 0) - 1e-9), 1)
            if new >= gpus:
                return None
            share, change = float(new), f"Request {new} GPU(s) instead of {gpus:g}"
        elif slices:
            mem_slices = (math.ceil(8 * float(r["peak_mib"]) / float(r["total_mib"]) - 1e-9) * slices / 8
                          if r["peak_mib"] and r["total_mib"] else 1)
            needed = max(need * slices, mem_slices, 1e-9)
            profiles = MIG_PROFILES.get(slices, MIG_PROFILES[DEFAULT_MIG_SLICES])
            profile = next((p for p in profiles if p >= needed - 1e-9), slices)
            if profile >= slices:
                return None
            share = profile / slices
            mem_gb = (float(r["total_mib"] or 0) / 1024) * profile / 8 if r["total_mib"] else None
            name = f"{profile}g.{round(mem_gb)}gb" if mem_gb else f"{profile}g"
            change = f"Use a MIG {name} slice ({profile}/{slices} of the GPU) instead of a whole {r['gpu_model']}"
        else:
            k = min(math.floor(o.target_activity / max(act, 1e-9)), o.max_replicas,
                    math.floor(1 / mem_share + 1e-9) if mem_share else o.max_replicas)
            if k < 2:
                return None
            share, change = 1 / k, f"Time-slice the GPU between {k} workloads (each holds 1/{k})"
        gpu_cost = Decimal(r["gpu_cost"] or 0)
        keep = Decimal(repr(share / gpus))
        saving = gpu_cost * (1 - keep)
        coverage = float(r["seen_hours"]) / float(r["gpu_hours"]) if r["gpu_hours"] else 0
        confidence = ("high" if coverage >= 0.9 and act < o.max_activity / 2 else
                      "low" if coverage < 0.5 else "medium")
        pool_cost = r["pool_cost"] if r["pool_cost"] is not None else r["cost"]
        pool = (r["pools"][0] if len(r["pools"]) == 1 else f"group:{r['grp']}")
        return Finding(
            rule=self.kind, scope_kind="workload", scope=r["grp"], owner=r["team"],
            evidence={"workloads": r["workloads"], "owner_kind": r["owner_kind"], "gpus_per_workload": gpus,
                      "gpu_model": r["gpu_model"], "gpu_hours": round(float(r["gpu_hours"]), 3),
                      "gpu_hours_with_telemetry": round(float(r["seen_hours"]), 3), "activity": round(act, 4),
                      "peak_framebuffer_mib": r["peak_mib"], "gpu_memory_mib": r["total_mib"],
                      "gpu_cost_in_window": gpu_cost},
            monthly_cost=ctx.monthly(r["cost"]), monthly_waste=ctx.monthly(gpu_cost * Decimal(repr(1 - act))),
            monthly_saving=ctx.monthly(saving), recommendation=change,
            assumptions=[f"the work needs activity / target = {act:.3f} / {o.target_activity:g} = {need:.3f} of a GPU",
                         "a GPU share costs its fraction of the GPU (MIG slices and time-sliced replicas are "
                         "allocated by share, as the allocation does)",
                         "the pattern of the window continues"],
            saving_formula=(f"GPU cost ${gpu_cost:,.2f} x (1 - {share:.4g} / {gpus:g}) = ${saving:,.2f} in the window, "
                            f"x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=pool, pool_cost=ctx.monthly(pool_cost))
