"""Unit economics of inference: requests, tokens, cost, and cost per request, per 1K tokens, per active
user, per conversation and per business outcome, by model, feature, team, user, provider or tenant.

Why tokens are summed before they are priced: a request's cost is linear in its tokens once its price row
and context tier are known, so the engine sums each part's tokens per (group, price row, tier) and
multiplies the sums by the exact decimal prices. That is the same money as pricing each request (to the
last decimal) and keeps 100M requests a matter of integer sums, not 400M decimal products.

Everything here comes from ``llm_costs.pricing_ctes`` (which price applies to which request: the one rule of
``llm_prices``) and is computed in one statement per call:

- ``requests`` counts what the rows stand for (an aggregated export's row is ``requests`` requests);
- ``cost`` is NULL-free: unpriced requests are not costed at 0 but counted in ``unpricedRequests`` and
  ``unpricedTokens``, so a total always says how much of the volume it covers;
- ``activeUsers`` and ``conversations`` are exact distinct counts over the window; per day, week or month
  they are HyperLogLog estimates (within about 2%): exact distinct sets per period and group grow with
  the requests and would not fit a bounded memory at 100M requests. ``p50TokensPerRequest`` and
  ``p95TokensPerRequest`` are approximate (one t-digest per group), which keeps them one pass;
- outcomes (``--outcome METRIC``) join on the grouping when the outcome rows carry it (feature, model,
  team, user, tenant); ``--revenue METRIC`` gives ``grossMargin`` = (revenue - cost) / revenue;
- ``sourceCost`` is what the source itself said (LiteLLM's spend) and ``drift`` = cost - sourceCost over
  the requests that have both.
"""

from __future__ import annotations

import duckdb

from ..config import LlmSettings, Settings
from ..model.checks import sql_str
from .gpu_allocation import gpu_data_span
from .llm_costs import SELF_HOSTED_PROVIDERS, SelfHosted, part_cost_sql, pricing_ctes, token_parts
from .windows import Window, within

MONEY = "DECIMAL(38, 12)"
#: --by dimension -> the request column it groups by
DIMENSIONS: dict[str, str] = {
    "model": "priced_model", "feature": "feature", "team": "team", "user": "user_id", "provider": "provider",
    "tenant": "tenant", "service": "service", "environment": "environment", "operation": "operation",
    "tier": "coalesce(tier, 'standard')", "api_key": "api_key", "conversation": "conversation_id",
}
#: --by dimension -> the outcomes column that names the same thing
OUTCOME_DIMENSIONS = {"model": "model", "feature": "feature", "team": "team", "user": "user_id", "tenant": "tenant"}
PERIODS = ("window", "day", "week", "month")


class UnitCostError(ValueError):
    """A grouping, period or option unit costs cannot use; the message says which and what to use."""


def _keys(by: list[str], accumulate: str) -> list[tuple[str, str]]:
    """(output name, SQL over a request row) of the grouping, the period first."""
    if accumulate not in PERIODS:
        raise UnitCostError(f"unknown accumulate {accumulate!r}: use {', '.join(PERIODS)}")
    keys = [] if accumulate == "window" else [("start", f"date_trunc('{accumulate}', ts)")]
    for dim in by:
        if dim.startswith("attribute:") and dim[10:]:
            keys.append((dim, f"attributes[{sql_str(dim[10:])}]"))
        elif dim in DIMENSIONS:
            keys.append((dim, DIMENSIONS[dim]))
        else:
            raise UnitCostError(f"unknown --by {dim!r}: use {', '.join(DIMENSIONS)}, attribute:KEY, or run, "
                                "experiment, model_version for training")
    return keys


