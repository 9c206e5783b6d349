"""``batch-on-realtime``: work that needs no answer within seconds, sent to real-time (standard tier) APIs.

Per (provider, model, feature) — pool ``llm:<provider>/<model>/<feature>`` — over the priced standard-tier requests
of the window (``RuleContext.requests()``; not cached, not self-hosted), a request is batchable when

- **by name**: its feature, service or API key alias has a word starting like one of ``patterns`` (nightly,
  backfill, eval, scoring, report, digest, ...: the names jobs get), or
- **by shape**: its group's traffic is concentrated: on at least ``burst_day_share`` of the days with at least
  ``min_day_requests`` requests (and at least ``min_days`` such days), ``burst_share`` of the day's requests fall
  within one ``burst_hours`` burst (the most requests within ``burst_hours`` after any request of the day, in SQL
  with a range window), as a scheduled job sends them.

Saving = their cost - the same tokens priced at tier ``batch``: the price catalog's batch row of the model through
the one matching rule (``llm_prices.match_sql``, keys built as ``llm_costs.pricing_ctes`` builds them, tier batch),
with the same four token parts (``llm_costs.token_parts`` / ``part_cost_sql``). A model the catalog has no batch
price for (match_sql falls back to standard) is assumed ``default_discount`` off (0.5: OpenAI's and Anthropic's
batch APIs are 50% off list, results within 24 h), and confidence drops one level.

Confidence: high for a match by name with catalog batch prices, medium by shape only (a burst is a hint, not a
schedule); one level lower when any of the saving uses the assumed discount.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...analysis.llm_costs import part_cost_sql, token_parts
from ...analysis.llm_prices import match_sql
from ...model.checks import sql_str
from ..engine import MONEY, Finding, Rule, RuleContext, llm_pool_sql, rules

#: how each provider's batch interface is called, for the recommendation
BATCH_API = {"openai": "the OpenAI Batch API (/v1/batches, 24 h completion window)",
             "azure.ai.openai": "Azure OpenAI's global batch deployments",
             "anthropic": "Anthropic's Message Batches API", "aws.bedrock": "Bedrock batch inference",
             "gcp.vertex_ai": "Vertex AI batch prediction", "gcp.gemini": "the Gemini Batch API"}
LOWER = {"high": "medium", "medium": "low", "low": "low"}


@rules.register("batch-on-realtime")
class BatchOnRealtime(Rule):
    title = "Batch work on real-time APIs"
    targets = "Nightly jobs, evals and backfills paying real-time prices: the providers' batch APIs charge half"
    needs = ("llm_requests",)

    class Options(Rule.Options):
        #: feature / service / API key names of work with no latency need (a word starting with one of these)
        patterns: list[str] = Field(default_factory=lambda: [
            "batch", "nightly", "daily", "weekly", "backfill", "eval", "scoring", "offline", "etl", "report",
            "digest", "bulk", "cron", "scheduled", "reindex", "enrich"])
        #: a group is concentrated when this share of a day's requests falls within one burst...
        burst_share: float = Field(0.8, gt=0, le=1)
        #: ...of this many hours...
        burst_hours: float = Field(2.0, gt=0, le=24)
        #: ...on at least this share of its days with min_day_requests requests, and on min_days days at least
        burst_day_share: float = Field(0.5, gt=0, le=1)
        min_day_requests: int = Field(10, ge=1)
        min_days: int = Field(2, ge=1)
        #: discount assumed where the catalog has no batch price (OpenAI and Anthropic batch APIs: 50%)
        default_discount: float = Field(0.5, ge=0, lt=1)
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        req = ctx.requests()
        words = "|".join(re.escape(p.strip().lower()) for p in o.patterns if p.strip())
        words_re = f"(^|[^a-z0-9])({words})" if words else "a^"  # no pattern: a regex that matches nothing
        # the pattern is a literal, not a parameter: DuckDB compiles a constant regex once, a parameter per row
        lit = sql_str(words_re)
        named = " OR ".join(f"regexp_matches(lower(coalesce({c}, '')), {lit})" for c in ("feature", "service",
                                                                                            "api_key"))
        burst_us = int(o.burst_hours * 3600 * 1_000_000)
        parts = token_parts("b")
        batch_cost = " + ".join(f"coalesce({part_cost_sql(expr, name, 'p')}, 0)" for name, expr in parts.items())
        keys = ("SELECT DISTINCT provider, priced_model AS model, 'batch' AS tier, hour AS ts, "
                "bucket + 1 AS input_tokens, hour, bucket FROM _bor_eligible")
        ctx.con.execute(f"""
