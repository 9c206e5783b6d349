"""What the store keeps and the governance layer computes, as the dashboard reads it: budgets with their
forecast, the period forecast, findings, anomalies, and the values the filter menus offer.

A budget, finding or anomaly belongs to a team when it names one: a budget whose scope is the team tag, a
finding's owner, an anomaly of a team series or whose owner is a team's contact (``alerts.owners``). What belongs
to no team is not the scoped token's detail, as untagged spend is not: it joins the others' total.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np

from ...analysis.forecast import ForecastError
from ...analysis.projection import Projection, project
from ...analysis.series import metric
from ...governance import budgets as budgets_mod
from ...store import anomalies as anomalies_store
from .blocks import Row
from .context import ENV_KEY, MODEL_TAG, Ctx
from .data import rules, split

BUDGET_SUMS = ("amount", "spent", "forecast", "forecastLow80", "forecastHigh80", "forecastLow95", "forecastHigh95")


def _budget_team(ctx: Ctx, scope: dict[str, Any]) -> list[str] | None:
    v = scope.get(f"tag:{ctx.team_key}")
    return None if v is None else ([v] if isinstance(v, str) else list(v))


def _spent_window(s: budgets_mod.BudgetStatus) -> str:
    """The window a budget's spent covers: the period's start up to ``at`` (inclusive), as START..END."""
    end = min(s.at + budgets_mod.TICK, s.period.end)
    return f"{s.period.start.isoformat(sep=' ')}..{end.isoformat(sep=' ')}"


def budgets(ctx: Ctx) -> tuple[list[Row], Row | None]:
    """Every budget's status at the end of the ledger (``aifinops budgets status``), one row each; a team filter
    keeps the budgets scoped to that team; a scoped token sees its team's budgets and those over all teams."""
    def compute() -> list[Row]:
        out = []
        for s in budgets_mod.status(ctx.con, ctx.settings, rules=rules(ctx)):
            fc = s.forecast
            state = ("over" if any(t.state == "crossed" and t.pct >= 100 for t in s.thresholds)
                     else "forecast over" if any(t.state == "forecast to cross" for t in s.thresholds)
                     else "at risk" if any(t.state == "at risk" for t in s.thresholds) else "ok")
            out.append({"budget": s.name, "period": s.label, "scope": budgets_mod.scope_text(s.budget),
                        "amount": s.amount, "spent": s.spent, "share": s.percent / 100,
                        "forecast": Decimal(repr(round(fc["mean"], 2))),
                        "forecastLow80": Decimal(repr(round(fc["lo80"], 2))),
                        "forecastHigh80": Decimal(repr(round(fc["hi80"], 2))),
                        "forecastLow95": Decimal(repr(round(fc["lo95"], 2))),
                        "forecastHigh95": Decimal(repr(round(fc["hi95"], 2))),
                        "exhaustion": s.exhaustion, "state": state, "owner": s.budget.owner,
                        "_scope": dict(s.budget.scope), "_window": _spent_window(s),
                        "_teams": _budget_team(ctx, dict(s.budget.scope))})
        return out

    rows: list[Row] = ctx.cached("budgets", None, compute)
    team = ctx.filters.team
    kept = [r for r in rows if team is None or team in (r["_teams"] or [])]

    def mine_of(r: Row) -> str | None:  # a budget over every team is a total, not another team's detail
        return ctx.who.team if r["_teams"] is None or ctx.who.team in r["_teams"] else None

    return split(ctx, kept, rows, mine_of, ["budget", "period", "scope"], BUDGET_SUMS)


def forecast(ctx: Ctx, dim: str) -> Projection | str:
    """The ledger's cost by ``dim`` to the end of the month holding the data's end (``aifinops forecast``), over
    the token's and the filters' spend; or why there is none."""
    f = ctx.filters
    where: dict[str, list[str]] = {}
    team = ctx.who.team
    if team is not None and f.team not in (None, team):
        return f"no forecast: team {f.team} is not this token's team"
    for key, value in ((ctx.team_key, team or f.team), (MODEL_TAG, f.model), (ENV_KEY, f.env)):
        if value is not None:
            where[f"tag:{key}"] = [value]

    def compute() -> Projection | str:
        try:
            return project(metric(ctx.con, "cost", ctx.settings, rules(ctx)), dim, where=where or None)
        except ForecastError as exc:
            return str(exc)

    return ctx.cached("forecast", (dim, tuple(sorted((k, tuple(v)) for k, v in where.items()))), compute)


def forecast_rows(p: Projection) -> tuple[list[Row], Row]:
    """Per series and in total: actual so far, forecast of the rest, the period-end total with 80/95% bounds
    (bounds add the series' half-widths, as ``aifinops forecast`` does)."""
    t = p.totals()

    def row(name: str, idx: np.ndarray) -> Row:
        v = {k: Decimal(repr(round(float(a[idx].sum()), 2))) for k, a in t.items()}
        return {"series": name, "actual": v["actual"], "forecastRest": v["rest_mean"], "total": v["total_mean"],
                "totalLow80": v["total_lo80"], "totalHigh80": v["total_hi80"], "totalLow95": v["total_lo95"],
                "totalHigh95": v["total_hi95"]}

    order = np.argsort(-t["total_mean"], kind="stable")
    return [row(p.keys[i], np.array([i])) for i in order], row("(total)", np.arange(len(p.keys)))


