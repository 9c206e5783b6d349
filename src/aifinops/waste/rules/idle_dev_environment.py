"""``idle-dev-environment``: notebooks and dev pods that hold GPUs for hours while nobody uses them.

**Dev workloads** are GPU workloads (not serving endpoints) that match any of:

- a label in ``dev_labels``: ``key=value`` (equal) or ``key`` (present). Defaults: JupyterHub single-user
  servers (``component=singleuser-server``, ``app=jupyterhub``), Kubeflow notebooks (``notebook-name``, which
  the notebook controller puts on the pods of a notebook's StatefulSet) and ``env=dev``;
- ``name_pattern`` (a regular expression, case-insensitive) on the pod name, its owner's name or its
  namespace. Default: ``notebook``, ``jupyter``, ``workspace``, ``sandbox``, or ``dev`` as a word
  (``team-dev``, ``dev-alice``; not ``device-plugin``).

**Idle stretches**, from the hourly allocation (one row per workload and hour, activity from its telemetry):
the consecutive hours of one pod at an activity below ``idle_activity`` (gaps and islands in SQL). An hour
without telemetry is unknown, not idle: it ends a stretch.

- waste = the pod's own cost (GPU + CPU + memory; shared overhead would only move to others) of all its idle
  hours;
- saving = what an idle culler that stops a pod after ``cull_after_hours`` of idleness would have saved: per
  stretch, the cost of the held time beyond its first ``cull_after_hours`` (an hour is split pro rata when
  the cut falls inside it).

Findings are per dev environment (namespace / owner or pod name, so a notebook's restarted pods are one
finding) and name the culler that fits it: the JupyterHub idle-culler, Kubeflow notebook culling, or a
generic culler / TTL. Confidence follows telemetry coverage of the held hours (high >= 90%, low < 50%).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field, field_validator

from ...model.checks import sql_str
from ..engine import MONEY, Finding, Rule, RuleContext, rules

JUPYTERHUB = ("component=singleuser-server", "app=jupyterhub")
KUBEFLOW = ("notebook-name",)


def checked_regex(pattern: str) -> str:
    """The pattern, if it compiles (a typo fails when the thresholds are read, not halfway through a run)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return pattern


def label_sql(spec: str, labels: str = "labels") -> str:
    """SQL: whether a labels map matches ``key=value`` (equal) or ``key`` (present)."""
    key, sep, value = spec.partition("=")
    return f"{labels}[{sql_str(key)}] = {sql_str(value)}" if sep else f"{labels}[{sql_str(key)}] IS NOT NULL"


def _any(specs: Iterable[str]) -> str:
    terms = [label_sql(s) for s in specs]
    return "(" + " OR ".join(terms) + ")" if terms else "false"


