"""The rows behind a number: ``/rows/charges`` (ledger charges), ``/rows/workloads`` (GPU workloads with their
allocated cost) and ``/rows/requests`` (priced LLM requests), narrowed by ``d.<dimension>=<value>`` (repeat a
dimension for any of several values) and the request's filters, paged, largest first. Their total is the number
that linked here: the same analysis, the same dimension values.

- charges: any ``aifinops costs --by`` dimension (a FOCUS column, ``tag:KEY``, ``layer``, ``day``...), and
  ``aiprovider`` (the model provider of an AI-services charge, as ``unit-costs --reconcile`` assigns it);
  ``frequency=usage`` keeps the usage-based charges, which forecasts and anomaly scans read;
- workloads: ``node``, ``namespace``, ``workload``, ``node_pool``, ``owner``, ``label:KEY``
  (``aifinops allocation --aggregate``);
- requests: ``model``, ``provider``, ``feature``, ``team``, ``service``, ``environment``, ``user``, ``tenant``,
  ``operation``, ``status``.

Values are compared as text and passed as query parameters; dimensions are checked against these lists (or the
ledger's columns) before anything runs. A scoped token sees its team's rows and the others' total over the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ibis

from ...analysis import costs as costs_mod
from ...analysis.layers import layer_expr, load_provider_rules
from ...analysis.llm_costs import costed_sql
from ..api.scope import OTHERS
from . import data, parts
from .blocks import Column, Kpi, Row, Table
from .context import ENV_KEY, Ctx, FilterError

MAX_CSV = 100_000
KINDS = ("charges", "workloads", "requests")
GPU_DIMS = ("node", "namespace", "workload", "node_pool", "owner")
REQUEST_DIMS = {"model": "priced_model", "provider": "provider", "feature": "feature", "team": "team",
                "service": "service", "endpoint": "service", "environment": "environment", "user": "user_id",
                "tenant": "tenant", "operation": "operation", "status": "status"}
CHARGE_COLUMNS = ("ChargePeriodStart", "ChargePeriodEnd", "ProviderName", "SubAccountName", "ServiceName",
                  "ResourceId", "SkuId", "ChargeCategory", "ChargeFrequency", "ChargeDescription", "EffectiveCost",
                  "BilledCost")


@dataclass
class Rows:
    """One page of the rows behind a number, with their total."""

    table: Table
    total: int
    kpis: list[Kpi]
    facts: dict[str, str]


def _where_text(where: dict[str, list[str]]) -> str:
    return "; ".join(f"{k} = {' or '.join(v)}" for k, v in where.items()) or "everything"


def charges(ctx: Ctx, where: dict[str, list[str]], offset: int, limit: int) -> Rows:
    w = data.ledger_window(ctx)
    usage = ctx.extra.get("frequency") == "usage"
    mine, others = data.ledger(ctx)
    t = costs_mod.in_window(mine, w)
    rules = data.rules(ctx)
    for dim, values in where.items():
        if dim == "aiprovider":
            t = t.filter(layer_expr(t, rules) == "ai-services")
            t = t.filter(layer_expr(t, load_provider_rules()).isin(values))
        else:
            t = t.filter(costs_mod.dimension_value(t, costs_mod.Dimension(dim), rules).cast("string").isin(values))
    if usage:
        t = t.filter(t.ChargeFrequency.fill_null("Usage-Based") == "Usage-Based")
    team, env = ctx.team_key, ENV_KEY
    cols = [*CHARGE_COLUMNS, f"tag:{team}", f"tag:{env}"]
    key = (w, tuple(sorted((k, tuple(v)) for k, v in where.items())), usage, ctx.who.team, ctx.filters.key())

    def compute_total() -> Row:
        zero = ibis.literal(0).cast(t.EffectiveCost.type())
        [row] = t.aggregate(cost=t.EffectiveCost.sum().fill_null(zero), charges=t.count()).to_pyarrow().to_pylist()
        if others is not None:
            [o] = costs_mod.cost_by(others, [], w).to_pyarrow().to_pylist()
            row["others"] = o["cost"] if o["charges"] else None
        return row

    def compute_page() -> list[Row]:
        page = t.mutate(**{f"tag:{team}": t.Tags.get(team), f"tag:{env}": t.Tags.get(env)}) \
            .order_by([ibis.desc("EffectiveCost"), "ChargePeriodStart", "_batch_id", "_file", "_row"]) \
            .select(*cols).limit(limit, offset=offset)
        return page.to_pyarrow().to_pylist()  # type: ignore[no-any-return]

    total = ctx.cached("rows:charges:total", key, compute_total)
    rows = ctx.cached("rows:charges", (key, offset, limit), compute_page)
    kpis = [Kpi("EffectiveCost", total["cost"]), Kpi("charges", total["charges"], kind="plain")]
    if total.get("others") is not None:
        kpis.append(Kpi(OTHERS, total["others"], note="over the window: their rows are not this token's"))
    table = Table.of("charges", f"Charges: {_where_text(where)}", rows,
                     [Column(c, kind="money" if c.endswith("Cost") else "plain") for c in cols],
                     links={"ResourceId": parts.rows_link(ctx, "charges", {"ResourceId": "ResourceId"})},
                     show=limit)
    facts = {"ledger window": parts.window_text(w), "charges": "usage-based only" if usage else "every frequency"}
    return Rows(table, int(total["charges"]), kpis, facts)


def workloads(ctx: Ctx, where: dict[str, list[str]], offset: int, limit: int) -> Rows:
    for dim in where:
        if dim not in GPU_DIMS and not (dim.startswith("label:") and dim[6:]):
            raise FilterError(f"unknown workload dimension {dim!r}: use {', '.join(GPU_DIMS)} or label:KEY")
    team = f"label:{ctx.team_key}"
    mine, others = data.alloc(ctx, ["workload", "namespace", team], where=where)
    every = sorted(mine, key=lambda r: (-(r["totalCost"] or 0), str(r["workload"])))
    cost = sum((r["totalCost"] or Decimal(0) for r in every), Decimal(0))
    kpis = [Kpi("GPU cost", cost), Kpi("workloads", len(every), kind="plain"),
            Kpi("GPU-hours", sum(float(r["gpuHours"] or 0) for r in every), kind="plain")]
    if others is not None:
        kpis.append(Kpi(OTHERS, others.get("totalCost"), note="over the window: their rows are not this token's"))
    table = Table.of("workloads", f"Workloads: {_where_text(where)}", every,
                     ["workload", "namespace", Column(team, "team"), *(d for d in where if d not in
                                                                       ("workload", "namespace", team)),
                      "gpuHours", "gpuCost", "sharedCost", "totalCost", Column("gpuEfficiency", "efficiency", "ratio"),
                      Column("gpuCostAllocatedIdle", "allocated idle", "money")],
                     links={team: parts.team_link(ctx, team)}, show=limit)
    return Rows(table, len(every), kpis, {"GPU window": parts.window_text(data.gpu_window(ctx)),
                                          "idle": "__idle__ is the GPUs no workload held"})


def requests(ctx: Ctx, where: dict[str, list[str]], offset: int, limit: int) -> Rows:
    for dim in where:
        if dim not in REQUEST_DIMS:
            raise FilterError(f"unknown request dimension {dim!r}: use {', '.join(REQUEST_DIMS)}")
    w = data.llm_window(ctx)
    f = ctx.filters
    conds: dict[str, list[str]] = {REQUEST_DIMS[k]: v for k, v in where.items()}
    for col, value in (("team", f.team), ("priced_model", f.model), ("environment", f.env)):
        if value is not None:
            conds.setdefault(col, [value])
            conds[col] = [v for v in conds[col] if v == value]
    params: dict[str, Any] = {"start": w.start, "end": w.end}
    sql_where = []
    for i, (col, values) in enumerate(sorted(conds.items())):
        params[f"w{i}"] = values
        sql_where.append(f"list_contains($w{i}, CAST({col} AS VARCHAR))")
    mine_sql = list(sql_where)
    if ctx.scoped:
        params["me"] = ctx.who.team
        mine_sql.append("team IS NOT DISTINCT FROM $me")
    base = costed_sql(ctx.con, ctx.settings.llm, data.served(ctx))
    cond = " AND ".join(mine_sql) or "true"
    key = (w, tuple(sorted((k, tuple(v)) for k, v in conds.items())), ctx.who.team)
    cols = ("ts", "request_id", "provider", "priced_model", "feature", "team", "environment", "user_id", "requests",
            "input_tokens", "output_tokens", "status", "cost", "cost_basis")

    def compute_total() -> tuple[Any, ...]:
        others = "NULL"
        if ctx.scoped:
            others = "sum(cost) FILTER (WHERE team IS DISTINCT FROM $me)"
        return ctx.con.execute(  # type: ignore[no-any-return]
            f"SELECT count(*) FILTER (WHERE {cond}), sum(coalesce(requests, 1)) FILTER (WHERE {cond}), "
            f"sum(cost) FILTER (WHERE {cond}), {others} FROM ({base}) c", params).fetchone()

    def compute_page() -> list[Row]:
        cur = ctx.con.execute(f"SELECT {', '.join(cols)} FROM ({base}) c WHERE {cond} "
                              "ORDER BY cost DESC NULLS LAST, ts, request_id LIMIT $limit OFFSET $offset",
                              {**params, "limit": limit, "offset": offset})
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    n, volume, cost, others = ctx.cached("rows:requests:total", key, compute_total)
    rows = ctx.cached("rows:requests", (key, offset, limit), compute_page)
    kpis = [Kpi("cost", cost or Decimal(0)), Kpi("rows", n, kind="plain"), Kpi("requests", volume or 0, kind="plain")]
    if others is not None:
        kpis.append(Kpi(OTHERS, others, note="over the window: their rows are not this token's"))
    table = Table.of("requests", f"LLM requests: {_where_text(where)}", rows,
                     [*(Column(c, kind="money" if c == "cost" else "plain") for c in cols)], show=limit)
    return Rows(table, int(n), kpis, {"LLM window": parts.window_text(w),
                                      "cost": "each request at its price row (self-hosted: GPU cost per token)"})


BUILDERS = {"charges": charges, "workloads": workloads, "requests": requests}
