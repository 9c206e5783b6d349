"""``cacheable-prompts``: the same prompt sent again and again, and long shared prefixes sent without provider
prompt caching.

From the prompt fingerprints the sources keep (``model.llm.PROMPT_COLUMNS``: ``prompt_hash`` of the whole prompt,
``prefix_hash`` and ``prefix_tokens`` of its system prompt and tools), over the priced API requests of the window
(``RuleContext.requests()``; not cached, not self-hosted), each request at the price row it was priced at (a row is
one request: the sources that fingerprint prompts give one row per request):

**(a) a response cache.** Requests of one provider, model and ``prompt_hash`` seen at least ``min_repeats`` times
in the window: a cache keyed on model and prompt answers all but the first request of each
``response_cache_ttl_hours`` period, counted from the prompt's first request (an entry lives a TTL from its
write; periods on that grid hold at least as many misses as a real cache has, so the count is conservative).
Saving = the cost of those requests.

**(b) provider prompt caching.** The requests left (not answered by (a)) whose ``prefix_hash`` (of at least
``min_prefix_tokens``, the providers' minimum cacheable prefix: 1,024) is shared, in groups of one provider, model
and prefix where no request read from a cache (``cache_read_tokens`` 0: caching is not on). Ordered by time, a
request within ``prompt_cache_ttl_minutes`` of the previous one of its group finds the prefix cached (providers
keep it that long after its last use); the others write it. Per request, with ``p`` = min(prefix_tokens, input
tokens that are not cache writes):

    warm:  p x (input price - cache-read price)          saved
    cold:  p x (cache-write price - input price)         paid extra (Anthropic's 1.25x writes; 0 where the
                                                         catalog has no write price, as OpenAI's)

(prices per 1M tokens, x 1e-6; a missing cache-read price is the input price: no saving). A prefix group whose
net is not positive is left out: caching it would not pay.

Reported per (provider, model, feature), pool ``llm:<provider>/<model>/<feature>``, when (a) + (b) is at least
``min_monthly_saving``. Confidence: high when prompt caching is most of the saving (it changes no answer), medium
when a response cache is (identical prompts can still want fresh answers: sampling, time-dependent tools).
Skipped, saying which sources fill them, when no request has a fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ..engine import MONEY, Finding, Rule, RuleContext, llm_pool_sql, rules

#: how to turn prompt caching on, by provider
PROMPT_CACHING = {
    "anthropic": "mark it with cache_control (Anthropic prompt caching)",
    "aws.bedrock": "add a cachePoint after it (Bedrock prompt caching)",
    "gcp.vertex_ai": "mark it with cache_control (Claude on Vertex) or use context caching (Gemini)",
    "gcp.gemini": "use Gemini context caching",
    "openai": "keep it first and byte-identical, and set prompt_cache_key (OpenAI caches 1,024+ token prefixes "
              "automatically)",
    "azure.ai.openai": "keep it first and byte-identical (Azure OpenAI caches 1,024+ token prefixes automatically)",
}


@rules.register("cacheable-prompts")
class CacheablePrompts(Rule):
    title = "Cacheable prompts"
    targets = "The same prompts paid for again and again, and long shared system prompts sent without prompt caching"
    needs = ("llm_requests",)

    class Options(Rule.Options):
        #: a prompt seen at least this many times in the window is worth a response cache
        min_repeats: int = Field(3, ge=2)
        #: how long a cached response is served
        response_cache_ttl_hours: float = Field(24.0, gt=0)
        #: how long providers keep a prefix cached after its last use (Anthropic and OpenAI: 5 minutes)
        prompt_cache_ttl_minutes: float = Field(5.0, gt=0)
        #: the shortest prefix providers cache
        min_prefix_tokens: int = Field(1024, ge=0)
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

    def missing(self, ctx: RuleContext) -> str | None:
        reason = super().missing(ctx)
        if reason:
            return reason
        n = ctx.con.execute("SELECT count(*) FROM llm_requests WHERE NOT _superseded AND "
                            "(prompt_hash IS NOT NULL OR prefix_hash IS NOT NULL)").fetchone()[0]
        if not n:
            return ("no prompt fingerprints (prompt_hash, prefix_hash): aifinops ingest otel fills them from spans "
                    "that carry the prompt (gen_ai.input.messages, gen_ai.system_instructions: content capture on), "
                    "litellm from spend logs kept with store_prompts_in_spend_logs, llm-usage from mapped columns")
        return None

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        req = ctx.requests()
        ctx.con.execute(f"""