CREATE OR REPLACE TEMP TABLE _bor_eligible AS
WITH base AS (
  SELECT *, {llm_pool_sql()} AS pool, greatest(coalesce(requests, 1), 1) AS n, ({named}) AS by_name
  FROM {req}
  WHERE price_catalog IS NOT NULL AND NOT coalesce(self_hosted, false) AND coalesce(status, 'ok') <> 'cached'
    AND coalesce(lower(tier), 'standard') IN ('standard', 'default', 'auto')
), daily AS (
  SELECT pool, day, sum(n) AS day_requests, max(in_burst) AS peak
  FROM (SELECT pool, date_trunc('day', ts) AS day, n,
               sum(n) OVER (PARTITION BY pool, date_trunc('day', ts) ORDER BY ts
                            RANGE BETWEEN CURRENT ROW AND INTERVAL {burst_us} MICROSECONDS FOLLOWING) AS in_burst
        FROM base)
  GROUP BY ALL
), shape AS (
  SELECT pool, count(*) FILTER (WHERE day_requests >= $min_day) AS busy_days,
         count(*) FILTER (WHERE day_requests >= $min_day AND peak >= $share * day_requests) AS burst_days
  FROM daily GROUP BY pool
)
SELECT b.*, coalesce(s.busy_days, 0) AS busy_days, coalesce(s.burst_days, 0) AS burst_days,
       coalesce(s.busy_days >= $min_days AND s.burst_days >= $day_share * s.busy_days, false) AS by_shape
FROM base b LEFT JOIN shape s USING (pool)
WHERE b.by_name OR coalesce(s.busy_days >= $min_days AND s.burst_days >= $day_share * s.busy_days, false)""",
                        {"min_day": o.min_day_requests, "share": o.burst_share,
                         "min_days": o.min_days, "day_share": o.burst_day_share})
        same = " AND ".join(f"p.{c} IS NOT DISTINCT FROM b.{c}" for c in ("provider", "hour", "bucket"))
        rows = ctx.rows(f"""
WITH batch_prices AS ({match_sql(ctx.con, keys, ctx.settings.llm)}),
priced AS (
  SELECT b.*, p.price_tier = 'batch' AS has_batch, p.price_model AS batch_model,
         p.input_per_mtok AS batch_input, p.output_per_mtok AS batch_output,
         CAST(CASE WHEN p.price_tier = 'batch' THEN {batch_cost}
                   ELSE b.cost * (1 - $discount) END AS {MONEY}) AS batch_cost
  FROM _bor_eligible b LEFT JOIN batch_prices p ON p.model IS NOT DISTINCT FROM b.priced_model AND {same}
), pools AS (
  SELECT pool, cost FROM {ctx.llm_pools()}
)
SELECT pool, any_value(provider) AS provider, any_value(priced_model) AS model, any_value(feature) AS feature,
       mode(team) AS team, sum(n) AS requests, sum(cost) AS cost, sum(batch_cost) AS batch_cost,
       sum(n) FILTER (WHERE by_name) AS named_requests, bool_or(by_shape) AS by_shape,
       max(busy_days) AS busy_days, max(burst_days) AS burst_days,
       sum(n) FILTER (WHERE NOT coalesce(has_batch, false)) AS assumed_requests,
       sum(cost) FILTER (WHERE NOT coalesce(has_batch, false)) AS assumed_cost,
       list(DISTINCT feature) FILTER (WHERE by_name AND regexp_matches(lower(coalesce(feature, '')), {lit}))
         AS named_features,
       list(DISTINCT service) FILTER (WHERE by_name AND regexp_matches(lower(coalesce(service, '')), {lit}))
         AS named_services,
       list(DISTINCT api_key) FILTER (WHERE by_name AND regexp_matches(lower(coalesce(api_key, '')), {lit}))
         AS named_keys,
       any_value(batch_model) FILTER (WHERE has_batch) AS batch_model,
       any_value(batch_input) FILTER (WHERE has_batch) AS batch_input,
       any_value(batch_output) FILTER (WHERE has_batch) AS batch_output,
       (SELECT cost FROM pools q WHERE q.pool = priced.pool) AS pool_cost
