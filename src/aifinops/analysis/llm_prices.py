"""The prices LLM requests are priced at, and the rule that picks one price row for a request.

**The price relation** (``prices_sql``) is the union of

- every row of ``llm_prices`` in the store (catalog snapshots ingested with ``aifinops ingest litellm-prices``
  / ``genai-prices``, or any other catalog a plugin loads);
- the bundled snapshots' rows (LiteLLM 1.109.1, genai-prices 47df840) of each catalog the store holds no row
  of: an ingested snapshot of a catalog replaces the bundled one;
- the rows of ``llm.prices`` in aifinops.yaml (``kind`` contract or override).

It has the ``llm_prices`` columns plus ``base_key`` (``base_key_sql``), ``kind`` (override | contract |
catalog), ``catalog_rank`` (position in ``llm.catalogs``, default litellm then genai-prices; unlisted
catalogs after them), ``precedence`` (override 0, contract 1, catalogs 2 + catalog_rank) and ``batch`` (the
store batch; 0 for the bundled snapshots, NULL for settings).

**The rule** for a request (``provider``, ``model``, ``ts``, ``input_tokens``, ``tier``), first that applies:

0. aliases: when the model's key is the key of an ``llm.aliases`` name, its target is matched instead;
1. candidates are the rows whose ``base_key`` is the request's, of the request's tier (NULL, and OpenAI's
   ``default`` / ``auto``: standard) or the standard tier, whose ``above_tokens`` is 0 or below the
   request's input tokens; a settings row with a provider applies to that provider's requests only (a
   catalog row of another provider is a fallback);
2. rows in force at ``ts`` (``valid_from`` NULL or <= ts, ``valid_to`` NULL or > ts; a request without a time
   is priced by the open rows) before rows that are not: when no row is in force (a request before any
   dated row), the earliest-starting one is used and ``price_in_force`` is false;
3. kind: override > contract > catalog;
4. match: ``provider+model`` (the canonical provider, ``provider_sql``, and ``model_key`` equal; a settings row
   without provider matches every provider) > ``provider+base`` (same provider, ``base_key`` equal: a dated
   version no row prices on its own) > ``model`` (any provider, ``model_key`` equal) > ``base`` (any provider);
   a row for the provider before a row for any provider;
5. the request's own tier before the standard tier (``price_tier_fallback`` true);
6. a row in force at ``ts`` and superseded since (``valid_to`` set) before an open-ended one: a catalog that
   dates its price changes (genai-prices: o3 cost 10/40 until 2025-06-10) knows what a past request cost
   better than a snapshot taken after it (LiteLLM's undated 2/8);
7. catalog order (``llm.catalogs``);
8. the latest ``valid_from`` in force (a newer snapshot's or price change's row); among rows not in force,
   the earliest future one;
9. the newest snapshot (store batch);
10. the name: the request's own name (after any route prefix: ``vertex_ai/claude-3-5-sonnet@20240620`` for
    ``claude-3-5-sonnet@20240620``), an undated catalog name, the latest dated one, the shortest
    (``azure/gpt-4o`` before the data-zone ``azure/eu/gpt-4o``), alphabetical;
11. the greatest ``above_tokens`` below the request's input tokens (the context tier of that price).

``match_sql`` applies it to a whole relation of requests in SQL; ``candidates`` lists every row a model
could match, with the winner and why each other row lost (``aifinops prices show``); ``diff`` compares two
catalogs (``aifinops prices diff``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa

from ..config import LlmSettings
from ..model.checks import sql_str
from ..model.llm import LLM_PRICE_COLUMNS, base_key_sql, model_key_sql, provider_sql
from ..sources.genai_prices import GenaiPricesSource
from ..sources.litellm_prices import LitellmPricesSource
from ..sources.price_catalog import PRICE_FIELDS

BUNDLED_VIEW = "_aif_llm_prices_bundled"
SETTINGS_VIEW = "_aif_llm_prices_settings"
ALIASES_VIEW = "_aif_llm_aliases"
MATCHES = {1: "provider+model", 2: "provider+base", 3: "model", 4: "base"}

#: what ``match_sql`` adds to each request (NULL when no row matches)
MATCH_COLUMNS = (
    "price_catalog", "price_kind", "price_provider", "price_model", "price_tier", "price_above_tokens",
    "price_valid_from", "price_valid_to", *PRICE_FIELDS, "price_currency", "price_snapshot", "price_match",
    "price_in_force", "price_tier_fallback", "price_alias",
)


@cache
def bundled_table() -> pa.Table:
    """The bundled snapshots of both catalogs as canonical rows, normalised once per process."""
    tables = []
    for source in (LitellmPricesSource(), GenaiPricesSource()):
        file = source.files(["bundled"])[0]
        tables.append(source.table(file)[0].drop_columns(["_rn"]))
    return pa.concat_tables(tables)


def _naive_utc(t: datetime | None) -> datetime | None:
    """A settings time as the store keeps time: naive UTC (a naive time already is)."""
    return t.astimezone(UTC).replace(tzinfo=None) if t is not None and t.tzinfo else t


def _settings_table(llm: LlmSettings) -> pa.Table:
    """``llm.prices`` as rows (provider and model key are canonicalised in ``prices_sql``)."""
    money = pa.decimal128(38, 12)
    schema = pa.schema([("catalog", pa.string()), ("provider", pa.string()), ("model", pa.string()),
                        ("tier", pa.string()), ("above_tokens", pa.int64()), ("valid_from", pa.timestamp("us")),
                        ("valid_to", pa.timestamp("us")), *((f, money) for f in PRICE_FIELDS),
                        ("snapshot", pa.string())])
    rows = [{"catalog": p.kind, "provider": p.provider, "model": p.model, "tier": p.tier,
             "above_tokens": p.above_tokens, "valid_from": _naive_utc(p.valid_from),
             "valid_to": _naive_utc(p.valid_to), **{f: getattr(p, f) for f in PRICE_FIELDS},
             "snapshot": f"settings llm.prices[{i}]"} for i, p in enumerate(llm.prices)]
    return pa.Table.from_pylist(rows, schema=schema)


def _aliases_table(llm: LlmSettings) -> pa.Table:
    return pa.table({"name": pa.array(list(llm.aliases), pa.string()),
                     "target": pa.array(list(llm.aliases.values()), pa.string())})


def _has_store_prices(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'llm_prices' "
                            "AND table_schema = 'main'").fetchall()[0][0])


def prices_sql(con: duckdb.DuckDBPyConnection, llm: LlmSettings | None = None) -> str:
    """SQL (a SELECT) of the price relation described in the module docstring. Registers the bundled and
    settings rows on ``con`` as Arrow views (no write: it works on a read-only store, or on a connection
    without a store, where only the bundled snapshots and the settings price)."""
    llm = llm or LlmSettings()
    # DuckDB 2 refuses register() while an earlier result is unfetched (Store reads its schema version with
    # fetchone); a statement fetched to the end releases the connection.
    con.execute("SELECT 1").fetchall()
    con.register(BUNDLED_VIEW, bundled_table())
    con.register(SETTINGS_VIEW, _settings_table(llm))
    con.register(ALIASES_VIEW, _aliases_table(llm))
    cols = ", ".join(f'"{c}"' for c in LLM_PRICE_COLUMNS)
    parts = []
    if _has_store_prices(con):
        parts.append(f"SELECT {cols}, _batch_id AS batch FROM llm_prices")
        parts.append(f"SELECT {cols}, 0 AS batch FROM {BUNDLED_VIEW} b "
                     "WHERE NOT EXISTS (SELECT 1 FROM llm_prices s WHERE s.catalog = b.catalog)")
    else:
        parts.append(f"SELECT {cols}, 0 AS batch FROM {BUNDLED_VIEW}")
    settings_cols = {c: f'"{c}"' for c in LLM_PRICE_COLUMNS} | {
        "provider": provider_sql("provider"), "model_key": model_key_sql("model"), "mode": "NULL",
        "currency": "'USD'"}
    parts.append("SELECT " + ", ".join(f"CAST({e} AS {LLM_PRICE_COLUMNS[c]}) AS \"{c}\""
                                       for c, e in settings_cols.items()) + f", NULL AS batch FROM {SETTINGS_VIEW}")
    ranks = " ".join(f"WHEN {sql_str(c)} THEN {i}" for i, c in enumerate(llm.catalogs))
    catalog_rank = f"CASE catalog {ranks} ELSE {len(llm.catalogs)} END" if ranks else "0"
    union = "\n  UNION ALL BY NAME\n  ".join(parts)
    return f"""SELECT *, CASE kind WHEN 'override' THEN 0 WHEN 'contract' THEN 1 ELSE 2 + catalog_rank END AS precedence
