"""``commitment-coverage``: a steady GPU baseline paid at on-demand prices, which a commitment would cover.

Per node pool and GPU model (the pool is ``node_pool``, else the GPU model, as ``idle-gpu-capacity`` names it),
from the hourly allocation:

1. On-demand GPUs of each hour of the window: the GPUs of the pool's nodes that had cost in the hour (not
   stopped), bought on demand: ``pricing_category`` on-demand, or unknown with bill lines of FOCUS
   PricingCategory ``Standard``. Already committed capacity is left out: ``reserved`` (or ``committed``,
   ``savings-plan``) nodes, and hours whose bill lines carry a ``CommitmentDiscountId`` or PricingCategory
   ``Committed``. Counted two ways: *running* (every GPU of those nodes) and *held* (the GPU-equivalents
   workloads held on them). An hour without any such node counts 0.
2. Baseline = the ``percentile`` of the hourly counts (default 0: the minimum, what ran in every hour; 0.1
   accepts paying for the commitment unused in the 10% of hours below it), of held GPUs by default
   (``baseline_of: held``), rounded down: GPUs that run but nobody holds are ``idle-gpu-capacity``'s to
   remove, not capacity to commit to for a year. ``baseline_of: running`` counts every running GPU.
3. On-demand $ per GPU-hour = the pool's on-demand cost / its running on-demand GPU-hours (the allocation's
   cost: the bill's EffectiveCost when the ledger covers the nodes, else the inventory price).
4. Discount: ``discount`` if set; else observed in the ledger: 1 - EffectiveCost / ListCost of compute usage
   lines under a commitment in the window (CommitmentDiscountId set or PricingCategory Committed; unused
   commitment lines excluded), the pool's provider's lines when there are any, else all; else
   ``default_discount`` = 0.35. That default is a 1-year, no-upfront figure for GPU instances: a GPU knowledge
   base quotes A100 at $1.80-2.25 per GPU-hour on demand and $1.10-1.40 on a 1-year reservation, about 38% off
   (https://www.yobitel.com/knowledge-base/nvidia-a100), and AWS's own description of 1-year No Upfront
   Reserved Instances is "typically about 30%" (quoted at https://ntalam.com/es/glossary/upfront-costs/); 0.35
   sits between them. Set yours from the provider's savings-plan rates for the instance family.

Saving = baseline GPUs x window hours x on-demand $/GPU-hour x discount. A commitment is paid every hour of its
term, so it is sized to what ran in every hour, and judged only on a window of at least ``min_window_days``
(default 7, the shortest look-back AWS Cost Explorer offers for savings-plan recommendations): a shorter window
skips the rule and says so. Reported when the baseline is at least ``min_baseline_gpus`` and the saving at least
``min_monthly_saving``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from pydantic import Field

from ..engine import Finding, Rule, RuleContext, rules
from ..gpu_market import provider_key

COSTS = '"gpuCost" + "cpuCost" + "ramCost" + "gpuCostIdle" + "cpuCostIdle" + "ramCostIdle"'
COMMITTED = ("reserved", "committed", "commitment", "savings-plan", "savingsplan", "ri")


def _category(col: str) -> str:
    return f"replace(replace(lower(coalesce({col}, '')), '_', '-'), ' ', '-')"


@rules.register("commitment-coverage")
class CommitmentCoverage(Rule):
    title = "Steady GPU baseline on on-demand prices"
    targets = "GPUs that run every hour on on-demand prices, which a savings plan or reservation would cover cheaper"
    needs = ("gpu_nodes",)

    class Options(Rule.Options):
        #: percentile of the hourly on-demand GPU count taken as the baseline (0: the minimum)
        percentile: float = Field(0.0, ge=0, le=1)
        #: count the GPUs workloads held (held) or every GPU of the running nodes (running)
        baseline_of: Literal["held", "running"] = "held"
        #: a shorter window says too little about a year: the rule is skipped
        min_window_days: float = Field(7.0, ge=0)
        #: commitment discount when the ledger shows none (1-year, no upfront; see the rule's docstring)
        default_discount: float = Field(0.35, gt=0, lt=1)
        #: a discount of your own (e.g. from your provider's savings-plan rates): beats the ledger's
        discount: float | None = Field(None, gt=0, lt=1)
        min_baseline_gpus: int = Field(1, ge=1)
        min_monthly_saving: Decimal = Field(Decimal(50), ge=0)

    def missing(self, ctx: RuleContext) -> str | None:
        reason = super().missing(ctx)
        if reason is None and ctx.hours < self.options.min_window_days * 24:
            return (f"the window ({ctx.hours / 24:,.1f} days of data) is shorter than min_window_days "
                    f"({self.options.min_window_days:g}): too little to size a 1-year commitment")
        return reason

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        rows = self._baselines(ctx)
        discounts = self._ledger_discounts(ctx) if ctx.count("focus_charges") else {}
        models = Counter(r["pool"] for r in rows)
        for r in rows:
            counted = r["baseline_held"] if o.baseline_of == "held" else r["baseline_running"]
            baseline = math.floor(float(counted or 0) + 1e-9)
            if baseline < o.min_baseline_gpus or not r["od_gpu_hours"]:
                continue
            price = Decimal(r["od_cost"]) / Decimal(repr(float(r["od_gpu_hours"])))
            if price <= 0:
                continue
            discount, source = self._discount(discounts, r["provider"])
            hours = Decimal(repr(ctx.hours))
            saving = Decimal(baseline) * hours * price * discount
            if ctx.monthly(saving) < o.min_monthly_saving:
                continue
            yield self._finding(ctx, r, baseline, price, discount, source, saving, models[r["pool"]] > 1)

    def _discount(self, observed: dict[str, dict], provider: str | None) -> tuple[Decimal, dict]:
        o = self.options
        if o.discount is not None:
            return Decimal(repr(o.discount)), {"source": "option discount"}
        line = observed.get(provider_key(provider) or "") or observed.get("*")
        if line:
            d = 1 - Decimal(line["effective"]) / Decimal(line["list"])
            if 0 < d < 1:
                return d, {"source": "ledger", "provider": line["provider"], "lines": line["lines"],
                           "list_cost": line["list"], "effective_cost": line["effective"]}
        return Decimal(repr(o.default_discount)), {"source": "option default_discount"}

    def _ledger_discounts(self, ctx: RuleContext) -> dict[str, dict]:
        rows = ctx.rows("""
