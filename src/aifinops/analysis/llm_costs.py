"""What each LLM request cost: requests joined to the price in force at their time, with exact token
arithmetic, and the self-hosted models' GPU cost spread over the tokens they served.

The steps, in order (one SQL statement, vectorised in DuckDB):

1. **Combos.** Requests are reduced to their distinct (provider, model, tier): a few hundred pricing
   questions for millions of requests. The model is the response model (the dated version actually
   served) else the request model; ``llm.aliases`` renames a private name (a deployment) to the model it
   serves before anything else.
2. **Candidates.** For each combo, every price row whose ``model_key`` equals the combo's key or its
   base key (no date), ranked: the combo's provider and the exact key first, then the provider and the
   base key, then any provider with the exact key, then any provider with the base key; within a match
   quality, the price relation's ``precedence`` (override > contract > catalog, catalogs in
   ``llm.catalogs`` order). A request of a tier no row prices (flex, priority) falls back to standard.
3. **Schedule.** The candidates' validity dates cut time into segments; in each segment the best-ranked
   candidate group (one catalog's rows of one model, all its context tiers) is the price in force. When no
   price at all is in force (a request before the earliest dated price), the earliest one applies,
   flagged ``before_price_history``; it never displaces a price that is in force.
4. **Price.** Each request takes the schedule row of its combo whose segment holds its time, and the
   context tier with the largest ``above_tokens`` below its input tokens. Then, with OTel's token
   semantics (cache reads and writes are parts of input, reasoning is part of output)::

       cost = (input - cache_read - cache_write) x p_input + cache_read x p_cache_read
              + cache_write x p_cache_write + output x p_output          (prices per 1M tokens / 1e6)

   where a missing cache price is the input price. Money is exact DECIMAL.
5. **Unpriced** requests (no candidate) keep ``cost`` NULL and ``priced = false``: they are reported with
   their volume, never costed at 0.
6. **Self-hosted** models (provider ``self-hosted``, ``vllm``, ... or a model served by a workload whose
   ``model`` label names it): the GPU cost allocated to the workloads serving the model in the window
   (``gpu_allocation``: gpuCost + the idle shared to them), spread over the tokens they served, so each
   request costs its tokens x the model's cost per token ``at actual utilisation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import duckdb

from ..config import Settings
from ..model.checks import sql_str
from ..model.llm import base_key_sql, model_key_sql
from .windows import Window

MONEY = "DECIMAL(38, 12)"
#: Providers that are a serving stack, not an API: their requests are priced from GPU cost.
SELF_HOSTED_PROVIDERS = ("self-hosted", "vllm", "sglang", "tgi", "triton", "ollama", "llama.cpp", "tensorrt-llm",
                         "nim", "kserve")
#: The column request costs are reported with, in order (the cost components add up to ``cost``).
COST_PARTS = ("input_cost", "cache_read_cost", "cache_write_cost", "output_cost")


@dataclass(frozen=True)
class SelfHosted:
    """A self-hosted model's serving cost in the window and the tokens its requests carried."""

    model: str
    gpu_cost: Decimal
    gpu_hours: float
    workloads: int


def _alias_rows(aliases: dict[str, str]) -> str:
    rows = [f"({sql_str(k)}, {sql_str(v)})" for k, v in aliases.items()]
    return "VALUES " + ", ".join(rows) if rows else "SELECT NULL::VARCHAR, NULL::VARCHAR WHERE false"


def _self_hosted_rows(served: list[SelfHosted]) -> str:
    rows = [f"({sql_str(s.model)}, CAST({s.gpu_cost} AS {MONEY}))" for s in served]
    return "VALUES " + ", ".join(rows) if rows else f"SELECT NULL::VARCHAR, NULL::{MONEY} WHERE false"


