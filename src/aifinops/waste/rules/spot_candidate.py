"""``spot-candidate``: fault-tolerant training that checkpoints, paid at on-demand prices.

A training run (the workloads sharing a run label; else one workload) is a candidate when its workloads:

- train: a run label (``llm.training_labels.run``), or a batch owner (``training_owner_kinds``: Job,
  PyTorchJob, MPIJob, ...), or a Slurm job; never a serving workload;
- can resume: a label or annotation whose key contains ``checkpoint`` (``checkpoint``,
  ``checkpoint-interval``, ``example.com/checkpoint-every``...) with a value other than false / no / off / 0,
  or a Slurm requeue hint (a key containing ``requeue``, or a State mentioning REQUEUE). A value that reads as a
  duration (``30m``, ``1h30m``, ``900s``, ``PT30M``; a bare number is minutes when the key says interval,
  every, freq or period) is the checkpoint interval; otherwise ``default_checkpoint_minutes`` is assumed;
- ran on on-demand nodes (the node's ``pricing_category``).

Saving, per run over the window::

    ratio     = spot / on-demand price of the GPU type (gpu_market.spot_ratio: the node's own instance type
                in the table, else the median of its provider's pairs, else the median over providers;
                ``prices`` overrides)
    spot cost = GPU cost x ratio
    overhead  = interruptions_per_hour x node-hours x (checkpoint interval / 2 + restart_minutes)
                x spot cost / run hours
    saving    = GPU cost - spot cost - overhead

Each interruption loses on average half a checkpoint interval of work (plus the restart), re-run at the run's
spot cost per hour. A run on several nodes at once is interrupted when any of its nodes is (a gang restarts
together), so interruptions scale with node-hours, while the lost work is the whole run's. Reported when the
saving is positive and at least ``min_monthly_saving`` a month. GPU types the price table does not know are
not reported unless ``prices`` gives their spot and on-demand prices.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...model.checks import sql_str
from ..engine import Finding, Rule, RuleContext, rules
from ..gpu_market import GpuMarket, PriceOverrides

FALSY = ("", "false", "no", "0", "off", "disabled", "none", "never")
TRAINING_OWNERS = ("job", "pytorchjob", "tfjob", "mpijob", "xgboostjob", "paddlejob", "jaxjob", "trainjob",
                   "jobset", "rayjob", "workflow")
_UNIT_MINUTES = {"ms": 1 / 60000, "s": 1 / 60, "sec": 1 / 60, "secs": 1 / 60, "second": 1 / 60, "seconds": 1 / 60,
                 "m": 1.0, "min": 1.0, "mins": 1.0, "minute": 1.0, "minutes": 1.0, "h": 60.0, "hr": 60.0, "hrs": 60.0,
                 "hour": 60.0, "hours": 60.0, "d": 1440.0, "day": 1440.0, "days": 1440.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_ISO = re.compile(r"pt?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_INTERVAL_KEY = re.compile(r"interval|every|freq|period")


def duration_minutes(key: str, value: str | None) -> float | None:
    """A checkpoint interval in minutes from a label or annotation (None: the value is not a duration)."""
    v = (value or "").strip().lower()
    if not v:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", v):
        return float(v) if _INTERVAL_KEY.search(key.lower()) and float(v) > 0 else None
    if v.startswith("p") and (m := _ISO.fullmatch(v)) and any(m.groups()):
        h, mi, s = (float(x or 0) for x in m.groups())
        return h * 60 + mi + s / 60 or None
    parts = _PART.findall(v)
    if parts and re.fullmatch(r"(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+", v) and all(u in _UNIT_MINUTES for _, u in parts):
        total = sum(float(n) * _UNIT_MINUTES[u] for n, u in parts)
        return total if total > 0 else None
    return None


def checkpoint_interval(entries: list[str]) -> tuple[float | None, str | None]:
    """The interval (minutes) and the ``key=value`` it came from: interval-like keys first, then any."""
    parsed = []
    for e in entries:
        key, _, value = e.partition("=")
        minutes = duration_minutes(key, value)
        if minutes:
            parsed.append((0 if _INTERVAL_KEY.search(key.lower()) else 1, minutes, e))
    if not parsed:
        return None, None
    _, minutes, entry = min(parsed)
    return minutes, entry


def _on_demand(col: str) -> str:
    return f"replace(replace(lower(coalesce({col}, '')), '_', '-'), ' ', '-') IN ('on-demand', 'ondemand')"


@rules.register("spot-candidate")
class SpotCandidate(Rule):
    title = "Checkpointed training on on-demand GPUs"
    targets = "Fault-tolerant training that checkpoints, paid at on-demand prices when spot capacity would do"
    needs = ("gpu_nodes", "workloads")

    class Options(Rule.Options):
        #: expected spot interruptions per node and hour (0.05: one every 20 node-hours)
        interruptions_per_hour: float = Field(0.05, ge=0)
        #: checkpoint interval assumed when a workload says it checkpoints but not how often
        default_checkpoint_minutes: float = Field(60.0, gt=0)
        #: time to reschedule and reload a checkpoint after an interruption, re-paid at spot cost
        restart_minutes: float = Field(0.0, ge=0)
        #: owner kinds (lower case) whose workloads are batch training
        training_owner_kinds: list[str] = Field(default_factory=lambda: list(TRAINING_OWNERS))
        #: $ per GPU-hour by GPU type and pricing model, over the bundled table
        prices: PriceOverrides = Field(default_factory=dict)
        min_monthly_saving: Decimal = Field(Decimal(50), ge=0)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        market = GpuMarket.load(o.prices)
        wl, alloc, pools = ctx.workloads(), ctx.allocation(), ctx.pool_costs()
        kinds = ", ".join(sql_str(k.lower()) for k in o.training_owner_kinds) or "NULL"
        falsy = ", ".join(sql_str(x) for x in FALSY)
        rows = ctx.rows(f"""