SELECT coalesce(lower("ProviderName"), '') AS provider, count(*) AS lines, sum("ListCost") AS list,
       sum("EffectiveCost") AS effective
FROM focus_charges
WHERE ("CommitmentDiscountId" IS NOT NULL OR lower("PricingCategory") = 'committed')
  AND lower(coalesce("ServiceCategory", 'compute')) = 'compute' AND lower(coalesce("ChargeCategory", 'usage')) = 'usage'
  AND lower(coalesce("CommitmentDiscountStatus", 'used')) <> 'unused' AND "ListCost" > 0
  AND "ChargePeriodStart" >= $start::TIMESTAMP AND "ChargePeriodStart" < $end::TIMESTAMP
GROUP BY ALL""")
        out: dict[str, dict] = {}
        for r in rows:
            out[provider_key(r["provider"]) or ""] = r
        if rows:
            out["*"] = {"provider": "all", "lines": sum(r["lines"] for r in rows),
                        "list": sum(Decimal(r["list"]) for r in rows),
                        "effective": sum(Decimal(r["effective"]) for r in rows)}
        return out

    def _baselines(self, ctx: RuleContext) -> list[dict]:
        alloc = ctx.allocation()
        committed = ", ".join(f"'{c}'" for c in COMMITTED)
        return ctx.rows(f"""
