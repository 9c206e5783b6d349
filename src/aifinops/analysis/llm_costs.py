"""What each LLM request cost: requests joined to the price in force at their time (the one rule of
``analysis.llm_prices``, which ``aifinops prices show`` explains), with exact token arithmetic, and the
self-hosted models' GPU cost spread over the tokens they served.

The steps, in order (one SQL statement, vectorised in DuckDB):

1. **Pricing keys.** Requests are reduced to their distinct (provider, model, tier, hour, context tier):
   thousands of pricing questions for millions of requests. The model is the response model (the dated
   version actually served) else the request model. The context tier is the largest ``above_tokens`` of any
   price row below the request's input tokens (0 for most), so every request of a key takes the same row.
   Price validity is resolved to the hour: a price change takes effect at the hour it falls in (catalogs date
   changes by day).
2. **Match.** ``llm_prices.match_sql`` picks one price row per key: aliases, then the row in force, override
   > contract > catalog, match quality, tier, catalog order, ... (its module docstring has the rule).
3. **Price.** Each request takes its key's row. With OTel's token semantics (cache reads and writes are
   parts of input, reasoning is part of output)::

       cost = (input - cache_read - cache_write) x p_input + cache_read x p_cache_read
              + cache_write x p_cache_write + output x p_output          (prices per 1M tokens x 1e-6)

   where a missing cache price is the input price. Money is exact DECIMAL.
4. **Unpriced** requests (no row) keep ``cost`` NULL and ``priced = false``: they are reported with their
   volume, never costed at 0. A request served from a response cache (``status`` = cached: it never
   reached the provider) costs 0.
5. **Self-hosted** models (provider ``self-hosted``, ``vllm``, ... or a model served by a workload whose
   ``model`` label names it): the GPU cost allocated to the workloads serving the model in the window
   (``workload_costs.serving_costs``), spread over the tokens they served, so each request costs its tokens x
   the model's cost per token at the utilisation it actually had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import duckdb

from ..config import LlmSettings, Settings
from ..model.checks import sql_str
from .llm_prices import MATCH_COLUMNS, match_sql, prices_sql
from .windows import Window

MONEY = "DECIMAL(38, 12)"
#: Providers that are a serving stack, not an API: their requests are priced from GPU cost.
SELF_HOSTED_PROVIDERS = ("self-hosted", "vllm", "sglang", "tgi", "triton", "ollama", "llama.cpp", "tensorrt-llm",
                         "nim", "kserve")


@dataclass(frozen=True)
class SelfHosted:
    """A self-hosted model's serving cost in the window and the tokens its requests carried."""

    model: str
    gpu_cost: Decimal
    gpu_hours: float
    workloads: int


def _self_hosted_rows(served: list[SelfHosted]) -> str:
    rows = [f"({sql_str(s.model)}, CAST({s.gpu_cost} AS {MONEY}))" for s in served]
    return "VALUES " + ", ".join(rows) if rows else f"SELECT NULL::VARCHAR, NULL::{MONEY} WHERE false"


def thresholds(con: duckdb.DuckDBPyConnection, llm: LlmSettings | None = None) -> list[int]:
    """The context thresholds (``above_tokens`` > 0) of the price relation, highest first."""
    rows = con.execute(f"SELECT DISTINCT above_tokens FROM ({prices_sql(con, llm)}) WHERE above_tokens > 0 "
                       "ORDER BY 1 DESC").fetchall()
    return [int(r[0]) for r in rows]


def pricing_ctes(con: duckdb.DuckDBPyConnection, llm: LlmSettings | None = None,
                 served: list[SelfHosted] | None = None, where: str = "true", after_req: str = "",
                 keys_from: str = "req") -> str:
    """``WITH`` served, req (the window's requests, ``$start``..``$end``), keys, key_prices (steps 1-2), then
    ``matched``: every request with the price row of its key (``llm_prices.MATCH_COLUMNS``). Registers the
    price views on ``con``. ``where`` is an extra filter over ``llm_requests`` (aliased ``r``); ``after_req``
    more CTEs right after ``req`` (``, name AS (...)``), and ``keys_from`` the one of them (or ``req``) the
    pricing keys are read from: a pre-aggregated table gives the same keys in a fraction of a scan."""
    cuts = thresholds(con, llm)
    # per request: a row standing for many requests (an hourly rollup) has their average context, not the sum
    per_request = "coalesce(r.input_tokens, 0) / greatest(coalesce(r.requests, 1), 1)"
    bucket = ("CASE " + " ".join(f"WHEN {per_request} > {t} THEN {t}" for t in cuts) + " ELSE 0 END"
              if cuts else "0")
    keys = ("SELECT provider, priced_model AS model, tier, hour AS ts, bucket + 1 AS input_tokens, hour, bucket "
            "FROM keys")
    same = " AND ".join(f"k.{c} IS NOT DISTINCT FROM r.{c}" for c in ("provider", "tier", "hour", "bucket"))
    return f"""
WITH served(model, gpu_cost) AS ({_self_hosted_rows(served or [])}),
req AS NOT MATERIALIZED (
  -- not materialised: reading the requests again is cheaper than keeping millions of rows
  SELECT r.*, coalesce(r.response_model, r.request_model) AS priced_model,
         date_trunc('hour', r.ts) AS hour, {bucket} AS bucket
  FROM llm_requests r
  WHERE NOT r._superseded AND r.ts >= $start::TIMESTAMP AND r.ts < $end::TIMESTAMP AND ({where})
){after_req}, keys AS (
  SELECT DISTINCT provider, priced_model, tier, hour, bucket FROM {keys_from}
), key_prices AS (
  {match_sql(con, keys, llm)}
), matched AS NOT MATERIALIZED (
  SELECT r.*, {", ".join(f"k.{c}" for c in MATCH_COLUMNS)}
  FROM req r LEFT JOIN key_prices k ON k.model IS NOT DISTINCT FROM r.priced_model AND {same}
)"""


