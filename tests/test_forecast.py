"""Forecasts, backtests and the period arithmetic, checked by hand.

- ``forecast``: a weekly series of known level and season is forecast within a tight tolerance, with nested
  intervals; a constant, an all-zero and a short series fall back to seasonal naive and say why; ``total`` adds
  means and half-widths; the seasonal naive interval grows with the square root of the seasons ahead.
- ``backtest``: the fold origins; a perfectly periodic series (seasonal naive is perfect: sMAPE 0, MASE 0); a
  trend, where seasonal naive is behind by 7 x slope a step for a week and 14 x slope the next (MAE 21 for slope
  2 over 14 steps, MASE 21 / 14 = 1.5) and the model must beat it.
- the period: which month or quarter, the history starting with the data, and a last day half in the data (its
  actual counted, the other half forecast).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from forecast_fixtures import END, charges

from aifinops.analysis.backtest import backtest, origins, verdicts
from aifinops.analysis.forecast import (
    Forecast,
    ForecastError,
    fallback_reasons,
    forecast,
    mase,
    nonnegative,
    seasonal_naive,
    smape,
)
from aifinops.analysis.projection import period_for, project
from aifinops.analysis.series import metric
from aifinops.analysis.windows import Window, WindowError
from aifinops.store.connection import Store

PATTERN = np.array([20.0, 10.0, 0.0, -5.0, -10.0, -15.0, 0.0])  # sums to 0: the level is the weekly mean


def _weekly(n: int, level: float = 100.0, noise: float = 0.5, seed: int = 7) -> np.ndarray:
    t = np.arange(n)
    return level + PATTERN[t % 7] + np.random.default_rng(seed).normal(0, noise, n)


# -- forecast ------------------------------------------------------------------------------------------------

def test_a_weekly_series_is_forecast_at_its_level_and_season_with_nested_intervals() -> None:
    y = _weekly(112)[None, :]  # 16 weeks
    fc = forecast(y, 7, 14)
    truth = 100 + PATTERN[np.arange(112, 126) % 7]
    assert fc.fallback == [] and fc.mean.shape == (1, 14)
    assert np.abs(fc.mean[0] - truth).max() < 1.0  # noise sd 0.5: the level and the season are learnt
    assert np.all(fc.lo95 <= fc.lo80) and np.all(fc.lo80 <= fc.mean) and np.all(fc.mean <= fc.hi80) \
        and np.all(fc.hi80 <= fc.hi95)
    assert np.all((fc.lo95[0] <= truth) & (truth <= fc.hi95[0]))
    np.testing.assert_allclose(fc.baseline[0], np.tile(y[0, -7:], 2))  # the last week, twice


def test_constant_zero_and_short_series_fall_back_and_say_why() -> None:
    y = np.vstack([_weekly(28), np.full(28, 50.0), np.zeros(28)])
    fc = forecast(y, 7, 7)
    assert fc.fallback == [1, 2]
    assert fallback_reasons(y, 7, fc.fallback) == {1: "constant history", 2: "no data in the history"}
    np.testing.assert_array_equal(fc.mean[1], np.full(7, 50.0))  # seasonal naive of a constant: itself, exactly
    np.testing.assert_array_equal(fc.hi95[1], fc.lo95[1])  # no season-on-season change: no width
    short = _weekly(10)[None, :]
    fs = forecast(short, 7, 7)
    assert fs.fallback == [0]
    assert fallback_reasons(short, 7, [0]) == {0: "history of 10 periods, under two seasons (14)"}
    np.testing.assert_array_equal(fs.mean[0], short[0, 3:10])


def test_total_adds_the_means_and_the_half_widths() -> None:
    fc = Forecast("auto", mean=np.array([[10.0, 20.0, 30.0]]), lo80=np.array([[8.0, 17.0, 26.0]]),
                  hi80=np.array([[13.0, 22.0, 35.0]]), lo95=np.array([[5.0, 15.0, 20.0]]),
                  hi95=np.array([[15.0, 25.0, 40.0]]), baseline=np.zeros((1, 3)), baseline_lo95=np.zeros((1, 3)),
                  baseline_hi95=np.zeros((1, 3)))
    # 60 - (2 + 3 + 4), 60 + (3 + 2 + 5), 60 - (5 + 5 + 10), 60 + (5 + 5 + 10)
    assert fc.total(0) == {"mean": 60.0, "lo80": 51.0, "hi80": 70.0, "lo95": 40.0, "hi95": 80.0}
    assert fc.total(0, 2) == {"mean": 30.0, "lo80": 25.0, "hi80": 35.0, "lo95": 20.0, "hi95": 40.0}


def test_the_seasonal_naive_interval_grows_with_the_seasons_ahead() -> None:
    y = np.array([[1.0, 2.0, 3.0, 2.0, 3.0, 4.0]])  # season 3: every season-on-season change is +1, so sd = 1
    mean, lo80, hi80, lo95, hi95 = seasonal_naive(y, 3, 6)
    np.testing.assert_array_equal(mean[0], [2, 3, 4, 2, 3, 4])
    k = np.sqrt([1, 1, 1, 2, 2, 2])
    np.testing.assert_allclose(hi95[0] - mean[0], 1.96 * k)
    np.testing.assert_allclose(mean[0] - lo95[0], 1.96 * k)
    np.testing.assert_allclose(mean[0] - lo80[0], 1.2816 * k)
    np.testing.assert_allclose(hi80[0] - mean[0], 1.2816 * k)


def test_a_series_that_never_went_below_zero_is_not_forecast_below_zero() -> None:
    neg = np.array([[-5.0, 1.0], [-5.0, 1.0]])
    fc = Forecast("auto", neg, neg - 1, neg + 1, neg - 2, neg + 2, neg, neg - 2, neg + 2)
    out = nonnegative(fc, np.array([[0.0, 3.0, 1.0], [4.0, -2.0, 1.0]]))  # the second had a credit
    np.testing.assert_array_equal(out.mean, [[0.0, 1.0], [-5.0, 1.0]])
    np.testing.assert_array_equal(out.lo95, [[0.0, 0.0], [-7.0, -1.0]])
    np.testing.assert_array_equal(out.hi95, [[0.0, 3.0], [-3.0, 3.0]])


def test_smape_and_mase_by_hand() -> None:
    # |100 - 50| x 2 / 150 = 0.6667 and 0/0 = 0: mean 33.33%
    assert smape(np.array([[100.0, 0.0]]), np.array([[50.0, 0.0]]))[0] == pytest.approx(100 / 3)
    # in-sample seasonal naive (season 2) of 1..5 is off by 2 each step; the forecast by 1 and 2: MAE 1.5
    assert mase(np.array([[6.0, 7.0]]), np.array([[5.0, 5.0]]), np.array([[1.0, 2, 3, 4, 5]]), 2)[0] == 0.75
    periodic = np.array([[1.0, 5.0, 1.0, 5.0]])
    assert mase(np.array([[1.0, 5.0]]), np.array([[1.0, 5.0]]), periodic, 2)[0] == 0.0  # perfect: 0, not 0/0
    assert np.isnan(mase(np.array([[1.0, 5.0]]), np.array([[2.0, 5.0]]), periodic, 2)[0])


# -- backtest ------------------------------------------------------------------------------------------------

def test_fold_origins_step_back_from_the_end() -> None:
    assert origins(100, 14, 4, 7) == [65, 72, 79, 86]  # the last fold tests periods 86..99
    assert origins(30, 7, 1, 7) == [23]


def test_a_perfectly_periodic_series_seasonal_naive_is_perfect() -> None:
    y = np.tile([200.0, 200.0, 200.0, 200.0, 200.0, 50.0, 50.0], 12)[None, :]
    bt = backtest(y, 7, horizon=14, folds=4, step=7)
    assert bt.origins == [49, 56, 63, 70]  # 84 - 14 - 3 x 7 .. 84 - 14
    assert (bt.smape_naive[0], bt.mase_naive[0], bt.mae_naive[0]) == (0.0, 0.0, 0.0)
    assert bt.mae_model[0] < 1e-6 and bt.verdict == ["tie"]


def test_on_a_trend_the_model_beats_seasonal_naive() -> None:
    t = np.arange(84)
    y = (10 + 2 * t + np.tile([5.0, 0, 0, 0, 0, -3, -2], 12))[None, :]
    bt = backtest(y, 7, horizon=14, folds=4, step=7, keys=["trend"])
    # seasonal naive repeats the last week: 7 steps behind by 7 x 2 = 14, then 7 behind by 28
    assert bt.mae_naive[0] == pytest.approx(21.0) and bt.mase_naive[0] == pytest.approx(1.5)
    expected = []
    for o in bt.origins:
        actual, naive = y[0, o:o + 14], np.tile(y[0, o - 7:o], 2)
        expected.append(100 * np.mean(2 * np.abs(actual - naive) / (actual + naive)))
    assert bt.smape_naive[0] == pytest.approx(np.mean(expected))
    assert bt.mase_model[0] < 0.05 and bt.verdict == ["beats"]
    s = bt.summary()
    assert (s["series"], s["beats"], s["ties"], s["doesNotBeat"], s["folds"]) == (1, 1, 0, 0, 4)
    assert s["medianMaseNaive"] == pytest.approx(1.5)


def test_verdicts_tie_within_two_percent_and_use_mae_without_a_mase() -> None:
    nan = float("nan")
    got = verdicts(np.array([1.0, 0.985, 0.5, 1.2, nan]), np.array([1.0, 1.0, 1.0, 1.0, nan]),
                   np.array([9.0, 9.0, 9.0, 9.0, 3.0]), np.array([9.0, 9.0, 9.0, 9.0, 4.0]))
    assert got == ["tie", "tie", "beats", "does not beat", "beats"]


def test_a_history_too_short_for_the_folds_is_an_error() -> None:
    with pytest.raises(ForecastError, match=r"need 49 periods .* the history has 40"):
        backtest(np.ones((1, 40)), 7, horizon=14, folds=4, step=7)


# -- the period ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("end", "to", "start", "stop"), [
    (datetime(2026, 11, 1), "month", datetime(2026, 11, 1), datetime(2026, 12, 1)),  # ends on a boundary: next
    (datetime(2026, 10, 31, 23, 58), "month", datetime(2026, 10, 1), datetime(2026, 11, 1)),
    (datetime(2026, 11, 1), "quarter", datetime(2026, 10, 1), datetime(2027, 1, 1)),
    (datetime(2026, 12, 31, 12), "quarter", datetime(2026, 10, 1), datetime(2027, 1, 1)),
    (datetime(2026, 11, 1), "2026-12-31", datetime(2026, 11, 1), datetime(2027, 1, 1)),
])
def test_the_period_holds_the_data_end(end: datetime, to: str, start: datetime, stop: datetime) -> None:
    assert period_for(end, to) == Window(start, stop)


def test_a_date_before_the_data_end_is_an_error() -> None:
    with pytest.raises(WindowError, match="nothing to forecast"):
        period_for(datetime(2026, 11, 1), "2026-10-31")
    with pytest.raises(WindowError, match="use month, quarter or a date"):
        period_for(datetime(2026, 11, 1), "next-month")


def test_a_half_day_in_the_data_counts_as_actual_and_its_other_half_is_forecast(store: Store) -> None:
    """$10 an hour from 2026-08-03 to 2026-10-15 12:00: October has 14.5 days of actual (3,480) and 16.5 days
    forecast at the constant 240 a day (3,960), 7,440 in all, with no width (a constant history)."""
    start = datetime(2026, 8, 3)
    hours = int((datetime(2026, 10, 15, 12) - start) / timedelta(hours=1))
    charges(store.con, start, [10.0] * hours, "Hourly", hours=1)
    p = project(metric(store.con, "cost"), "ServiceName")
    assert p.period == Window(datetime(2026, 10, 1), datetime(2026, 11, 1))
    assert p.data_end == datetime(2026, 10, 15, 12) and p.history == Window(start, datetime(2026, 10, 15))
    assert (p.steps[0], p.steps[-1], len(p.steps), p.ahead[0], p.ahead[1]) == \
        (datetime(2026, 10, 15), datetime(2026, 10, 31), 17, 0.5, 1.0)
    t = p.totals()
    assert (t["actual"][0], t["rest_mean"][0], t["total_mean"][0]) == pytest.approx((3480.0, 3960.0, 7440.0))
    assert (t["total_lo95"][0], t["total_hi95"][0], t["naive"][0]) == pytest.approx((7440.0, 7440.0, 7440.0))
    assert p.fallback == {0: "constant history"}


def test_the_history_starts_with_the_data(store: Store) -> None:
    """A ledger that starts 2026-09-07: a 120-day history reads 55 days, not 65 days of zeros first."""
    charges(store.con, datetime(2026, 9, 7), [100.0] * 55, "Late")
    p = project(metric(store.con, "cost"), "ServiceName", history="120d")
    assert p.history == Window(datetime(2026, 9, 7), END)
    assert p.totals()["total_mean"][0] == pytest.approx(3000.0)
