"""The forecast of a period (a month, a quarter, or up to a date): what each series spent so far in it and the
forecast of the rest, with 80/95% intervals and the seasonal naive baseline beside it. ``aifinops forecast``
shows it; scenarios (``analysis/scenarios.py``) change its rest.

- **The period** is the month (or quarter) holding the data's end (``Metric.end()``, exclusive): data that ends
  at 2026-11-01 00:00 has all of October, so November is forecast; data ending 2026-10-31 23:58 forecasts what
  is left of October. ``to`` may also be a date: the period then runs from that month's start through the date.
- **The history** is the whole periods (days or hours) before the data's end, ``history`` long, from the first
  period with any data: a store whose data begins later than the history would otherwise feed the model zeros.
- **The period holding the data's end** is partly actual: its actual counts in ``actual``, and its forecast
  counts for the share of it after the data's end (``ahead``), so nothing is counted twice or left out.
- A series that never went below zero is forecast not below zero (``forecast.nonnegative``).
- **One-off spikes are taken out of the history** before the fit (``anomalies.despike``: replaced by their
  expected values; level shifts stay): one 30x egress day would otherwise widen every interval ahead.
- **Totals** add the periods' means and their bounds, which is adding the interval half-widths (the module
  docstring of ``forecast`` argues why); the total over series adds the series' the same way. With whole periods
  ahead this is ``Forecast.total``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .anomalies import despike
from .costs import DimensionError
from .forecast import MODELS, Forecast, ForecastError, fallback_reasons, forecast, nonnegative
from .series import GRAINS, Metric, Series, align, load
from .windows import Window, WindowError, parse_window

PERIODS = ("month", "quarter")


@dataclass
class Band:
    """series x steps: a forecast's mean and 80/95% bounds (each step's amount, as counted in a total)."""

    mean: np.ndarray
    lo80: np.ndarray
    hi80: np.ndarray
    lo95: np.ndarray
    hi95: np.ndarray

    @classmethod
    def of(cls, fc: Forecast, weight: np.ndarray) -> Band:
        """The model's forecast, each step weighted by the share of it that is still ahead."""
        return cls(*(getattr(fc, f.name) * weight[None, :] for f in fields(cls)))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def scale(self, factor: np.ndarray) -> Band:
        """Every array times ``factor`` (broadcast; a factor >= 0 keeps the bounds in order)."""
        return Band(*(a * factor for a in self.arrays().values()))

    def shift(self, add: np.ndarray) -> Band:
        """Every array plus ``add``: spend known in advance moves the interval, it does not widen it."""
        return Band(*(a + add for a in self.arrays().values()))

    def pad(self, rows: int) -> Band:
        """``rows`` more series of zeros at the end (series a scenario adds)."""
        return Band(*(np.vstack([a, np.zeros((rows, a.shape[1]))]) for a in self.arrays().values()))

    def sums(self) -> dict[str, np.ndarray]:
        """Per series, the total over the steps of the mean and of each bound."""
        return {k: a.sum(axis=1) for k, a in self.arrays().items()}


