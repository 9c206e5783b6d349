"""``duplicate-runs``: training runs or pipeline stages with the same configuration and data, run again, by the
same team or by another one.

A **unit** is a run (the workloads sharing the run label, ``llm.training_labels['run']``) or, without a run
label, a pipeline stage / job (namespace / owner or pod name). Its **fingerprint** combines every key of
``fingerprint_keys`` present in its labels or annotations (``config-hash``, ``data-hash``,
``pipeline-fingerprint``, ``mlflow.source.git.commit``...; ``_`` and ``-`` spellings are one key) into one
``key=value;...`` text. Only explicit fingerprints count by default (``explicit_only``): the same job name
or image is no evidence of the same work (a nightly retraining repeats its name on new data). With
``explicit_only: false``, a unit without one is fingerprinted by namespace, name less a trailing random
suffix and GPU count (low confidence).

Units that succeeded or still run (their last attempt's outcome; failed runs are left to
``failed-runs-without-checkpoints``) are grouped by fingerprint within the window: the first (earliest start)
is needed, every later one is a repeat. Attempts of one run share its fingerprint and are never repeats.

- waste = saving = the repeats' cost in the window (GPU, CPU, memory, shared): reusing the first one's output
  (a cached pipeline step, a shared artifact) makes them unnecessary.

The owner is the team whose repeats cost most. The pool is the repeats' own pool when they are one run (or
one workload), else ``duplicate:<fingerprint>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...model.checks import sql_str
from ..engine import Finding, Rule, RuleContext, rules

#: keys whose presence makes a fingerprint strong (the configuration and the data, or a whole pipeline's hash)
STRONG = ("pipeline-fingerprint",)
CONFIG, DATA_KEYS = ("config-hash",), ("data-hash",)


def _norm(key: str) -> str:
    return key.strip().lower().replace("_", "-")


def _unit_name(unit: str) -> str:
    kind, _, name = unit.partition(":")
    return f"run {name}" if kind == "run" else name


@rules.register("duplicate-runs")
class DuplicateRuns(Rule):
    title = "Duplicate runs"
    targets = "Training runs and pipeline stages repeated with the same configuration and data, within or across teams"
    needs = ("gpu_nodes", "workloads")

    class Options(Rule.Options):
        #: labels or annotations that fingerprint a run's configuration and data; all present are combined
        fingerprint_keys: list[str] = Field(default_factory=lambda: [
            "config-hash", "config_hash", "data-hash", "data_hash", "pipeline-fingerprint", "mlflow.source.git.commit"])
        #: only explicit fingerprints count (not the same name, less a random suffix, and GPU count)
        explicit_only: bool = True
        #: fingerprints whose repeats cost less than this ($ per month) are not reported
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

    def _fingerprint_sql(self) -> str:
        keys = sorted({k for k in self.options.fingerprint_keys if k.strip()})
        parts = [f"CASE WHEN coalesce(labels[{sql_str(k)}], annotations[{sql_str(k)}]) IS NOT NULL THEN "
                 f"{sql_str(_norm(k) + '=')} || coalesce(labels[{sql_str(k)}], annotations[{sql_str(k)}]) END"
                 for k in keys]
        explicit = (f"nullif(array_to_string(list_sort(list_distinct(list_filter([{', '.join(parts)}], "
                    "lambda x: x IS NOT NULL))), ';'), '')") if parts else "NULL::VARCHAR"
        if self.options.explicit_only:
            return explicit
        name = (r"regexp_replace(coalesce(owner_name, name, workload_id), '-([a-z0-9]{5}|[0-9]+|[0-9a-f]{6,})$', '')")
        return (f"coalesce({explicit}, 'name=' || coalesce(namespace, '') || '/' || {name} || ';gpus=' "
                "|| printf('%g', gpu_count))")

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        wl, pools = ctx.workloads(), ctx.pool_costs()
        rows = ctx.rows(f"""