def within_usage_data(con: duckdb.DuckDBPyConnection, window: Window) -> Window:
    """``window`` cut to where LLM requests, GPU workloads or samples exist: self-hosted models are priced from
    the hourly GPU allocation, and ``all`` (from 1970) would build half a million empty hours first."""
    llm = con.execute("SELECT min(ts), max(ts) + INTERVAL 1 SECOND FROM llm_requests WHERE NOT _superseded") \
        .fetchall()[0]
    firsts, lasts = zip(llm, gpu_data_span(con), strict=True)
    first = min((t for t in firsts if t is not None), default=None)
    last = max((t for t in lasts if t is not None), default=None)
    return within(window, first, last) if first is not None else Window(window.start, window.start)


def unit_costs_sql(con: duckdb.DuckDBPyConnection, by: list[str], accumulate: str = "window",
                   llm: LlmSettings | None = None, served: list[SelfHosted] | None = None,
                   outcome: str | None = None, revenue: str | None = None) -> str:
    """The statement (``$start``, ``$end``): one row per group and period. Registers the price views on ``con``."""
    keys = _keys(by, accumulate)
    k_expr = ", ".join(f"{e} AS k{i}" for i, (_, e) in enumerate(keys))
    k_cols = ", ".join(f"k{i}" for i in range(len(keys)))
    sel = (k_expr + ", ") if keys else ""
    sel_u = (k_cols + ", ") if keys else ""
    grp = f"GROUP BY {k_cols}" if keys else ""
    def on(a: str, b: str) -> str:  # a NULL group (requests without a team) is a group: join it too
        return "ON " + (" AND ".join(f"{a}.k{i} IS NOT DISTINCT FROM {b}.k{i}" for i in range(len(keys))) or "true")

    parts = token_parts("m")
    sums = ", ".join(f"sum({t}) AS t_{name}" for name, t in parts.items())
    resums = ", ".join(f"sum(f.t_{name}) AS t_{name}" for name in parts)
    priced_parts = " + ".join(f"coalesce({part_cost_sql(f't_{name}', name, 'g')}, 0)" for name in parts)
    self_hosted = ", ".join(sql_str(p) for p in SELF_HOSTED_PROVIDERS)
    tokens = "(coalesce(m.input_tokens, 0) + coalesce(m.output_tokens, 0))"
    same = " AND ".join(f"k.{c} IS NOT DISTINCT FROM f.{c}" for c in ("provider", "tier", "hour", "bucket"))
    fine = f""",
fine AS (
  -- one pass over the requests: tokens per group and pricing key (provider, model, tier, hour, context
  -- tier), so the prices join a table of thousands of rows, not the requests
  SELECT {sel}m.provider, m.priced_model, m.tier, m.hour, m.bucket, m.source_cost IS NOT NULL AS has_source,
         m.status IS NOT DISTINCT FROM 'cached' AS cached, {sums}, sum({tokens}) AS t_tokens,
         sum(coalesce(m.requests, 1)) AS n_requests
  FROM req m GROUP BY ALL
)"""
    # Distinct users and conversations: exact over the window (a grouping of (group, user) pairs, which
    # spills); per day, week or month HyperLogLog (within about 2%), since exact distinct sets per period
    # and group grow with the requests and do not fit a bounded memory at 100M requests.
    if accumulate == "window":
        distinct_approx = ""
        distinct_exact = f""", users AS (
  SELECT {sel_u}count(*) AS active_users
  FROM (SELECT DISTINCT {sel}m.user_id FROM req m WHERE m.user_id IS NOT NULL) {grp}
), convs AS (
  SELECT {sel_u}count(*) AS conversations
  FROM (SELECT DISTINCT {sel}m.conversation_id FROM req m WHERE m.conversation_id IS NOT NULL) {grp}
)"""
        distinct_cols = "coalesce(us.active_users, 0), coalesce(cv.conversations, 0)"
        distinct_join = f'LEFT JOIN users us {on("st", "us")} LEFT JOIN convs cv {on("st", "cv")}'
    else:
        distinct_approx = (",\n         approx_count_distinct(m.user_id) AS active_users, "
                           "approx_count_distinct(m.conversation_id) AS conversations")
        distinct_exact, distinct_cols, distinct_join = "", "st.active_users, st.conversations", ""
    out_keys = [(n, OUTCOME_DIMENSIONS.get(n)) for n, _ in keys]
    joinable = (outcome or revenue) and all(col or n == "start" for n, col in out_keys)
    outcome_cte, outcome_cols = "", "NULL::DECIMAL(38, 12) AS outcome_value, NULL::DECIMAL(38, 12) AS revenue_value"
    if joinable:
        o_expr = ", ".join(f"{'date_trunc(' + sql_str(accumulate) + ', ts)' if n == 'start' else col} AS k{i}"
                           for i, (n, col) in enumerate(out_keys))
        o_sel = (o_expr + ", ") if keys else ""
        outcome_cte = f""", outcome_sums AS (
  SELECT {o_sel}sum(value) FILTER (WHERE metric = $outcome) AS outcome_value,
         sum(value) FILTER (WHERE metric = $revenue) AS revenue_value
  FROM outcomes WHERE ts >= $start::TIMESTAMP AND ts < $end::TIMESTAMP AND NOT _superseded {grp}
)"""
        outcome_cols = "o.outcome_value, o.revenue_value"
    f_keys = "".join(f"f.k{i}, " for i in range(len(keys)))
    return pricing_ctes(con, llm, served, after_req=fine, keys_from="fine") + f"""
, grouped AS (
  -- tokens per group and price: the money is computed on these sums
  SELECT {f_keys}k.price_catalog AS catalog, k.input_per_mtok, k.output_per_mtok, k.cache_read_per_mtok,
         k.cache_write_per_mtok, f.priced_model, f.has_source, f.cached,
         k.price_catalog IS NULL AND f.provider IN ({self_hosted}) AS self_hosted_provider,
         {resums}, sum(f.t_tokens) AS t_tokens, sum(f.n_requests) AS n_requests
  FROM fine f LEFT JOIN key_prices k ON k.model IS NOT DISTINCT FROM f.priced_model AND {same}
  GROUP BY ALL
), model_tokens AS (
  -- a self-hosted model's GPU cost is spread over the tokens it served (a cached answer used no GPU)
  SELECT priced_model, sum(t_tokens) AS tokens FROM grouped WHERE catalog IS NULL AND NOT cached GROUP BY 1
), priced AS (
  SELECT g.*, CASE WHEN g.cached THEN CAST(0 AS {MONEY}) WHEN g.catalog IS NOT NULL
                   THEN CAST({priced_parts} AS {MONEY})
                   WHEN sv.model IS NOT NULL AND mt.tokens > 0
                     THEN CAST(CAST(sv.gpu_cost AS DOUBLE) * g.t_tokens / mt.tokens AS {MONEY}) END AS cost,
         sv.model IS NOT NULL AND g.catalog IS NULL AS self_hosted_cost
  FROM grouped g
  LEFT JOIN served sv ON sv.model = g.priced_model AND g.catalog IS NULL
  LEFT JOIN model_tokens mt ON mt.priced_model = g.priced_model
), money AS (
  SELECT {(k_cols + ", ") if keys else ""}coalesce(sum(cost), 0) AS cost,
         sum(cost) FILTER (WHERE has_source) AS cost_with_source,
         coalesce(sum(cost) FILTER (WHERE self_hosted_cost), 0) AS self_hosted_cost,
         coalesce(sum(n_requests) FILTER (WHERE cost IS NULL), 0) AS unpriced_requests,
         coalesce(sum(t_tokens) FILTER (WHERE cost IS NULL), 0) AS unpriced_tokens
  FROM priced {grp}
), stats AS (
  -- volumes come from the requests alone: no price join needed
  SELECT {sel}sum(coalesce(m.requests, 1)) AS requests, sum(coalesce(m.input_tokens, 0)) AS input_tokens,
         sum(coalesce(m.output_tokens, 0)) AS output_tokens,
         sum(coalesce(m.cache_read_tokens, 0) + coalesce(m.cache_write_tokens, 0)) AS cached_tokens,
         sum(coalesce(m.reasoning_tokens, 0)) AS reasoning_tokens,
         approx_quantile({tokens} / coalesce(nullif(m.requests, 0), 1), [0.5, 0.95]) AS pq,
         sum(m.source_cost) AS source_cost{distinct_approx}
  FROM req m {grp}
){distinct_exact}{outcome_cte}
SELECT {"".join(f"st.k{i}, " for i in range(len(keys)))}st.requests, st.input_tokens, st.output_tokens,
       st.cached_tokens, st.reasoning_tokens, mo.cost, mo.cost_with_source, mo.self_hosted_cost, mo.unpriced_requests,
       mo.unpriced_tokens, {distinct_cols}, st.pq[1], st.pq[2], st.source_cost, {outcome_cols}
FROM stats st JOIN money mo {on("st", "mo")}
{distinct_join}
{f"LEFT JOIN outcome_sums o {on('st', 'o')}" if joinable else ""}
ORDER BY {"st.k0, " if accumulate != "window" and keys else ""}mo.cost DESC{
    ", " + ", ".join(f"st.k{i}" for i in range(len(keys))) if keys else ""}
"""