WITH c AS (
  SELECT *,
         list_transform(list_filter(tags, lambda e: contains(lower(e.key), 'checkpoint')
                                      AND lower(trim(coalesce(e.value, ''))) NOT IN ({falsy})),
                        lambda e: e.key || '=' || coalesce(e.value, '')) AS checkpoints,
         len(list_filter(tags, lambda e: contains(lower(e.key), 'requeue')
                           AND lower(trim(coalesce(e.value, ''))) NOT IN ({falsy}))) > 0
           OR contains(upper(coalesce(annotations['slurm.state'], '')), 'REQUEUE') AS requeue
  FROM (SELECT *, list_concat(coalesce(map_entries(labels), []), coalesce(map_entries(annotations), [])) AS tags
        FROM {wl}
        WHERE NOT serving AND gpu_cost > 0 AND {_on_demand("pricing_category")}
          AND (run IS NOT NULL OR lower(coalesce(owner_kind, '')) IN ({kinds}) OR source = 'slurm'))
), cand AS (SELECT * FROM c WHERE len(checkpoints) > 0 OR requeue),
per_hour AS (
  -- the hours the run was running and the nodes it ran on in each: a gang is interrupted when any node is
  SELECT c.pool, a.bucket, count(DISTINCT a.node) AS nodes,
         max((epoch(least(coalesce(c.end_ts, $end::TIMESTAMP), a.bucket + INTERVAL 1 HOUR, $end::TIMESTAMP))
              - epoch(greatest(coalesce(c.start_ts, a.bucket), a.bucket))) / 3600.0) AS hrs
  FROM {alloc} a JOIN cand c ON c.workload_id = a.workload_id
  WHERE a.kind <> 'idle' GROUP BY 1, 2
), g AS (
  SELECT pool, any_value(run) AS run, mode(team) AS team, count(*) AS workloads,
         any_value(coalesce(namespace, '') || '/' || coalesce(name, workload_id)) AS first_workload,
         bool_or(source = 'slurm') AS slurm, sum(gpu_cost) AS gpu_cost, sum(gpu_hours) AS gpu_hours,
         mode(gpu_model) AS gpu_model, mode(provider) AS provider, mode(instance_type) AS instance_type,
         mode(region) AS region, list(DISTINCT node_pool) FILTER (WHERE node_pool IS NOT NULL) AS node_pools,
         flatten(list(checkpoints)) AS checkpoints, bool_or(requeue) AS requeue
  FROM cand GROUP BY pool
)
SELECT g.*, (SELECT sum(hrs) FROM per_hour h WHERE h.pool = g.pool) AS run_hours,
       (SELECT sum(hrs * nodes) FROM per_hour h WHERE h.pool = g.pool) AS node_hours, p.cost AS pool_cost