@rules.register("idle-dev-environment")
class IdleDevEnvironment(Rule):
    title = "Idle dev environments"
    targets = "Notebooks and dev pods that keep their GPUs for hours while idle, with no culler to stop them"
    needs = ("gpu_nodes", "workloads", "gpu_samples")

    class Options(Rule.Options):
        #: activity (SM active) below which an hour held is idle
        idle_activity: float = Field(0.05, ge=0, le=1)
        #: the culler stops a pod after this many idle hours (the first hours of each stretch are not saved)
        cull_after_hours: float = Field(1.0, ge=0)
        #: labels that make a workload a dev environment: ``key=value`` or ``key`` (present)
        dev_labels: list[str] = Field(default_factory=lambda: [*JUPYTERHUB, *KUBEFLOW, "env=dev"])
        #: regular expression on the pod name, owner name and namespace (case-insensitive)
        name_pattern: str = r"notebook|jupyter|workspace|sandbox|(^|[^a-z0-9])dev([^a-z]|$)"
        #: environments saving less than this ($ per month) are not reported
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

        @field_validator("name_pattern")
        @classmethod
        def _regex(cls, v: str) -> str:
            return checked_regex(v)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        wl, alloc, pools = ctx.workloads(), ctx.allocation(), ctx.pool_costs()
        pattern = sql_str(o.name_pattern)
        names = " OR ".join(f"regexp_matches(coalesce({c}, ''), {pattern}, 'i')"
                            for c in ("name", "owner_name", "namespace"))
        rows = ctx.rows(f"""
WITH dev AS (
  SELECT workload_id, gpu_share, team, pool, coalesce(namespace, '') || '/' || coalesce(owner_name, name, workload_id)
         AS env, CASE WHEN {_any(JUPYTERHUB)} THEN 'jupyterhub' WHEN {_any(KUBEFLOW)} THEN 'kubeflow'
                      ELSE 'generic' END AS flavour
  FROM {wl} WHERE NOT serving AND gpu_share > 0 AND ({_any(o.dev_labels)} OR {names})
), hourly AS (
  -- one row per pod and hour (a pod on several nodes: summed; activity weighted by the GPU-hours seen)
  SELECT a.workload_id, a.bucket, sum(a."gpuHours") / any_value(d.gpu_share) AS held,
         sum(a."gpuHours") AS gpu_hours, coalesce(sum(a."gpuHours") FILTER (WHERE a.activity IS NOT NULL), 0) AS seen,
         sum(a."gpuCost" + a."cpuCost" + a."ramCost") AS cost,
         sum(a."gpuHours" * a.activity) FILTER (WHERE a.activity IS NOT NULL)
           / nullif(sum(a."gpuHours") FILTER (WHERE a.activity IS NOT NULL), 0) AS activity
  FROM {alloc} a JOIN dev d ON d.workload_id = a.workload_id
  WHERE a.kind <> 'idle' GROUP BY a.workload_id, a.bucket
), idle AS (
  -- gaps and islands: consecutive idle hours share bucket - n hours (an unknown or busy hour ends a stretch)
  SELECT *, bucket - to_hours(row_number() OVER (PARTITION BY workload_id ORDER BY bucket)) AS island
  FROM hourly WHERE activity < $idle
), cut AS (
  SELECT *, greatest(upto - greatest(upto - held, $cull), 0) / nullif(held, 0) AS culled
  FROM (SELECT *, sum(held) OVER (PARTITION BY workload_id, island ORDER BY bucket
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto FROM idle)
), stretches AS (
  SELECT workload_id, island, sum(held) AS hours, sum(cost) AS cost, min(bucket) AS since,
         sum(CASE WHEN culled >= 1 THEN cost WHEN culled > 0 THEN CAST(cost * CAST(culled AS DECIMAL(18, 12))
                                                                      AS {MONEY}) ELSE 0 END) AS saving,
         sum(held * least(culled, 1)) AS culled_hours
  FROM cut GROUP BY workload_id, island
), per_env AS (
  SELECT d.env, count(*) AS stretches, count(*) FILTER (WHERE s.hours > $cull) AS long_stretches,
         sum(s.hours) AS idle_hours, sum(s.cost) AS idle_cost,
         sum(s.saving) AS saving, sum(s.culled_hours) AS culled_hours, max(s.hours) AS longest,
         arg_max(s.since, s.hours) AS longest_since
  FROM stretches s JOIN dev d ON d.workload_id = s.workload_id GROUP BY d.env
), totals AS (
  SELECT d.env, count(DISTINCT d.workload_id) AS pods, mode(d.team) AS team, mode(d.flavour) AS flavour,
         list(DISTINCT d.pool) AS pools, sum(h.cost) AS cost, sum(h.held) AS held_hours,
         sum(h.gpu_hours) AS gpu_hours, sum(h.seen) AS seen_hours
  FROM hourly h JOIN dev d ON d.workload_id = h.workload_id GROUP BY d.env
)
SELECT t.*, e.stretches, e.long_stretches, e.idle_hours, e.idle_cost, e.saving, e.culled_hours, e.longest,
       e.longest_since,
       CASE WHEN len(t.pools) = 1 THEN (SELECT p.cost FROM {pools} p WHERE p.pool = t.pools[1]) END AS pool_cost
FROM totals t JOIN per_env e ON e.env = t.env ORDER BY e.saving DESC, t.env""",
                        {"idle": o.idle_activity, "cull": o.cull_after_hours})
        for r in rows:
            finding = self._finding(ctx, r)
            if finding.monthly_saving >= o.min_monthly_saving and finding.monthly_saving > 0:
                yield finding

    def _change(self, r: dict) -> str:
        after = self.options.cull_after_hours
        seconds, minutes = round(after * 3600), round(after * 60)
        where = (f"{r['env']} sat idle on its GPUs (activity below {self.options.idle_activity:g}) in "
                 f"{r['stretches']} stretch(es) ({r['long_stretches']} longer than {after:g} h), the longest "
                 f"{float(r['longest']):.1f} h from {r['longest_since']:%Y-%m-%d %H:%M}")
        if r["flavour"] == "jupyterhub":
            return (f"Enable the JupyterHub idle-culler with a {after:g} h timeout (zero-to-jupyterhub: cull.enabled: "
                    f"true, cull.timeout: {seconds}; or jupyterhub-idle-culler --timeout={seconds}): {where}")
        if r["flavour"] == "kubeflow":
            return (f"Enable Kubeflow notebook culling after {after:g} h (notebook-controller ENABLE_CULLING=true, "
                    f"CULL_IDLE_TIME={minutes}): {where}")
        return (f"Stop idle dev pods after {after:g} h with an idle culler (or an expiry such as "
                f"activeDeadlineSeconds) on {r['env']}: {where}")

    def _finding(self, ctx: RuleContext, r: dict) -> Finding:
        o = self.options
        idle_cost, saving = Decimal(r["idle_cost"] or 0), Decimal(r["saving"] or 0)
        coverage = float(r["seen_hours"]) / float(r["gpu_hours"]) if r["gpu_hours"] else 0.0
        confidence = "high" if coverage >= 0.9 else "low" if coverage < 0.5 else "medium"
        pool = r["pools"][0] if len(r["pools"]) == 1 else f"group:{r['env']}"
        pool_cost = r["pool_cost"] if r["pool_cost"] is not None else r["cost"]
        return Finding(
            rule=self.kind, scope_kind="workload", scope=r["env"], owner=r["team"],
            evidence={"kind": r["flavour"], "pods": r["pods"], "held_hours": round(float(r["held_hours"]), 3),
                      "idle_hours": round(float(r["idle_hours"]), 3), "idle_stretches": r["stretches"],
                      "stretches_longer_than_cull": r["long_stretches"],
                      "longest_stretch_hours": round(float(r["longest"]), 3),
                      "longest_stretch_from": r["longest_since"],
                      "hours_after_cull": round(float(r["culled_hours"]), 3),
                      "telemetry_coverage": round(coverage, 4), "cost_in_window": Decimal(r["cost"]),
                      "idle_cost_in_window": idle_cost},
            monthly_cost=ctx.monthly(r["cost"]), monthly_waste=ctx.monthly(idle_cost),
            monthly_saving=ctx.monthly(saving), recommendation=self._change(r),
            assumptions=[f"an hour held at activity below {o.idle_activity:g} is idle; an hour without telemetry is "
                         "unknown and ends a stretch",
                         f"a culler stops the pod after {o.cull_after_hours:g} idle hour(s); the user restarts it "
                         "when they come back, so only the rest of each stretch is saved",
                         "the freed GPUs are released (the node scales down or other work uses them); shared "
                         "overhead is not saved",
                         "the pattern of the window continues"],
            saving_formula=(f"cost of {float(r['culled_hours']):,.2f} idle h beyond the first "
                            f"{o.cull_after_hours:g} h of each of {r['stretches']} stretch(es) = ${saving:,.2f} "
                            f"(of ${idle_cost:,.2f} idle in {float(r['idle_hours']):,.2f} h), "
                            f"x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=pool, pool_cost=ctx.monthly(pool_cost))