FROM (
  SELECT *, {base_key_sql('model')} AS base_key,
         CASE WHEN catalog IN ('override', 'contract') THEN catalog ELSE 'catalog' END AS kind,
         CASE WHEN catalog IN ('override', 'contract') THEN 0 ELSE {catalog_rank} END AS catalog_rank
  FROM (
  {union}
  )
)"""


#: Columns of the price relation, as ``_p_<name>`` beside a request's columns in the candidates.
PRICE_RELATION_COLUMNS = (*LLM_PRICE_COLUMNS, "batch", "base_key", "kind", "catalog_rank", "precedence")
#: The terms of a candidate that do not depend on the request's time or tokens.
_STATIC = ("_m_provider", "_m_model", "_m_alias", "_m_tier", "_m_key", "_m_base", "_kind_rank", "_level",
           "_any_provider", "_tier_ok", "_tier_fallback", "_name_exact")

#: The rule's order (module docstring, steps 2-11) over a request's candidate rows (``ts``: the request's).
ORDER = """
  _in_force DESC, _kind_rank, _level, _any_provider, _tier_fallback,
  CASE WHEN _in_force THEN _p_valid_to IS NULL END, _p_catalog_rank,
  CASE WHEN _in_force THEN _p_valid_from END DESC NULLS LAST,
  CASE WHEN NOT _in_force AND _p_valid_from > ts THEN _p_valid_from END ASC NULLS LAST,
  CASE WHEN NOT _in_force THEN _p_valid_to END DESC NULLS LAST,
  _p_batch DESC NULLS LAST, NOT _name_exact, _p_model_key <> _p_base_key, _p_model_key DESC, length(_p_model),
  _p_model, _p_above_tokens DESC"""

_IN_FORCE = """CASE WHEN {ts} IS NULL THEN {p}valid_to IS NULL
  ELSE coalesce({p}valid_from <= {ts}, true) AND coalesce({p}valid_to > {ts}, true) END"""


def _static_sql(keys_sql: str, prices: str) -> str:
    """SQL CTEs ending in ``_c``: each request key of ``keys_sql`` (``provider``, ``model``, ``tier`` and
    whatever else it carries) beside every price row of its base key (``_p_`` columns), with the rule's terms
    that do not depend on the request's time or tokens (``_STATIC``)."""
    pm = "(p.provider IS NULL OR p.provider = k._m_provider)"
    pcols = ", ".join(f'p."{c}" AS "_p_{c}"' for c in PRICE_RELATION_COLUMNS)
    return f"""
_m AS (
  SELECT k.*, {provider_sql('k.provider')} AS _m_provider, coalesce(a.target, k.model) AS _m_model,
         a.target AS _m_alias,
         CASE WHEN coalesce(lower(trim(k.tier)), '') IN ('', 'default', 'auto') THEN 'standard'
              ELSE lower(trim(k.tier)) END AS _m_tier
  FROM ({keys_sql}) k
  LEFT JOIN (SELECT {model_key_sql('name')} AS alias_key, any_value(target) AS target FROM {ALIASES_VIEW}
             GROUP BY ALL) a ON a.alias_key = {model_key_sql('k.model')}
),
_k AS (SELECT *, {model_key_sql('_m_model')} AS _m_key, {base_key_sql('_m_model')} AS _m_base FROM _m),
_p AS ({prices}),
_c AS (
  SELECT k.*, {pcols},
         CASE p.kind WHEN 'override' THEN 0 WHEN 'contract' THEN 1 ELSE 2 END AS _kind_rank,
         CASE WHEN {pm} AND p.model_key = k._m_key THEN 1 WHEN {pm} THEN 2 WHEN p.model_key = k._m_key THEN 3
              ELSE 4 END AS _level,
         p.provider IS NULL AS _any_provider, p.tier IN (k._m_tier, 'standard') AS _tier_ok,
         p.tier <> k._m_tier AS _tier_fallback,
         regexp_replace(lower(p.model), '^.*/', '') = regexp_replace(lower(k._m_model), '^.*/', '') AS _name_exact
  FROM _k k JOIN _p p ON p.base_key = k._m_base
  WHERE p.kind = 'catalog' OR p.provider IS NULL OR p.provider = k._m_provider
)"""