FROM g LEFT JOIN {pools} p USING (pool) ORDER BY g.gpu_cost DESC, g.pool""")
        for r in rows:
            finding = self._finding(ctx, market, r)
            if finding and finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, market: GpuMarket, r: dict) -> Finding | None:
        o = self.options
        ratio = market.spot_ratio(r["gpu_model"], r["provider"], r["instance_type"])
        run_hours = float(r["run_hours"] or 0)
        if ratio is None or ratio.ratio <= 0 or ratio.ratio >= 1 or run_hours <= 0:
            return None
        stated, source = checkpoint_interval(list(r["checkpoints"] or []))
        interval = stated or o.default_checkpoint_minutes
        gpu_cost = Decimal(r["gpu_cost"])
        spot_cost = gpu_cost * ratio.ratio
        node_hours = Decimal(repr(float(r["node_hours"] or 0)))
        interruptions = Decimal(repr(o.interruptions_per_hour)) * node_hours
        lost_hours = Decimal(repr(interval / 2 + o.restart_minutes)) / 60
        spot_per_hour = spot_cost / Decimal(repr(run_hours))
        overhead = interruptions * lost_hours * spot_per_hour
        saving = gpu_cost - spot_cost - overhead
        if saving <= 0:
            return None
        what = f"run {r['run']}" if r["run"] else f"workload {r['first_workload']}"
        nodes = float(node_hours) / run_hours
        pools = ", ".join(r["node_pools"] or []) or "its on-demand nodes"
        if r["slurm"]:
            change = (f"Submit {what} to a spot-backed partition with --requeue instead of {pools}: it resumes "
                      f"from its checkpoints (every {interval:g} min)")
        else:
            change = (f"Schedule {what} ({r['workloads']} workload(s)) on spot capacity instead of {pools} "
                      "(e.g. nodeSelector karpenter.sh/capacity-type: spot, or a spot node group): it resumes "
                      f"from its checkpoints (every {interval:g} min) when a node is reclaimed")
        basis_ok = ratio.basis in ("instance", "provider median", "override")
        confidence = ("low" if not r["checkpoints"] else
                      "high" if stated and basis_ok else "medium")
        hint = source or (r["checkpoints"][0] if r["checkpoints"] else "Slurm requeue")
        return Finding(
            rule=self.kind, scope_kind="run" if r["run"] else "workload",
            scope=r["run"] or r["first_workload"], owner=r["team"],
            evidence={"workloads": r["workloads"], "gpu_model": r["gpu_model"],
                      "gpu_type": market.key(r["gpu_model"]), "provider": r["provider"],
                      "instance_type": r["instance_type"], "region": r["region"], "node_pools": r["node_pools"],
                      "gpu_hours": round(float(r["gpu_hours"]), 3), "run_hours": round(run_hours, 3),
                      "average_nodes": round(nodes, 3), "gpu_cost_in_window": gpu_cost,
                      "checkpoint_hint": hint, "checkpoint_minutes": interval,
                      "checkpoint_interval_stated": stated is not None,
                      "spot_ratio": ratio.ratio, "spot_discount": ratio.discount, "spot_ratio_basis": ratio.basis,
                      "spot_price_rows": ratio.describe(), "spot_price_sources": ratio.sources(),
                      "expected_interruptions": float(interruptions),
                      "rerun_overhead_in_window": overhead},
            monthly_cost=ctx.monthly(gpu_cost), monthly_waste=ctx.monthly(gpu_cost - spot_cost),
            monthly_saving=ctx.monthly(saving), recommendation=change,
            assumptions=[f"spot costs {ratio.ratio:.4f} of on-demand for {market.key(r['gpu_model'])} "
                         f"({ratio.basis} of the bundled price snapshot or the prices option; spot prices move)",
                         f"{o.interruptions_per_hour:g} interruptions per node-hour (option interruptions_per_hour)",
                         f"each interruption re-runs half a checkpoint interval ({interval / 2:g} min"
                         + ("" if stated else ", interval assumed: default_checkpoint_minutes")
                         + f") plus {o.restart_minutes:g} min of restart, at the run's spot cost per hour",
                         "spot capacity of the same GPU type is available when the run needs it"],
            saving_formula=(f"${gpu_cost:,.2f} x (1 - {ratio.ratio:.4f}) - {float(interruptions):.3f} interruptions"
                            f" x {float(lost_hours):.3f} h x ${spot_per_hour:,.4f}/h = ${saving:,.2f} in the window, "
                            f"x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=r["pool"],
            pool_cost=ctx.monthly(r["pool_cost"] if r["pool_cost"] is not None else gpu_cost))
