"""The review's parts about what to act on and what comes next: waste findings (part 3) and the action list they
make (part 6), anomalies (part 4), budget status at the period's end and the next period's forecast (part 5), and
the headline facts. Each function returns plain data (``review_period.table``); see ``review`` for the whole.

What is read, and when something is computed instead:

- **findings**: the store's ``findings`` (kept by ``aifinops recommend``) that are active, not dismissed, and were
  found over a window overlapping the period; when there are none, the rules run over the period without
  recording anything (``recommend --no-record``);
- **anomalies**: the recorded ones overlapping the period, except those people marked ``wrong``; when there are
  none, the configured scans (``anomalies.scans``) run over the period without recording;
- **budgets**: ``governance.budgets.status`` at the period's last instant, so a past period replays what the status
  said then, and a period the ledger has not reached the end of is forecast to its end;
- **forecast**: ``analysis.projection.project`` of the ledger's usage-based cost by cost layer from the period's
  end (or the ledger's, when it ends earlier), summed over the next period's days, with 80/95% intervals whose
  totals add the half-widths (never narrower than the true interval).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb
import ibis

from ..analysis.costs import Dimension, dimension_value, in_window
from ..analysis.forecast import ForecastError
from ..analysis.layers import LayerRule
from ..analysis.projection import describe, project
from ..analysis.series import metric
from ..analysis.windows import Window
from ..config import Settings
from ..governance import budgets as budgets_mod
from ..governance.watch import scan
from ..store.findings import states
from ..waste import run as run_rules
from .review_period import DAY, TOP, ZERO, ReviewPeriod, delta, table, value_text


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- findings (parts 3 and 6) ---------------------------------------------------------------------------------


def findings(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings) -> dict[str, Any]:
    """Open and accepted findings about the period, by achievable saving per month (see the module docstring)."""
    rows = _rows(con.execute(
        "SELECT finding_id AS id, rule, scope, owner, monthly_waste AS \"monthlyWaste\", achievable_saving AS "
        "\"achievableSaving\", confidence, recommendation, status, window_start, window_end FROM findings "
        "WHERE active AND status <> 'dismissed' AND window_start < ? AND window_end > ? "
        "ORDER BY achievable_saving DESC, monthly_saving DESC, finding_id", [p.window.end, p.window.start]))
    skipped: list[dict[str, str]] = []  # rules that could not run, by the data they miss
    if rows:
        w = Window(min(r["window_start"] for r in rows), max(r["window_end"] for r in rows))
        source = f"recorded by `aifinops recommend` over {w}"
    else:
        result = run_rules(con, p.window, settings, known=states(con))
        rows = [{"id": f.id, "rule": f.rule, "scope": f.scope, "owner": f.owner, "monthlyWaste": f.monthly_waste,
                 "achievableSaving": f.achievable_saving, "confidence": f.confidence,
                 "recommendation": f.recommendation, "status": f.status}
                for f in result.findings if f.status != "dismissed"]
        by_reason: dict[str, list[str]] = {}
        for sk in result.skipped:
            by_reason.setdefault(sk.reason, []).append(sk.rule)
        skipped = [{"reason": why, "rules": ", ".join(names)} for why, names in by_reason.items()]
        source = f"the waste rules run over {result.window} (no findings recorded for {p.label})"
    total = sum((r["achievableSaving"] for r in rows), ZERO)
    return {"empty": None if rows else f"no waste found ({source})", "source": source, "count": len(rows),
            "total": total, "rows": rows, "skipped": skipped,
            "top": table(p, ["rule", "scope", "owner", "monthlyWaste", "achievableSaving", "confidence"], rows[:TOP])}


def actions(p: ReviewPeriod, found: dict[str, Any]) -> dict[str, Any]:
    """Part 6: the findings as an action list (who, what to change, what it saves) and the saving per owner."""
    if not found["rows"]:
        return {"empty": found["empty"]}
    owners: dict[str, dict[str, Any]] = {}
    for r in found["rows"]:
        o = owners.setdefault(r["owner"] or "(no owner)", {"owner": r["owner"] or "(no owner)", "findings": 0,
                                                          "achievableSaving": ZERO})
        o["findings"] += 1
        o["achievableSaving"] += r["achievableSaving"]
    by_owner = sorted(owners.values(), key=lambda o: (-o["achievableSaving"], o["owner"]))
    items = [{**r, "owner": r["owner"] or "(no owner)"} for r in found["rows"][:TOP]]
    return {"empty": None, "total": found["total"],
            "list": table(p, ["owner", "recommendation", "achievableSaving", "rule", "confidence", "id"], items),
            "byOwner": table(p, ["owner", "findings", "achievableSaving"], by_owner)}


# -- 4. anomalies ---------------------------------------------------------------------------------------------


def _causes(causes: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['dimension']}={c['value']} {c['contribution']:.1%}" for c in causes[:3]
                     if c.get("contribution") is not None)


def anomalies_part(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings) -> dict[str, Any]:
    """Anomalies overlapping the period, largest dollar impact first, with their root causes and owners."""
    recorded = _rows(con.execute(
        "SELECT * FROM anomalies WHERE status <> 'wrong' AND period_start < ? "
        "AND coalesce(period_end, 'infinity'::TIMESTAMP) > ? ORDER BY abs(impact_cost) DESC, anomaly_id",
        [p.window.end, p.window.start]))
    notes: list[str] = []
    if recorded:
        source = "recorded by the anomaly scans (aifinops watch, anomalies)"
        rows = [{"metric": r["metric"], "dimension": r["dimension"], "series": r["series"], "start": r["period_start"],
                 "end": r["period_end"], "impactCost": r["impact_cost"],
                 "impactPct": r["impact"] / r["expected"] if r["expected"] else None, "severity": r["severity"],
                 "owner": r["owner"], "status": r["status"],
                 "rootCauses": _causes(json.loads(r["root_causes"] or "[]"))} for r in recorded]
    else:
        rows = []
        owners = settings.alerts.owners
        for sc in settings.anomalies.scans:
            what = f"{sc.metric} by {sc.by}"
            try:
                if metric(con, sc.metric, settings).end() is None:
                    notes.append(f"{what}: no data")
                    continue
                found, _, _ = scan(con, sc, settings, p.window, record=False)
            except (ValueError, duckdb.Error) as exc:  # a scan over data that is not there is a note, not a failure
                notes.append(f"{what}: {exc}")
                continue
            rows += [{"metric": a.metric, "dimension": a.dimension, "series": a.series, "start": a.start, "end": a.end,
                      "impactCost": a.impact_cost, "impactPct": a.percent, "severity": a.severity,
                      "owner": owners.get(a.series) or (owners.get(a.root_causes[0]["value"]) if a.root_causes
                                                        else None),
                      "status": a.status, "rootCauses": _causes(a.root_causes)} for a in found]
        rows.sort(key=lambda r: -abs(r["impactCost"]))
        scans = ", ".join(f"{s.metric} by {s.by}" for s in settings.anomalies.scans)
        source = f"the configured scans run over {p.label} ({scans})"
    return {"empty": None if rows else f"no anomalies in {p.label} ({source})", "source": source, "notes": notes,
            "count": len(rows), "largest": rows[0] if rows else None,
            "top": table(p, ["metric", "series", "start", "end", "impactCost", "impactPct", "severity", "owner",
                             "status", "rootCauses"], rows[:TOP])}


# -- 5. budgets and the forecast ------------------------------------------------------------------------------


def budgets_part(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings,
                 rules: list[LayerRule]) -> dict[str, Any]:
    """Every budget's status at the period's last instant: spent, forecast at its period's end, thresholds."""
    if not settings.budgets:
        return {"empty": "no budgets configured (add a `budgets:` list to aifinops.yaml; see `aifinops budgets list`)"}
    at = p.window.end - budgets_mod.TICK
    found = budgets_mod.status(con, settings, at, rules)

    def crossed(s: budgets_mod.BudgetStatus, basis: str) -> str:
        says = ("crossed",) if basis == budgets_mod.ACTUAL else ("crossed", "forecast to cross", "at risk")
        parts = [f"{t.pct:g}% {t.state}{f' {t.on:%m-%d}' if t.on else ''}" for t in s.thresholds
                 if t.basis == basis and t.state in says]
        return ", ".join(parts) or "none"

    rows = [{"budget": s.name, "period": s.label, "owner": s.budget.owner, "amount": s.amount, "spent": s.spent,
             "spentShare": float(s.spent / s.amount), "forecastSpend": s.forecast["mean"],
             "forecast95": f"{s.forecast['lo95']:,.2f}..{s.forecast['hi95']:,.2f}", "exhaustion": s.exhaustion,
             "crossed": crossed(s, budgets_mod.ACTUAL), "forecastThresholds": crossed(s, budgets_mod.FORECAST),
             "over": s.over} for s in found]
    return {"empty": None, "at": at, "count": len(rows), "over": sum(1 for r in rows if r["over"]),
            "table": table(p, ["budget", "period", "owner", "amount", "spent", "spentShare", "forecastSpend",
                               "forecast95", "exhaustion", "crossed", "forecastThresholds"], rows)}


