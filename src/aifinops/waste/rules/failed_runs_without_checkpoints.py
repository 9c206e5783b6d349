"""``failed-runs-without-checkpoints``: GPU-hours of training attempts that failed or were preempted, and whose
work was lost because the retry started from zero.

A **run** is the workloads that share the run label (``llm.training_labels['run']``: the pods of a
distributed job, its restarts); each workload is an **attempt**, failed when it ended Failed, OOMKilled,
PREEMPTED, NODE_FAIL, TIMEOUT, CANCELLED... (``workload_costs.FAILED``). Per failed attempt: ``h`` = the hours
it held its GPUs in the window (GPU-hours / GPUs) and ``c`` = its cost (GPU, CPU, memory, shared).

Whether a run checkpoints comes from the first of ``checkpoint_labels`` found in its labels or annotations:
a duration (``30m``, ``1h``, ``1h30m``, ``PT1H``, ``3600`` seconds) is the interval ``J``; ``false`` / ``no`` /
``none`` / ``0`` says it does not; any other value (``true``, a checkpoint path) says it does, at an unknown
interval, taken as ``assumed_interval_hours``. A failure loses on average half an interval of work, so with
``I`` = ``assumed_interval_hours`` (default 1 h):

- **no checkpoints**: waste = the failed attempts' cost (everything was redone); saving = waste - the expected
  loss with checkpoints every ``I``: ``sum(c - c x min(h, I/2) / h)``;
- **checkpoints every J**: waste = the expected loss ``sum(c x min(h, J/2) / h)``; saving = that loss less the
  loss at ``I``, so only runs checkpointing less often than every ``I`` are reported.

Runs saving less than ``min_monthly_saving`` are not reported. The pool is the run (``run:<run>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...model.checks import sql_str
from ..engine import Finding, Rule, RuleContext, rules

NO = ("false", "no", "none", "off", "disabled", "0", "")
YES = ("true", "yes", "on", "enabled", "1")
_UNITS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)?")


def interval_hours(value: str) -> float | None:
    """A checkpoint interval as written in a label, in hours (``30m`` -> 0.5, ``3600`` -> 1.0, ``PT1H30M`` ->
    1.5); None when the value is not a duration."""
    text = value.strip().lower()
    if text.startswith("pt"):
        text = text[2:]
    if not text or not re.fullmatch(rf"(?:{_PART.pattern}\s*)+", text):
        return None
    total = 0.0
    for number, unit in _PART.findall(text):
        total += float(number) * _UNITS[(unit or "s")[0]]
    return total


def checkpointing(value: str | None, assumed: float) -> tuple[str, float | None]:
    """(state, interval hours): ``unknown`` (no label), ``none`` (says it does not), ``interval`` (J from the
    value) or ``assumed`` (it checkpoints at an unknown interval: ``assumed``)."""
    if value is None:
        return "unknown", None
    text = value.strip().lower()
    if text in NO:
        return "none", None
    if text in YES:
        return "assumed", assumed
    hours = interval_hours(text)
    if hours is None:
        return "assumed", assumed
    return ("interval", hours) if hours > 0 else ("none", None)


def expected_loss(attempts: list[dict], interval: float) -> Decimal:
    """The work the failed attempts would lose with a checkpoint every ``interval`` hours: half an interval
    each (all of an attempt shorter than that), at the attempt's cost per hour."""
    total = Decimal(0)
    for a in attempts:
        hours, cost = float(a["hours"]), Decimal(a["cost"])
        # multiply before dividing: 48 x 2 / 6 is 16 exactly
        total += cost if hours <= interval / 2 else cost * Decimal(repr(interval / 2)) / Decimal(repr(hours))
    return total


