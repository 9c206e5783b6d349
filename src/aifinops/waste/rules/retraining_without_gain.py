"""``retraining-without-gain``: retraining cycles whose evaluation metric did not improve on what the model
already had.

A model's cycles are its finished training runs (``run_metrics``: MLflow or a tracker's export), in time
order. Each cycle's result is the final value (highest step) of one evaluation metric: the first name of
``metric`` that the model's runs log (default: val_loss, eval_loss, validation_loss, loss, accuracy,
val_accuracy, ... f1, auc, ...); names with loss, error, perplexity, rmse, mse, mae, wer or cer are lower-is-
better, others higher (``higher_is_better`` overrides per metric). A cycle that started in the window, or ran
into it, is **without gain** when its value does not beat the best value of the model's cycles that ended
before it started by at least ``min_improvement`` (relative, default 0.5%): a retrained model that is no better
than the one in production bought nothing. The first cycle of a model has nothing to beat and is not judged.

Cost: a cycle costs its GPU workloads in the window, those whose run label (``llm.training_labels.run``)
equals the run's ``workload_run``. Waste = the cost of the cycles without gain; the saving is that cost per
month, on the assumption that retraining gated on data drift or a metric trigger would have skipped them and
that the window's cadence goes on. Without GPU workloads (or runs whose label no workload carries) the cycles
are still reported, with their cost unknown and counted as $0.

Not cycles: runs that failed, were killed or still run; runs without a time; nested runs
(``tags.mlflow.parentRunId``: the trials of a hyper-parameter search inside one parent run), unless
``skip_nested`` is off. One finding per model; its pool is ``retraining:<model>`` (the cost of its cycles in
the window), since one finding covers several runs (each run's own pool is ``run:<workload_run>``); it names
the runs of its cycles without gain in ``covers``, so a saving another rule finds on one of them (a failed
attempt without checkpoints) is not counted again: skipping the cycle saves all of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator

from ...model.checks import sql_str
from ..engine import Finding, Rule, RuleContext, rules

DEFAULT_METRICS = ["val_loss", "eval_loss", "validation_loss", "loss", "accuracy", "val_accuracy", "eval_accuracy",
                   "f1", "val_f1", "eval_f1", "auc", "val_auc", "roc_auc", "eval_perplexity", "perplexity", "rmse",
                   "mae", "wer"]
#: parts of a metric name that make it lower-is-better
LOWER_IS_BETTER = ("loss", "error", "perplexity", "rmse", "mse", "mae", "wer", "cer")
#: statuses of a run that completed (MLflow's FINISHED; other trackers' spellings)
DONE = ("FINISHED", "COMPLETED", "SUCCEEDED", "SUCCESS")


def higher_is_better(metric: str, overrides: dict[str, bool]) -> bool:
    name = metric.lower()
    if name in overrides:
        return overrides[name]
    return not any(part in name for part in LOWER_IS_BETTER)


@rules.register("retraining-without-gain")
class RetrainingWithoutGain(Rule):
    title = "Retraining without gain"
    targets = "Models retrained on a schedule whose new versions are no better than the ones they replace"
    needs = ("run_metrics",)

    class Options(Rule.Options):
        #: evaluation metrics tried in order; a model is judged on the first one its runs log
        metric: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
        #: metric -> whether higher is better (default: lower for loss / error names, higher for the rest)
        higher_is_better: dict[str, bool] = Field(default_factory=dict)
        #: relative improvement on the best earlier cycle below which a cycle bought nothing
        min_improvement: float = Field(0.005, ge=0)
        #: leave out nested runs (the trials of a search inside a parent run)
        skip_nested: bool = True
        #: models whose cycles without gain cost less than this ($ per month) are not reported (when priced)
        min_monthly_waste: Decimal = Field(Decimal(0), ge=0)

        @field_validator("metric", mode="before")
        @classmethod
        def _one_or_many(cls, value: Any) -> Any:
            """``metric: val_auc`` or ``metric: val_auc,val_loss`` as well as a list."""
            return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

        @field_validator("higher_is_better")
        @classmethod
        def _lower(cls, value: dict[str, bool]) -> dict[str, bool]:
            return {k.lower(): v for k, v in value.items()}

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        names = list(dict.fromkeys(m.lower() for m in o.metric))
        cand = ", ".join(f"({sql_str(m)}, {i}, {str(higher_is_better(m, o.higher_is_better)).lower()})"
                         for i, m in enumerate(names))
        priced = bool(ctx.count("workloads") and ctx.count("gpu_nodes"))
        if priced:
            costs = (f"SELECT run, sum(cost) AS cost, mode(team) AS team, count(*) AS workloads "
                     f"FROM {ctx.workloads()} WHERE run IS NOT NULL GROUP BY run")
        else:
            costs = "SELECT NULL::VARCHAR AS run, NULL::DECIMAL(38, 12) AS cost, NULL::VARCHAR AS team, 0 AS workloads"
        keys = ctx.settings.waste.owner_labels
        tag_team = (f"coalesce({', '.join(f'attributes[{sql_str(p + k)}]' for k in keys for p in ('tags.', ''))})"
                    if keys else "NULL::VARCHAR")
        nested = "AND NOT nested" if o.skip_nested else ""
        done = ", ".join(sql_str(s) for s in DONE)
        rows = ctx.rows(f"""
