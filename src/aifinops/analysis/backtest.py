"""Rolling-origin backtest of a forecast model against the seasonal naive baseline (``aifinops forecast
backtest``): does the model earn its place, series by series?

Time series cross-validation (Hyndman & Athanasopoulos, FPP3 5.10): fold k forecasts ``horizon`` periods from
origin ``n - horizon - k x step`` (k = 0 .. folds-1, so the last fold's test ends with the data) having seen
every period before the origin, and is scored against what happened. Per series, sMAPE and MASE of the model
and of seasonal naive are averaged over the folds (MASE scaled by each fold's own in-sample seasonal naive
error, Hyndman & Koehler 2006). The verdict compares the mean MASE (the mean absolute error where MASE has no
scale: a series without seasonal variation): the model *beats* seasonal naive, *does not beat* it, or it is a
*tie* when the two are within 2% of each other. Series the model cannot fit get seasonal naive in that fold (a
tie, unless other folds differ).

One ``forecast`` call per fold covers every series at once.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .forecast import ForecastError, forecast, mase, nonnegative, smape

TIE = 0.02
VERDICTS = ("beats", "does not beat", "tie")


def origins(n: int, horizon: int, folds: int, step: int) -> list[int]:
    """The folds' origins (the first forecast period), earliest first: ``n - horizon - k x step``."""
    return [n - horizon - k * step for k in range(folds - 1, -1, -1)]


@dataclass
class Backtest:
    """Per series (arrays in ``keys`` order): errors of the model and of seasonal naive, averaged over folds."""

    keys: list[str]
    model: str
    season: int
    horizon: int
    step: int
    origins: list[int]
    smape_model: np.ndarray
    smape_naive: np.ndarray
    mase_model: np.ndarray
    mase_naive: np.ndarray
    mae_model: np.ndarray
    mae_naive: np.ndarray
    verdict: list[str]
    #: series -> folds in which the model could not fit it (seasonal naive stood in)
    fallback: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """How many series the model beats seasonal naive on, and the median MASE of each."""
        v = np.array(self.verdict, dtype=object)

        def median(a: np.ndarray) -> float | None:
            ok = a[np.isfinite(a)]
            return float(np.median(ok)) if ok.size else None

        return {"series": len(self.keys), "beats": int((v == "beats").sum()),
                "doesNotBeat": int((v == "does not beat").sum()), "ties": int((v == "tie").sum()),
                "medianMaseModel": median(self.mase_model), "medianMaseNaive": median(self.mase_naive),
                "folds": len(self.origins), "fallbackSeries": len(self.fallback), "seconds": round(self.seconds, 2)}


def verdicts(model: np.ndarray, naive: np.ndarray, mae_model: np.ndarray, mae_naive: np.ndarray) -> list[str]:
    """beats / does not beat / tie (within ``TIE`` of each other), on MASE where both have one, else on MAE."""
    use = np.isfinite(model) & np.isfinite(naive)
    a, b = np.where(use, model, mae_model), np.where(use, naive, mae_naive)
    tie = np.abs(a - b) <= TIE * np.maximum(np.abs(a), np.abs(b))
    return np.where(tie, "tie", np.where(a < b, "beats", "does not beat")).tolist()


def backtest(y: np.ndarray, season: int, horizon: int = 14, folds: int = 4, step: int = 7, model: str = "auto",
             keys: list[str] | None = None) -> Backtest:
    """Backtest every row of ``y`` (series x periods) as the module docstring says."""
    if horizon < 1 or folds < 1 or step < 1:
        raise ForecastError("--horizon, --folds and --step must be at least 1")
    y = np.asarray(y, dtype=float)
    n_series, n = y.shape
    cuts = origins(n, horizon, folds, step)
    if cuts[0] < 2 * season:
        need = 2 * season + horizon + (folds - 1) * step
        raise ForecastError(f"{folds} fold(s) of {horizon} periods every {step} need {need} periods (two seasons "
                            f"before the first origin); the history has {n}: give a longer --history or fewer folds")
    t0 = time.perf_counter()
    shape = (folds, n_series)
    s_m, s_n, m_m, m_n, a_m, a_n = (np.zeros(shape) for _ in range(6))
    fell = np.zeros(n_series, int)
    for k, o in enumerate(cuts):  # one forecast call per fold, for every series
        train, test = y[:, :o], y[:, o:o + horizon]
        fc = nonnegative(forecast(train, season, horizon, model), train)
        s_m[k], s_n[k] = smape(test, fc.mean), smape(test, fc.baseline)
        m_m[k], m_n[k] = mase(test, fc.mean, train, season), mase(test, fc.baseline, train, season)
        a_m[k], a_n[k] = np.abs(test - fc.mean).mean(axis=1), np.abs(test - fc.baseline).mean(axis=1)
        fell[fc.fallback] += 1
    with warnings.catch_warnings():  # a series without a MASE in any fold: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mm, mn = np.nanmean(m_m, axis=0), np.nanmean(m_n, axis=0)
    am, an = a_m.mean(axis=0), a_n.mean(axis=0)
    return Backtest(keys or [str(i) for i in range(n_series)], model, season, horizon, step, cuts,
                    s_m.mean(axis=0), s_n.mean(axis=0), mm, mn, am, an, verdicts(mm, mn, am, an),
                    {int(i): int(fell[i]) for i in np.flatnonzero(fell)}, time.perf_counter() - t0)