def forecast_path(p: Projection) -> dict[str, list[float]]:
    """The forecast per step summed over the series, with 80/95% bounds (half-widths added)."""
    mean = p.rest.mean.sum(axis=0)
    out = {"mean": mean.tolist()}
    for k in ("lo80", "hi80", "lo95", "hi95"):
        out[k] = (mean + (getattr(p.rest, k) - p.rest.mean).sum(axis=0)).tolist()
    return out


# -- findings and anomalies ------------------------------------------------------------------------------------

FINDING_COLUMNS = ("finding_id", "rule", "scope_kind", "scope", "owner", "status", "status_reason", "first_seen",
                   "last_seen", "window_start", "window_end", "monthly_cost", "monthly_waste", "monthly_saving",
                   "achievable_saving", "confidence", "recommendation", "detail")


def findings(ctx: Ctx, everything: bool = False) -> tuple[list[Row], Row | None]:
    """The findings the last ``recommend`` run kept, by achievable saving: active and not dismissed (all with
    ``everything``); a team filter keeps its owner's."""
    def compute() -> list[Row]:
        cur = ctx.con.execute(f"SELECT {', '.join(FINDING_COLUMNS)} FROM findings WHERE active "
                              "ORDER BY achievable_saving DESC, finding_id")
        out = [dict(zip(FINDING_COLUMNS, r, strict=True)) for r in cur.fetchall()]
        for r in out:
            r["detail"] = json.loads(r["detail"] or "{}")
        return out

    rows: list[Row] = ctx.cached("findings", None, compute)
    shown = [r for r in rows if everything or r["status"] != "dismissed"]
    kept = [r for r in shown if ctx.filters.team is None or r["owner"] == ctx.filters.team]
    return split(ctx, kept, shown, lambda r: r["owner"], ["finding_id", "rule", "scope", "owner"],
                 ("monthly_cost", "monthly_waste", "monthly_saving", "achievable_saving"))


def anomaly_team(ctx: Ctx, a: Row) -> str | None:
    """The team an anomaly is of: its series when it is a team series, else the team whose contact owns it."""
    if a["dimension"] in (f"tag:{ctx.team_key}", "team", f"label:{ctx.team_key}"):
        return str(a["series"])
    owner = a.get("owner")
    if owner is None:
        return None
    teams = [t for t, contact in ctx.settings.alerts.owners.items() if contact == owner]
    return teams[0] if teams else str(owner)


def anomalies(ctx: Ctx, everything: bool = False) -> tuple[list[Row], Row | None]:
    """Recorded anomalies by dollar impact (``aifinops anomalies list``): active and open, or all."""
    rows: list[Row] = ctx.cached("anomalies", everything,
                                 lambda: anomalies_store.listing(ctx.con, everything=everything))
    kept = [r for r in rows if ctx.filters.team is None or anomaly_team(ctx, r) == ctx.filters.team]
    return split(ctx, kept, rows, lambda r: anomaly_team(ctx, r), ["anomaly_id", "metric", "series"],
                 ("impact_cost",))


def feedback(ctx: Ctx, anomaly_id: str) -> list[Row]:
    cur = ctx.con.execute("SELECT kind, reason, period_start, period_end, created_at FROM anomaly_feedback "
                          "WHERE anomaly_id = ? ORDER BY created_at", [anomaly_id])
    return [dict(zip(("kind", "reason", "from", "until", "given"), r, strict=True)) for r in cur.fetchall()]


# -- what the filter menus offer -------------------------------------------------------------------------------

def choices(ctx: Ctx) -> dict[str, list[str]]:
    """Teams, models and environments named in the store (ledger tags, workload labels, LLM requests), for the
    filter menus; a scoped token's menus hold its team and the models and environments of its team's rows."""
    k, model, env = ctx.team_key, ctx.settings.llm.serving_label, ENV_KEY
    mine = ctx.who.team
    w = {"c": "Tags[$k] = $me", "w": "labels[$k] = $me", "r": "team = $me"} if mine is not None else \
        {"c": "true", "w": "true", "r": "true"}
    q = {
        "team": "SELECT Tags[$k] FROM focus_charges UNION SELECT labels[$k] FROM workloads "
                "UNION SELECT team FROM llm_requests",
        "model": f"SELECT Tags[$mt] FROM focus_charges WHERE {w['c']} UNION SELECT labels[$m] FROM workloads "
                 f"WHERE {w['w']} UNION SELECT coalesce(response_model, request_model) FROM llm_requests "
                 f"WHERE {w['r']}",
        "env": f"SELECT Tags[$e] FROM focus_charges WHERE {w['c']} UNION SELECT labels[$e] FROM workloads "
               f"WHERE {w['w']} UNION SELECT environment FROM llm_requests WHERE {w['r']}",
    }
    me = {"me": mine} if mine is not None else {}
    params = {"team": {"k": k}, "model": {"mt": MODEL_TAG, "m": model, **({"k": k, **me} if me else {})},
              "env": {"e": env, **({"k": k, **me} if me else {})}}

    def compute() -> dict[str, list[str]]:
        out = {name: sorted(str(v) for (v,) in ctx.con.execute(f"SELECT DISTINCT * FROM ({sql})", params[name])
                            .fetchall() if v is not None and str(v).strip())
               for name, sql in q.items() if name != "team" or mine is None}
        return {**out, "team": out.get("team", [str(mine)])}

    return dict(ctx.cached("choices", mine, compute))