WITH cand(metric, pos, higher) AS (VALUES {cand}),
live AS (SELECT * FROM run_metrics WHERE NOT _superseded),
runs AS (
  SELECT source, run_id,
         arg_max(model, _batch_id) FILTER (WHERE model IS NOT NULL) AS model,
         arg_max(workload_run, _batch_id) FILTER (WHERE workload_run IS NOT NULL) AS workload_run,
         arg_max(run_name, _batch_id) FILTER (WHERE run_name IS NOT NULL) AS run_name,
         arg_max(status, _batch_id) FILTER (WHERE status IS NOT NULL) AS status,
         arg_max({tag_team}, _batch_id) FILTER (WHERE {tag_team} IS NOT NULL) AS tag_team,
         bool_or(attributes['tags.mlflow.parentRunId'] IS NOT NULL) AS nested,
         coalesce(min(start_ts), min(ts), max(end_ts)) AS started,
         coalesce(max(end_ts), max(ts), min(start_ts)) AS ended
  FROM live GROUP BY source, run_id
), finished AS (
  SELECT * FROM runs
  WHERE model IS NOT NULL AND started IS NOT NULL AND (status IS NULL OR status IN ({done})) {nested}
), finals AS (
  SELECT source, run_id, lower(metric) AS metric,
         arg_max(value, {{'s': step, 't': coalesce(ts, TIMESTAMP '-infinity'), 'b': _batch_id, 'r': _row}}) AS value
  FROM live WHERE isfinite(value) AND lower(metric) IN (SELECT metric FROM cand) GROUP BY ALL
), chosen AS (
  SELECT f.model, arg_min(c.metric, c.pos) AS metric, arg_min(c.higher, c.pos) AS higher
  FROM finished f JOIN finals v USING (source, run_id) JOIN cand c ON c.metric = v.metric GROUP BY f.model
), cycles AS (
  SELECT f.*, ch.metric, ch.higher, v.value
  FROM finished f JOIN chosen ch USING (model)
  JOIN finals v ON v.source = f.source AND v.run_id = f.run_id AND v.metric = ch.metric
), prev AS (
  SELECT c.source, c.run_id, max(p.value) AS prev_max, min(p.value) AS prev_min, count(*) AS previous
  FROM cycles c JOIN cycles p ON p.model = c.model AND p.ended <= c.started
                               AND NOT (p.source = c.source AND p.run_id = c.run_id)
  GROUP BY c.source, c.run_id
), costs AS ({costs}), judged AS (
  SELECT c.*, coalesce(pv.previous, 0) AS previous,
         CASE WHEN c.higher THEN pv.prev_max ELSE pv.prev_min END AS best_before, k.cost, k.team, k.workloads
  FROM cycles c LEFT JOIN prev pv USING (source, run_id) LEFT JOIN costs k ON k.run = c.workload_run
  WHERE c.started < $end::TIMESTAMP AND c.ended >= $start::TIMESTAMP
)
SELECT *,
       CASE WHEN best_before IS NULL THEN NULL
            WHEN higher THEN (value - best_before) / nullif(abs(best_before), 0)
            ELSE (best_before - value) / nullif(abs(best_before), 0) END AS gain,
       best_before IS NOT NULL AND NOT (
         CASE WHEN higher THEN value > best_before AND value - best_before >= $m * abs(best_before) - 1e-12
              ELSE value < best_before AND best_before - value >= $m * abs(best_before) - 1e-12 END) AS without_gain