FROM priced GROUP BY pool ORDER BY sum(cost) - sum(batch_cost) DESC""",
                        {"discount": o.default_discount})
        for r in rows:
            finding = self._finding(ctx, r)
            if finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding:
        o = self.options
        cost, batch = Decimal(r["cost"] or 0), Decimal(r["batch_cost"] or 0)
        saving = max(cost - batch, Decimal(0))
        provider, model, feature = r["provider"] or "", r["model"] or "", r["feature"] or ""
        named = sorted({n for k in ("named_features", "named_services", "named_keys") for n in r[k] or [] if n})
        assumed = int(r["assumed_requests"] or 0)
        confidence = "high" if r["named_requests"] else "medium"
        if assumed:
            confidence = LOWER[confidence]
        why = (f"named like batch work ({', '.join(named)})" if named else
               f"sent in bursts (at least {o.burst_share:.0%} of a day's requests within {o.burst_hours:g} h on "
               f"{r['burst_days']} of {r['busy_days']} day(s))")
        api = BATCH_API.get(provider, "the provider's batch API")
        price = (f"the batch price of {r['batch_model']} (${r['batch_input']:,.4f} in / ${r['batch_output']:,.4f} out "
                 "per 1M tokens)" if r["batch_model"] else f"an assumed {o.default_discount:.0%} batch discount")
        change = (f"Send {feature or 'these requests'} ({model}) through {api}: {int(r['requests']):,} standard-tier "
                  f"request(s) {why}, at {price}")
        assumptions = ["the work can wait for a batch's results (providers complete batches within 24 h)",
                       "the same tokens are sent in batches as in real time"]
        if assumed:
            assumptions.append(f"no batch price of {model} in the catalog: {assumed:,} request(s) "
                               f"(${Decimal(r['assumed_cost'] or 0):,.2f}) assumed {o.default_discount:.0%} off, as "
                               "OpenAI's and Anthropic's batch APIs are")
        if not r["named_requests"]:
            assumptions.append("traffic concentrated in one burst a day is a scheduled job, not users")
        return Finding(
            rule=self.kind, scope_kind="feature", scope=r["pool"].removeprefix("llm:"), owner=r["team"],
            evidence={"provider": provider, "model": model, "feature": feature, "requests": int(r["requests"]),
                      "named_requests": int(r["named_requests"] or 0), "matched_names": named,
                      "concentrated": bool(r["by_shape"]), "busy_days": int(r["busy_days"] or 0),
                      "burst_days": int(r["burst_days"] or 0), "cost_in_window": cost,
                      "batch_cost_in_window": batch, "batch_price_model": r["batch_model"],
                      "requests_at_assumed_discount": assumed},
            monthly_cost=ctx.monthly(cost), monthly_waste=ctx.monthly(saving), monthly_saving=ctx.monthly(saving),
            recommendation=change, assumptions=assumptions,
            saving_formula=(f"standard-tier cost ${cost:,.4f} - the same tokens at batch prices ${batch:,.4f} = "
                            f"${saving:,.4f} in the window, x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=r["pool"], pool_cost=ctx.monthly(r["pool_cost"] or cost))
