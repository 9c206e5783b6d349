"""``cheaper-hardware``: work that would cost less on another GPU type, or the same GPU in another region.

Per workload group (the pods of one owner, a lone pod or a Slurm job: ``namespace/owner_name``, else the name),
for training and batch work (serving too with ``include_serving``; committed, reserved and on-prem capacity is
left out, since its cost does not go away by moving):

- current: the group's GPU cost and GPU-hours in the window, on its GPU type (``gpu_market`` matches the
  inventory's name to a table key), bought on demand or spot (the node's ``pricing_category``);
- each alternative is an offer of the price table (or a ``prices`` override) under the same pricing model,
  from the same provider (``allow_other_providers`` for all), in any region (``allow_other_regions: false``
  for the current one only), on an instance with at least as many GPUs as a workload of the group holds (up to
  8), whose GPU memory fits: memory >= the peak framebuffer the group's telemetry shows, else >= the current
  GPU's memory x ``min_memory_ratio``;
- equivalent GPU-hours = GPU-hours x throughput(current) / throughput(alternative), ``training`` ratios for
  batch work and ``inference`` ratios for serving (``gpu_throughput.csv``: dense TFLOPS and memory-bandwidth
  ratios against the H100 SXM, or the ``throughput`` option); cost = equivalent GPU-hours x the offer's
  $/GPU-hour.

The cheapest alternative is reported when it saves at least ``min_saving_pct`` of the current GPU cost and
``min_monthly_saving`` a month: saving = current GPU cost - alternative cost. Throughput ratios are peak-spec
ratios (an upper bound on real speed-ups), so a finding is a candidate to benchmark, not a proven saving; a
move to the same GPU type elsewhere (throughput 1:1) is the sure kind. GPU types without a throughput ratio
or a memory size (in the table or the options) are neither judged nor offered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ..engine import Finding, Rule, RuleContext, rules
from ..gpu_market import OVERRIDE, GpuMarket, Price, PriceOverrides, ThroughputOverrides, provider_key, region_key

NOT_MOVABLE = ("reserved", "committed", "commitment", "savings-plan", "savingsplan", "on-prem", "onprem", "owned")


def _category(col: str) -> str:
    return f"replace(replace(lower(coalesce({col}, '')), '_', '-'), ' ', '-')"


def _d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


@rules.register("cheaper-hardware")
class CheaperHardware(Rule):
    title = "Cheaper GPU type or region for the same work"
    targets = "Batch and training work on a GPU type or region that costs more for the same work than another"
    needs = ("gpu_nodes", "workloads")

    class Options(Rule.Options):
        #: judge serving workloads too (by inference throughput); off: latency-bound serving is left alone
        include_serving: bool = False
        #: offers of other providers than the one the workload runs on
        allow_other_providers: bool = False
        #: offers in other regions than the workload's
        allow_other_regions: bool = True
        #: without memory telemetry, the alternative needs this share of the current GPU's memory
        min_memory_ratio: float = Field(1.0, gt=0)
        #: the alternative must save at least this share of the current GPU cost
        min_saving_pct: float = Field(0.2, ge=0, lt=1)
        min_monthly_saving: Decimal = Field(Decimal(50), ge=0)
        #: $ per GPU-hour by GPU type and pricing model, over the bundled table
        prices: PriceOverrides = Field(default_factory=dict)
        #: throughput ratios (H100 SXM = 1) and memory by GPU type, over the bundled table
        throughput: ThroughputOverrides = Field(default_factory=dict)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        market = GpuMarket.load(o.prices, o.throughput)
        wl, pools = ctx.workloads(), ctx.pool_costs()
        fixed = ", ".join(f"'{c}'" for c in NOT_MOVABLE)
        rows = ctx.rows(f"""
