"""Forecasts of cost and usage series, with 80% and 95% intervals, always beside a seasonal naive baseline.

Models come from statsforecast (imported lazily: it pulls in pandas and takes a second to import, and most
commands never forecast). The default, ``auto``, is MSTL: the series is split into its seasonal parts (weekly
for daily data; daily and weekly for hourly data) by STL, and the rest (trend and level) is forecast by a
non-seasonal AutoETS. Measured on this 2-core machine over 365 days: MSTL 26 ms a series, AutoETS with a
seasonal search 164 ms, AutoARIMA much slower; MSTL is the model that stays fast at hundreds of series and still
follows a weekly pattern. A series too short for two seasons, or one a model cannot fit (constant, all zero),
gets the seasonal naive forecast (the last season repeated), and the Forecast says which series did.

Interval of a total (the spend to the end of the month): the step intervals are per period; the sum's standard
deviation is at most the sum of the steps' (for any correlation between the errors), so ``total()`` adds the
half-widths. That interval is never narrower than the truth; forecast errors of a level model are strongly
correlated over the horizon, which is where the sum of half-widths is also close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: model name -> what it is (``aifinops forecast --model``)
MODELS = {
    "auto": "MSTL (seasonal decomposition + AutoETS on the rest); seasonal naive where it cannot fit",
    "mstl": "MSTL: STL seasonal decomposition, AutoETS on trend and remainder",
    "ets": "AutoETS with a seasonal component (slower: a model search per series)",
    "theta": "AutoTheta (seasonally adjusted theta method)",
    "naive": "seasonal naive: the last season repeated",
}
LEVELS = (80, 95)


class ForecastError(ValueError):
    pass


@dataclass
class Forecast:
    """series x horizon arrays of the model's forecast and the seasonal naive baseline's."""

    model: str
    mean: np.ndarray
    lo80: np.ndarray
    hi80: np.ndarray
    lo95: np.ndarray
    hi95: np.ndarray
    baseline: np.ndarray
    baseline_lo95: np.ndarray
    baseline_hi95: np.ndarray
    #: rows that got the seasonal naive forecast instead of the model (too short, or the fit failed)
    fallback: list[int] = field(default_factory=list)

    def total(self, i: int, steps: int | None = None) -> dict[str, float]:
        """Sum of series ``i`` over the first ``steps`` periods, with 80/95% bounds (half-widths added: see the
        module docstring)."""
        s = slice(0, self.mean.shape[1] if steps is None else steps)
        mean = float(self.mean[i, s].sum())
        return {"mean": mean,
                "lo80": mean - float((self.mean[i, s] - self.lo80[i, s]).sum()),
                "hi80": mean + float((self.hi80[i, s] - self.mean[i, s]).sum()),
                "lo95": mean - float((self.mean[i, s] - self.lo95[i, s]).sum()),
                "hi95": mean + float((self.hi95[i, s] - self.mean[i, s]).sum())}


def seasons_for(season: int, n: int) -> list[int]:
    """The seasonal periods MSTL decomposes: the grain's season, plus weekly for hourly data with two weeks."""
    out = [season]
    if season == 24 and n >= 2 * 168:
        out.append(168)
    return out


def _model(name: str, season: int, n: int) -> Any:
    from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalNaive

    if name in ("auto", "mstl"):
        return MSTL(season_length=seasons_for(season, n), trend_forecaster=AutoETS(model="ZZN"), alias="model")
    if name == "ets":
        return AutoETS(season_length=season, alias="model")
    if name == "theta":
        return AutoTheta(season_length=season, alias="model")
    if name == "naive":
        return SeasonalNaive(season_length=season, alias="model")
    raise ForecastError(f"unknown model {name!r}: use {', '.join(MODELS)}")


def _run(y: np.ndarray, season: int, horizon: int, models: list[Any]) -> dict[str, np.ndarray]:
    """statsforecast over every row of ``y`` at once: {column: series x horizon}."""
    import pandas as pd
    from statsforecast import StatsForecast

    n_series, n = y.shape
    ds = pd.date_range("2000-01-03", periods=n, freq="D")  # positions only: the caller owns the real times
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(n_series), n), "ds": np.tile(ds, n_series),
                       "y": y.ravel().astype(float)})
    sf = StatsForecast(models=models, freq="D", n_jobs=1)
    out = sf.forecast(df=df, h=horizon, level=list(LEVELS))
    out = out.sort_values(["unique_id", "ds"])
    return {c: out[c].to_numpy().reshape(n_series, horizon) for c in out.columns if c not in ("unique_id", "ds")}