def _ratio(a: object, b: object) -> object:
    return a / b if a is not None and b else None  # type: ignore[operator]


def unit_costs(con: duckdb.DuckDBPyConnection, window: Window, by: list[str], settings: Settings | None = None,
               accumulate: str = "window", served: list[SelfHosted] | None = None, outcome: str | None = None,
               revenue: str | None = None) -> list[dict[str, object]]:
    """Unit costs per group (see the module docstring); money as Decimal, ratios per request/token/user."""
    s = settings or Settings()
    keys = _keys(by, accumulate)
    sql = unit_costs_sql(con, by, accumulate, s.llm, served, outcome, revenue)
    params: dict[str, object] = {"start": window.start, "end": window.end}
    if "$outcome" in sql:  # outcomes join only when they carry the grouping
        params.update(outcome=outcome, revenue=revenue)
    rows = con.execute(sql, params).fetchall()
    out = []
    for r in rows:
        n = len(keys)
        (requests, inp, outp, cached, reasoning, cost, cost_with_source, self_cost, unpriced_req, unpriced_tok, users,
         convs, p50, p95, source_cost, outcome_value, revenue_value) = r[n:]
        tokens = inp + outp
        row: dict[str, object] = dict(zip([k for k, _ in keys], r[:n], strict=True))
        row.update({
            "requests": requests, "inputTokens": inp, "outputTokens": outp, "cachedTokens": cached,
            "reasoningTokens": reasoning, "cost": cost,
            "costPerRequest": _ratio(cost, requests - unpriced_req),
            "costPer1kTokens": _ratio(cost * 1000 if cost is not None else None, tokens - unpriced_tok),
            "activeUsers": users, "costPerActiveUser": _ratio(cost, users),
            "conversations": convs, "costPerConversation": _ratio(cost, convs),
            "p50TokensPerRequest": p50, "p95TokensPerRequest": p95,
            "unpricedRequests": unpriced_req, "unpricedTokens": unpriced_tok, "selfHostedCost": self_cost,
            "sourceCost": source_cost,
            "drift": (cost_with_source or 0) - source_cost if source_cost is not None else None,
        })
        if outcome:
            row.update({"outcome": outcome_value, "costPerOutcome": _ratio(cost, outcome_value)})
        if revenue:
            row.update({"revenue": revenue_value,
                        "grossMargin": _ratio(revenue_value - cost if revenue_value is not None else None,
                                              revenue_value)})
        out.append(row)
    return out
