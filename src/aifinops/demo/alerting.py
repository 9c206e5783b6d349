"""The demo's anomalies, budgets and forecast: Helix AI's own watch configuration, written beside the store as
``aifinops.yaml`` so that the commands the demo prints (``budgets status``, ``watch --once``) read it.

The story plants three events the scans must find (see ``fleet.py``'s spikes): a forgotten fine-tuning sweep
(EC2, untagged), a feature-store export over the internet (egress, three days) and the support copilot's launch
(Azure OpenAI tokens x3, then x2). The budgets are set near each team's usual month, so October's launch and
fine-tune push some over; their status is shown as of ``BUDGET_AT`` (mid-October, forecast to the month's end)
beside what October actually came to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from ..analysis.anomalies import money
from ..analysis.layers import load_rules
from ..analysis.projection import project
from ..analysis.series import metric
from ..config import Settings
from ..governance import budgets as budgets_mod
from ..governance.watch import scan
from ..interfaces.cli.budgets import parse_at
from ..interfaces.report import Section
from ..store.connection import Store

ANOMALY_WINDOW = "60d"
TOP_ANOMALIES = 8
#: the budgets' "as of": ten days before October ends, so the forecast has something to forecast
BUDGET_AT_DAYS_BEFORE_END = 11

CONFIG: dict[str, Any] = {
    "anomalies": {
        "window": ANOMALY_WINDOW,
        "scans": [
            {"metric": "cost", "by": "ServiceName", "child": "SkuId"},
            {"metric": "cost", "by": "tag:team", "child": "ServiceName"},
            {"metric": "gpu_cost", "by": "team", "child": "workload"},
            {"metric": "tokens", "by": "feature", "child": "model"},
        ],
    },
    "alerts": {
        "owners": {"ml-platform": "ml-platform-oncall@helix.ai", "genai-apps": "genai-leads@helix.ai",
                   "recsys": "recsys@helix.ai", "search": "search-leads@helix.ai", "data-eng": "data-eng@helix.ai",
                   "(untagged)": "finops@helix.ai"},
    },
    "budgets": [
        {"name": "ml-platform", "scope": {"tag:team": "ml-platform"}, "amount": 200000,
         "owner": "ml-platform-oncall@helix.ai"},
        {"name": "genai-apps", "scope": {"tag:team": "genai-apps"}, "amount": 80000, "owner": "genai-leads@helix.ai"},
        {"name": "recsys", "scope": {"tag:team": "recsys"}, "amount": 110000, "owner": "recsys@helix.ai"},
        {"name": "search", "scope": {"tag:team": "search"}, "amount": 30000, "owner": "search-leads@helix.ai"},
        {"name": "ai-services", "scope": {"layer": "ai-services"}, "amount": 60000, "owner": "finops@helix.ai",
         "forecast_thresholds": [90, 100]},
    ],
}


def write_config(out: Path) -> Path:
    """``aifinops.yaml`` of the demo, beside its store."""
    path = out / "aifinops.yaml"
    path.write_text("# The demo's watch configuration (aifinops demo writes it; see README: Anomalies, forecasts, "
                    "budgets and alerts)\n" + yaml.safe_dump({"db": str(out / "aifinops.duckdb"), **CONFIG},
                                                             sort_keys=False))
    return path


def settings_for(settings: Settings) -> Settings:
    """The caller's settings with the demo's anomaly scans, owners and budgets."""
    return Settings.model_validate({**settings.model_dump(), **CONFIG,
                                    "alerts": {**settings.alerts.model_dump(), **CONFIG["alerts"]}})


def anomaly_section(store: Store, settings: Settings) -> tuple[Section, dict[str, str]]:
    """Run the scans (and keep what they find, as ``aifinops anomalies --configured`` does); the largest."""
    found = []
    for sc in settings.anomalies.scans:
        got, _, _ = scan(store.con, sc, settings, ANOMALY_WINDOW)
        found += got
    found.sort(key=lambda a: -abs(a.impact_cost))
    rows = [{"id": a.anomaly_id, "metric": a.metric, "series": f"{a.dimension}={a.series}", "start": a.start,
             "end": a.end, "impactCost": money(a.impact_cost),
             "percent": round(a.percent, 3) if a.percent is not None else None, "severity": a.severity,
             "rootCause": ", ".join(f"{c['value']} {c['contribution']:.0%}" for c in a.root_causes[:2]
                                    if c["contribution"] is not None)}
            for a in found[:TOP_ANOMALIES]]
    section = Section(f"Largest anomalies (last {ANOMALY_WINDOW})", rows, ("series", "impactCost"), note=(
        f"The {TOP_ANOMALIES} largest of {len(found)} anomalies of the watch scans (aifinops.yaml: cost by service "
        "and by team, GPU cost by team, tokens by feature), increases only. Expected = the median of the same "
        "weekday of the last 4 weeks, spikes kept out of it; impactCost = actual - expected over the anomaly's "
        "days; rootCause: the child values (SKU, service, workload, model) that explain it. The story's three "
        "events are among them: the forgotten fine-tuning sweep (untagged EC2), the feature-store export "
        "(Networking egress) and the support copilot's launch (Azure OpenAI). aifinops anomalies show <id>; "
        "aifinops anomalies feedback <id> expected|planned|wrong."))
    return section, {"anomalies (60d)": f"{len(found)}",
                     "largest anomaly": f"{rows[0]['series']} +${rows[0]['impactCost']:,.0f}" if rows else "none"}


def budget_section(store: Store, settings: Settings, data_end: datetime) -> tuple[Section, dict[str, str]]:
    """The budgets as of mid-October with the forecast to the month's end, beside October's actual total."""
    at = parse_at(budget_day(data_end))  # the end of that day, as `budgets status --at DAY` reads it
    found = budgets_mod.status(store.con, settings, at)
    actual = {b.name: b.spent for b in budgets_mod.status(store.con, settings, data_end - timedelta(microseconds=1))}
    rows = []
    for b in found:
        f = b.forecast
        crossed = [f"{t.basis} {t.pct:g}%: {t.state}" for t in b.thresholds if t.state != "ok"]
        rows.append({"budget": b.name, "period": b.label, "amount": b.amount,
                     "spendSoFar": b.spent.quantize(Decimal("0.01")),
                     "forecastSpend": money(f["mean"]),
                     "forecast95": f"{f['lo95']:,.0f}..{f['hi95']:,.0f}",
                     "actualSpend": actual[b.name].quantize(Decimal("0.01")),
                     "exhaustion": b.exhaustion, "thresholds": "; ".join(crossed) or "ok"})
    inside = sum(1 for r in rows if _within(r))
    section = Section(f"Budgets as of {at:%Y-%m-%d} (forecast to period end)", rows, ("budget", "forecastSpend"), note=(
        f"Budgets of aifinops.yaml (one per team, and the AI-services layer), as `aifinops budgets status --at "
        f"{at:%Y-%m-%d}` reports them: spent so far, the forecast at the period's end (spent + MSTL forecast of "
        f"the usage-based days left, 95% interval), the projected exhaustion date and each threshold's state; "
        f"actualSpend is what the month came to. The actual total is inside the 95% interval for {inside} of "
        f"{len(rows)} budgets."))
    over = [r["budget"] for r in rows if "forecast 100%: forecast to cross" in r["thresholds"]
            or "actual 100%: crossed" in r["thresholds"]]
    return section, {"budgets forecast over": ", ".join(over) or "none",
                     "budget forecasts inside 95%": f"{inside} of {len(rows)}"}


def forecast_section(store: Store, settings: Settings) -> tuple[Section, dict[str, str]]:
    """Next month's spend by cost layer: MSTL's total with its 80/95% intervals beside seasonal naive's."""
    m = metric(store.con, "cost", settings, load_rules(settings.layers_file))
    p = project(m, "layer")
    t = p.totals()
    rows = [{"layer": k, "forecastCost": money(t["total_mean"][i]),
             "interval80": f"{t['total_lo80'][i]:,.0f}..{t['total_hi80'][i]:,.0f}",
             "interval95": f"{t['total_lo95'][i]:,.0f}..{t['total_hi95'][i]:,.0f}",
             "seasonalNaiveCost": money(t["naive"][i]), "model": "seasonal naive" if i in p.fallback else "MSTL"}
            for i, k in sorted(enumerate(p.keys), key=lambda x: -t["total_mean"][x[0]])]
    total = float(t["total_mean"].sum())
    label = f"{p.period.start:%Y-%m}"
    section = Section(f"Forecast for {label} by cost layer", rows, ("layer", "forecastCost"), note=(
        f"`aifinops forecast --by layer`: each layer's usage-based daily spend over the last {p.history.days:.0f} "
        "days, forecast to the end of the month by statsforecast's MSTL (the weekly season by STL, AutoETS on the "
        "rest), with 80% and 95% intervals, beside the seasonal naive forecast (the last week repeated). Wide "
        "intervals are honest: GPU compute steps between levels as training runs start and stop, and the egress "
        "export is in data-movement's history. aifinops forecast backtest says where the model beats the "
        "baseline; --scenario examples/scenarios.yaml adds growth, a launch or a training run."))
    return section, {f"forecast {label}": f"${total:,.0f}"}


def budget_day(data_end: datetime) -> str:
    """The day the demo's budget status is as of (the command it prints names the same day)."""
    return f"{data_end - timedelta(days=BUDGET_AT_DAYS_BEFORE_END):%Y-%m-%d}"


def _within(r: dict[str, Any]) -> bool:
    lo, hi = (float(x.replace(",", "")) for x in r["forecast95"].split(".."))
    return lo <= float(r["actualSpend"]) <= hi