def token_parts(t: str = "m") -> dict[str, str]:
    """SQL: the token counts of the four cost parts of requests (or sums of them) aliased ``t``."""
    return {"input": f"greatest(coalesce({t}.input_tokens, 0) - coalesce({t}.cache_read_tokens, 0) "
                     f"- coalesce({t}.cache_write_tokens, 0), 0)",
            "cache_read": f"coalesce({t}.cache_read_tokens, 0)", "cache_write": f"coalesce({t}.cache_write_tokens, 0)",
            "output": f"coalesce({t}.output_tokens, 0)"}


def part_cost_sql(tokens: str, part: str, px: str) -> str:
    """SQL: exact cost of ``tokens`` of one part at the prices of row ``px`` (``*_per_mtok``, per 1M tokens); a
    missing cache price is the input price. Not rounded: tokens x price x 1e-6 is exact at scale 18, and a cast
    to 12 decimals per part and row costs 20x the multiplication; the caller casts the sum once."""
    i = f"{px}.input_per_mtok"
    price = {"input": i, "cache_read": f"coalesce({px}.cache_read_per_mtok, {i})",
             "cache_write": f"coalesce({px}.cache_write_per_mtok, {i})", "output": f"{px}.output_per_mtok"}[part]
    return f"(CAST({tokens} AS DECIMAL(38, 0)) * {price} * 0.000001)"


def costed_sql(con: duckdb.DuckDBPyConnection, llm: LlmSettings | None = None,
               served: list[SelfHosted] | None = None, where: str = "true") -> str:
    """The priced requests of the window (``$start``, ``$end``), one row each: every request column, the
    price row it was priced at (``price_*`` columns), the four cost parts and ``cost``."""
    self_hosted = ", ".join(sql_str(p) for p in SELF_HOSTED_PROVIDERS)
    cost_parts = ",\n         ".join(
        f"CASE WHEN m.status = 'cached' THEN 0 WHEN m.price_catalog IS NOT NULL "
        f"THEN {part_cost_sql(tokens, name, 'm')} END AS {name}_cost" for name, tokens in token_parts().items())
    return pricing_ctes(con, llm, served, where) + f"""
, costed AS (
  SELECT m.*, {cost_parts},
         m.price_catalog IS NULL AND m.provider IN ({self_hosted}) AS self_hosted_provider
  FROM matched m
), self_tokens AS (
  -- the tokens each self-hosted model served in the window: its GPU cost is spread over them
  SELECT c.priced_model AS model, sum(coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0)) AS tokens
  FROM costed c JOIN served sv ON sv.model = c.priced_model WHERE c.price_catalog IS NULL GROUP BY 1
)
SELECT c.*, c.price_catalog IS NULL AND (c.self_hosted_provider OR sv.model IS NOT NULL) AS self_hosted,
       CASE WHEN c.status = 'cached' THEN CAST(0 AS {MONEY})
            WHEN c.price_catalog IS NOT NULL
              THEN CAST(coalesce(c.input_cost, 0) + c.cache_read_cost + c.cache_write_cost
                        + coalesce(c.output_cost, 0) AS {MONEY})
            WHEN sv.model IS NOT NULL AND st.tokens > 0
              THEN CAST(CAST(sv.gpu_cost AS DOUBLE) * (coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0))
                        / st.tokens AS {MONEY}) END AS cost,
       c.status IS NOT DISTINCT FROM 'cached' OR c.price_catalog IS NOT NULL
         OR (sv.model IS NOT NULL AND st.tokens > 0) AS priced,
       CASE WHEN c.status = 'cached' THEN 'cached' WHEN c.price_catalog IS NOT NULL THEN c.price_kind
            WHEN sv.model IS NOT NULL AND st.tokens > 0 THEN 'self-hosted' END AS cost_basis
FROM costed c
LEFT JOIN served sv ON sv.model = c.priced_model AND c.price_catalog IS NULL
LEFT JOIN self_tokens st ON st.model = c.priced_model
"""