WITH w AS (
  SELECT *, {self._fingerprint_sql()} AS fp,
         CASE WHEN run IS NOT NULL THEN 'run:' || run
              ELSE 'job:' || coalesce(namespace, '') || '/' || coalesce(owner_name, name, workload_id) END AS unit
  FROM {wl}
), units AS (
  SELECT unit, mode(fp) AS fp, min(coalesce(start_ts, first_bucket)) AS started, sum(cost) AS cost,
         sum(gpu_hours) AS gpu_hours, mode(team) AS team, list(DISTINCT pool) AS pools,
         arg_max(outcome, coalesce(end_ts, 'infinity'::TIMESTAMP)) AS outcome
  FROM w WHERE fp IS NOT NULL GROUP BY unit
), ranked AS (
  SELECT *, row_number() OVER (PARTITION BY fp ORDER BY started, unit) AS n, count(*) OVER (PARTITION BY fp) AS k
  FROM units WHERE outcome IN ('succeeded', 'running')
), by_team AS (
  SELECT fp, team, sum(cost) AS cost FROM ranked WHERE n > 1 GROUP BY fp, team
), groups AS (
  SELECT fp, count(*) AS units, sum(cost) AS cost, sum(cost) FILTER (WHERE n > 1) AS repeat_cost,
         sum(gpu_hours) FILTER (WHERE n > 1) AS repeat_gpu_hours,
         any_value(unit) FILTER (WHERE n = 1) AS first_unit, any_value(started) FILTER (WHERE n = 1) AS first_started,
         any_value(team) FILTER (WHERE n = 1) AS first_team, any_value(cost) FILTER (WHERE n = 1) AS first_cost,
         list({{'unit': unit, 'team': team, 'started': started, 'cost': cost, 'outcome': outcome}} ORDER BY n)
           FILTER (WHERE n > 1) AS repeats,
         list_distinct(flatten(list(pools) FILTER (WHERE n > 1))) AS repeat_pools,
         list_sort(list_distinct(list(team) FILTER (WHERE team IS NOT NULL))) AS teams
  FROM ranked WHERE k > 1 GROUP BY fp
)
SELECT g.*, (SELECT arg_max(t.team, t.cost) FROM by_team t WHERE t.fp = g.fp) AS owner,
       CASE WHEN len(g.repeat_pools) = 1 THEN (SELECT p.cost FROM {pools} p WHERE p.pool = g.repeat_pools[1])
       END AS pool_cost
FROM groups g ORDER BY g.repeat_cost DESC, g.fp""")
        for r in rows:
            finding = self._finding(ctx, r)
            if finding.monthly_saving >= self.options.min_monthly_saving and finding.monthly_saving > 0:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding:
        fp, repeats = r["fp"], r["repeats"]
        repeat_cost = Decimal(r["repeat_cost"] or 0)
        keys = {part.partition("=")[0] for part in fp.split(";")}
        confidence = ("low" if "name" in keys else
                      "high" if keys & set(STRONG) or (keys & set(CONFIG) and keys & set(DATA_KEYS)) else "medium")
        teams = r["teams"] or []
        first = _unit_name(r["first_unit"])
        names = ", ".join(_unit_name(x["unit"]) for x in repeats[:5]) + (
            f" and {len(repeats) - 5} more" if len(repeats) > 5 else "")
        how = (f"share {first}'s artifact across teams {', '.join(teams)} (a model registry or shared dataset)"
               if len(teams) > 1 else
               "cache the step by its fingerprint (Kubeflow Pipelines caching, Argo memoize, or look the "
               "fingerprint up in the tracker before launching)")
        pool = r["repeat_pools"][0] if len(r["repeat_pools"]) == 1 else f"duplicate:{fp}"
        pool_cost = r["pool_cost"] if r["pool_cost"] is not None else r["cost"]
        return Finding(
            rule=self.kind, scope_kind="run", scope=fp, owner=r["owner"],
            evidence={"fingerprint": fp, "runs": r["units"], "teams": teams,
                      "first_run": {"run": first, "team": r["first_team"], "started": r["first_started"],
                                    "cost_in_window": Decimal(r["first_cost"] or 0)},
                      "repeats": [{"run": _unit_name(x["unit"]), "team": x["team"], "started": x["started"],
                                   "outcome": x["outcome"], "cost_in_window": Decimal(x["cost"] or 0)}
                                  for x in repeats],
                      "repeat_gpu_hours": round(float(r["repeat_gpu_hours"] or 0), 3),
                      "repeat_cost_in_window": repeat_cost},
            monthly_cost=ctx.monthly(r["cost"]), monthly_waste=ctx.monthly(repeat_cost),
            monthly_saving=ctx.monthly(repeat_cost),
            recommendation=(f"Reuse the output of {first} instead of running it again: {len(repeats)} later run(s) "
                            f"({names}) had the same fingerprint {fp} and cost ${repeat_cost:,.2f} in the window; "
                            f"{how}"),
            assumptions=["the same fingerprint means the same configuration and data, so the first run's output "
                         "serves the repeats" if "name" not in keys else
                         "the same name (less a random suffix) and GPU count is taken to be the same work: a guess",
                         "the first run (earliest start in the window) is the one needed; every later one is a repeat",
                         "failed runs are not counted here (failed-runs-without-checkpoints covers them)"],
            saving_formula=(f"{len(repeats)} repeat(s) x their cost = ${repeat_cost:,.2f} in the window, "
                            f"x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=pool, pool_cost=ctx.monthly(pool_cost))
