"""The review pack of one period (``aifinops report``): what engineering, product and finance go through together,
with the previous period beside every number so that a trend is visible.

Each part is one function returning plain data (dicts, lists, Decimals), so the Markdown and HTML templates, and
anything else (an API), render the same numbers:

1. ``spend``: total, by provider, cost layer, team and top services, change vs the previous period, tag coverage;
2. ``unit_economics``: cost per 1K tokens and per request by model and feature, cost per outcome, GPU cost per
   GPU-hour and efficiency by team;
3. ``idle_and_waste``: idle GPU cost by kind and team, the top findings by achievable saving with their owners;
4. ``anomalies_part``: anomalies overlapping the period with impact and root causes;
5. ``budgets_part`` and ``forecast_part``: budget status at the period's last instant, the next period's forecast
   by cost layer with 80/95% intervals;
6. ``actions``: the findings as an action list (owner, change, saving).

The **previous period** is the calendar month, quarter or year before a month, quarter or year, and the span of
the same length just before any other window. Money is EffectiveCost, summed exactly as decimals; a part whose
data is absent says so in one line (``empty``) instead of failing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import ibis
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..analysis import gpu_allocation
from ..analysis.costs import Dimension, dimension_value, in_window
from ..analysis.layers import LayerRule, load_rules
from ..analysis.unit_costs import unit_costs
from ..analysis.windows import Window
from ..analysis.workload_costs import serving_costs
from ..config import Settings
from . import charts
from . import review_outlook as outlook
from .review_period import DAY, TOP, ZERO, ReviewPeriod, delta, points, review_period, table, value_text

# -- 1. what we spent and on what -----------------------------------------------------------------------------


def _compare(t: ibis.Table, p: ReviewPeriod, dims: list[str], rules: list[LayerRule],
             currencies: list[str]) -> list[dict[str, Any]]:
    """EffectiveCost per group in the period and the previous one, largest first, with the change (per currency
    too when the periods hold several: dollars and euros are never added)."""
    span = in_window(t, Window(p.previous.start, p.window.end))
    now = span.ChargePeriodStart >= p.window.start
    groups = {d: dimension_value(span, Dimension(d), rules).cast("string") for d in dims}
    if len(currencies) > 1 or not dims:
        groups["BillingCurrency"] = span.BillingCurrency
    zero = ibis.literal(0).cast(span.EffectiveCost.type())
    rows = (span.group_by(**groups)
            .aggregate(cost=span.EffectiveCost.sum(where=now).fill_null(zero),
                       previousCost=span.EffectiveCost.sum(where=~now).fill_null(zero),
                       previousCharges=(~now).cast("int64").sum())
            .to_pyarrow().to_pylist())
    rows.sort(key=lambda r: (-r["cost"], -r["previousCost"], [str(r[k]) for k in groups]))
    for r in rows:
        r.update(change=r["cost"] - r["previousCost"], changePct=delta(r["cost"], r["previousCost"]))
    return rows


def _fold(rows: list[dict[str, Any]], dim: str, top: int | None) -> list[dict[str, Any]]:
    """The first ``top`` rows and one ``(other: N)`` row (per currency) for the rest, so the rows add up."""
    if top is None or len(rows) <= top + 1:
        return rows
    out = rows[:top]
    for cur in sorted({r.get("BillingCurrency") for r in rows[top:]}, key=str):
        part = [r for r in rows[top:] if r.get("BillingCurrency") == cur]
        c, q = sum((r["cost"] for r in part), ZERO), sum((r["previousCost"] for r in part), ZERO)
        other = {dim: f"(other: {len(part)})", "cost": c, "previousCost": q, "change": c - q, "changePct": delta(c, q)}
        out.append(other | ({"BillingCurrency": cur} if "BillingCurrency" in part[0] else {}))
    return out


def _trend(t: ibis.Table, p: ReviewPeriod, currency: str | None) -> dict[str, Any]:
    """Daily spend of the period beside the previous period's, aligned by day of the period, and weekly sums."""
    span = in_window(t, Window(p.previous.start, p.window.end))
    if currency:
        span = span.filter(span.BillingCurrency == currency)
    daily = span.group_by(day=span.ChargePeriodStart.truncate("D")).aggregate(cost=span.EffectiveCost.sum())
    by_day = {r["day"]: r["cost"] or ZERO for r in daily.to_pyarrow().to_pylist()}

    def days(w: Window) -> list[datetime]:
        first = w.start.replace(hour=0, minute=0, second=0, microsecond=0)
        return [first + i * DAY for i in range(-(-(w.end - first) // DAY))]

    cur, prev = days(p.window), days(p.previous)
    rows = [{"day": i + 1, "date": cur[i] if i < len(cur) else None,
             "cost": by_day.get(cur[i], ZERO) if i < len(cur) else None,
             "previousDate": prev[i] if i < len(prev) else None,
             "previousCost": by_day.get(prev[i], ZERO) if i < len(prev) else None}
            for i in range(max(len(cur), len(prev)))]
    weeks = []
    for a in range(0, len(rows), 7):
        chunk = rows[a:a + 7]
        c = [r["cost"] for r in chunk if r["cost"] is not None]
        q = [r["previousCost"] for r in chunk if r["previousCost"] is not None]
        c_sum, q_sum = (sum(c, ZERO) if c else None), (sum(q, ZERO) if q else None)
        weeks.append({"days": f"{a + 1}-{a + len(chunk)}", "cost": c_sum, "previousCost": q_sum,
                      "change": c_sum - q_sum if c_sum is not None and q_sum is not None else None,
                      "changePct": delta(c_sum, q_sum)})
    return {"daily": rows, "weekly": table(p, ["days", "cost", "previousCost", "change", "changePct"], weeks)}


def _coverage(t: ibis.Table, p: ReviewPeriod, keys: list[str]) -> list[dict[str, Any]]:
    """Share of positive EffectiveCost carrying each tag key (as ``aifinops tags``), in both periods."""
    def shares(w: Window) -> dict[str, dict[str, Any]]:
        s = in_window(t, w).filter(t.EffectiveCost > 0)
        has = {k: (s.Tags.get(k).notnull() & (s.Tags.get(k).strip() != "")).fill_null(False) for k in keys}
        aggs = {f"k{i}": s.EffectiveCost.sum(where=has[k]) for i, k in enumerate(keys)}
        aggs["all"] = s.EffectiveCost.sum(where=ibis.and_(*has.values())) if keys else s.EffectiveCost.sum()
        row = s.aggregate(total=s.EffectiveCost.sum(), **aggs).to_pyarrow().to_pylist()[0]
        total = row["total"] or ZERO
        named = {k: row[f"k{i}"] or ZERO for i, k in enumerate(keys)} | {"(all keys)": row["all"] or ZERO}
        return {k: {"tagged": v, "total": total, "share": float(v / total) if total else None}
                for k, v in named.items()}

    cur, prev = shares(p.window), shares(p.previous)
    return [{"key": k, "share": cur[k]["share"], "previousShare": prev[k]["share"],
             "changePoints": points(cur[k]["share"], prev[k]["share"]),
             "untaggedCost": cur[k]["total"] - cur[k]["tagged"]} for k in cur]


def spend(t: ibis.Table, p: ReviewPeriod, settings: Settings, rules: list[LayerRule]) -> dict[str, Any]:
    """Part 1: what we spent and on what, beside the previous period."""
    span = in_window(t, Window(p.previous.start, p.window.end))
    currencies = sorted(r["BillingCurrency"] for r in span.select("BillingCurrency").distinct().to_pyarrow()
                        .to_pylist() if r["BillingCurrency"] is not None)
    if not currencies:
        return {"empty": f"no charges in {p.label} or {p.previous_label}: load a bill (aifinops ingest focus FILE)"}
    team = settings.waste.owner_labels[0] if settings.waste.owner_labels else "team"
    cols = ["cost", "previousCost", "change", "changePct"]
    money = (["BillingCurrency"] if len(currencies) > 1 else []) + cols

    def by(dim: str, key: str, top: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rows = _compare(t, p, [dim], rules, currencies)
        for r in rows:
            r[key] = r.pop(dim)
        return table(p, [key, *money], _fold(rows, key, top)), rows

    totals = _compare(t, p, [], rules, currencies)
    services, every = by("ServiceName", "ServiceName", TOP)
    movers = sorted((r for r in every if r["change"]), key=lambda r: (-abs(r["change"]), str(r["ServiceName"])))[:3]
    main = max(totals, key=lambda r: (r["cost"], r["previousCost"]))["BillingCurrency"]
    return {
        "empty": None, "currencies": currencies, "currency": main if len(currencies) == 1 else None,
        "total": totals[0]["cost"], "previousTotal": totals[0]["previousCost"], "change": totals[0]["change"],
        "changePct": totals[0]["changePct"], "totals": table(p, ["BillingCurrency", *cols], totals),
        "previousCharges": sum(r["previousCharges"] for r in totals),
        "byProvider": by("ProviderName", "ProviderName")[0], "byLayer": by("layer", "layer")[0],
        "byTeam": by(f"tag:{team}", "team", 15)[0], "topServices": services,
        "movers": [{"ServiceName": r["ServiceName"], "change": r["change"], "changePct": r["changePct"]}
                   for r in movers],
        "tagCoverage": table(p, ["key", "share", "previousShare", "changePoints", "untaggedCost"],
                             _coverage(t, p, list(settings.tag_keys))),
        "trend": _trend(t, p, main), "trendCurrency": main,
        "teamKey": team,
    }


# -- 2. unit economics ----------------------------------------------------------------------------------------


def gpu_by_team(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings) -> dict[str, Any] | None:
    """The GPU allocation by team in both periods with idle as its own line (``share_idle`` none: idle is
    measured before it is spread); None without a GPU inventory. Parts 2 and 3 read it."""
    if not con.execute("SELECT count(*) FROM gpu_nodes WHERE gpu_count > 0").fetchall()[0][0]:
        return None
    team = settings.waste.owner_labels[0] if settings.waste.owner_labels else "team"
    key = f"label:{team}"
    rows = {name: gpu_allocation.aggregate(con, w, [key], settings=settings, share_idle="none")
            for name, w in (("current", p.window), ("previous", p.previous))}
    if not any(r["totalCost"] or r["gpuHours"] for rs in rows.values() for r in rs):
        return None
    for rs in rows.values():
        for r in rs:
            r["team"] = r.pop(key)
    return rows


def _llm(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings) -> dict[str, Any]:
    """Cost per 1K tokens and per request by model and by feature, and cost per outcome by feature."""
    seen = con.execute("SELECT count(*) FROM llm_requests WHERE NOT _superseded AND ts >= ? AND ts < ?",
                       [p.previous.start, p.window.end]).fetchall()[0][0]
    if not seen:
        return {"empty": f"no LLM requests in {p.label} or {p.previous_label} "
                         "(aifinops ingest otel / litellm / llm-usage)"}
    windows = {"current": p.window, "previous": p.previous}
    before = con.execute("SELECT count(*) FROM llm_requests WHERE NOT _superseded AND ts >= ? AND ts < ?",
                         [p.previous.start, p.previous.end]).fetchall()[0][0]
    if not before:  # nothing to compare with: spare the previous period's allocation and pricing
        windows.pop("previous")
    served = {k: serving_costs(con, w, settings) for k, w in windows.items()}
    out: dict[str, Any] = {"empty": None}
    unpriced = 0
    for dim in ("model", "feature"):
        cur, prev = ({r[dim]: r for r in unit_costs(con, windows[k], [dim], settings, served=served[k])}
                     if k in windows else {} for k in ("current", "previous"))
        rows = []
        for name, r in cur.items():
            q = prev.get(name, {})
            rows.append({dim: name if name is not None else "(none)", "requests": r["requests"],
                         "tokens": r["inputTokens"] + r["outputTokens"], "llmCost": r["cost"],
                         "costPer1kTokens": r["costPer1kTokens"], "previousCostPer1kTokens": q.get("costPer1kTokens"),
                         "per1kChangePct": delta(r["costPer1kTokens"], q.get("costPer1kTokens")),
                         "costPerRequest": r["costPerRequest"], "previousCostPerRequest": q.get("costPerRequest"),
                         "perRequestChangePct": delta(r["costPerRequest"], q.get("costPerRequest"))})
            unpriced += int(r["unpricedRequests"] or 0) if dim == "model" else 0
        out[dim] = {"rows": rows, "costs": {k: v["cost"] for k, v in cur.items()},
                    "previousCosts": {k: v["cost"] for k, v in prev.items()}}
    cols = ["requests", "llmCost", "costPer1kTokens", "previousCostPer1kTokens", "per1kChangePct", "costPerRequest",
            "previousCostPerRequest", "perRequestChangePct"]
    out["byModel"] = table(p, ["model", *cols], out["model"]["rows"][:15])
    out["byFeature"] = table(p, ["feature", *cols], out["feature"]["rows"][:15])
    out["unpriced"] = unpriced
    out["outcomes"] = _outcomes(con, p, out["feature"]["costs"], out["feature"]["previousCosts"])
    return out


def _outcomes(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, costs: dict[Any, Any],
              previous_costs: dict[Any, Any]) -> dict[str, Any] | None:
    """Cost per outcome by feature: the feature's LLM cost / the outcomes recorded for it (as ``unit-costs
    --outcome``); an outcome in a currency (``unit`` USD, EUR, ...) is revenue and gives the gross margin."""
    sql = ("SELECT feature, metric, any_value(unit) AS unit, sum(value) AS value FROM outcomes WHERE NOT _superseded "
           "AND feature IS NOT NULL AND ts >= ? AND ts < ? GROUP BY ALL ORDER BY feature, metric")
    cur = con.execute(sql, [p.window.start, p.window.end]).fetchall()
    prev = {(f, m): v for f, m, _, v in con.execute(sql, [p.previous.start, p.previous.end]).fetchall()}
    if not cur:
        return None
    money = {f: v for f, _, u, v in cur if u and re.fullmatch(r"[A-Z]{3}", u)}
    rows = []
    for f, m, u, v in cur:
        if f in money and u and re.fullmatch(r"[A-Z]{3}", u):
            continue
        c, q = costs.get(f), previous_costs.get(f)
        per = c / v if c is not None and v else None
        before = q / prev[(f, m)] if q is not None and prev.get((f, m)) else None
        rows.append({"feature": f, "outcome": m, "outcomes": v, "costPerOutcome": per, "previousCostPerOutcome": before,
                     "perOutcomeChangePct": delta(per, before), "revenue": money.get(f),
                     "grossMargin": float((money[f] - c) / money[f]) if f in money and c is not None and money[f]
                     else None})
    return table(p, ["feature", "outcome", "outcomes", "costPerOutcome", "previousCostPerOutcome",
                     "perOutcomeChangePct", "revenue", "grossMargin"], rows)


def unit_economics(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings,
                   gpu: dict[str, Any] | None) -> dict[str, Any]:
    """Part 2: unit costs of inference and of GPUs, this period vs the previous one."""
    out: dict[str, Any] = {"llm": _llm(con, p, settings)}
    if gpu is None:
        out["gpu"] = {"empty": "no GPU cost in these periods (aifinops ingest inventory, kubernetes / slurm, dcgm)"}
        return out
    prev = {r["team"]: r for r in gpu["previous"]}
    rows = []
    for r in gpu["current"]:
        q = prev.get(r["team"], {})
        per = float(r["totalCost"]) / r["gpuHours"] if r["gpuHours"] else None
        before = float(q["totalCost"]) / q["gpuHours"] if q.get("gpuHours") else None
        rows.append({"team": r["team"], "gpuHours": r["gpuHours"], "gpuCost": r["totalCost"], "costPerGpuHour": per,
                     "previousCostPerGpuHour": before, "perGpuHourChangePct": delta(per, before),
                     "gpuEfficiency": r["gpuEfficiency"], "previousGpuEfficiency": q.get("gpuEfficiency"),
                     "efficiencyChangePoints": points(r["gpuEfficiency"], q.get("gpuEfficiency"))})
    out["gpu"] = {"empty": None, "byTeam": table(p, ["team", "gpuHours", "gpuCost", "costPerGpuHour",
                                                     "previousCostPerGpuHour", "perGpuHourChangePct", "gpuEfficiency",
                                                     "previousGpuEfficiency", "efficiencyChangePoints"], rows)}
    return out


# -- 3. idle and waste ----------------------------------------------------------------------------------------


def idle_and_waste(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings,
                   gpu: dict[str, Any] | None, findings: dict[str, Any]) -> dict[str, Any]:
    """Part 3: idle GPU cost (unallocated ``__idle__`` + held below the idle threshold) by kind and team, and the
    top findings by achievable saving."""
    out: dict[str, Any] = {"findings": findings}
    if gpu is None:
        out["idle"] = {"empty": "no GPU cost in these periods: no idle GPUs to price"}
        return out

    def kinds(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
        return {"fleet": sum((r["totalCost"] for r in rows), ZERO),
                "unallocated": sum((r["gpuCostUnallocated"] for r in rows), ZERO),
                "allocatedIdle": sum((r["gpuCostAllocatedIdle"] for r in rows), ZERO),
                "inefficiency": sum((r["gpuCostInefficiency"] for r in rows), ZERO)}

    cur, prev = kinds(gpu["current"]), kinds(gpu["previous"])
    threshold = f"{settings.allocation.idle_threshold:.0%}"
    names = {"unallocated": "unallocated (__idle__)", "allocatedIdle": f"held below {threshold} activity",
             "inefficiency": "unused part of busy GPUs"}
    rows = [{"kind": names[k], "cost": cur[k], "previousCost": prev[k], "change": cur[k] - prev[k],
             "changePct": delta(cur[k], prev[k]), "fleetShare": float(cur[k] / cur["fleet"]) if cur["fleet"] else None}
            for k in names]
    idle, idle_prev = cur["unallocated"] + cur["allocatedIdle"], prev["unallocated"] + prev["allocatedIdle"]
    rows.insert(2, {"kind": "idle GPU cost (both)", "cost": idle, "previousCost": idle_prev, "change": idle - idle_prev,
                    "changePct": delta(idle, idle_prev),
                    "fleetShare": float(idle / cur["fleet"]) if cur["fleet"] else None})
    teams = []
    for r in gpu["current"]:
        held_idle = r["gpuCostUnallocated"] + r["gpuCostAllocatedIdle"]
        teams.append({"team": r["team"], "gpuCost": r["totalCost"], "idleCost": held_idle,
                      "inefficiencyCost": r["gpuCostInefficiency"],
                      "idleShare": float(held_idle / r["totalCost"]) if r["totalCost"] else None})
    teams.sort(key=lambda r: -r["idleCost"])
    out["idle"] = {"empty": None, "idleCost": idle, "previousIdleCost": idle_prev, "fleetCost": cur["fleet"],
                   "idleShare": float(idle / cur["fleet"]) if cur["fleet"] else None,
                   "byKind": table(p, ["kind", "cost", "previousCost", "change", "changePct", "fleetShare"], rows),
                   "byTeam": table(p, ["team", "gpuCost", "idleCost", "inefficiencyCost", "idleShare"], teams)}
    return out


# -- the whole pack -------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _settle(con: duckdb.DuckDBPyConnection) -> None:
    """Finish whatever result a part left half-read (``execute(...).fetchone()``, as the waste engine's counts do):
    DuckDB 2 refuses relation queries, which ibis runs, on a connection holding one."""
    con.execute("SELECT 1").fetchall()


def build_review(con: duckdb.DuckDBPyConnection, period: str, settings: Settings) -> dict[str, Any]:
    """Every part of the review of ``period`` as plain data (see the module docstring)."""
    rules = load_rules(settings.layers_file)
    end = con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges').fetchall()[0][0]
    p = review_period(period, end)
    t = ibis.duckdb.from_connection(con).table("focus_charges")
    review: dict[str, Any] = {"period": p, "generated": _now(), "spend": spend(t, p, settings, rules)}
    gpu = gpu_by_team(con, p, settings)
    found = outlook.findings(con, p, settings)
    _settle(con)
    review["units"] = unit_economics(con, p, settings, gpu)
    review["waste"] = idle_and_waste(con, p, settings, gpu, found)
    review["anomalies"] = outlook.anomalies_part(con, p, settings)
    _settle(con)
    review["budgets"] = outlook.budgets_part(con, p, settings, rules)
    review["forecast"] = outlook.forecast_part(con, p, settings, rules)
    review["actions"] = outlook.actions(p, found)
    review["facts"] = outlook.facts(review)
    return review


FORMATS = ("html", "md")
#: columns of free text, which may wrap in the HTML tables (every other cell stays on one line)
WRAP = {"recommendation", "rootCauses", "scope", "crossed", "forecastThresholds", "model", "kind", "owner", "series",
        "forecast95"}


def _md(text: Any) -> str:
    """Text from the data in Markdown: one line, Markdown's marks escaped (``__idle__`` is not bold, a ``|`` does not
    end a cell), and no HTML (GitHub renders tags in Markdown)."""
    return re.sub(r"([\\|*_`\[\]])", r"\\\1", str(text)).replace("\n", " ").replace("<", "&lt;")


def _numeric(t: dict[str, Any], column: str) -> bool:
    return any(isinstance(r.get(column), Decimal | float | int) and not isinstance(r.get(column), bool)
               for r in t["rows"])


def _bars(t: dict[str, Any], key: str, value: str, previous: str | None) -> list[tuple[str, Any, Any]]:
    return [(str(r[key]), r[value] or 0, r.get(previous) if previous else None) for r in t["rows"]
            if r[value] is not None]


def _charts(review: dict[str, Any]) -> dict[str, Markup]:
    """The HTML report's inline SVG charts (``charts``), each from the same rows its table shows."""
    p: ReviewPeriod = review["period"]
    out: dict[str, Markup] = {}
    sp = review["spend"]
    if not sp["empty"]:
        daily = sp["trend"]["daily"]
        out["trend"] = charts.line_chart(charts.LineChart(
            f"daily spend, {p.label} beside {p.previous_label} (day of the period)", [str(r["day"]) for r in daily],
            [charts.Line(p.label, [r["cost"] for r in daily]),
             charts.Line(p.previous_label, [r["previousCost"] for r in daily], charts.PREVIOUS, dashed=True)]))
        for name, key in (("byTeam", "team"), ("byLayer", "layer"), ("topServices", "ServiceName")):
            if not sp["currencies"][1:]:
                out[name] = charts.bar_chart(_bars(sp[name], key, "cost", "previousCost"), f"spend by {key}",
                                             p.label, p.previous_label)
    llm = review["units"]["llm"]
    if not llm["empty"]:
        out["models"] = charts.bar_chart(_bars(llm["byModel"], "model", "costPer1kTokens", "previousCostPer1kTokens"),
                                         "cost per 1K tokens by model", p.label, p.previous_label,
                                         lambda v: value_text("costPer1kTokens", v))
    idle = review["waste"]["idle"]
    if not idle["empty"]:
        out["idle"] = charts.bar_chart(_bars(idle["byKind"], "kind", "cost", "previousCost"),
                                       "idle GPU cost by kind", p.label, p.previous_label)
    b = review["budgets"]
    if not b["empty"]:
        out["budgets"] = charts.bar_chart([(r["budget"], r["spent"], r["amount"]) for r in b["table"]["rows"]],
                                          "budgets: spent vs amount", "spent", "amount")
    fc = review["forecast"]
    if not fc["empty"]:
        actual, ahead = fc["daily"]["actual"], fc["daily"]["forecast"]
        days = [d for d, _ in actual] + [s["day"] for s in ahead]
        pad = [None] * len(actual)
        out["forecast"] = charts.line_chart(charts.LineChart(
            f"usage-based spend per day: {p.label} actual, {p.next_label} forecast", [f"{d:%m-%d}" for d in days],
            [charts.Line(f"actual {p.label}", [c for _, c in actual] + [None] * len(ahead)),
             charts.Line(f"forecast {p.next_label}", pad + [s["mean"] for s in ahead], charts.ACCENT, dashed=True)],
            [charts.Band("95% interval", pad + [s["lo95"] for s in ahead], pad + [s["hi95"] for s in ahead], 0.12,
                         charts.ACCENT),
             charts.Band("80% interval", pad + [s["lo80"] for s in ahead], pad + [s["hi80"] for s in ahead], 0.22,
                         charts.ACCENT)]))
    return out


def render(review: dict[str, Any], fmt: str) -> str:
    """The review as a self-contained HTML page (inline CSS and SVG, no script, no network) or GitHub Markdown."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    env = Environment(loader=PackageLoader("aifinops.interfaces"), trim_blocks=True, lstrip_blocks=True,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False))
    env.filters.update(val=lambda v, name="": value_text(name, v), md=_md)
    env.tests["numeric_column"] = _numeric
    env.globals["wrap"] = WRAP
    return env.get_template(f"review.{fmt}.j2").render(
        r=review, p=review["period"], charts=_charts(review) if fmt == "html" else {},
        generated=f"{review['generated']:%Y-%m-%d %H:%M} UTC")