def request_costs(con: duckdb.DuckDBPyConnection, window: Window, settings: Settings | None = None,
                  served: list[SelfHosted] | None = None) -> list[dict[str, object]]:
    """Every request of the window with its cost (the golden tests' view; unit costs aggregate in SQL)."""
    s = settings or Settings()
    cur = con.execute(f"SELECT * FROM ({costed_sql(con, s.llm, served)}) ORDER BY ts, request_id",
                      {"start": window.start, "end": window.end})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def self_hosted_report(con: duckdb.DuckDBPyConnection, window: Window, served: list[SelfHosted],
                       settings: Settings | None = None) -> list[dict[str, object]]:
    """Per self-hosted model and comparison: what its tokens cost on its own GPUs (serving GPU cost / tokens
    served, at the utilisation it actually had) and what the same tokens would have cost on each
    ``llm.compare_with`` API model at its standard price in force at the window's end (base context tier; the
    one matching rule). One row per (model, comparison), so the table stays narrow however many there are."""
    if not served:
        return []
    s = settings or Settings()
    models = ", ".join(sql_str(x.model) for x in served)
    # "openai/gpt-4o-mini": that provider's price (your contract or override rates for it apply)
    pairs = [(m.split("/", 1) if "/" in m else (None, m)) for m in s.llm.compare_with]
    compare = _values([f"({sql_str(m)}, {sql_str(pv) if pv else 'NULL::VARCHAR'}, {sql_str(n)})"
                       for m, (pv, n) in zip(s.llm.compare_with, pairs, strict=True)],
                      "NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR")
    parts = token_parts("t")
    sums = ", ".join(f"sum({expr}) AS {name}" for name, expr in parts.items())
    api_cost = " + ".join(f"coalesce({part_cost_sql(f'v.{name}', name, 'c')}, 0)" for name in parts)
    at = f"TIMESTAMP '{(window.end - timedelta(microseconds=1)).isoformat(sep=' ')}'"
    compare_keys = (f"SELECT provider, model, label, 'standard' AS tier, {at} AS ts, 1 AS input_tokens "
                    "FROM compare")
    sql = f"""
WITH req AS (
  SELECT *, coalesce(response_model, request_model) AS priced_model FROM llm_requests
  WHERE NOT _superseded AND ts >= $start::TIMESTAMP AND ts < $end::TIMESTAMP
), volumes AS (
  SELECT t.priced_model AS model, sum(coalesce(t.requests, 1)) AS requests, sum(coalesce(t.input_tokens, 0)) AS inp,
         sum(coalesce(t.output_tokens, 0)) AS outp, {sums}
  FROM req t WHERE t.priced_model IN ({models}) GROUP BY 1
), compare(label, provider, model) AS ({compare}),
current_price AS ({match_sql(con, compare_keys, s.llm)})
SELECT v.model, v.requests, v.inp, v.outp, c.label,
       CASE WHEN c.price_catalog IS NOT NULL THEN {api_cost} END
FROM volumes v LEFT JOIN current_price c ON true
ORDER BY v.model, c.label"""
    rows = con.execute(sql, {"start": window.start, "end": window.end}).fetchall()
    by_model = {x.model: x for x in served}
    out: list[dict[str, object]] = []
    seen: set[str] = set()
    for model, requests, inp, outp, name, api in rows:
        x = by_model[model]
        seen.add(model)
        tokens = (inp or 0) + (outp or 0)
        out.append({
            "model": model, "requests": requests, "inputTokens": inp, "outputTokens": outp, "gpuCost": x.gpu_cost,
            "gpuHours": x.gpu_hours, "servingWorkloads": x.workloads,
            "costPer1MTokens": x.gpu_cost * 1_000_000 / tokens if tokens else None,
            "comparedWith": name, "apiCost": api,
            "apiCostPer1MTokens": api * 1_000_000 / tokens if api is not None and tokens else None,
            "apiCostMinusGpuCost": api - x.gpu_cost if api is not None else None})
    for x in served:  # a model that served no request in the window still cost its GPUs
        if x.model not in seen:
            out.append({"model": x.model, "requests": 0, "inputTokens": 0, "outputTokens": 0, "gpuCost": x.gpu_cost,
                        "gpuHours": x.gpu_hours, "servingWorkloads": x.workloads, "costPer1MTokens": None,
                        "comparedWith": None, "apiCost": None, "apiCostPer1MTokens": None,
                        "apiCostMinusGpuCost": None})
    return out


def _values(rows: list[str], empty: str) -> str:
    return "VALUES " + ", ".join(rows) if rows else f"SELECT {empty} WHERE false"