def match_sql(con: duckdb.DuckDBPyConnection, requests_sql: str, llm: LlmSettings | None = None) -> str:
    """SQL: every row of ``requests_sql`` with the price the rule picks (``MATCH_COLUMNS``; NULL when nothing
    matches). ``requests_sql`` is a SELECT with at least the columns ``provider``, ``model`` (the name to
    price, e.g. ``coalesce(response_model, request_model)``), ``ts``, ``input_tokens`` and ``tier``. Registers
    views on ``con`` (``prices_sql``).

    Matching is done once per distinct (provider, model, tier) and pruned there: a candidate that ranks below
    an open-ended base-price row (in force at every time, eligible at every size) can never win. Each request
    then ranks only the few rows left, by its time and input tokens."""
    keys = "SELECT DISTINCT provider, model, tier FROM _req"
    group = "_kind_rank * 100 + _level * 10 + _any_provider::INTEGER"
    open_base = "_p_valid_from IS NULL AND _p_valid_to IS NULL AND _p_above_tokens = 0"
    same = " AND ".join(f"s._k_{c} IS NOT DISTINCT FROM r.{c}" for c in ("provider", "model", "tier"))
    picked = {
        "price_catalog": "_p_catalog", "price_kind": "_p_kind", "price_provider": "_p_provider",
        "price_model": "_p_model", "price_tier": "_p_tier", "price_above_tokens": "_p_above_tokens",
        "price_valid_from": "_p_valid_from", "price_valid_to": "_p_valid_to",
        **{f: f"_p_{f}" for f in PRICE_FIELDS}, "price_currency": "_p_currency", "price_snapshot": "_p_snapshot",
        "price_match": _match_name("_level"), "price_in_force": "_in_force",
        "price_tier_fallback": "_tier_fallback", "price_alias": "_m_alias",
    }
    assert tuple(picked) == MATCH_COLUMNS
    internal = ["_aif_rid", "_in_force", "_k_provider", "_k_model", "_k_tier", *_STATIC,
                *(f"_p_{c}" for c in PRICE_RELATION_COLUMNS)]
    return f"""WITH _req AS ({requests_sql}),{_static_sql(keys, prices_sql(con, llm))},
_s AS (
  SELECT * EXCLUDE (provider, model, tier), provider AS _k_provider, model AS _k_model, tier AS _k_tier
  FROM _c WHERE _tier_ok
  QUALIFY {group} <= coalesce(min({group}) FILTER (WHERE {open_base})
                              OVER (PARTITION BY provider, model, tier), 999)
),
_j AS (
  SELECT r.*, s.*, {_IN_FORCE.format(ts='r.ts', p='s._p_')} AS _in_force
  FROM (SELECT *, row_number() OVER () AS _aif_rid FROM _req) r
  LEFT JOIN _s s ON {same} AND (s._p_above_tokens = 0 OR s._p_above_tokens < coalesce(r.input_tokens, 0))
)
SELECT * EXCLUDE ({", ".join(internal)}), {", ".join(f"{e} AS {c}" for c, e in picked.items())}
FROM _j QUALIFY row_number() OVER (PARTITION BY _aif_rid ORDER BY {ORDER}) = 1"""