CREATE OR REPLACE TEMP TABLE _cp_base AS
SELECT *, {llm_pool_sql()} AS pool, row_number() OVER () AS _rid FROM {req}
WHERE price_catalog IS NOT NULL AND NOT coalesce(self_hosted, false) AND coalesce(status, 'ok') <> 'cached'
  AND (prompt_hash IS NOT NULL OR prefix_hash IS NOT NULL)""")
        hit_saving = ("cacheable * (input_per_mtok - coalesce(cache_read_per_mtok, input_per_mtok)) * 0.000001")
        premium = ("cacheable * greatest(coalesce(cache_write_per_mtok, input_per_mtok) - input_per_mtok, 0) "
                   "* 0.000001")
        rows = ctx.rows(f"""
WITH rc1 AS (
  SELECT _rid, provider, priced_model, prompt_hash, ts,
         min(ts) OVER (PARTITION BY provider, priced_model, prompt_hash) AS first_ts,
         count(*) OVER (PARTITION BY provider, priced_model, prompt_hash) AS repeats
  FROM _cp_base WHERE prompt_hash IS NOT NULL
), rc AS (
  -- a response cache: all but the first request of each TTL period (from the prompt's first request) hit it
  SELECT _rid, repeats >= $min_repeats AND row_number() OVER (
           PARTITION BY provider, priced_model, prompt_hash, (epoch_us(ts) - epoch_us(first_ts)) // $rc_ttl
           ORDER BY ts, _rid) > 1 AS hit
  FROM rc1
), cold AS (
  SELECT b.*, coalesce(rc.hit, false) AS response_hit FROM _cp_base b LEFT JOIN rc USING (_rid)
), pf1 AS (
  SELECT *, max(coalesce(cache_read_tokens, 0)) OVER w AS group_reads,
         epoch_us(ts) - lag(epoch_us(ts)) OVER (w ORDER BY ts, _rid) AS gap,
         least(prefix_tokens, greatest(coalesce(input_tokens, 0) - coalesce(cache_write_tokens, 0), 0)) AS cacheable
  FROM cold
  WHERE NOT response_hit AND prefix_hash IS NOT NULL AND prefix_tokens >= $min_prefix
  WINDOW w AS (PARTITION BY provider, priced_model, prefix_hash)
), pf2 AS (
  SELECT *, coalesce(gap <= $pc_ttl, false) AS warm FROM pf1 WHERE group_reads = 0
), prefixes AS (
  -- per shared prefix: what caching saves on warm requests and costs extra on cold ones
  SELECT provider, priced_model, prefix_hash,
         CAST(coalesce(sum({hit_saving}) FILTER (WHERE warm), 0) AS {MONEY}) AS saved,
         CAST(coalesce(sum({premium}) FILTER (WHERE NOT warm), 0) AS {MONEY}) AS premium
  FROM pf2 GROUP BY ALL
), pf AS (
  SELECT p.*, x.saved > x.premium AS pays FROM pf2 p
  JOIN prefixes x ON x.provider IS NOT DISTINCT FROM p.provider AND x.priced_model IS NOT DISTINCT FROM p.priced_model
                 AND x.prefix_hash = p.prefix_hash
), prefix_pool AS (
  SELECT pool, count(DISTINCT prefix_hash) AS prefixes, count(*) FILTER (WHERE warm) AS warm,
         count(*) FILTER (WHERE NOT warm) AS cold, avg(cacheable) AS avg_prefix_tokens,
         CAST(coalesce(sum({hit_saving}) FILTER (WHERE warm), 0) AS {MONEY}) AS saved,
         CAST(coalesce(sum({premium}) FILTER (WHERE NOT warm), 0) AS {MONEY}) AS premium,
         any_value(cache_read_per_mtok) AS read_price, any_value(input_per_mtok) AS input_price,
         any_value(cache_write_per_mtok) AS write_price
  FROM pf WHERE pays GROUP BY pool
), response_pool AS (
  SELECT pool, count(*) FILTER (WHERE response_hit) AS hits,
         count(DISTINCT prompt_hash) FILTER (WHERE response_hit) AS prompts,
         CAST(coalesce(sum(cost) FILTER (WHERE response_hit), 0) AS {MONEY}) AS saved,
         count(*) AS requests, any_value(provider) AS provider, any_value(priced_model) AS model,
         any_value(feature) AS feature, mode(team) AS team
  FROM cold GROUP BY pool
), pools AS (
  SELECT * FROM {ctx.llm_pools()}
)
SELECT r.*, coalesce(p.prefixes, 0) AS prefixes, coalesce(p.warm, 0) AS warm, coalesce(p.cold, 0) AS cold,
       p.avg_prefix_tokens, coalesce(p.saved, 0) AS prefix_saved, coalesce(p.premium, 0) AS prefix_premium,
       p.read_price, p.input_price, p.write_price, q.cost AS pool_cost, q.requests AS pool_requests
FROM response_pool r LEFT JOIN prefix_pool p USING (pool) LEFT JOIN pools q USING (pool)
WHERE r.hits > 0 OR p.pool IS NOT NULL
ORDER BY r.saved + coalesce(p.saved - p.premium, 0) DESC""",
                        {"min_repeats": o.min_repeats, "rc_ttl": int(o.response_cache_ttl_hours * 3600e6),
                         "pc_ttl": int(o.prompt_cache_ttl_minutes * 60e6), "min_prefix": o.min_prefix_tokens})
        for r in rows:
            finding = self._finding(ctx, r)
            if finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding:
        o = self.options
        response = Decimal(r["saved"] or 0)
        prefix = max(Decimal(r["prefix_saved"] or 0) - Decimal(r["prefix_premium"] or 0), Decimal(0))
        saving = response + prefix
        provider, model, feature = r["provider"] or "", r["model"] or "", r["feature"] or ""
        changes, formula = [], []
        if r["hits"]:
            changes.append(f"cache responses: {r['hits']:,} of {r['requests']:,} request(s) repeated one of "
                           f"{r['prompts']:,} prompt(s) within {o.response_cache_ttl_hours:g} h (a cache keyed on "
                           "model and prompt: LiteLLM caching with Redis, or the application's own)")
            formula.append(f"response cache: the {r['hits']:,} repeats' cost ${response:,.4f}")
        if r["prefixes"]:
            how = PROMPT_CACHING.get(provider, "turn on the provider's prompt caching for it")
            tokens = float(r["avg_prefix_tokens"] or 0)
            changes.append(f"cache the shared ~{tokens:,.0f}-token prefix of {r['prefixes']:,} prompt template(s): "
                           f"{how}; {r['warm']:,} request(s) would read it, {r['cold']:,} write it")
            formula.append(f"prompt caching: {r['warm']:,} warm x prefix x (${r['input_price']:,.4f} - "
                           f"${r['read_price'] if r['read_price'] is not None else r['input_price']:,.4f}) per 1M = "
                           f"${Decimal(r['prefix_saved']):,.4f} - {r['cold']:,} writes' premium "
                           f"${Decimal(r['prefix_premium']):,.4f}")
        change = f"{feature or 'Requests'} on {model}: " + "; ".join(changes)
        assumptions = ["the window's prompts repeat as they did"]
        if r["hits"]:
            assumptions.append("a repeated prompt can get the cached answer (no sampling or time-dependent context "
                               "that must differ)")
        if r["prefixes"]:
            assumptions.append(f"the provider keeps a prefix cached {o.prompt_cache_ttl_minutes:g} min after its last "
                               f"use; prefix sizes are the sources' estimate (characters / 4)")
        return Finding(
            rule=self.kind, scope_kind="feature", scope=r["pool"].removeprefix("llm:"), owner=r["team"],
            evidence={"provider": provider, "model": model, "feature": feature, "requests": r["requests"],
                      "repeated_prompts": r["prompts"], "response_cache_hits": r["hits"],
                      "response_cache_saving_in_window": response, "shared_prefixes": r["prefixes"],
                      "prefix_cache_reads": r["warm"], "prefix_cache_writes": r["cold"],
                      "avg_prefix_tokens": round(float(r["avg_prefix_tokens"] or 0), 1),
                      "prefix_saving_in_window": Decimal(r["prefix_saved"] or 0),
                      "prefix_write_premium_in_window": Decimal(r["prefix_premium"] or 0),
                      "cache_read_price_per_mtok": r["read_price"], "cache_write_price_per_mtok": r["write_price"]},
            monthly_cost=ctx.monthly(r["pool_cost"]), monthly_waste=ctx.monthly(saving),
            monthly_saving=ctx.monthly(saving), recommendation=change, assumptions=assumptions,
            saving_formula=(" + ".join(formula)
                            + f" = ${saving:,.4f} in the window, x {ctx.month_factor:.4f} to a month"),
            confidence="high" if prefix >= response else "medium", pool=r["pool"],
            pool_cost=ctx.monthly(r["pool_cost"]))
