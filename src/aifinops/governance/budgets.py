"""Budgets: how much of each budget is spent this period, what the period will end at, the day the money runs
out, and which thresholds are crossed (``budgets:`` in aifinops.yaml; ``aifinops budgets status``).

For one budget and the period holding ``at`` (calendar month, quarter or year in UTC, or a custom START..END):

- **spent** = the ledger's EffectiveCost in the scope (AND over dimensions, any of a dimension's listed values;
  dimensions resolved as ``aifinops costs --by`` resolves them) of the charges starting from the period start up
  to ``at``, of *every* charge frequency: a monthly fee or a one-time purchase is money out of the budget (AWS
  Budgets counts them too). Credits (negative costs) lower it.
- **forecast at period end** = spent + the forecast of the *usage-based* daily cost over the rest of the period
  (``analysis.forecast``, model ``auto``, weekly season, up to 120 days of history before the first forecast
  day; clipped at zero unless the history has credits), with 80% and 95% intervals (the days' half-widths
  added, as ``Forecast.total`` does). Recurring fees expected later in the period are **not** forecast: a fee
  is a date on a contract, not a trend of use, and it enters spent when it is billed. A day only partly observed
  (hourly data ending at noon) gets the forecast of its unobserved share. Once the period is over the forecast
  is spent, with an interval of zero width.
- **projected exhaustion** = the first day on which spent plus the forecast day by day reaches the amount; when
  spend has already reached it, the day it did; None when neither happens within the period.
- **thresholds** (percentages of the amount): an actual threshold is *crossed* when spent has reached it (on the
  day since which spend has stayed at or above it: a credit can take it back below); a forecast threshold is
  *forecast to cross* when the forecast mean reaches it (*crossed* when spend already has) and *at risk* when
  only the 95% upper bound does.

``alerts_for`` turns crossed thresholds into ``Alert``s keyed by budget, period start, basis and threshold, so a
crossing alerts once per period however often the status is computed.

Actual spend is summed as exact decimals (a crossing on the cent is a crossing); forecasts are floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import duckdb
import ibis
import numpy as np

from ..analysis import series as series_mod
from ..analysis.costs import Dimension, dimension_value, in_window
from ..analysis.forecast import forecast, nonnegative
from ..analysis.layers import LayerRule, load_rules
from ..analysis.windows import Window, parse_window
from ..config import BudgetSettings, Settings
from .alerts import Alert

DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)  # data ending at 2026-11-01 00:00 is October's: ``at`` is one tick before
HISTORY_DAYS = 120
SEASON = 7
MODEL = "auto"
ACTUAL, FORECAST = "actual", "forecast"


@dataclass(frozen=True)
class Threshold:
    """One threshold of a budget and where spend stands against it."""

    basis: str  # actual | forecast
    pct: float  # percent of the amount
    amount: Decimal  # the threshold in dollars
    state: str  # actual: crossed | ok; forecast: crossed | forecast to cross | at risk | ok
    #: actual: the day spend reached it; forecast: that day, or the day the forecast reaches it
    on: date | None

    @property
    def alerts(self) -> bool:
        """Whether this threshold alerts: actual spend reached it, or the forecast mean does."""
        return self.state == "crossed" or self.state == "forecast to cross"


@dataclass
class BudgetStatus:
    budget: BudgetSettings
    period: Window  # [start, end) UTC
    label: str  # 2026-10, 2026-Q4, 2026 or the custom START..END
    at: datetime  # spend counts up to this instant (inclusive)
    spent: Decimal
    #: total spend at period end: mean, lo80, hi80, lo95, hi95 (spent + forecast of the rest)
    forecast: dict[str, float]
    exhaustion: date | None
    thresholds: list[Threshold]
    #: what forecast the rest: mstl, seasonal naive (too little or flat history), none (period over or no usage)
    model: str
    #: days of usage history the forecast read
    history_days: int

    @property
    def name(self) -> str:
        return self.budget.name

    @property
    def amount(self) -> Decimal:
        return self.budget.amount

    @property
    def percent(self) -> float:
        """Spent as a percentage of the amount."""
        return float(self.spent / self.amount * 100)

    @property
    def over(self) -> bool:
        """Whether any threshold alerts: spend reached an actual one, or the forecast mean reaches a forecast one."""
        return any(t.alerts for t in self.thresholds)


def period_of(budget: BudgetSettings, at: datetime) -> tuple[Window, str]:
    """The budget's period holding ``at`` (a custom START..END is its own period wherever ``at`` is)."""
    text = {"month": f"{at:%Y-%m}", "quarter": f"{at.year}-Q{(at.month - 1) // 3 + 1}",
            "year": f"{at.year}"}.get(budget.period, budget.period)
    return parse_window(text, None), text


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _scope(budget: BudgetSettings) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in budget.scope.items()}