def _match_name(level: str) -> str:
    return "CASE " + level + " " + " ".join(f"WHEN {k} THEN {sql_str(v)}" for k, v in MATCHES.items()) + " END"


def candidates(con: duckdb.DuckDBPyConnection, model: str, provider: str | None = None, at: datetime | None = None,
               input_tokens: int | None = None, tier: str | None = None,
               llm: LlmSettings | None = None) -> list[dict[str, Any]]:
    """Every price row ``model`` could match (same base key, after aliases), in the rule's order: eligible rows
    first with ``rank`` (1 = the price ``match_sql`` picks), then rows of other tiers or context tiers above
    ``input_tokens``; each with ``why`` it wins or loses. ``at`` None: the open rows price (now)."""
    keys = ("SELECT $provider::VARCHAR AS provider, $model::VARCHAR AS model, $ts::TIMESTAMP AS ts, "
            "$tokens::BIGINT AS input_tokens, $tier::VARCHAR AS tier")
    eligible = "(_tier_ok AND (_p_above_tokens = 0 OR _p_above_tokens < coalesce(input_tokens, 0)))"
    sql = f"""WITH {_static_sql(keys, prices_sql(con, llm))},
_e AS (SELECT *, {eligible} AS _eligible, {_IN_FORCE.format(ts='ts', p='_p_')} AS _in_force FROM _c)
SELECT *, CASE WHEN _eligible THEN row_number() OVER (PARTITION BY _eligible ORDER BY {ORDER}) END AS _rank
FROM _e ORDER BY _eligible DESC, {ORDER}"""
    cur = con.execute(sql, {"provider": provider, "model": model, "ts": _naive_utc(at), "tokens": input_tokens,
                            "tier": tier})
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    winner = next((r for r in rows if r["_rank"] == 1), None)
    return [_shown(r, winner) for r in rows]