WITH inv AS (
  SELECT node, resource_id FROM gpu_nodes WHERE gpu_count > 0
  QUALIFY row_number() OVER (PARTITION BY node ORDER BY _batch_id DESC, _row DESC) = 1
), nb AS (
  SELECT coalesce(node_pool, gpu_model, 'default') AS pool, node, bucket, any_value(gpu_model) AS gpu_model,
         any_value(node_gpus) AS gpus, any_value(pricing_category) AS category,
         any_value(cost_source) AS cost_source, any_value(provider) AS provider,
         any_value(instance_type) AS instance_type, any_value(owner) AS owner, sum({COSTS}) AS cost,
         coalesce(sum("gpuHours") FILTER (WHERE kind <> 'idle'), 0) AS held_hours,
         (epoch(least(bucket + INTERVAL 1 HOUR, $end::TIMESTAMP)) - epoch(bucket)) / 3600 AS bh
  FROM {alloc} GROUP BY 1, 2, 3
), billed AS (
  SELECT nb.*,
         EXISTS (SELECT 1 FROM focus_charges c WHERE c."ResourceId" = inv.resource_id
                   AND c."ChargePeriodStart" < nb.bucket + INTERVAL 1 HOUR AND c."ChargePeriodEnd" > nb.bucket
                   AND (c."CommitmentDiscountId" IS NOT NULL OR lower(c."PricingCategory") = 'committed'))
           AS committed_bill,
         EXISTS (SELECT 1 FROM focus_charges c WHERE c."ResourceId" = inv.resource_id
                   AND c."ChargePeriodStart" < nb.bucket + INTERVAL 1 HOUR AND c."ChargePeriodEnd" > nb.bucket
                   AND lower(c."PricingCategory") = 'standard') AS standard_bill
  FROM nb LEFT JOIN inv USING (node)
), od AS (
  SELECT *, cost > 0 AND cost_source <> 'stopped' AS running,
         CASE WHEN {_category("category")} IN ({committed}) OR committed_bill THEN 'committed'
              WHEN {_category("category")} IN ('on-demand', 'ondemand') OR (category IS NULL AND standard_bill)
                THEN 'on-demand'
              ELSE 'other' END AS buy
  FROM billed
), hours AS (SELECT unnest(range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 HOUR)) AS bucket),
hourly AS (
  SELECT pool, gpu_model, bucket, sum(gpus) AS gpus,
         sum(least(held_hours / nullif(bh, 0), gpus)) AS held
  FROM od WHERE running AND buy = 'on-demand' GROUP BY ALL
), every_hour AS (
  -- an hour in which none of the pool's on-demand GPUs ran counts 0: a commitment is paid every hour
  SELECT k.pool, k.gpu_model, coalesce(x.gpus, 0) AS gpus, coalesce(x.held, 0) AS held
  FROM (SELECT DISTINCT pool, gpu_model FROM hourly) k CROSS JOIN hours h
  LEFT JOIN hourly x ON x.pool = k.pool AND x.gpu_model IS NOT DISTINCT FROM k.gpu_model AND x.bucket = h.bucket
), stats AS (
  SELECT pool, gpu_model, quantile_disc(gpus, $p) AS baseline_running, quantile_disc(held, $p) AS baseline_held,
         min(gpus) AS min_gpus, median(gpus) AS median_gpus, max(gpus) AS peak_gpus, min(held) AS min_held,
         median(held) AS median_held
  FROM every_hour GROUP BY ALL
), spend AS (
  SELECT pool, gpu_model, sum(cost) AS od_cost, sum(gpus * bh) AS od_gpu_hours, count(DISTINCT node) AS od_nodes,
         mode(gpus) AS gpus_per_node, mode(provider) AS provider, mode(instance_type) AS instance_type,
         mode(owner) AS owner
  FROM od WHERE running AND buy = 'on-demand' GROUP BY ALL
), other AS (
  SELECT pool, gpu_model, coalesce(sum(gpus * bh) FILTER (WHERE buy = 'committed'), 0) AS committed_gpu_hours,
         count(DISTINCT node) FILTER (WHERE buy = 'committed') AS committed_nodes,
         coalesce(sum(gpus * bh) FILTER (WHERE buy = 'other'), 0) AS other_gpu_hours
  FROM od WHERE running GROUP BY ALL
), pools AS (SELECT pool, sum(cost) AS pool_cost FROM nb GROUP BY pool)
SELECT s.*, st.baseline_running, st.baseline_held, st.min_gpus, st.median_gpus, st.peak_gpus, st.min_held,
       st.median_held, o.committed_gpu_hours, o.committed_nodes,
       o.other_gpu_hours, p.pool_cost
