"""Anomalies of cost and usage: a robust seasonal baseline per series, anomalies with their dollar impact, and
the child dimension values that explain them (AWS Cost Anomaly Detection's RootCauses with contributions).

A series is one value of a dimension of a metric (``analysis/series.py``: ledger cost, GPU-hours, GPU cost,
tokens, requests, API cost), e.g. ``tag:team`` = search of ``cost``. The rule, per series, at daily or hourly
grain:

1. **Expected** value of a period = the median of the same period of the last ``seasons`` seasons (daily grain:
   the same weekday of the last 4 weeks; hourly: the same hour of the last 7 days). A median of past seasons
   follows weekly (or daily) patterns and ignores one-off spikes in its history.
2. **Robust to past anomalies**: a value found anomalous is replaced by its expected value in the history the
   later baselines read, so a spike does not raise next week's expectation. A change that holds for more than
   half of a season is a level shift, not a spike: the season's actual values go back into the history, and
   the baseline re-learns the new level within ``seasons`` seasons (the anomaly then ends).
3. **Bounds** = expected +- ``z`` x scale, scale = 1.4826 x the median absolute deviation of ``seasons`` seasons
   of residuals before the last season (a robust standard deviation; the last season is left out so that a ramp
   or a change in progress never widens its own bounds), at least ``min_relative_scale`` of the expected value.
4. A period is **anomalous** when it is outside the bounds *and* its impact (actual - expected) is at least
   ``min_impact`` dollars *and* ``min_change`` of the expected value: noise on a tiny series never alerts. A usage
   metric's impact is priced at the series' own dollars per unit over the history (a series without any cost:
   ``min_impact`` is in its units).
   Anomalous periods of the same direction, with gaps of at most a third of a season between them (a level
   shift whose weekends stay within bounds), are one anomaly (start, end; no end while ongoing).
5. **Root causes**: for an anomaly of a series, each child value of a finer dimension (the SKU under a service,
   the model under a team) gets its own baseline the same way; its contribution is its impact over the anomaly's
   periods / the anomaly's impact, ranked (AWS's RootCauses, TotalImpact, TotalExpectedSpend).

6. **Feedback** (``anomaly_feedback``) changes what the baseline learns, over the time range it names:
   *wrong* (normal after all): the periods are not flagged and go into the history and the residuals as they
   were (a pattern marked wrong a few times becomes the baseline); *expected* (we knew): not flagged, and when
   the level holds after the range (the next period is nearer the new level than the old) the history before it
   moves by the range's mean change, so the baseline is at the new level at once, while an expected one-off
   leaves the baseline as it was; *planned* (a one-off): not flagged and kept out of the history, so it neither
   alerts nor raises the baseline.

Everything is vectorised over the series x periods matrix with numpy; the only loop is over periods, because
step 2 makes each baseline depend on the earlier verdicts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np

from ..config import Settings as AppSettings
from .costs import DimensionError
from .layers import LayerRule
from .series import GRAINS, Series, align, load, load_children, metric
from .windows import Window

#: feedback kinds and their codes in the detector's mask
FEEDBACK = {"wrong": 1, "expected": 2, "planned": 3}


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
    impact: float  # in the metric's unit
    direction: str  # up | down
    severity: str
    root_causes: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "cost"
    grain: str = "day"
    unit: str = "USD"
    impact_cost: float = 0.0  # dollars
    status: str = "open"

    @property
    def percent(self) -> float | None:
        return self.impact / self.expected if self.expected else None

    @property
    def anomaly_id(self) -> str:
        """Stable across scans: what was measured, on which series, and when it started."""
        key = f"{self.metric}|{self.dimension}|{self.series}|{self.grain}|{self.start.isoformat()}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]


def despike(y: np.ndarray, season: int, s: Settings | None = None) -> np.ndarray:
    """``y`` with its one-off spikes replaced by their expected values, level shifts kept: the history a forecast
    should fit (one 30x egress day would otherwise widen every interval of the month ahead). Any change of 20%
    or more outside the bounds counts, whatever its dollars. A change still going on at the end is kept: it may be
    the start of a new level, which only the next periods can tell."""
    flagged, clean = _detect(y, season, s or Settings(min_impact=0.0))[3:]
    for i in np.flatnonzero(flagged[:, -1] != 0) if y.shape[1] else []:
        a = y.shape[1] - 1
        while a > 0 and flagged[i, a - 1] != 0:
            a -= 1
        clean[i, a:] = y[i, a:]
    return np.where(np.isnan(y), y, clean)


def detect(y: np.ndarray, season: int, s: Settings | None = None, *, feedback: np.ndarray | None = None,
           unit_cost: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(expected, lower, upper, flagged) for a series x periods matrix; see the module docstring. Periods with
    fewer than two past seasons have no baseline (NaN) and are never flagged; a NaN value is a period not observed
    (before a series existed): it is never flagged and never counts as history. ``feedback`` is a same-shape matrix
    of ``FEEDBACK`` codes (0: none); ``unit_cost`` the dollars per unit of each series (impacts are compared with
    ``min_impact`` in dollars; 0: in units)."""
    return _detect(y, season, s or Settings(), feedback, unit_cost)[:4]