def _usage(con: duckdb.DuckDBPyConnection, w: Window, rules: list[LayerRule]) -> tuple[dict[str, Any], list[Any]]:
    """Usage-based EffectiveCost of the window by layer, and by day (what the forecast forecasts)."""
    t = ibis.duckdb.from_connection(con).table("focus_charges")
    t = in_window(t, w)
    t = t.filter(t.ChargeFrequency.fill_null("Usage-Based") == "Usage-Based")
    layer = dimension_value(t, Dimension("layer"), rules)
    by_layer = {r["layer"]: r["cost"] for r in t.group_by(layer=layer).aggregate(cost=t.EffectiveCost.sum())
                .to_pyarrow().to_pylist()}
    daily = t.group_by(day=t.ChargePeriodStart.truncate("D")).aggregate(cost=t.EffectiveCost.sum()).order_by("day")
    return by_layer, [(r["day"], r["cost"]) for r in daily.to_pyarrow().to_pylist()]


def forecast_part(con: duckdb.DuckDBPyConnection, p: ReviewPeriod, settings: Settings,
                  rules: list[LayerRule]) -> dict[str, Any]:
    """The next period's usage-based cost by layer: mean and 80/95% intervals, beside this period's."""
    m = metric(con, "cost", settings, rules)
    end = m.end()
    if end is None:
        return {"empty": "no ledger to forecast from (aifinops ingest focus FILE)"}
    if end <= p.window.start:
        return {"empty": f"the ledger ends {end:%Y-%m-%d %H:%M}, before {p.label} starts: nothing to forecast from"}
    cut = min(end, p.window.end)
    nxt = p.next
    last = nxt.end - DAY if nxt.end == datetime(nxt.end.year, nxt.end.month, nxt.end.day) else nxt.end
    try:
        proj = project(m, "layer", to=f"{last:%Y-%m-%d}", data_end=cut)
    except ForecastError as exc:
        return {"empty": f"no forecast: {exc}"}
    cols = [i for i, s in enumerate(proj.steps) if nxt.start <= s < nxt.end]
    sums = {k: a[:, cols].sum(axis=1) for k, a in proj.rest.arrays().items()}
    usage, daily = _usage(con, p.window, rules)
    rows = []
    for i, key in enumerate(proj.keys):
        cur = usage.get(key)
        rows.append({"layer": key, "usageCost": cur, "mean": float(sums["mean"][i]),
                     "lo80": float(sums["lo80"][i]), "hi80": float(sums["hi80"][i]),
                     "lo95": float(sums["lo95"][i]), "hi95": float(sums["hi95"][i]),
                     "vsCurrentPct": delta(float(sums["mean"][i]), cur)})
    rows.sort(key=lambda r: -r["mean"])
    total = {k: sum(r[k] for r in rows) for k in ("mean", "lo80", "hi80", "lo95", "hi95")}
    used = sum((v for v in usage.values() if v is not None), ZERO)
    rows.append({"layer": "(total)", "usageCost": used, **total, "vsCurrentPct": delta(total["mean"], used)})
    for r in rows:
        r["range80"] = f"{value_text('mean', r['lo80'])}..{value_text('mean', r['hi80'])}"
        r["range95"] = f"{value_text('mean', r['lo95'])}..{value_text('mean', r['hi95'])}"
    arrays = {k: a[:, cols].sum(axis=0) for k, a in proj.rest.arrays().items()}
    steps = [{"day": proj.steps[c], **{k: float(arrays[k][j]) for k in arrays}} for j, c in enumerate(cols)]
    info = describe(proj)
    return {"empty": None, "from": cut, "total": total, "model": info["modelText"],
            "history": info["history"], "fallback": info["fallbackCount"],
            "gap": cut < p.window.end,  # the ledger ends inside the period: its rest is forecast too, not shown
            "table": table(p, ["layer", "usageCost", "mean", "range80", "range95", "vsCurrentPct"], rows),
            "daily": {"actual": daily, "forecast": steps}}


