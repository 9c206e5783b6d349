"""``oversized-model``: frontier models answering short, simple requests that a small model of the same family
answers for a fraction of the price.

Per (provider, model, feature) — pool ``llm:<provider>/<model>/<feature>`` — over the priced API requests of the
window (``RuleContext.requests()``; not cached, not self-hosted):

- **frontier**: the model's key without its date (``model.llm.base_key_sql``: ``gpt-4o-2024-08-06`` is ``gpt-4o``,
  ``us.anthropic.claude-3-7-sonnet-20250219-v1:0`` is ``claude-3-7-sonnet``) matches one of ``frontier`` (glob
  patterns), or the input price it was priced at is at least ``min_input_price_per_mtok``;
- **short**: at most ``max_input_tokens`` input and ``max_output_tokens`` output tokens per request (an aggregated
  row: its average request);
- **target**: the first of ``targets`` (glob pattern on the same key -> a cheaper model) that matches, priced for
  the request's provider, tier and time through the one matching rule (``llm_prices.match_sql``), with the same
  four token parts (``llm_costs.token_parts`` / ``part_cost_sql``). A frontier model no pattern maps, or whose
  target the catalog does not price, is not reported.

Saving = ``routable_share`` x (cost of the short requests - the same tokens at the target's price):
``routable_share`` (default 0.5) is an assumption, stated in every finding — short is not always simple, and
which requests keep their quality on the small model is for an evaluation to say. Only groups with at least
``min_short_requests`` short requests are reported. Confidence is medium when short requests are at least half of
the group's, low otherwise (routing them needs a classifier in front).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...analysis.llm_costs import part_cost_sql, token_parts
from ...analysis.llm_prices import match_sql
from ...model.checks import sql_str
from ...model.llm import base_key_sql
from ..engine import MONEY, Finding, Rule, RuleContext, llm_pool_sql, rules

FRONTIER = ["gpt-4", "gpt-4-turbo*", "gpt-4o", "gpt-4.1", "gpt-4.5*", "gpt-5", "gpt-5.[0-9]", "o1", "o1-pro", "o3",
            "o3-pro", "claude-*opus*", "claude-*sonnet*", "gemini-*-pro*", "mistral-large*", "grok-3", "grok-4*"]
TARGETS = {"gpt-4o": "gpt-4o-mini", "gpt-4.1": "gpt-4.1-mini", "gpt-4.5*": "gpt-4.1-mini", "gpt-4": "gpt-4o-mini",
           "gpt-4-turbo*": "gpt-4o-mini", "gpt-5": "gpt-5-mini", "gpt-5.[0-9]": "gpt-5-mini", "o1": "o4-mini",
           "o1-pro": "o4-mini", "o3": "o4-mini", "o3-pro": "o4-mini", "claude-*opus*": "claude-3-5-haiku",
           "claude-*sonnet*": "claude-3-5-haiku", "gemini-2.5-pro*": "gemini-2.5-flash",
           "gemini-1.5-pro*": "gemini-1.5-flash", "gemini-*-pro*": "gemini-2.5-flash",
           "mistral-large*": "mistral-small"}


@rules.register("oversized-model")
class OversizedModel(Rule):
    title = "Oversized model"
    targets = "Frontier models answering short, simple requests that a small model of the same family would answer"
    needs = ("llm_requests",)

    class Options(Rule.Options):
        #: model keys (date dropped, lower case) that are frontier models: glob patterns
        frontier: list[str] = Field(default_factory=lambda: list(FRONTIER))
        #: ...or any model priced at least this per 1M input tokens
        min_input_price_per_mtok: Decimal = Field(Decimal(5), ge=0)
        #: a short request: at most this many input tokens...
        max_input_tokens: int = Field(1000, ge=0)
        #: ...and output tokens
        max_output_tokens: int = Field(300, ge=0)
        #: glob pattern of a frontier model's key -> the cheaper model its short requests could go to (first match)
        targets: dict[str, str] = Field(default_factory=lambda: dict(TARGETS))
        #: share of the short requests assumed to keep their quality on the target (an evaluation should say)
        routable_share: float = Field(0.5, gt=0, le=1)
        min_short_requests: int = Field(20, ge=1)
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        req = ctx.requests()
        key = "m.model_key"
        frontier = " OR ".join(f"{key} GLOB {sql_str(p.lower())}" for p in o.frontier) or "false"
        target = ("CASE " + " ".join(f"WHEN {key} GLOB {sql_str(p.lower())} THEN {sql_str(t)}"
                                     for p, t in o.targets.items()) + " END") if o.targets else "NULL::VARCHAR"
        n = "greatest(coalesce(b.requests, 1), 1)"
        # the model key, frontier test and target once per model, not per request (the key is a chain of regexes)
        ctx.con.execute(f"""
CREATE OR REPLACE TEMP TABLE _om_models AS
SELECT m.priced_model, {frontier} AS frontier, {target} AS target
FROM (SELECT priced_model, {base_key_sql("priced_model")} AS model_key
      FROM (SELECT DISTINCT priced_model FROM {req})) m""")
        ctx.con.execute(f"""
CREATE OR REPLACE TEMP TABLE _om_base AS
SELECT b.*, {llm_pool_sql('b')} AS pool, {n} AS n, m.target,
       coalesce(b.input_tokens, 0) <= $max_in * {n} AND coalesce(b.output_tokens, 0) <= $max_out * {n} AS short