WITH g AS (
  SELECT coalesce(namespace, '') || '/' || coalesce(owner_name, name, workload_id) AS grp, mode(team) AS team,
         count(*) AS workloads, max(gpu_share) AS gpus, mode(gpu_model) AS gpu_model, mode(provider) AS provider,
         mode(region) AS region, mode(instance_type) AS instance_type, mode(pricing_category) AS pricing_category,
         bool_or(serving) AS serving, sum(gpu_cost) AS gpu_cost, sum(cost) AS cost, sum(gpu_hours) AS gpu_hours,
         list(DISTINCT pool) AS pools, list(DISTINCT coalesce(namespace, '') || '/' || name) AS pods
  FROM {wl}
  WHERE gpu_cost > 0 AND gpu_hours > 0 AND {"true" if o.include_serving else "NOT serving"}
    AND {_category("pricing_category")} NOT IN ({fixed})
  GROUP BY 1
), mem AS (
  SELECT coalesce(s.namespace, '') || '/' || s.pod AS pod, max(s.fb_used_mib) AS peak_mib
  FROM gpu_samples s WHERE NOT s._superseded AND s.ts >= $start::TIMESTAMP AND s.ts < $end::TIMESTAMP
    AND s.pod IS NOT NULL AND s.gpu_instance_id IS NULL GROUP BY 1
)
SELECT g.*, (SELECT max(peak_mib) FROM mem WHERE list_contains(g.pods, mem.pod)) AS peak_mib,
       CASE WHEN len(g.pools) = 1 THEN (SELECT cost FROM {pools} p WHERE p.pool = g.pools[1]) END AS pool_cost