@dataclass
class Projection:
    """A period's actual and forecast per series of one metric by one dimension."""

    metric: str
    dimension: str
    grain: str
    unit: str
    model: str
    period: Window
    data_end: datetime
    #: the whole periods the model read (from the first with data)
    history: Window
    keys: list[str]
    #: per series: the period's actual up to the data's end
    actual: np.ndarray
    #: start of every period forecast (the first holds the data's end when it is not a boundary)
    steps: list[datetime]
    #: per step: the share of it after the data's end (1 for all but maybe the first)
    ahead: np.ndarray
    #: series x steps: the forecast of what is ahead
    rest: Band
    #: series x steps: the seasonal naive forecast of what is ahead
    naive: np.ndarray
    #: series (row) -> why it got the seasonal naive forecast instead of the model
    fallback: dict[int, str]

    @property
    def step(self) -> timedelta:
        return GRAINS[self.grain][0]

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of the part of each step that is ahead, in seconds since the epoch: what drivers that
        start on a date or ramp over time integrate over."""
        starts = np.array(self.steps, dtype="datetime64[us]").astype(np.int64) / 1e6
        end = np.datetime64(self.data_end, "us").astype(np.int64) / 1e6
        return np.maximum(starts, end), starts + self.step.total_seconds()

    def totals(self, rest: Band | None = None) -> dict[str, np.ndarray]:
        """Per series: ``actual``, the forecast ``rest`` (mean and bounds) and the ``total`` at period end (mean
        and bounds: actual + rest), and ``naive``, the seasonal naive total."""
        sums = (rest or self.rest).sums()
        out: dict[str, np.ndarray] = {"actual": self.actual, **{f"rest_{k}": v for k, v in sums.items()}}
        out.update({f"total_{k}": self.actual + v for k, v in sums.items()})
        out["naive"] = self.actual + self.naive.sum(axis=1)
        return out


def period_for(data_end: datetime, to: str = "month") -> Window:
    """The period to forecast: the month or quarter holding ``data_end`` (an exclusive end, so data ending on a
    boundary forecasts the next period), or from that month's start through the date ``to`` (YYYY-MM-DD)."""
    month = datetime(data_end.year, data_end.month, 1)
    if to in PERIODS:
        first = month.month if to == "month" else 3 * ((month.month - 1) // 3) + 1
        n = 1 if to == "month" else 3
        y, m0 = divmod(first - 1 + n, 12)
        return Window(month.replace(month=first), datetime(month.year + y, m0 + 1, 1))
    try:
        day = datetime.strptime(to, "%Y-%m-%d")
    except ValueError:
        raise WindowError(f"--to {to!r}: use month, quarter or a date YYYY-MM-DD") from None
    end = day + timedelta(days=1)
    if end <= data_end:
        raise WindowError(f"--to {to}: the data already runs to {data_end:%Y-%m-%d %H:%M}; nothing to forecast")
    return Window(month, end)


def history_window(history: str, cut: datetime) -> Window:
    """``history`` (a span such as 120d, 16w or 720h) ending at ``cut``."""
    if not re.fullmatch(r"\s*\d+[hdw]\s*", history):
        raise WindowError(f"--history {history!r}: use a span such as 120d, 16w or 720h")
    return parse_window(history, cut)


def data_end_of(m: Metric) -> datetime:
    end = m.end()
    if end is None:
        raise ForecastError(f"no data for metric {m.name}: the store holds none of what it reads")
    return end


def load_history(m: Metric, dim: str, history: Window, grain: str,
                 where: dict[str, list[str]] | None = None, extra: Window | None = None) -> tuple[Series, int]:
    """The series over ``history`` (and ``extra``, when given, e.g. the period's actual), and the column of the
    first period with any data in the history (earlier columns are zeros only because the data starts later)."""
    window = Window(min(history.start, extra.start), max(history.end, extra.end)) if extra else history
    s = load(m, dim, window, grain, where)
    if not s.keys:
        raise ForecastError(f"no data for metric {m.name}{f' by {dim}' if dim else ''} in {window}")
    times = np.array(s.times, dtype="datetime64[us]")
    in_history = (times >= np.datetime64(history.start, "us")) & (times < np.datetime64(history.end, "us"))
    seen = np.flatnonzero(in_history & s.values.any(axis=0))
    first = int(seen[0]) if seen.size else int(np.flatnonzero(in_history)[0]) if in_history.any() else 0
    return s, first


def project(m: Metric, dim: str, to: str = "month", history: str = "120d", grain: str = "day",
            model: str = "auto", where: dict[str, list[str]] | None = None,
            data_end: datetime | None = None) -> Projection:
    """The period's actual and forecast per series of ``m`` by ``dim`` (see the module docstring); one
    ``forecast`` call for all series."""
    if grain not in GRAINS:
        raise DimensionError(f"unknown grain {grain!r}: use {', '.join(GRAINS)}")
    if model not in MODELS:
        raise ForecastError(f"unknown model {model!r}: use {', '.join(MODELS)}")
    step, season, _ = GRAINS[grain]
    end = data_end or data_end_of(m)
    period = period_for(end, to)
    cut = align(Window(end, end), grain).start  # the data's last whole period ends here
    hist = history_window(history, cut)
    s, first = load_history(m, dim, hist, grain, where, extra=Window(period.start, end))
    times = np.array(s.times, dtype="datetime64[us]")
    h_cols = np.flatnonzero((times >= np.datetime64(hist.start, "us")) & (times < np.datetime64(cut, "us")))
    h_cols = h_cols[h_cols >= first]
    y = s.values[:, h_cols]
    in_period = (times >= np.datetime64(period.start, "us")) & (times < np.datetime64(period.end, "us"))
    actual = s.values[:, in_period].sum(axis=1)
    horizon = int(-((cut - period.end) // step))
    steps = [cut + i * step for i in range(horizon)]
    ahead = np.ones(horizon)
    ahead[0] = (cut + step - end) / step
    fc = nonnegative(forecast(despike(y, season), season, horizon, model), y)
    start = s.times[int(h_cols[0])] if h_cols.size else cut
    return Projection(s.metric, s.dimension, grain, s.unit, model, period, end, Window(start, cut), s.keys, actual,
                      steps, ahead, Band.of(fc, ahead), fc.baseline * ahead[None, :],
                      fallback_reasons(y, season, fc.fallback))


def describe(p: Projection) -> dict[str, Any]:
    """What a reader needs to trust a projection: the model, the history it read, which series fell back."""
    n = int((p.history.end - p.history.start) / p.step)
    reasons = dict(Counter(p.fallback.values()).most_common())
    return {"model": p.model, "modelText": MODELS[p.model], "history": p.history, "historyPeriods": n,
            "fallbackCount": len(p.fallback), "fallbackReasons": reasons,
            "fallback": [{"series": p.keys[i], "reason": why} for i, why in sorted(p.fallback.items())]}