@rules.register("failed-runs-without-checkpoints")
class FailedRunsWithoutCheckpoints(Rule):
    title = "Failed runs without checkpoints"
    targets = "Training attempts that fail or are preempted and restart from zero, paying for the same steps again"
    needs = ("gpu_nodes", "workloads")

    class Options(Rule.Options):
        #: labels or annotations saying whether (and how often) a run checkpoints; the first present wins
        checkpoint_labels: list[str] = Field(
            default_factory=lambda: ["checkpoint", "checkpoint-interval", "checkpoint_interval"])
        #: the checkpoint interval recommended (hours): a failure then loses half of it on average
        assumed_interval_hours: float = Field(1.0, gt=0)
        #: runs saving less than this ($ per month) are not reported
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        wl, pools = ctx.workloads(), ctx.pool_costs()
        keys = [f"{m}[{sql_str(k)}]" for k in o.checkpoint_labels for m in ("labels", "annotations")]
        label = f"coalesce({', '.join(keys)})" if keys else "NULL::VARCHAR"
        rows = ctx.rows(f"""
WITH att AS (
  SELECT run, workload_id, outcome, phase, team, cost, gpu_hours, gpu_hours / nullif(gpu_share, 0) AS hours,
         start_ts, end_ts, {label} AS ckpt,
         min(end_ts) FILTER (WHERE outcome = 'failed') OVER (PARTITION BY run) AS first_failure
  FROM {wl} WHERE run IS NOT NULL
), runs AS (
  SELECT run, count(*) AS attempts, count(*) FILTER (WHERE outcome = 'failed') AS failed_attempts,
         arg_max(outcome, coalesce(end_ts, 'infinity'::TIMESTAMP)) AS run_outcome, mode(team) AS team,
         sum(cost) AS cost, sum(cost) FILTER (WHERE outcome = 'failed') AS failed_cost,
         sum(gpu_hours) FILTER (WHERE outcome = 'failed') AS failed_gpu_hours,
         sum(gpu_hours) AS gpu_hours, list(DISTINCT phase ORDER BY phase) FILTER (WHERE outcome = 'failed') AS phases,
         min(ckpt) AS ckpt,
         list({{'hours': hours, 'cost': cost}}) FILTER (WHERE outcome = 'failed' AND hours > 0) AS failed,
         count(*) FILTER (WHERE start_ts >= first_failure) AS retries
  FROM att GROUP BY run HAVING count(*) FILTER (WHERE outcome = 'failed' AND hours > 0) > 0
)
SELECT r.*, p.cost AS pool_cost FROM runs r LEFT JOIN {pools} p ON p.pool = 'run:' || r.run
ORDER BY r.failed_cost DESC, r.run""")
        for r in rows:
            finding = self._finding(ctx, r)
            if finding is not None and finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding | None:
        o = self.options
        assumed = o.assumed_interval_hours
        state, interval = checkpointing(r["ckpt"], assumed)
        failed_cost = Decimal(r["failed_cost"] or 0)
        at_assumed = expected_loss(r["failed"], assumed)
        if state in ("none", "unknown"):
            waste, saving = failed_cost, failed_cost - at_assumed
            now = "the retries restarted from zero" if r["retries"] else "their work was lost"
            change = (f"Checkpoint run {r['run']} every {assumed:g} h and resume retries from the last checkpoint "
                      f"(and label its workloads {o.checkpoint_labels[0]}={assumed:g}h)" if o.checkpoint_labels else
                      f"Checkpoint run {r['run']} every {assumed:g} h and resume retries from the last checkpoint")
            formula = (f"failed ${failed_cost:,.2f} - expected loss at one checkpoint every {assumed:g} h "
                       f"(min(h, {assumed / 2:g} h) of each failed attempt) ${at_assumed:,.2f} = ${saving:,.2f}")
        else:
            interval = interval or assumed
            waste = expected_loss(r["failed"], interval)
            saving = max(waste - at_assumed, Decimal(0))
            if saving <= 0:
                return None
            now = f"lost ~{interval / 2:g} h each since the last checkpoint (every {interval:g} h)"
            change = f"Checkpoint run {r['run']} every {assumed:g} h instead of every {interval:g} h"
            formula = (f"expected loss at every {interval:g} h ${waste:,.2f} - at every {assumed:g} h "
                       f"${at_assumed:,.2f} = ${saving:,.2f}")
        phases = [p for p in (r["phases"] or []) if p]
        change += (f": {r['failed_attempts']} of its {r['attempts']} attempts failed ({', '.join(phases) or 'failed'}) "
                   f"and {now}, {float(r['failed_gpu_hours'] or 0):,.1f} GPU-h, ${failed_cost:,.2f} in the window")
        pool_cost = r["pool_cost"] if r["pool_cost"] is not None else r["cost"]
        return Finding(
            rule=self.kind, scope_kind="run", scope=r["run"], owner=r["team"],
            evidence={"attempts": r["attempts"], "failed_attempts": r["failed_attempts"],
                      "retries_after_a_failure": r["retries"], "failure_phases": phases,
                      "failed_gpu_hours": round(float(r["failed_gpu_hours"] or 0), 3),
                      "failed_cost_in_window": failed_cost, "run_cost_in_window": Decimal(r["cost"]),
                      "run_outcome": r["run_outcome"], "checkpoint_label": r["ckpt"], "checkpointing": state,
                      "checkpoint_interval_hours": interval},
            monthly_cost=ctx.monthly(r["cost"]), monthly_waste=ctx.monthly(waste), monthly_saving=ctx.monthly(saving),
            recommendation=change,
            assumptions=["a failure loses the work since the last checkpoint: half an interval on average, all of an "
                         "attempt shorter than that",
                         "without a checkpoint label the run is taken not to checkpoint (its retries start from zero)"
                         if state == "unknown" else f"checkpointing: {state} ({r['ckpt']})",
                         "writing checkpoints costs nothing measurable next to the GPU time",
                         "failures continue at the window's rate"],
            saving_formula=f"{formula} in the window, x {ctx.month_factor:.4f} to a month",
            confidence="high" if state in ("none", "interval") else "medium",
            pool=f"run:{r['run']}", pool_cost=ctx.monthly(pool_cost))