FROM {req} b JOIN _om_models m ON m.priced_model IS NOT DISTINCT FROM b.priced_model
WHERE b.price_catalog IS NOT NULL AND NOT coalesce(b.self_hosted, false) AND coalesce(b.status, 'ok') <> 'cached'
  AND (m.frontier OR b.input_per_mtok >= $min_price)""",
                        {"max_in": o.max_input_tokens, "max_out": o.max_output_tokens,
                         "min_price": o.min_input_price_per_mtok})
        keys = ("SELECT DISTINCT provider, target AS model, tier, hour AS ts, bucket + 1 AS input_tokens, hour, bucket "
                "FROM _om_base WHERE short AND target IS NOT NULL")
        parts = token_parts("b")
        target_cost = " + ".join(f"coalesce({part_cost_sql(expr, name, 'p')}, 0)" for name, expr in parts.items())
        same = " AND ".join(f"p.{c} IS NOT DISTINCT FROM b.{c}" for c in ("provider", "tier", "hour", "bucket"))
        rows = ctx.rows(f"""
WITH target_prices AS ({match_sql(ctx.con, keys, ctx.settings.llm)}),
short AS (
  SELECT b.*, p.price_model AS target_price_model, p.input_per_mtok AS target_input,
         p.output_per_mtok AS target_output, CAST({target_cost} AS {MONEY}) AS target_cost
  FROM _om_base b JOIN target_prices p ON p.model = b.target AND {same}
  WHERE b.short AND p.price_catalog IS NOT NULL
    AND {base_key_sql('p.price_model')} <> {base_key_sql('b.priced_model')}
), groups AS (
  SELECT pool, sum(n) AS requests, sum(cost) AS cost FROM _om_base GROUP BY pool
), pools AS (
  SELECT pool, cost FROM {ctx.llm_pools()}
)
SELECT s.pool, any_value(s.provider) AS provider, any_value(s.priced_model) AS model, any_value(s.feature) AS feature,
       mode(s.team) AS team, any_value(s.target) AS target, any_value(s.target_price_model) AS target_price_model,
       any_value(s.target_input) AS target_input, any_value(s.target_output) AS target_output,
       any_value(s.input_per_mtok) AS input_price, any_value(s.output_per_mtok) AS output_price,
       sum(s.n) AS short_requests, sum(s.cost) AS short_cost, sum(s.target_cost) AS target_cost,
       sum(coalesce(s.input_tokens, 0)) / sum(s.n) AS avg_input, sum(coalesce(s.output_tokens, 0)) / sum(s.n)
         AS avg_output,
       any_value(g.requests) AS requests, any_value(g.cost) AS group_cost, any_value(q.cost) AS pool_cost
FROM short s JOIN groups g USING (pool) LEFT JOIN pools q USING (pool)
GROUP BY s.pool HAVING sum(s.n) >= $min_short ORDER BY sum(s.cost) - sum(s.target_cost) DESC""",
                        {"min_short": o.min_short_requests})
        for r in rows:
            finding = self._finding(ctx, r)
            if finding is not None and finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict) -> Finding | None:
        o = self.options
        short_cost, target_cost = Decimal(r["short_cost"] or 0), Decimal(r["target_cost"] or 0)
        gap = short_cost - target_cost
        if gap <= 0:
            return None
        share = Decimal(repr(o.routable_share))
        saving = share * gap
        short_n, total = int(r["short_requests"]), int(r["requests"])
        short_share = short_n / total if total else 0.0
        model, target, feature = r["model"], r["target_price_model"] or r["target"], r["feature"] or ""
        change = (f"Route short {feature or 'requests'} from {model} to {target}: {short_n:,} of {total:,} request(s) "
                  f"({short_share:.0%}) had at most {o.max_input_tokens:,} input and {o.max_output_tokens:,} output "
                  f"tokens (average {float(r['avg_input']):,.0f} in / {float(r['avg_output']):,.0f} out); check their "
                  f"quality on {target} with an evaluation of a sample, then route them (a LiteLLM router rule or "
                  "a classifier in front)")
        return Finding(
            rule=self.kind, scope_kind="model", scope=r["pool"].removeprefix("llm:"), owner=r["team"],
            evidence={"provider": r["provider"], "model": model, "feature": feature, "target": target,
                      "requests": total, "short_requests": short_n, "short_share": round(short_share, 4),
                      "avg_input_tokens": round(float(r["avg_input"]), 1),
                      "avg_output_tokens": round(float(r["avg_output"]), 1), "short_cost_in_window": short_cost,
                      "target_cost_in_window": target_cost,
                      "model_price_per_mtok": [r["input_price"], r["output_price"]],
                      "target_price_per_mtok": [r["target_input"], r["target_output"]],
                      "routable_share": o.routable_share},
            monthly_cost=ctx.monthly(r["group_cost"]), monthly_waste=ctx.monthly(gap),
            monthly_saving=ctx.monthly(saving), recommendation=change,
            assumptions=[f"{o.routable_share:.0%} of the short requests keep their quality on {target} (an "
                         "assumption: evaluate before routing)",
                         f"short = at most {o.max_input_tokens:,} input and {o.max_output_tokens:,} output tokens",
                         f"{target} is billed at its catalog price for the same provider and tier, same tokens"],
            saving_formula=(f"{o.routable_share:g} x (short requests' cost ${short_cost:,.4f} - at {target}'s price "
                            f"${target_cost:,.4f}) = ${saving:,.4f} in the window, x {ctx.month_factor:.4f} to a "
                            "month"),
            confidence="medium" if short_share >= 0.5 else "low", pool=r["pool"],
            pool_cost=ctx.monthly(r["pool_cost"] if r["pool_cost"] is not None else r["group_cost"]))