def _detect(y: np.ndarray, season: int, s: Settings, feedback: np.ndarray | None = None,
            unit_cost: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """detect()'s loop; also returns the history it learnt from (spikes out, level shifts in)."""
    n_series, n = y.shape
    clean = y.astype(float).copy()
    expected = np.full(y.shape, np.nan)
    lower, upper = expected.copy(), expected.copy()
    flagged = np.zeros(y.shape, dtype=int)
    residual = np.full(y.shape, np.nan)
    fb = np.zeros(y.shape, dtype=int) if feedback is None else feedback
    price = np.ones(n_series) if unit_cost is None else np.where(unit_cost > 0, unit_cost, 1.0)
    run_start = np.zeros(n_series, dtype=int)  # where the current "expected" range began
    pending = np.zeros(n_series)  # the mean change of an "expected" range that just ended
    for t in range(n):
        lags = [t - k * season for k in range(1, s.seasons + 1) if t - k * season >= 0]
        if len(lags) < 2:
            continue
        past_values = clean[:, lags]
        known = (~np.isnan(past_values)).sum(axis=1) >= 2  # a series seen for fewer than 2 seasons has no baseline
        e = np.full(n_series, np.nan)
        if known.any():
            e[known] = np.nanmedian(past_values[known], axis=1)
        for i in np.flatnonzero(pending != 0):  # the period after an "expected" range: did the new level hold?
            if abs(y[i, t] - (e[i] + pending[i])) < abs(y[i, t] - e[i]):
                clean[i, :run_start[i]] += pending[i]
                e[i] = np.nanmedian(clean[i, lags])
            pending[i] = 0.0
        # the residuals of the seasons before the last one: a change in progress never widens its own bounds
        past = residual[:, max(0, t - (s.seasons + 1) * season):max(0, t - season)]
        mad = np.full(n_series, np.nan)
        seen = ~np.isnan(past).all(axis=1) if past.shape[1] else np.zeros(n_series, bool)
        if seen.any():
            mad[seen] = np.nanmedian(np.abs(past[seen]), axis=1)
        scale = np.fmax(np.nan_to_num(1.4826 * mad, nan=0.0), s.min_relative_scale * np.abs(e))
        lo, hi = e - s.z * scale, e + s.z * scale
        impact = np.nan_to_num(y[:, t] - e)  # no baseline, or not observed: no impact
        big = (np.abs(impact * price) >= s.min_impact) & (np.abs(impact) >= s.min_change * np.abs(np.nan_to_num(e)))
        f = np.where((y[:, t] > hi) & big, 1, np.where((y[:, t] < lo) & big, -1, 0))
        f = np.where(fb[:, t] != 0, 0, f)  # people said what this period is
        expected[:, t], lower[:, t], upper[:, t], flagged[:, t] = e, lo, hi, f
        out = (f != 0) | (fb[:, t] == FEEDBACK["planned"])
        clean[:, t] = np.where(out, e, y[:, t])  # a spike (or a planned one-off) is kept out of the history ...
        recent = flagged[:, max(0, t - season + 1):t + 1]
        shift = (np.abs((recent == np.sign(f)[:, None]).sum(axis=1)) > season // 2) & (f != 0)
        if shift.any():  # ... a level shift is learnt: the season's actual values go back into the history
            lo_t = max(0, t - season + 1)
            clean[shift, lo_t:t + 1] = y[shift, lo_t:t + 1]
        residual[:, t] = np.where(out, np.nan, y[:, t] - e)
        # an "expected" range is a new normal: if the level holds after it, the history before it moves there
        is_exp = fb[:, t] == FEEDBACK["expected"]
        begins = is_exp & ((fb[:, t - 1] != FEEDBACK["expected"]) if t else True)
        run_start[begins] = t
        ends = is_exp & ((fb[:, t + 1] != FEEDBACK["expected"]) if t + 1 < n else False)
        for i in np.flatnonzero(ends):
            a = run_start[i]
            ok = ~np.isnan(expected[i, a:t + 1])
            if ok.any():
                pending[i] = float(np.mean(y[i, a:t + 1][ok] - expected[i, a:t + 1][ok]))
    return expected, lower, upper, flagged, clean


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


def feedback_mask(ser: Series, rows: list[dict[str, Any]]) -> np.ndarray:
    """The detector's feedback matrix for ``ser`` from ``anomaly_feedback`` rows (series, period_start,
    period_end, kind) of its metric and dimension."""
    mask = np.zeros(ser.values.shape, dtype=int)
    if not rows or not ser.times:
        return mask
    step = GRAINS[ser.grain][0]
    index = {k: i for i, k in enumerate(ser.keys)}
    for r in rows:
        i = index.get(r["series"])
        if i is None:
            continue
        a = max(0, -(-(r["period_start"] - ser.times[0]) // step))
        b = len(ser.times) if r["period_end"] is None else min(len(ser.times), -(-(r["period_end"] - ser.times[0])
                                                                                 // step))
        if a < b:
            mask[i, a:b] = FEEDBACK[r["kind"]]
    return mask


def anomalies(con: duckdb.DuckDBPyConnection, window: Window, dim: str, grain: str = "day",
              child: str | None = None, s: Settings | None = None, rules: list[LayerRule] | None = None, *,
              metric_name: str = "cost", settings: AppSettings | None = None,
              feedback: list[dict[str, Any]] | None = None, direction: str = "both") -> list[Anomaly]:
    """Anomalies of every series of ``metric_name`` by ``dim`` that end in (or run into) ``window``, largest
    dollar impact first, with root causes by ``child`` when given. The baseline reads ``seasons`` seasons of
    history before the window; ``feedback`` rows (``store.anomalies.feedback_rows``) are applied. ``direction``:
    up (increases only, as AWS Cost Anomaly Detection alerts), down, or both."""
    if direction not in ("up", "down", "both"):
        raise DimensionError(f"unknown direction {direction!r}: use up, down or both")
    s = s or Settings()
    if grain not in GRAINS:
        raise DimensionError(f"unknown grain {grain!r}: use {', '.join(GRAINS)}")
    step, season, _ = GRAINS[grain]
    window = align(window, grain)
    history = Window(window.start - step * season * s.seasons, window.end)
    m = metric(con, metric_name, settings, rules)
    ser = load(m, dim, history, grain)
    if not ser.keys:
        return []
    price = ser.unit_cost() if m.unit != "USD" else None
    y = ser.values.copy()
    # before a series' first value it did not exist (or the data had not started): not observed, not zero
    seen = np.cumsum(y != 0, axis=1) > 0
    y[~seen] = np.nan
    expected, lower, upper, flagged = detect(y, season, s, feedback=feedback_mask(ser, feedback or []),
                                             unit_cost=price)
    data_end = m.end()
    if data_end is not None and data_end < ser.times[-1] + step:
        # the last period is partial: above the bounds already is an anomaly; below them may only be early
        flagged[:, -1] = np.where(flagged[:, -1] < 0, 0, flagged[:, -1])
    if direction != "both":
        flagged[flagged == (-1 if direction == "up" else 1)] = 0
    first = season * s.seasons  # periods before this are history only
    out: list[Anomaly] = []
    y, times = np.nan_to_num(y), ser.times
    for i, key in enumerate(ser.keys):
        for a, b, direction in _runs(flagged[i], season // 3):
            if b <= first:
                continue
            actual, exp = float(y[i, a:b].sum()), float(expected[i, a:b].sum())
            impact = actual - exp
            cost = impact * float(price[i]) if price is not None else impact
            pct = impact / exp if exp else None
            out.append(Anomaly(ser.dimension, key, times[a], times[b] if b < len(times) else None, b - a, actual,
                               exp, float(lower[i, a:b].sum()), float(upper[i, a:b].sum()), impact,
                               "up" if direction > 0 else "down", _severity(cost, pct, s), metric=m.name,
                               grain=grain, unit=m.unit, impact_cost=cost))
    if child and out:
        kids, parent_of, child_of = load_children(m, ser.dimension, child, history, grain,
                                                  sorted({a.series for a in out}))
        quiet = Settings(s.seasons, s.z, 0.0, 0.0, s.min_relative_scale)  # every child's baseline, whatever its size
        baseline = detect(kids.values, season, quiet)[0]  # all children of all anomalous series at once
        rows: dict[str, list[int]] = {}
        for i, parent in enumerate(parent_of):
            rows.setdefault(parent, []).append(i)
        for an in out:
            idx = np.array(rows.get(an.series, []), dtype=int)
            an.root_causes = root_causes(kids.values[idx], baseline[idx], [child_of[i] for i in idx],
                                         kids.times.index(an.start), an, child)
    return sorted(out, key=lambda x: -abs(x.impact_cost))


def root_causes(y: np.ndarray, expected: np.ndarray, values: list[str], a: int, an: Anomaly, child: str,
                top: int = 5) -> list[dict[str, Any]]:
    """The child values that explain an anomaly: each child series (rows of ``y``, named ``values``, with their
    ``expected`` values from the same baseline) of the anomalous series, and its impact over the anomaly's
    periods (from column ``a``) as a share of the anomaly's impact."""
    if not values:
        return []
    b = a + an.periods
    impact = y[:, a:b].sum(axis=1) - np.nan_to_num(expected[:, a:b]).sum(axis=1)
    order = np.argsort(-np.sign(an.impact) * impact)[:top]
    return [{"dimension": child, "value": values[k], "actual": float(y[k, a:b].sum()),
             "expected": float(np.nan_to_num(expected[k, a:b]).sum()), "impact": float(impact[k]),
             "contribution": float(impact[k] / an.impact) if an.impact else None}
            for k in order if np.sign(impact[k]) == np.sign(an.impact) and impact[k] != 0]


def money(v: float) -> Decimal:
    """A float amount (numpy's too) as dollars and cents."""
    return Decimal(repr(float(v))).quantize(Decimal("0.01"))