FROM spend s JOIN stats st ON st.pool = s.pool AND st.gpu_model IS NOT DISTINCT FROM s.gpu_model
LEFT JOIN other o ON o.pool = s.pool AND o.gpu_model IS NOT DISTINCT FROM s.gpu_model
LEFT JOIN pools p ON p.pool = s.pool
ORDER BY s.od_cost DESC, s.pool""", {"p": self.options.percentile})

    def _finding(self, ctx: RuleContext, r: dict, baseline: int, price: Decimal, discount: Decimal, source: dict,
                 saving: Decimal, several_models: bool) -> Finding:
        o = self.options
        pool, model = r["pool"], r["gpu_model"]
        per_node = int(r["gpus_per_node"] or 0)
        nodes = f"{baseline // per_node} x {r['instance_type'] or f'{per_node}-GPU node'}" \
            if per_node and baseline % per_node == 0 else f"{baseline} GPUs"
        commit = Decimal(baseline) * price * (1 - discount)
        share = "every hour" if o.percentile == 0 else f"at least {1 - o.percentile:.0%} of the hours"
        what = "workloads held" if o.baseline_of == "held" else "ran"
        observed = source["source"] == "ledger"
        confidence = "high" if observed and ctx.hours >= 14 * 24 and o.percentile == 0 else "medium"
        return Finding(
            rule=self.kind, scope_kind="node_pool", scope=f"{pool}/{model}" if several_models else pool,
            owner=r["owner"],
            evidence={"gpu_model": model, "provider": r["provider"], "instance_type": r["instance_type"],
                      "on_demand_nodes": r["od_nodes"], "gpus_per_node": per_node,
                      "baseline_gpus": baseline, "baseline_of": o.baseline_of, "percentile": o.percentile,
                      "baseline_running_gpus": r["baseline_running"],
                      "baseline_held_gpus": round(float(r["baseline_held"] or 0), 3),
                      "min_gpus_in_an_hour": r["min_gpus"], "median_gpus": r["median_gpus"],
                      "peak_gpus": r["peak_gpus"], "min_held_gpus_in_an_hour": round(float(r["min_held"] or 0), 3),
                      "median_held_gpus": round(float(r["median_held"] or 0), 3),
                      "on_demand_gpu_hours": round(float(r["od_gpu_hours"]), 3),
                      "on_demand_cost_in_window": r["od_cost"], "price_per_gpu_hour": price,
                      "discount": discount, **{f"discount_{k}": v for k, v in source.items()},
                      "committed_gpu_hours_excluded": round(float(r["committed_gpu_hours"] or 0), 3),
                      "committed_nodes_excluded": r["committed_nodes"] or 0,
                      "other_pricing_gpu_hours_excluded": round(float(r["other_gpu_hours"] or 0), 3)},
            monthly_cost=ctx.monthly(r["od_cost"]), monthly_waste=ctx.monthly(saving),
            monthly_saving=ctx.monthly(saving),
            recommendation=(f"Commit to {baseline} {model} GPUs of {pool} ({nodes}) for 1 year: a savings plan or "
                            f"reservation of about ${commit:,.2f}/h covers the on-demand GPUs {what} in {share} of "
                            f"the window, at {discount:.0%} below the ${price:,.4f}/GPU-h they cost now"),
            assumptions=[f"the baseline of {baseline} GPUs running on demand continues for the commitment's term",
                         f"discount {discount:.4f} from {source['source']}"
                         + (" (1-year no-upfront figure: see the rule's reference)"
                            if source["source"] == "option default_discount" else ""),
                         f"${price:,.4f}/GPU-h (the pool's on-demand cost / GPU-hours) is the on-demand rate",
                         "reserved nodes and hours the bill already puts under a commitment are not counted"],
            saving_formula=(f"{baseline} GPUs x {ctx.hours:,.1f} h x ${price:,.4f}/GPU-h x {discount:.4f} = "
                            f"${saving:,.2f} in the window, x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=f"node_pool:{pool}", pool_cost=ctx.monthly(r["pool_cost"]))
