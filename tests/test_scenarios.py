"""Scenario drivers by hand, over a November forecast of two series built here: ``a`` at 100 a day and ``b`` at 50
a day (80% bounds +-10, 95% +-20 a day), from 2026-11-01 00:00, 30 days ahead.

- growth +20% ramped over the month: day j's factor averages 1 + 0.2 x (2j + 1) / 60, so the month adds
  0.2 x 100 x 15 = 300 to ``a`` (and scales its bounds alike); as a step from the 11th: 10 x 100 + 20 x 120;
- a price change of -10% from the 16th: 15 x 100 + 15 x 90 = 2,850;
- a new feature of 1,000 requests a day x (500 input x $1 + 100 output x $4 per 1M tokens) = $0.90 a day from
  the 11th: $18.00, on a series of its own, moving the interval by exactly that;
- a training run of 8 GPUs x 24 h x $2.50 for 2 days from the 30th: $960, of which $480 falls in November;
- loading: bad YAML, an unknown driver, negative GPUs -> errors naming the file and line.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from aifinops.analysis.projection import Band, Projection
from aifinops.analysis.scenarios import Scenario, ScenarioError, apply, load_scenarios, overlap, ramp_share, step_share
from aifinops.analysis.windows import Window
from aifinops.config import Settings
from aifinops.sources.litellm_prices import LitellmPricesSource
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

NOV = Window(datetime(2026, 11, 1), datetime(2026, 12, 1))
EXAMPLES = Path(__file__).parent.parent / "examples" / "scenarios.yaml"


def projection(metric: str = "cost", unit: str = "USD", data_end: datetime = NOV.start) -> Projection:
    """a: 100/day, b: 50/day over November (bounds +-10 / +-20 a day); the first day partly past when
    ``data_end`` is inside it."""
    steps = [NOV.start + timedelta(days=i) for i in range(30)]
    ahead = np.ones(30)
    ahead[0] = (steps[0] + timedelta(days=1) - data_end) / timedelta(days=1)
    mean = np.array([[100.0] * 30, [50.0] * 30])
    band = Band(mean, mean - 10, mean + 10, mean - 20, mean + 20).scale(ahead[None, :])
    return Projection(metric, "ServiceName", "day", unit, "auto", NOV, data_end, Window(datetime(2026, 8, 3),
                      NOV.start), ["a", "b"], np.zeros(2), steps, ahead, band, band.mean.copy(), {})


def scenario(*drivers: dict) -> Scenario:
    return Scenario.model_validate({"name": "s", "drivers": list(drivers)})


def run(*drivers: dict, p: Projection | None = None, settings: Settings | None = None,
        con=None) -> tuple[dict[str, dict[str, float]], list[str]]:
    import duckdb

    o = apply(scenario(*drivers), p or projection(), con or duckdb.connect(), settings or Settings())
    t = o.totals()
    return {k: {f: float(t[f"total_{f}"][i]) for f in ("mean", "lo80", "hi80", "lo95", "hi95")}
            for i, k in enumerate(o.keys)}, o.notes


# -- the arithmetic ------------------------------------------------------------------------------------------

def test_shares_of_a_period() -> None:
    a, b = np.array([0.0, 10.0, 20.0]), np.array([10.0, 20.0, 30.0])
    np.testing.assert_allclose(ramp_share(a, b, 0.0, 30.0), [1 / 6, 3 / 6, 5 / 6])  # the ramp's mean on each
    np.testing.assert_allclose(ramp_share(a, b, 10.0, 30.0), [0.0, 0.25, 0.75])
    np.testing.assert_allclose(ramp_share(a, b, 15.0, 30.0), [0.0, 5 * (5 / 15) / 2 / 10, (5 / 15 + 1) / 2])
    np.testing.assert_allclose(step_share(a, b, 15.0), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(overlap(a, b, 5.0, 25.0), [5.0, 10.0, 5.0])


def test_growth_ramped_over_the_month_scales_the_forecast_and_its_bounds() -> None:
    t, notes = run({"growth": {"pct": 20}})
    assert t["a"]["mean"] == pytest.approx(3300.0)  # 3,000 + 0.2 x 100 x (1 + 3 + ... + 59) / 60
    assert t["b"]["mean"] == pytest.approx(1650.0)
    assert (t["a"]["lo95"], t["a"]["hi95"]) == pytest.approx((80 * 30 * 1.1, 120 * 30 * 1.1))
    assert notes == ["growth +20% ramped from the forecast start to the period end on 2 of 2 series (every series)"]


def test_growth_as_a_step_on_one_series() -> None:
    t, notes = run({"growth": {"pct": 20, "ramp": False}, "start": "2026-11-11", "scope": {"ServiceName": "a"}})
    assert t["a"]["mean"] == pytest.approx(10 * 100 + 20 * 120)
    assert t["b"]["mean"] == pytest.approx(1500.0)
    assert notes == ["growth +20% from 2026-11-11 00:00 on 1 of 2 series (ServiceName = a)"]


def test_a_price_change_is_a_step_from_its_start() -> None:
    t, _ = run({"price_change": {"pct": -10}, "start": "2026-11-16", "scope": {"servicename": ["a", "b"]}})
    assert (t["a"]["mean"], t["b"]["mean"]) == pytest.approx((2850.0, 1425.0))
    _, notes = run({"price_change": {"pct": -10}}, p=projection("tokens", "tokens"))
    assert notes == ["price_change -10%: skipped, tokens is not spend"]


def test_a_new_feature_at_an_explicit_price_adds_known_spend_on_its_own_series() -> None:
    feature = {"requests_per_day": 1000, "input_tokens": 500, "output_tokens": 100, "model": "house-llm",
               "input_per_mtok": 1, "output_per_mtok": 4}
    t, notes = run({"new_feature": feature, "start": "2026-11-11"})
    added = t["(scenario) new_feature: house-llm"]
    assert added == pytest.approx({"mean": 18.0, "lo80": 18.0, "hi80": 18.0, "lo95": 18.0, "hi95": 18.0})
    assert t["a"]["mean"] == pytest.approx(3000.0)
    assert notes == ["new_feature: house-llm: 1,000 requests/day x (500 in + 100 out) tokens at $1.00/$4.00 per 1M "
                     "(the scenario's price); $18.00 in the period from 2026-11-11 00:00, on (scenario) new_feature: "
                     "house-llm"]
    # on tokens it adds the tokens: 1,000 x 600 a day for 20 days; from a data end at noon, 29.5 days
    t, _ = run({"new_feature": feature, "start": "2026-11-11"}, p=projection("tokens", "tokens"))
    assert t["(scenario) new_feature: house-llm"]["mean"] == pytest.approx(12_000_000)
    t, _ = run({"new_feature": feature}, p=projection(data_end=datetime(2026, 11, 1, 12)))
    assert t["(scenario) new_feature: house-llm"]["mean"] == pytest.approx(0.9 * 29.5)
    assert t["a"]["mean"] == pytest.approx(2950.0)


def test_a_new_feature_priced_by_the_store_catalog(tmp_path: Path) -> None:
    """A catalog in the store prices house-llm at $1 / $4 per 1M tokens (1e-06 and 4e-06 a token)."""
    path = tmp_path / "catalog.json"
    path.write_text('{"house-llm": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, '
                    '"output_cost_per_token": 4e-06}}')
    feature = {"requests_per_day": 1000, "input_tokens": 500, "output_tokens": 100, "model": "house-llm",
               "provider": "openai"}
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, LitellmPricesSource(snapshot="house", snapshot_date="2026-01-01"), [path])
        t, notes = run({"new_feature": feature, "start": "2026-11-11"}, con=store.con)
        assert t["(scenario) new_feature: house-llm"]["mean"] == pytest.approx(18.0)
        assert "at $1.00/$4.00 per 1M (litellm openai/house-llm)" in notes[0]
        s = scenario({"new_feature": {**feature, "model": "no-such-model-9"}})
        with pytest.raises(ScenarioError, match="no price for model 'no-such-model-9' \\(provider openai\\)"):
            apply(s, projection(), store.con, Settings())


def test_a_training_run_adds_gpus_x_hours_x_price_within_the_period() -> None:
    run_ = {"gpus": 8, "days": 2, "gpu_type": "H100", "price_per_gpu_hour": 2.5}
    t, notes = run({"training_run": run_, "start": "2026-11-30", "scope": {"ServiceName": "b"}})
    assert t["b"]["mean"] == pytest.approx(1500.0 + 480.0) and set(t) == {"a", "b"}  # lands on b
    assert notes == ["training_run: 8 x H100: 24 h x 2 days at $2.50/GPU-hour (the scenario's price) = $960.00; "
                     "$480.00 in the period from 2026-11-30 00:00, on b"]
    t, _ = run({"training_run": run_, "start": "2026-11-03"}, p=projection("gpu_hours", "GPU-hours"))
    assert t["(scenario) training_run: 8 x H100"]["mean"] == pytest.approx(8 * 24 * 2)


def test_a_training_run_price_from_settings_or_the_market_snapshot() -> None:
    run_ = {"gpus": 1, "days": 1, "gpu_type": "H100-80GB", "start": "2026-11-03"}
    settings = Settings(gpu_prices={"H100": Decimal("2.0"), "H1": Decimal("9.0")})
    t, notes = run({"training_run": {k: v for k, v in run_.items() if k != "start"}, "start": "2026-11-03"},
                   settings=settings)
    assert t["(scenario) training_run: 1 x H100-80GB"]["mean"] == pytest.approx(48.0)  # the longest name: H100
    assert "at $2.00/GPU-hour (gpu_prices H100 in aifinops.yaml)" in notes[0]
    # bundled snapshot, H100 SXM on demand: 12.29 (AWS p5), 3.78 (Lambda), 4.69, 4.69 (RunPod): median 4.69
    t, notes = run({"training_run": {k: v for k, v in run_.items() if k != "start"}, "start": "2026-11-03"})
    assert t["(scenario) training_run: 1 x H100-80GB"]["mean"] == pytest.approx(24 * 4.69)
    assert "bundled GPU market snapshot: median on-demand H100-SXM-80GB of 4 offer(s)" in notes[0]
    with pytest.raises(ScenarioError, match="no price for GPU type 'B200'"):
        run({"training_run": {"gpus": 1, "days": 1, "gpu_type": "B200"}})


def test_scopes_on_another_dimension_and_starts_after_the_period() -> None:
    t, notes = run({"growth": {"pct": 50}, "scope": {"tag:team": "search"}},
                   {"training_run": {"gpus": 1, "days": 1, "gpu_type": "H100", "price_per_gpu_hour": 1},
                    "scope": {"tag:team": "search"}, "start": "2026-11-05"},
                   {"growth": {"pct": 50}, "start": "2026-12-02"})
    assert t["a"]["mean"] == pytest.approx(3000.0) and t["(scenario) training_run: 1 x H100"]["mean"] == 24.0
    assert notes[0] == "growth +50%: skipped, its scope (tag:team = search) is not on the forecast's dimension " \
                       "(ServiceName)"
    assert notes[2] == "growth: starts 2026-12-02 after the period ends; no effect"


def test_the_example_file_loads() -> None:
    names = [s.name for s in load_scenarios(EXAMPLES)]
    assert names == ["copilot-launch", "h100-pretraining", "compute-discount"]


@pytest.mark.parametrize(("text", "error"), [
    ("- name: a\n  drivers:\n    - growth: {pct: 20}\n  - oops\n", "line 4: not valid YAML"),
    ("- name: a\n  drivers:\n    - growth: {pct: 5}\n    - growht: {pct: 20}\n",
     "line 4: 0.drivers.1: Value error, unknown driver 'growht': use growth, price_change, new_feature, "
     "training_run"),
    ("- name: a\n  drivers:\n    - training_run:\n        gpus: -8\n        days: 2\n        gpu_type: H100\n",
     "line 4: 0.drivers.0.training_run.gpus: Input should be greater than 0"),
    ("- name: a\n  drivers:\n    - growth: {pct: 5}\n      price_change: {pct: 5}\n",
     "line 3: 0.drivers.0: Value error, a driver is exactly one of growth, price_change, new_feature, "
     "training_run; this one has growth and price_change"),
    ("- name: a\n  drivers: [{growth: {pct: 5}}]\n- name: a\n  drivers: [{growth: {pct: 5}}]\n",
     "line 3: scenario name 'a' is used twice"),
    ("- name: base\n  drivers: [{growth: {pct: 5}}]\n", "line 1: scenario name 'base' is the forecast"),
    ("- name: a\n  drivers:\n    - new_feature: {requests_per_day: 5, input_tokens: 1, output_tokens: 1, model: x,"
     " input_per_mtok: 1}\n", "line 3: 0.drivers.0.new_feature: Value error, give both input_per_mtok"),
    ("name: a\n", "expected a list of scenarios"),
])
def test_bad_files_name_the_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as exc:
        load_scenarios(path)
    assert str(exc.value).startswith(f"{path}: {error}")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenarios(tmp_path / "nope.yaml")