def pricing_ctes(prices: str, aliases: dict[str, str] | None = None, served: list[SelfHosted] | None = None,
                 where: str = "true") -> str:
    """``WITH`` prices, aliases, served, req (the window's requests, ``$start``..``$end``), combos, candidates and
    the price ``schedule`` (steps 1-3), then ``matched``: every request with its combo, schedule segment,
    price catalog and the index ``ti`` of its context tier in the segment's ``tiers`` (highest first).

    ``prices`` is a SQL relation with the ``llm_prices`` columns plus ``precedence`` (lower wins), e.g.
    ``analysis.llm_prices.price_relation_sql``; ``where`` an extra filter over ``llm_requests`` (``r``)."""
    return f"""
WITH prices AS ({prices}),
aliases(name, model) AS ({_alias_rows(aliases or {})}),
served(model, gpu_cost) AS ({_self_hosted_rows(served or [])}),
req AS NOT MATERIALIZED (
  SELECT r.*, coalesce(a.model, coalesce(r.response_model, r.request_model)) AS priced_model,
         coalesce(r.tier, 'standard') AS priced_tier
  FROM llm_requests r
  LEFT JOIN aliases a ON a.name = coalesce(r.response_model, r.request_model)
  WHERE NOT r._superseded AND r.ts >= $start::TIMESTAMP AND r.ts < $end::TIMESTAMP AND ({where})
), combos AS (
  SELECT *, row_number() OVER () AS combo, {model_key_sql("priced_model")} AS mkey,
         {base_key_sql("priced_model")} AS bkey
  FROM (SELECT DISTINCT provider, priced_model, priced_tier FROM req)
), candidates AS (
  -- every price row a combo could use, with its match quality (1 best) and the relation's precedence
  SELECT c.combo, p.*,
         CASE WHEN p.provider = c.provider AND p.model_key = c.mkey THEN 1
              WHEN p.provider = c.provider THEN 2 WHEN p.model_key = c.mkey THEN 3 ELSE 4 END AS quality,
         CASE WHEN p.tier = c.priced_tier THEN 0 ELSE 1 END AS tier_fallback
  FROM combos c JOIN prices p ON p.model_key IN (c.mkey, c.bkey)
  WHERE p.tier = c.priced_tier OR p.tier = 'standard'
), groups AS (
  -- a price group is one catalog's rows for one model and tier: its context tiers and its periods
  SELECT *, dense_rank() OVER (PARTITION BY combo ORDER BY tier_fallback, quality, precedence, catalog, provider,
                                                          model) AS rank
  FROM (SELECT combo, catalog, provider, model, tier, min(quality) AS quality, min(tier_fallback) AS tier_fallback,
               min(precedence) AS precedence
        FROM candidates GROUP BY combo, catalog, provider, model, tier)
), breaks AS (
  -- the times at which some candidate of a combo starts or stops being in force
  SELECT DISTINCT combo, t FROM (
    SELECT combo, valid_from AS t FROM candidates WHERE valid_from IS NOT NULL
    UNION ALL SELECT combo, valid_to FROM candidates WHERE valid_to IS NOT NULL)
), segments AS (
  SELECT combo, t AS seg_from, lead(t) OVER (PARTITION BY combo ORDER BY t) AS seg_to FROM (
    SELECT combo, '-infinity'::TIMESTAMP AS t FROM combos UNION ALL SELECT combo, t FROM breaks)
), in_force AS (
  -- per segment, the candidates valid in it (a dated history's first price also covers the time before it)
  SELECT s.combo, s.seg_from, coalesce(s.seg_to, 'infinity'::TIMESTAMP) AS seg_to, c.*, g.rank,
         c.valid_from IS NOT NULL AND s.seg_from < c.valid_from AS before_price_history
  FROM segments s
  JOIN candidates c ON c.combo = s.combo
  JOIN groups g ON g.combo = c.combo AND g.catalog = c.catalog AND g.provider IS NOT DISTINCT FROM c.provider
                AND g.model = c.model AND g.tier = c.tier
  WHERE (c.valid_to IS NULL OR s.seg_from < c.valid_to)
    AND (c.valid_from IS NULL OR c.valid_from <= s.seg_from
         OR c.valid_from = (SELECT min(x.valid_from) FROM candidates x WHERE x.combo = c.combo
                              AND x.catalog = c.catalog AND x.model = c.model AND x.tier = c.tier
                              AND x.above_tokens = c.above_tokens))
), best AS (
  -- a price truly in force beats the backward extension of a dated one, whatever their ranks (an override
  -- from October does not price September); then the best rank; then one row per context tier, the latest
  SELECT * FROM (
    SELECT *, before_price_history::INTEGER * 1000000 + rank AS pick FROM in_force
    QUALIFY pick = min(pick) OVER (PARTITION BY combo, seg_from))
  QUALIFY row_number() OVER (PARTITION BY combo, seg_from, above_tokens ORDER BY valid_from DESC NULLS LAST) = 1
), schedule AS (
  -- the best-ranked group in force in each segment, every context tier of it, highest threshold first
  SELECT combo, seg_from, seg_to, catalog, provider AS price_provider, model AS price_model, tier AS price_tier,
         quality, bool_or(before_price_history) AS before_price_history,
         list(struct_pack(above := above_tokens, i := input_per_mtok, o := output_per_mtok,
                          cr := cache_read_per_mtok, cw := cache_write_per_mtok) ORDER BY above_tokens DESC) AS tiers,
         count(*) AS n_tiers
  FROM best GROUP BY ALL
), matched AS NOT MATERIALIZED (
  -- the context tier: the first (highest) threshold the input exceeds, else the base price (last); most
  -- models have one or two tiers, so a CASE does it without a list operation per request. Not
  -- materialised: the join is cheaper to run again than millions of rows to keep.
  SELECT r.*, c.combo, s.seg_from, s.catalog, s.price_provider, s.price_model, s.price_tier,
         s.quality AS match_quality, s.before_price_history,
         CASE WHEN s.n_tiers = 1 THEN 1
              WHEN coalesce(r.input_tokens, 0) > s.tiers[1].above THEN 1
              WHEN s.n_tiers = 2 THEN 2
              WHEN coalesce(r.input_tokens, 0) > s.tiers[2].above THEN 2
              WHEN s.n_tiers = 3 THEN 3
              -- in general: one past the thresholds the input does not exceed (they come first)
              ELSE 1 + len(list_filter(s.tiers, lambda x: x.above > 0 AND x.above >= coalesce(r.input_tokens, 0)))
         END AS ti
  FROM req r
  JOIN combos c ON coalesce(c.provider, '') = coalesce(r.provider, '')
               AND coalesce(c.priced_model, '') = coalesce(r.priced_model, '') AND c.priced_tier = r.priced_tier
  LEFT JOIN schedule s ON s.combo = c.combo AND r.ts >= s.seg_from AND r.ts < s.seg_to
)"""