# -- the headline ---------------------------------------------------------------------------------------------


def _money(v: Any, currency: str | None) -> str:
    return f"{value_text('cost', Decimal(str(v)) if v is not None else ZERO)} {currency or ''}".strip()


def facts(review: dict[str, Any]) -> list[dict[str, str]]:
    """The numbers a reader wants first, as text: spend and its change, idle GPU cost, the achievable saving,
    anomalies, budgets over a threshold, and the next period's forecast."""
    p: ReviewPeriod = review["period"]
    out = []
    sp = review["spend"]
    cur = sp.get("currency")
    if not sp["empty"]:
        note = (f"{value_text('change', sp['change'])} ({value_text('changePct', sp['changePct'])}) vs "
                f"{p.previous_label}" if sp["previousCharges"] else f"no charges in {p.previous_label}")
        out.append({"label": f"spend {p.label}", "value": _money(sp["total"], cur) if cur else "several currencies",
                    "note": note if cur else "see the totals by currency"})
    idle = review["waste"]["idle"]
    if not idle["empty"]:
        out.append({"label": "idle GPU cost", "value": _money(idle["idleCost"], cur),
                    "note": f"{value_text('share', idle['idleShare'])} of GPU cost"})
    f = review["waste"]["findings"]
    out.append({"label": "achievable saving", "value": f"{_money(f['total'], cur)} / month",
                "note": f"{f['count']} finding(s)"})
    a = review["anomalies"]
    big = a["largest"]
    out.append({"label": "anomalies", "value": str(a["count"]),
                "note": f"largest: {big['series']} {value_text('change', big['impactCost'])}" if big else "none"})
    b = review["budgets"]
    if not b["empty"]:
        out.append({"label": "budgets over a threshold", "value": f"{b['over']} of {b['count']}",
                    "note": f"at {b['at']:%Y-%m-%d %H:%M}"})
    fc = review["forecast"]
    if not fc["empty"]:
        out.append({"label": f"forecast {p.next_label}", "value": _money(fc["total"]["mean"], cur),
                    "note": f"95%: {value_text('mean', fc['total']['lo95'])}..{value_text('mean', fc['total']['hi95'])}"
                            " (usage-based)"})
    return out
