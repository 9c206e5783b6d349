"""Cost anomalies in the ledger: a robust seasonal baseline per series, anomalies with their dollar impact, and
the child dimension values that explain them (AWS Cost Anomaly Detection's RootCauses with contributions).

The rule, per series (one value of a grouping, e.g. ``tag:team`` = search), at daily or hourly grain:

1. **Expected** value of a period = the median of the same period of the last ``seasons`` seasons (daily grain:
   the same weekday of the last 4 weeks; hourly: the same hour of the last 7 days). A median of past seasons
   follows weekly (or daily) patterns and ignores one-off spikes in its history.
2. **Robust to past anomalies**: a value found anomalous is replaced by its expected value in the history the
   later baselines read, so a spike does not raise next week's expectation. A change that holds for more than
   half of a season is a level shift, not a spike: the season's actual values go back into the history, and
   the baseline re-learns the new level within ``seasons`` seasons (the anomaly then ends).
3. **Bounds** = expected +- ``z`` x scale, scale = 1.4826 x the median absolute deviation of the series' last
   ``seasons`` seasons of residuals (a robust standard deviation), at least ``min_relative_scale`` of the
   expected value.
4. A period is **anomalous** when it is outside the bounds *and* its impact (actual - expected) is at least
   ``min_impact`` dollars *and* ``min_change`` of the expected value: noise on a tiny series never alerts.
   Anomalous periods of the same direction, with gaps of at most a third of a season between them (a level
   shift whose weekends stay within bounds), are one anomaly (start, end; no end while ongoing).
5. **Root causes**: for an anomaly of a series, each child value of a finer dimension (the SKU under a service,
   the model under a team) gets its own baseline the same way; its contribution is its impact over the anomaly's
   periods / the anomaly's impact, ranked (AWS's RootCauses, TotalImpact, TotalExpectedSpend).

Everything is vectorised over the series x periods matrix with numpy; the only loop is over periods, because
step 2 makes each baseline depend on the earlier verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import ibis
import numpy as np

from .costs import DimensionError, dimension_value, in_window, parse_by
from .layers import LayerRule
from .windows import Window

GRAINS = {"day": (timedelta(days=1), 7, "D"), "hour": (timedelta(hours=1), 24, "h")}


@dataclass(frozen=True)
class Settings:
    """Detection thresholds (defaults suit daily cost of a cloud bill)."""

    seasons: int = 4  # past seasons the expected value is the median of
    z: float = 3.0  # bounds = expected +- z x robust scale
    min_impact: float = 50.0  # $: smaller changes never alert
    min_change: float = 0.2  # relative change the impact must also reach
    min_relative_scale: float = 0.05  # the scale is at least this share of the expected value


@dataclass
class Anomaly:
    dimension: str
    series: str
    start: datetime
    end: datetime | None  # None: still anomalous at the last period
    periods: int
    actual: float
    expected: float
    lower: float
    upper: float
    impact: float
    direction: str  # up | down
    severity: str
    root_causes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float | None:
        return self.impact / self.expected if self.expected else None


@dataclass
class Detection:
    """The baseline of every series: expected values, bounds and verdicts per period."""

    keys: list[str]
    times: list[datetime]
    actual: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    flagged: np.ndarray  # +1 up, -1 down, 0 normal


def series(t: ibis.Table, window: Window, dim: str, grain: str = "day", where: Any = None,
           rules: list[LayerRule] | None = None) -> tuple[list[str], list[datetime], np.ndarray]:
    """(series keys, period starts, keys x periods matrix of EffectiveCost) over ``window``; a period without
    charges is 0. ``dim`` is anything ``costs --by`` takes for one dimension (FOCUS column, tag:KEY, layer).
    Only usage-based charges count: a monthly fee or a one-time purchase lands on one day by the calendar, not
    by what anyone used, and would be an anomaly every month."""
    if grain not in GRAINS:
        raise DimensionError(f"unknown grain {grain!r}: use {', '.join(GRAINS)}")
    step, _, unit = GRAINS[grain]
    dims = parse_by(dim)
    if len(dims) != 1:
        raise DimensionError(f"one dimension per series, not {dim!r}")
    t = in_window(t, window)
    t = t.filter(t.ChargeFrequency.fill_null("Usage-Based") == "Usage-Based")
    if where is not None:
        t = t.filter(where(t))
    expr = t.group_by(period=t.ChargePeriodStart.truncate(unit),
                      key=dimension_value(t, dims[0], rules or []).cast("string")) \
        .aggregate(cost=t.EffectiveCost.sum())
    rows = expr.to_pyarrow().to_pylist()
    start = window.start
    n = max(int((window.end - window.start) / step), 0)
    times = [start + i * step for i in range(n)]
    keys = sorted({r["key"] if r["key"] is not None else "(none)" for r in rows})
    index = {k: i for i, k in enumerate(keys)}
    y = np.zeros((len(keys), n))
    for r in rows:  # one row per (series, period): the aggregate's output, not the ledger's rows
        i = int((r["period"] - start) / step)
        if 0 <= i < n:
            y[index[r["key"] if r["key"] is not None else "(none)"], i] += float(r["cost"] or 0)
    return keys, times, y


def detect(y: np.ndarray, season: int, s: Settings | None = None) -> tuple[np.ndarray, ...]:
    """(expected, lower, upper, flagged) for a series x periods matrix; see the module docstring. Periods with
    fewer than two past seasons have no baseline (NaN) and are never flagged."""
    s = s or Settings()
    n_series, n = y.shape
    clean = y.astype(float).copy()
    expected = np.full(y.shape, np.nan)
    lower, upper = expected.copy(), expected.copy()
    flagged = np.zeros(y.shape, dtype=int)
    residual = np.full(y.shape, np.nan)
    for t in range(n):
        lags = [t - k * season for k in range(1, s.seasons + 1) if t - k * season >= 0]
        if len(lags) < 2:
            continue
        e = np.median(clean[:, lags], axis=1)
        past = residual[:, max(0, t - s.seasons * season):t]
        mad = np.full(n_series, np.nan)
        seen = ~np.isnan(past).all(axis=1) if past.shape[1] else np.zeros(n_series, bool)
        if seen.any():
            mad[seen] = np.nanmedian(np.abs(past[seen]), axis=1)
        scale = np.fmax(np.nan_to_num(1.4826 * mad, nan=0.0), s.min_relative_scale * np.abs(e))
        lo, hi = e - s.z * scale, e + s.z * scale
        impact = y[:, t] - e
        big = (np.abs(impact) >= s.min_impact) & (np.abs(impact) >= s.min_change * np.abs(e))
        f = np.where((y[:, t] > hi) & big, 1, np.where((y[:, t] < lo) & big, -1, 0))
        expected[:, t], lower[:, t], upper[:, t], flagged[:, t] = e, lo, hi, f
        clean[:, t] = np.where(f != 0, e, y[:, t])  # a spike is kept out of the history ...
        recent = flagged[:, max(0, t - season + 1):t + 1]
        shift = (np.abs((recent == np.sign(f)[:, None]).sum(axis=1)) > season // 2) & (f != 0)
        if shift.any():  # ... a level shift is learnt: the season's actual values go back into the history
            lo_t = max(0, t - season + 1)
            clean[shift, lo_t:t + 1] = y[shift, lo_t:t + 1]
        residual[:, t] = np.where(f != 0, np.nan, y[:, t] - e)
    return expected, lower, upper, flagged


def _runs(flags: np.ndarray, gap: int) -> list[tuple[int, int, int]]:
    """(start, end exclusive, direction) of same-direction flags of one series, joined over gaps of up to
    ``gap`` unflagged periods."""
    out: list[tuple[int, int, int]] = []
    for i in np.flatnonzero(flags):
        d = int(flags[i])
        if out and out[-1][2] == d and i - out[-1][1] <= gap:
            out[-1] = (out[-1][0], int(i) + 1, d)
        else:
            out.append((int(i), int(i) + 1, d))
    return out


def _severity(impact: float, pct: float | None, s: Settings) -> str:
    if abs(impact) >= 20 * s.min_impact or (pct is not None and abs(pct) >= 1.0):
        return "high"
    return "medium" if abs(impact) >= 5 * s.min_impact or (pct is not None and abs(pct) >= 0.5) else "low"


def anomalies(t: ibis.Table, window: Window, dim: str, grain: str = "day", child: str | None = None,
              s: Settings | None = None, rules: list[LayerRule] | None = None) -> list[Anomaly]:
    """Anomalies of every series of ``dim`` that end in (or run into) ``window``, largest impact first, with
    root causes by ``child`` when given. The baseline reads ``seasons`` seasons of history before the window."""
    s = s or Settings()
    if grain not in GRAINS:
        raise DimensionError(f"unknown grain {grain!r}: use {', '.join(GRAINS)}")
    step, season, _ = GRAINS[grain]
    history = Window(window.start - step * season * s.seasons, window.end)
    keys, times, y = series(t, history, dim, grain, rules=rules)
    if not keys:
        return []
    expected, lower, upper, flagged = detect(y, season, s)
    first = season * s.seasons  # periods before this are history only
    out: list[Anomaly] = []
    for i, key in enumerate(keys):
        for a, b, direction in _runs(flagged[i], season // 3):
            if b <= first:
                continue
            actual, exp = float(y[i, a:b].sum()), float(expected[i, a:b].sum())
            impact = actual - exp
            pct = impact / exp if exp else None
            out.append(Anomaly(dim, key, times[a], times[b] if b < len(times) else None, b - a, actual, exp,
                               float(lower[i, a:b].sum()), float(upper[i, a:b].sum()), impact,
                               "up" if direction > 0 else "down", _severity(impact, pct, s)))
    if child:
        for an in out:
            an.root_causes = root_causes(t, history, dim, an, child, grain, s, rules)
    return sorted(out, key=lambda x: -abs(x.impact))


def root_causes(t: ibis.Table, history: Window, dim: str, an: Anomaly, child: str, grain: str,
                s: Settings, rules: list[LayerRule] | None = None, top: int = 5) -> list[dict[str, Any]]:
    """The child values that explain an anomaly: each child series of the anomalous series, with the same
    baseline, and its impact over the anomaly's periods as a share of the anomaly's impact."""
    season = GRAINS[grain][1]
    parent = parse_by(dim)[0]

    def same_parent(tt: ibis.Table) -> Any:
        return dimension_value(tt, parent, rules or []).cast("string") == an.series

    keys, times, y = series(t, history, child, grain, where=same_parent, rules=rules)
    if not keys:
        return []
    expected, _, _, _ = detect(y, season, Settings(s.seasons, s.z, 0.0, 0.0, s.min_relative_scale))
    a = times.index(an.start)
    b = a + an.periods
    impact = y[:, a:b].sum(axis=1) - np.nan_to_num(expected[:, a:b]).sum(axis=1)
    order = np.argsort(-np.sign(an.impact) * impact)[:top]
    return [{"dimension": child, "value": keys[k], "actual": float(y[k, a:b].sum()),
             "expected": float(np.nan_to_num(expected[k, a:b]).sum()), "impact": float(impact[k]),
             "contribution": float(impact[k] / an.impact) if an.impact else None}
            for k in order if np.sign(impact[k]) == np.sign(an.impact) and impact[k] != 0]


def money(v: float) -> Decimal:
    return Decimal(repr(v)).quantize(Decimal("0.01"))