FROM g ORDER BY g.gpu_cost DESC, g.grp""")
        for r in rows:
            finding = self._finding(ctx, market, r)
            if finding is not None:
                yield finding

    def _offers(self, market: GpuMarket, r: dict, pricing_model: str, need_gb: float, kind: str,
                current: str | None) -> list[tuple[Decimal, Price, float, float]]:
        """(cost per current GPU-hour, offer, throughput, memory) of every offer that can take the work."""
        o = self.options
        prov, reg = provider_key(r["provider"]), region_key(r["region"])
        min_gpus = min(math.ceil(float(r["gpus"]) - 1e-9), 8)
        tp_cur = market.throughput(r["gpu_model"], kind)
        out = []
        for offer in market.offers(pricing_model):
            if offer.provider != OVERRIDE:
                if prov and not o.allow_other_providers and offer.provider != prov:
                    continue
                if reg and not o.allow_other_regions and offer.region_key not in (None, reg):
                    continue
                if offer.gpu_count < min_gpus:
                    continue
            same_place = offer.provider in (OVERRIDE, prov) and offer.region_key in (None, reg)
            if offer.gpu_model == current and same_place:
                continue  # the hardware it runs on now
            spec = market.spec(offer.gpu_model)
            tp = market.throughput(offer.gpu_model, kind)
            if spec is None or not tp or not tp_cur or spec.memory_gb is None or spec.memory_gb < need_gb - 1e-9:
                continue
            out.append((offer.usd_per_gpu_hour * _d(tp_cur) / _d(tp), offer, tp, spec.memory_gb))
        return sorted(out, key=lambda x: x[0])

    def _finding(self, ctx: RuleContext, market: GpuMarket, r: dict) -> Finding | None:
        o = self.options
        kind = "inference" if r["serving"] else "training"
        current = market.key(r["gpu_model"])
        cur_spec = market.spec(r["gpu_model"])
        tp_cur = market.throughput(r["gpu_model"], kind)
        if cur_spec is None or tp_cur is None:
            return None
        if r["peak_mib"]:
            need_gb, need_basis = float(r["peak_mib"]) / 1024, "peak framebuffer used (telemetry)"
        elif cur_spec.memory_gb is not None:
            need_gb = cur_spec.memory_gb * o.min_memory_ratio
            need_basis = f"{o.min_memory_ratio:g} x the current GPU's {cur_spec.memory_gb:g} GB (no telemetry)"
        else:
            return None
        spot = "spot" in (r["pricing_category"] or "").lower()
        pricing_model = "spot" if spot else "on_demand"
        offers = self._offers(market, r, pricing_model, need_gb, kind, current)
        if not offers:
            return None
        _, best, tp_alt, mem_alt = offers[0]
        gpu_cost, gpu_hours = Decimal(r["gpu_cost"]), _d(r["gpu_hours"])
        equivalent = gpu_hours * _d(tp_cur) / _d(tp_alt)
        alt_cost = equivalent * best.usd_per_gpu_hour
        saving = gpu_cost - alt_cost
        if saving <= 0 or saving < gpu_cost * _d(o.min_saving_pct) or ctx.monthly(saving) < o.min_monthly_saving:
            return None
        alt_spec = market.spec(best.gpu_model)
        where = " ".join(x for x in (best.provider if best.provider != OVERRIDE else "", best.instance_type or "",
                                     best.region or "") if x) or "at your price"
        ratio = tp_alt / tp_cur
        same_gpu = best.gpu_model == current
        confidence = ("high" if same_gpu and r["peak_mib"] else
                      "low" if not r["peak_mib"] or not r["provider"] else "medium")
        if same_gpu:
            change = (f"Run {r['grp']} on the same {current} in {best.region_key or best.provider} ({where}): "
                      f"${best.usd_per_gpu_hour:,.4f}/GPU-h instead of ${gpu_cost / gpu_hours:,.4f}")
        else:
            change = (f"Run {r['grp']} on {best.gpu_model} ({where}) instead of {r['gpu_model']}: at {ratio:.2f}x the "
                      f"{kind} throughput per GPU its {float(gpu_hours):,.0f} GPU-hours become "
                      f"{float(equivalent):,.0f} at ${best.usd_per_gpu_hour:,.4f}/GPU-h; benchmark a short run first")
        pool = r["pools"][0] if len(r["pools"]) == 1 else f"group:{r['grp']}"
        pool_cost = r["pool_cost"] if r["pool_cost"] is not None else r["cost"]
        # the next cheapest other GPU type or provider: a second option, not the same card in a bigger box
        nxt = next((x for x in offers[1:] if (x[1].gpu_model, x[1].provider) != (best.gpu_model, best.provider)), None)
        runner_up = (f"{nxt[1].gpu_model} {nxt[1].provider} {nxt[1].instance_type or ''} {nxt[1].region or ''}".strip()
                     + f" at ${nxt[1].usd_per_gpu_hour:,.4f}/GPU-h = ${nxt[0]:,.4f} per current GPU-hour"
                     if nxt else None)
        return Finding(
            rule=self.kind, scope_kind="workload", scope=r["grp"], owner=r["team"],
            evidence={"workloads": r["workloads"], "gpus_per_workload": float(r["gpus"]), "work": kind,
                      "pricing_model": pricing_model, "gpu_hours": round(float(gpu_hours), 3),
                      "gpu_cost_in_window": gpu_cost,
                      "current_gpu_model": r["gpu_model"], "current_gpu_type": current,
                      "current_provider": r["provider"], "current_region": r["region"],
                      "current_instance_type": r["instance_type"], "current_price_per_gpu_hour": gpu_cost / gpu_hours,
                      "current_memory_gb": cur_spec.memory_gb,
                      "alternative_gpu_type": best.gpu_model, "alternative_provider": best.provider,
                      "alternative_instance_type": best.instance_type, "alternative_region": best.region,
                      "alternative_gpu_count": best.gpu_count, "alternative_price_per_gpu_hour": best.usd_per_gpu_hour,
                      "alternative_price_date": best.price_date,
                      "alternative_price_source": best.source_url, "alternative_memory_gb": mem_alt,
                      "throughput_current": tp_cur, "throughput_alternative": tp_alt, "throughput_ratio": ratio,
                      "throughput_basis_current": cur_spec.basis,
                      "throughput_basis_alternative": alt_spec.basis if alt_spec else None,
                      "throughput_sources": sorted({cur_spec.source_url, alt_spec.source_url if alt_spec else ""}
                                                   - {""}),
                      "equivalent_gpu_hours": round(float(equivalent), 3), "memory_needed_gb": round(need_gb, 3),
                      "memory_basis": need_basis, "alternative_cost_in_window": alt_cost,
                      "offers_considered": len(offers), "runner_up": runner_up},
            monthly_cost=ctx.monthly(gpu_cost), monthly_waste=ctx.monthly(saving), monthly_saving=ctx.monthly(saving),
            recommendation=change,
            assumptions=[f"{kind} throughput scales with the peak-spec ratio {tp_cur:g} -> {tp_alt:g} "
                         "(H100 SXM = 1; real speed-ups depend on the model, precision, kernels and interconnect)",
                         f"the work needs {need_gb:,.1f} GB per GPU ({need_basis}); "
                         f"{best.gpu_model} has {mem_alt:g} GB",
                         f"{best.gpu_model} at ${best.usd_per_gpu_hour:,.4f}/GPU-h ({pricing_model}) from "
                         f"{best.source_url} (a dated snapshot, not a quote)",
                         "the data and the work can move with it (data transfer and capacity not priced)"],
            saving_formula=(f"${gpu_cost:,.2f} - {float(gpu_hours):,.3f} GPU-h x {tp_cur:g} / {tp_alt:g} x "
                            f"${best.usd_per_gpu_hour:,.4f}/GPU-h = ${saving:,.2f} in the window, "
                            f"x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=pool, pool_cost=ctx.monthly(pool_cost))