def seasonal_naive(y: np.ndarray, season: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """(mean, lo80, hi80, lo95, hi95): the last season repeated; the interval grows with the square root of the
    seasons ahead, from the spread of the season-on-season differences (the method of Hyndman & Athanasopoulos,
    FPP3 5.5). numpy only, for series too short for anything else."""
    n_series, n = y.shape
    m = min(season, n) or 1
    last = y[:, n - m:] if n else np.zeros((n_series, 1))
    reps = -(-horizon // last.shape[1])
    mean = np.tile(last, reps)[:, :horizon]
    diffs = y[:, m:] - y[:, :-m] if n > m else np.zeros((n_series, 1))
    sd = np.sqrt(np.mean(diffs ** 2, axis=1, keepdims=True)) if diffs.size else np.zeros((n_series, 1))
    k = np.floor(np.arange(horizon) / m) + 1
    width = sd * np.sqrt(k)[None, :]
    return mean, mean - 1.2816 * width, mean + 1.2816 * width, mean - 1.96 * width, mean + 1.96 * width


def forecast(y: np.ndarray, season: int, horizon: int, model: str = "auto") -> Forecast:
    """Forecast every row of ``y`` (series x periods, equally spaced, no gaps: a period without data is 0)
    ``horizon`` periods ahead with ``model`` (see ``MODELS``), beside the seasonal naive baseline."""
    if model not in MODELS:
        raise ForecastError(f"unknown model {model!r}: use {', '.join(MODELS)}")
    if horizon < 1:
        raise ForecastError("the horizon must be at least one period")
    y = np.asarray(y, dtype=float)
    n_series, n = y.shape
    base = seasonal_naive(y, season, horizon)
    result = [a.copy() for a in base]
    fallback: list[int] = []
    if model != "naive" and n_series:
        # a model needs two full seasons and some variation; the others keep the baseline
        fit = (n >= 2 * season) & (np.ptp(y, axis=1) > 0) if n else np.zeros(n_series, bool)
        rows = np.flatnonzero(fit)
        fallback = [int(i) for i in np.flatnonzero(~fit)]
        if rows.size:
            from statsforecast.models import SeasonalNaive

            out = _run(y[rows], season, horizon, [_model(model, season, n), SeasonalNaive(season, alias="sn")])
            cols = ["model", "model-lo-80", "model-hi-80", "model-lo-95", "model-hi-95"]
            got = [out[c] for c in cols]
            bad = ~np.isfinite(np.stack(got)).all(axis=(0, 2))  # a fit that failed gives NaN: keep the baseline
            for a, g in zip(result, got, strict=True):
                a[rows[~bad]] = g[~bad]
            fallback += [int(i) for i in rows[bad]]
    return Forecast(model, *result, baseline=base[0], baseline_lo95=base[3], baseline_hi95=base[4],
                    fallback=sorted(fallback))


def smape(actual: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Symmetric mean absolute percentage error per row, in percent (0..200); periods where both are 0 count 0."""
    denom = np.abs(actual) + np.abs(pred)
    ratio = np.divide(2 * np.abs(actual - pred), denom, out=np.zeros_like(denom, dtype=float), where=denom != 0)
    return 100 * ratio.mean(axis=1)


def mase(actual: np.ndarray, pred: np.ndarray, history: np.ndarray, season: int) -> np.ndarray:
    """Mean absolute scaled error per row: the forecast's mean absolute error over the in-sample mean absolute
    error of the seasonal naive method (Hyndman & Koehler 2006). Below 1 beats seasonal naive in-sample; NaN when
    the history has no seasonal variation to scale by, except a perfect forecast, which scores 0."""
    m = season if history.shape[1] > season else 1
    scale = np.abs(history[:, m:] - history[:, :-m]).mean(axis=1)
    mae = np.abs(actual - pred).mean(axis=1)
    # a perfect forecast of a series with nothing to scale by (a perfectly periodic one) scores 0, not NaN
    perfect = mae <= 1e-9 * np.abs(history).mean(axis=1)
    return np.divide(mae, scale, out=np.where(perfect, 0.0, np.nan), where=scale != 0)


def fallback_reasons(y: np.ndarray, season: int, rows: list[int]) -> dict[int, str]:
    """Why each of ``rows`` (``Forecast.fallback``) got the seasonal naive forecast, by the rule ``forecast``
    applies: for people reading a forecast, who need to know which series no model saw."""
    y = np.asarray(y, dtype=float)[rows]
    n = y.shape[1]
    if n == 0:
        return dict.fromkeys(rows, "no data in the history")
    why = np.select([~y.any(axis=1), np.full(len(rows), n < 2 * season), np.ptp(y, axis=1) == 0],
                    ["no data in the history", f"history of {n} periods, under two seasons ({2 * season})",
                     "constant history"], "the model could not fit it")
    return dict(zip(rows, why.tolist(), strict=True))


def nonnegative(fc: Forecast, y: np.ndarray) -> Forecast:
    """``fc`` with the mean and bounds of every series that never went below zero clipped at zero: spend and
    usage do not turn negative because a trend or an interval extrapolates past zero (a series with credits in
    its history keeps its negative values)."""
    keep = (np.asarray(y, dtype=float).min(axis=1, initial=0.0) >= 0)[:, None]

    def clip(a: np.ndarray) -> np.ndarray:
        return np.where(keep, np.maximum(a, 0.0), a)

    return Forecast(fc.model, clip(fc.mean), clip(fc.lo80), clip(fc.hi80), clip(fc.lo95), clip(fc.hi95),
                    clip(fc.baseline), clip(fc.baseline_lo95), clip(fc.baseline_hi95), list(fc.fallback))