FROM judged ORDER BY model, started, source, run_id""", {"m": o.min_improvement})
        by_model: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_model.setdefault(r["model"], []).append(r)
        for model, cycles in by_model.items():
            finding = self._finding(ctx, model, cycles, priced)
            if finding is not None:
                yield finding

    def _finding(self, ctx: RuleContext, model: str, cycles: list[dict[str, Any]], priced: bool) -> Finding | None:
        o = self.options
        wasted = [c for c in cycles if c["without_gain"]]
        if not wasted:
            return None
        zero = Decimal(0)
        cost = sum((Decimal(c["cost"]) for c in cycles if c["cost"] is not None), zero)
        waste = sum((Decimal(c["cost"]) for c in wasted if c["cost"] is not None), zero)
        unknown = [c for c in wasted if c["cost"] is None]
        if not unknown and ctx.monthly(waste) < o.min_monthly_waste:
            return None
        metric, higher = cycles[0]["metric"], cycles[0]["higher"]
        direction = "higher is better" if higher else "lower is better"
        label = ctx.settings.llm.training_labels.get("run", "run")
        teams = [c["team"] or c["tag_team"] for c in cycles if c["team"] or c["tag_team"]]
        owner = max(sorted(set(teams)), key=teams.count) if teams else None
        names = ", ".join(c["run_name"] or c["run_id"] for c in wasted)
        best = wasted[0]["best_before"]
        change = (f"Retrain {model} only when data drift or a metric trigger says so, not on a schedule: "
                  f"{len(wasted)} of {len(cycles)} cycle(s) in the window ({names}) did not beat the best {metric} "
                  f"before them ({best:.6g}, {direction}) by {o.min_improvement:.1%}")
        if unknown:
            why = ("no GPU workloads are loaded" if not priced else
                   f"no GPU workload carries their {label} label ({', '.join(c['workload_run'] for c in unknown)})")
            change += (f"; the GPU cost of {len(unknown)} of them is unknown ({why}): label their workloads "
                       f"{label}=<workload_run> to price them")
        else:
            change += f"; they cost ${ctx.monthly(waste).quantize(Decimal('1e-12')):,.2f} a month"
        assumptions = [
            f"a cycle's result is the final value (highest step) of {metric} ({direction}); one that does not beat "
            f"the best earlier cycle of {model} by {o.min_improvement:.1%} bought nothing: the model in production "
            "was at least as good",
            "retraining gated on data drift or a metric trigger would have skipped those cycles, and the window's "
            "retraining cadence goes on",
            f"a cycle costs its GPU workloads in the window: those whose {label} label equals the run's workload_run",
        ]
        if unknown:
            assumptions.append(f"{len(unknown)} cycle(s) without gain have no priced GPU workload: cost unknown, "
                               "counted as $0 (the saving is a lower bound)")
        terms = " + ".join(f"{c['run_name'] or c['run_id']} ${Decimal(c['cost'] or 0):,.2f}" for c in wasted)
        return Finding(
            rule=self.kind, scope_kind="model", scope=model, owner=owner,
            evidence={"model": model, "metric": metric, "direction": direction,
                      "min_improvement": o.min_improvement, "cycles_in_window": len(cycles),
                      "cycles_without_gain": len(wasted), "best_before_window": cycles[0]["best_before"],
                      "cost_of_cycles_in_window": cost, "cost_without_gain_in_window": waste,
                      "cycles_with_unknown_cost": [c["run_id"] for c in cycles if c["cost"] is None],
                      "cycles": [{"run_id": c["run_id"], "run_name": c["run_name"], "source": c["source"],
                                  "workload_run": c["workload_run"], "started": c["started"], "ended": c["ended"],
                                  "value": c["value"], "best_before": c["best_before"],
                                  "gain": None if c["gain"] is None else round(float(c["gain"]), 6),
                                  "without_gain": bool(c["without_gain"]),
                                  "cost_in_window": None if c["cost"] is None else Decimal(c["cost"]),
                                  "workloads": c["workloads"] or 0} for c in cycles]},
            monthly_cost=ctx.monthly(cost), monthly_waste=ctx.monthly(waste), monthly_saving=ctx.monthly(waste),
            recommendation=change, assumptions=assumptions,
            saving_formula=f"cycles without gain: {terms} = ${waste:,.2f} in the window, x {ctx.month_factor:.4f} "
                           "to a month",
            confidence="low" if unknown else "high" if len(wasted) >= 2 else "medium",
            pool=f"retraining:{model}", pool_cost=ctx.monthly(cost),
            # skipping a cycle saves all of its run's dollars: other findings on those runs save nothing more
            covers=[f"run:{c['workload_run']}" for c in wasted if c["workload_run"] and c["cost"] is not None])