def token_parts(t: str = "m") -> dict[str, str]:
    """SQL: the token counts of the four cost parts of requests (or sums of them) aliased ``t``."""
    return {"input": f"greatest(coalesce({t}.input_tokens, 0) - coalesce({t}.cache_read_tokens, 0) "
                     f"- coalesce({t}.cache_write_tokens, 0), 0)",
            "cache_read": f"coalesce({t}.cache_read_tokens, 0)", "cache_write": f"coalesce({t}.cache_write_tokens, 0)",
            "output": f"coalesce({t}.output_tokens, 0)"}


def part_cost_sql(tokens: str, part: str, px: str) -> str:
    """SQL: exact cost of ``tokens`` of one part at the tier price struct ``px`` (per 1M tokens); a missing
    cache price is the input price."""
    price = {"input": f"{px}.i", "cache_read": f"coalesce({px}.cr, {px}.i)",
             "cache_write": f"coalesce({px}.cw, {px}.i)", "output": f"{px}.o"}[part]
    return f"CAST(CAST({tokens} AS DECIMAL(38, 0)) * {price} * 0.000001 AS {MONEY})"


def costed_sql(prices: str, aliases: dict[str, str] | None = None, served: list[SelfHosted] | None = None,
               where: str = "true") -> str:
    """The priced requests of the window (``$start``, ``$end``), one row each: every request column, the
    model it was priced as, the price's catalog, provider, tier and match, the four cost parts and ``cost``."""
    self_hosted = ", ".join(sql_str(p) for p in SELF_HOSTED_PROVIDERS)
    cost_parts = ",\n         ".join(
        f"CASE WHEN m.catalog IS NOT NULL THEN {part_cost_sql(tokens, name, 'sc.tiers[m.ti]')} END AS {name}_cost"
        for name, tokens in token_parts().items())
    return pricing_ctes(prices, aliases, served, where) + f"""
, costed AS (
  SELECT m.* EXCLUDE (ti), sc.tiers[m.ti].above AS above_tokens,
         {cost_parts},
         m.catalog IS NULL AND m.provider IN ({self_hosted}) AS self_hosted_provider
  FROM matched m LEFT JOIN schedule sc ON sc.combo = m.combo AND sc.seg_from = m.seg_from
), self_tokens AS (
  -- the tokens each self-hosted model served in the window: its GPU cost is spread over them
  SELECT c.priced_model AS model, sum(coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0)) AS tokens
  FROM costed c JOIN served sv ON sv.model = c.priced_model WHERE c.catalog IS NULL GROUP BY 1
)
SELECT c.*, c.catalog IS NULL AND (c.self_hosted_provider OR sv.model IS NOT NULL) AS self_hosted,
       CASE WHEN c.catalog IS NOT NULL THEN c.input_cost + c.cache_read_cost + c.cache_write_cost + c.output_cost
            WHEN sv.model IS NOT NULL AND st.tokens > 0
              THEN CAST(CAST(sv.gpu_cost AS DOUBLE) * (coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0))
                        / st.tokens AS {MONEY}) END AS cost,
       c.catalog IS NOT NULL OR (sv.model IS NOT NULL AND st.tokens > 0) AS priced,
       CASE WHEN c.catalog IS NOT NULL THEN c.catalog WHEN sv.model IS NOT NULL AND st.tokens > 0
            THEN 'self-hosted' END AS cost_basis
FROM costed c
LEFT JOIN served sv ON sv.model = c.priced_model AND c.catalog IS NULL
LEFT JOIN self_tokens st ON st.model = c.priced_model
"""