def _terms(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """The rule's terms of a candidate, best first, as (name, value where smaller wins)."""
    return [
        ("in_force", not r["_in_force"]), ("kind", r["_kind_rank"]), ("match", r["_level"]),
        ("any_provider", r["_any_provider"]), ("tier", r["_tier_fallback"]),
        ("history", r["_in_force"] and r["_p_valid_to"] is None), ("catalog", r["_p_catalog_rank"]),
        ("valid_from", r["_p_valid_from"]), ("batch", r["_p_batch"]),
        ("name", (not r["_name_exact"], r["_p_model_key"] != r["_p_base_key"], r["_p_model"])),
        ("above_tokens", -r["_p_above_tokens"]),
    ]


def _why(r: dict[str, Any], w: dict[str, Any] | None) -> str:
    """Why a candidate wins, loses to the winner ``w``, or is not eligible for the request."""
    if not r["_eligible"]:
        if not r["_tier_ok"]:
            return f"tier {r['_p_tier']}: the request's tier is {r['_m_tier']}"
        return f"applies above {r['_p_above_tokens']:,} input tokens (the request has {r['input_tokens'] or 0:,})"
    when = "now" if r["ts"] is None else f"at {r['ts']:%Y-%m-%d %H:%M}"
    if r["_rank"] == 1:
        parts = [f"wins: {r['_p_kind']}", f"match {MATCHES[r['_level']]}", f"tier {r['_p_tier']}"]
        if r["_tier_fallback"]:
            parts.append(f"(no {r['_m_tier']} price: standard used)")
        if r["_p_above_tokens"]:
            parts.append(f"context tier above {r['_p_above_tokens']:,} input tokens")
        if not r["_in_force"]:
            parts.append(f"not in force {when}: the earliest price is used")
        return ", ".join(parts)
    assert w is not None
    for (name, mine), (_, theirs) in zip(_terms(r), _terms(w), strict=True):
        if mine == theirs:
            continue
        return {
            "in_force": f"not in force {when}",
            "kind": f"{r['_p_kind']} ranks below {w['_p_kind']}",
            "match": f"weaker match: {MATCHES[r['_level']]}",
            "any_provider": "for any provider; the winner is this provider's",
            "tier": f"standard-tier fallback; the winner is {w['_p_tier']}",
            "history": "open-ended; the winner is dated history",
            "catalog": f"catalog order: {r['_p_catalog']} after {w['_p_catalog']}",
            "valid_from": f"older price (from {r['_p_valid_from'] or 'ever'})",
            "batch": f"older snapshot ({r['_p_snapshot']})",
            "name": f"other name of the model; {w['_p_model']} first",
            "above_tokens": f"the context tier above {w['_p_above_tokens']:,} applies",
        }[name]
    return "same price terms as the winner"


def _shown(r: dict[str, Any], winner: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "rank": r["_rank"], "kind": r["_p_kind"], "catalog": r["_p_catalog"], "provider": r["_p_provider"],
        "model": r["_p_model"], "match": MATCHES[r["_level"]], "tier": r["_p_tier"],
        "above_tokens": r["_p_above_tokens"], "valid_from": r["_p_valid_from"], "valid_to": r["_p_valid_to"],
        "in_force": r["_in_force"], **{f: r[f"_p_{f}"] for f in PRICE_FIELDS}, "snapshot": r["_p_snapshot"],
        "alias": r["_m_alias"], "why": _why(r, winner),
    }


def diff(con: duckdb.DuckDBPyConnection, a: str = "litellm", b: str = "genai-prices",
         min_diff: Decimal = Decimal("0.05"), llm: LlmSettings | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Where catalogs ``a`` and ``b`` disagree: for each model both price (same canonical provider and model
    key; each catalog's current standard base row, the plain name first), the input, output, cache read and
    cache write prices (a NULL cache price is the input price, as pricing reads it) whose relative difference
    |a - b| / max(|a|, |b|) exceeds ``min_diff``. Returns (counts, disagreeing models, largest first)."""
    fields = {"input": "input_per_mtok", "output": "output_per_mtok",
              "cache_read": "coalesce(cache_read_per_mtok, input_per_mtok)",
              "cache_write": "coalesce(cache_write_per_mtok, input_per_mtok)"}
    rel = {f: f"CASE WHEN x.{f} = y.{f} THEN 0 WHEN x.{f} IS NULL OR y.{f} IS NULL THEN NULL ELSE "
              f"CAST(abs(x.{f} - y.{f}) AS DOUBLE) / CAST(greatest(abs(x.{f}), abs(y.{f})) AS DOUBLE) END"
           for f in fields}
    sql = f"""
WITH _p AS ({prices_sql(con, llm)}),
cur AS (
  SELECT catalog, provider, model_key, model, {", ".join(f"{e} AS {f}" for f, e in fields.items())}
  FROM _p WHERE kind = 'catalog' AND catalog IN ($a, $b) AND tier = 'standard' AND above_tokens = 0
    AND valid_to IS NULL AND model_key IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY catalog, provider, model_key
                             ORDER BY valid_from DESC NULLS LAST, batch DESC, lower(model) <> model_key,
                                      length(model), model) = 1
),
pairs AS (
  SELECT x.provider, x.model_key, x.model AS model_a, y.model AS model_b,
         {", ".join(f"x.{f} AS {f}_a, y.{f} AS {f}_b, {rel[f]} AS {f}_diff" for f in fields)}
  FROM cur x JOIN cur y ON x.provider = y.provider AND x.model_key = y.model_key
  WHERE x.catalog = $a AND y.catalog = $b
)
SELECT *, greatest({", ".join(f"coalesce({f}_diff, 0)" for f in fields)}) AS max_diff FROM pairs"""
    params = {"a": a, "b": b}
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    pairs = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    counts = dict(con.execute(
        f"WITH _p AS ({prices_sql(con, llm)}) SELECT catalog, count(DISTINCT (provider, model_key)) FROM _p "
        "WHERE kind = 'catalog' AND catalog IN ($a, $b) AND tier = 'standard' AND above_tokens = 0 "
        "AND valid_to IS NULL GROUP BY catalog", params).fetchall())
    threshold = float(min_diff)
    out = []
    for p in sorted(pairs, key=lambda p: (-p["max_diff"], p["provider"], p["model_key"])):
        differ = [f for f in fields if p[f"{f}_diff"] is not None and p[f"{f}_diff"] > threshold]
        if not differ:
            continue
        row: dict[str, Any] = {"provider": p["provider"], "model_key": p["model_key"], f"model_{a}": p["model_a"],
                               f"model_{b}": p["model_b"]}
        for f in fields:
            row[f"{f}_{a}"], row[f"{f}_{b}"] = p[f"{f}_a"], p[f"{f}_b"]
        row["max_diff"] = round(p["max_diff"], 4)
        row["differ"] = ",".join(differ)
        out.append(row)
    summary = {"catalog_a": a, "catalog_b": b, f"models_{a}": counts.get(a, 0), f"models_{b}": counts.get(b, 0),
               "models_in_both": len(pairs), "disagree": len(out), "min_diff": min_diff}
    return summary, out