def _daily_spend(t: ibis.Table, scope: dict[str, list[str]], window: Window,
                 rules: list[LayerRule]) -> tuple[np.ndarray, np.ndarray]:
    """(days, cumulative spend at the end of each day) of every charge frequency in the scope, exact decimals;
    only days with charges are listed."""
    t = in_window(t, window)
    for d, values in scope.items():
        t = t.filter(dimension_value(t, Dimension(d), rules).cast("string").isin(values))
    day = t.ChargePeriodStart.truncate("D")
    out = t.group_by(day=day).aggregate(cost=t.EffectiveCost.sum()).order_by("day").to_pyarrow()
    days = np.array(out.column("day").to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    cost = np.array([c if c is not None else Decimal(0) for c in out.column("cost").to_pylist()], dtype=object)
    return days, np.cumsum(cost) if len(cost) else cost


def _since(days: np.ndarray, cum: np.ndarray, amounts: list[Decimal]) -> list[date | None]:
    """Per amount, the day since which the cumulative spend has stayed at or above it (None: it is below now)."""
    if not len(cum):
        return [None] * len(amounts)
    below = (cum[None, :] < np.array(amounts, dtype=object)[:, None]).astype(bool)
    n = len(cum)
    first_above = np.where(below.any(axis=1), n - np.argmax(below[:, ::-1], axis=1), 0)
    return [days[i].item() if i < n else None for i in first_above]


def _reaches(days: np.ndarray, path: np.ndarray, amounts: list[float]) -> list[date | None]:
    """Per amount, the first day the forecast path reaches it (None: not within the period)."""
    if not len(path):
        return [None] * len(amounts)
    hit = path[None, :] >= np.array(amounts, dtype=float)[:, None]
    first = np.argmax(hit, axis=1)
    return [days[i].item() if hit[k, i] else None for k, i in enumerate(first)]


def _rest(m: series_mod.Metric, scope: dict[str, list[str]], seen: datetime,
          period: Window) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], str, int]:
    """The forecast of the usage-based cost from ``seen`` to the period end: (days, weight of each day inside
    [seen, end), per-day mean/lo80/hi80/lo95/hi95, model, history days)."""
    d0 = datetime(seen.year, seen.month, seen.day)
    horizon = -(-(period.end - d0) // DAY)
    starts = np.datetime64(d0, "us") + np.arange(horizon) * np.timedelta64(1, "D")
    lo, hi = np.datetime64(max(seen, period.start), "us"), np.datetime64(period.end, "us")
    overlap = np.minimum(starts + np.timedelta64(1, "D"), hi) - np.maximum(starts, lo)
    weight = np.clip(overlap / np.timedelta64(1, "D"), 0.0, 1.0)
    days = starts.astype("datetime64[D]")
    hist = series_mod.load(m, "", Window(d0 - HISTORY_DAYS * DAY, d0), "day", where=scope)
    y = hist.values[0] if hist.keys else np.zeros(0)
    used = np.flatnonzero(y)
    y = y[used[0]:] if used.size else y[:0]  # days before the scope's first charge are not history
    zero = np.zeros(horizon)
    if not y.size:
        return days, weight, {k: zero for k in ("mean", "lo80", "hi80", "lo95", "hi95")}, "none", 0
    fc = nonnegative(forecast(y[None, :], SEASON, horizon, MODEL), y[None, :])  # spend does not turn negative
    steps = {"mean": fc.mean[0], "lo80": fc.lo80[0], "hi80": fc.hi80[0], "lo95": fc.lo95[0], "hi95": fc.hi95[0]}
    return days, weight, steps, "seasonal naive" if fc.fallback else "mstl", int(y.size)


def _status(t: ibis.Table, m: series_mod.Metric, b: BudgetSettings, at: datetime, seen: datetime | None,
            rules: list[LayerRule]) -> BudgetStatus:
    """``seen``: where the usage known at ``at`` ends; the forecast covers the period from there."""
    period, label = period_of(b, at)
    scope = _scope(b)
    upto = min(at + TICK, period.end)
    days, cum = _daily_spend(t, scope, Window(period.start, max(upto, period.start)), rules)
    spent = Decimal(cum[-1]) if len(cum) else Decimal(0)
    pcts = [(ACTUAL, p) for p in b.actual_thresholds] + [(FORECAST, p) for p in b.forecast_thresholds]
    amounts = [b.amount * Decimal(repr(p)) / 100 for _, p in pcts]
    actual_on = _since(days, cum, [*amounts, b.amount])
    s = float(spent)
    if seen is None or seen >= period.end:
        fc = dict.fromkeys(("mean", "lo80", "hi80", "lo95", "hi95"), s)
        model, history, forecast_on = "none", 0, [None] * (len(amounts) + 1)
    else:
        fdays, weight, steps, model, history = _rest(m, scope, seen, period)
        mean = float((weight * steps["mean"]).sum())
        fc = {"mean": s + mean}
        for k in ("lo80", "lo95", "hi80", "hi95"):
            fc[k] = s + mean + float((weight * (steps[k] - steps["mean"])).sum())
        path = s + np.cumsum(weight * steps["mean"])
        inside = weight > 0
        forecast_on = _reaches(fdays[inside], path[inside], [float(a) for a in [*amounts, b.amount]])
    thresholds = []
    for (basis, pct), amount, on_actual, on_forecast in zip(pcts, amounts, actual_on[:-1], forecast_on[:-1],
                                                            strict=True):
        if basis == ACTUAL:
            thresholds.append(Threshold(basis, pct, amount, "crossed" if on_actual else "ok", on_actual))
        elif fc["mean"] >= float(amount):
            thresholds.append(Threshold(basis, pct, amount, "crossed" if on_actual else "forecast to cross",
                                        on_actual or on_forecast))
        else:
            thresholds.append(Threshold(basis, pct, amount, "at risk" if fc["hi95"] >= float(amount) else "ok", None))
    return BudgetStatus(b, period, label, at, spent, fc, actual_on[-1] or forecast_on[-1], thresholds, model,
                        history)


def data_end(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """Where the ledger ends (the latest ChargePeriodEnd)."""
    return con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges').fetchall()[0][0]


def usage_seen(con: duckdb.DuckDBPyConnection, at: datetime) -> datetime | None:
    """Where the usage known at ``at`` ends: the latest end of a usage-based charge starting by ``at``. A daily
    charge starting at 00:00 is the whole day's, so at 10:00 that day is known to its end; hourly data ending at
    noon leaves the afternoon to forecast. Fees are left out (a monthly fee spans the month it is for), and a
    usage charge counts for at most its first day, so one provider billing usage by the month does not make the
    rest of the month look known."""
    return con.execute(
        'SELECT max(least("ChargePeriodEnd", "ChargePeriodStart" + INTERVAL 1 DAY)) FROM focus_charges '
        """WHERE "ChargePeriodStart" <= $at AND coalesce("ChargeFrequency", 'Usage-Based') = 'Usage-Based'""",
        {"at": at}).fetchall()[0][0]


def status(con: duckdb.DuckDBPyConnection, settings: Settings, at: datetime | None = None,
           rules: list[LayerRule] | None = None) -> list[BudgetStatus]:
    """Every configured budget's status at ``at`` (default: the end of the ledger, less one tick, so data
    ending 2026-11-01 00:00 reports October; an empty ledger: now). Forecasts read only data before ``at``, so a
    past ``at`` replays what the status said then. See the module docstring for the arithmetic."""
    if not settings.budgets:
        return []
    rules = load_rules(settings.layers_file) if rules is None else rules
    if at is None:
        end = data_end(con)
        at = end - TICK if end is not None else datetime.now(UTC).replace(tzinfo=None)
    at = _naive(at)
    seen = usage_seen(con, at)
    t = ibis.duckdb.from_connection(con).table("focus_charges")
    m = series_mod.metric(con, "cost", settings, rules)
    return [_status(t, m, b, at, seen, rules) for b in settings.budgets]


# -- alerts ----------------------------------------------------------------------------------------------------


def usd(v: float | Decimal) -> str:
    """``$61,200``; cents only below $100, where they matter."""
    v = float(v)
    return f"{'-' if v < 0 else ''}${abs(v):,.{0 if abs(v) >= 100 else 2}f}"


def severity(pct: float) -> str:
    """Of a threshold: below 80% low, below 100% medium, from 100% high."""
    return "high" if pct >= 100 else "medium" if pct >= 80 else "low"


def alert_key(s: BudgetStatus, th: Threshold) -> str:
    """Stable for a budget, period, basis and threshold: the same crossing alerts once per period."""
    return f"budget:{s.name}:{s.period.start.date().isoformat()}:{th.basis}:{th.pct:g}"


def scope_text(budget: BudgetSettings) -> str:
    """``tag:team=search; ServiceName in (A, B)``; ``all spend`` when the scope is empty."""
    parts = [f"{k}={v[0]}" if len(v) == 1 else f"{k} in ({', '.join(v)})" for k, v in _scope(budget).items()]
    return "; ".join(parts) or "all spend"


def _cents(v: float | Decimal) -> float:
    return round(float(v), 2)


def _details(s: BudgetStatus, th: Threshold) -> dict[str, Any]:
    fc = s.forecast
    return {
        "budget": {"name": s.name, "period": s.label, "period_start": s.period.start.isoformat(),
                   "period_end": s.period.end.isoformat(), "scope": scope_text(s.budget),
                   "amount": _cents(s.amount), "spent": _cents(s.spent), "spent_share": round(s.percent / 100, 4),
                   "as_of": s.at.isoformat(timespec="seconds"),
                   "exhaustion_date": s.exhaustion.isoformat() if s.exhaustion else None},
        "forecast": {"spend": _cents(fc["mean"]), "low_80_spend": _cents(fc["lo80"]),
                     "high_80_spend": _cents(fc["hi80"]), "low_95_spend": _cents(fc["lo95"]),
                     "high_95_spend": _cents(fc["hi95"]), "model": s.model},
        "threshold": {"basis": th.basis, "level": f"{th.pct:g}%", "amount": _cents(th.amount), "state": th.state,
                      "date": th.on.isoformat() if th.on else None},
    }


def alerts_for(statuses: list[BudgetStatus], settings: Settings) -> list[Alert]:
    """One alert per threshold that alerts (actual spend reached it; the forecast mean reaches it), named for the
    budget's owner (a name ``alerts.owners`` maps is replaced by its contact), sent to the budget's channels.
    impact_cost is spent (actual) or the forecast mean (forecast) less the threshold amount."""
    out = []
    base = settings.alerts.link_base
    for s in statuses:
        owner = settings.alerts.owners.get(s.budget.owner, s.budget.owner) if s.budget.owner else None
        link = (f"{base.rstrip('/')}/budgets/{quote(s.name, safe='')}" if base
                else f"aifinops budgets status --at {s.at.date().isoformat()}")
        for th in s.thresholds:
            if not th.alerts:
                continue
            if th.basis == ACTUAL:
                impact = float(s.spent - th.amount)
                subject = (f"Budget {s.name}: spent {usd(s.spent)} ({s.percent:.0f}% of {usd(s.amount)}) crossed "
                           f"{th.pct:g}% on {th.on} ({s.label})")
            else:
                impact = s.forecast["mean"] - float(th.amount)
                subject = (f"Budget {s.name}: forecast {usd(s.forecast['mean'])} (95%: {usd(s.forecast['lo95'])}-"
                           f"{usd(s.forecast['hi95'])}) exceeds {th.pct:g}% of {usd(s.amount)} ({s.label})")
            out.append(Alert(key=alert_key(s, th), kind="budget", subject=subject, owner=owner,
                             severity=severity(th.pct), impact_cost=round(impact, 2), link=link,
                             channels=list(s.budget.channels), details=_details(s, th)))
    return out