def request_costs(con: duckdb.DuckDBPyConnection, window: Window, prices: str,
                  settings: Settings | None = None, served: list[SelfHosted] | None = None) -> list[dict[str, object]]:
    """Every request of the window with its cost (the golden tests' view; unit costs aggregate in SQL)."""
    s = settings or Settings()
    aliases = dict(s.llm.aliases) if hasattr(s, "llm") else {}
    cur = con.execute(f"SELECT * FROM ({costed_sql(prices, aliases, served)}) ORDER BY ts, request_id",
                      {"start": window.start, "end": window.end})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def self_hosted_report(con: duckdb.DuckDBPyConnection, window: Window, prices: str, served: list[SelfHosted],
                       compare_with: list[str], aliases: dict[str, str] | None = None) -> list[dict[str, object]]:
    """Per self-hosted model: what its tokens cost on its own GPUs (serving GPU cost / tokens served, at the
    utilisation it actually had) and what the same tokens would have cost on each ``compare_with`` API model,
    at that model's current standard price (its base context tier, the price relation's precedence)."""
    if not served:
        return []
    models = ", ".join(sql_str(s.model) for s in served)
    compare = _values([f"({sql_str(m)})" for m in compare_with], "NULL::VARCHAR") if compare_with else \
        "SELECT NULL::VARCHAR WHERE false"
    parts = token_parts("t")
    sums = ", ".join(f"sum({expr}) AS {name}" for name, expr in parts.items())
    px = "struct_pack(i := p.input_per_mtok, o := p.output_per_mtok, cr := p.cache_read_per_mtok, " \
         "cw := p.cache_write_per_mtok)"
    api_cost = " + ".join(part_cost_sql(f"v.{name}", name, "c.px") for name in parts)
    sql = pricing_ctes(prices, aliases) + f"""
, volumes AS (
  SELECT t.priced_model AS model, sum(coalesce(t.requests, 1)) AS requests, sum(coalesce(t.input_tokens, 0)) AS inp,
         sum(coalesce(t.output_tokens, 0)) AS outp, {sums}
  FROM req t WHERE t.priced_model IN ({models}) GROUP BY 1
), compare(name) AS ({compare}),
current_price AS (
  SELECT m.name, arg_min({px}, p.precedence) AS px
  FROM compare m JOIN prices p ON p.model_key IN ({model_key_sql("m.name")}, {base_key_sql("m.name")})
  WHERE p.tier = 'standard' AND p.above_tokens = 0 AND p.valid_to IS NULL
  GROUP BY 1
)
SELECT v.model, v.requests, v.inp, v.outp, c.name, CASE WHEN c.px IS NOT NULL THEN {api_cost} END
FROM volumes v
LEFT JOIN (SELECT m.name, cp.px FROM compare m LEFT JOIN current_price cp ON cp.name = m.name) c ON true
ORDER BY v.model, c.name"""
    rows = con.execute(sql, {"start": window.start, "end": window.end}).fetchall()
    by_model = {s.model: s for s in served}
    out: dict[str, dict[str, object]] = {}
    for model, requests, inp, outp, name, api in rows:
        s = by_model[model]
        tokens = (inp or 0) + (outp or 0)
        row = out.setdefault(model, {
            "model": model, "requests": requests, "inputTokens": inp, "outputTokens": outp, "gpuCost": s.gpu_cost,
            "gpuHours": s.gpu_hours, "servingWorkloads": s.workloads,
            "costPer1MTokens": s.gpu_cost * 1_000_000 / tokens if tokens else None})
        if name is not None:
            row[f"api:{name}"] = api
            row[f"api:{name}:per1MTokens"] = api * 1_000_000 / tokens if api is not None and tokens else None
    for s in served:  # a model that served no request in the window still cost its GPUs
        out.setdefault(s.model, {"model": s.model, "requests": 0, "inputTokens": 0, "outputTokens": 0,
                                 "gpuCost": s.gpu_cost, "gpuHours": s.gpu_hours, "servingWorkloads": s.workloads,
                                 "costPer1MTokens": None})
    return list(out.values())


def _values(rows: list[str], empty: str) -> str:
    return "VALUES " + ", ".join(rows) if rows else f"SELECT {empty} WHERE false"
