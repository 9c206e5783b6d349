"""Anomaly detection on real series, at a small size of bench/anomaly_quality.py (same loaders, plants and scoring):

- the FOCUS 1.0 sample's daily EffectiveCost per service (33 series, 30 days, $25 in all): planted +$100 and
  +$250 spikes and level shifts are all found, and the sample's own noise raises no alert;
- the Alibaba GPU trace slice's requested GPU-hours per hour, hours 1460-2600 (days 61-108): a stretch in which
  the trace raises no alert of its own (the whole slice has nine, steps of +20-50% in requested GPUs, which the
  bench lists), with +100% spikes and level shifts;
- the scoring gives F1 = 0 to a detector that never flags and to one that flags everything, so the F1 >= 0.9
  assertions fail if detection breaks; and the scoring and the GPU-hours arithmetic, by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from aifinops.analysis.anomalies import Settings, detect

BENCH = Path(__file__).resolve().parent.parent / "bench" / "anomaly_quality.py"
TRIALS = 3  # plants per series, kind and size (FOCUS: 33 series; Alibaba: 1 series x 10)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("anomaly_quality", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


q = _bench()


def _never(y: np.ndarray, season: int, s: Settings | None = None) -> tuple[np.ndarray, ...]:
    nan = np.full(y.shape, np.nan)
    return nan, nan, nan, np.zeros(y.shape, dtype=int)


def _always(y: np.ndarray, season: int, s: Settings | None = None) -> tuple[np.ndarray, ...]:
    nan = np.full(y.shape, np.nan)
    return nan, nan, nan, np.ones(y.shape, dtype=int)


@pytest.fixture(scope="module")
def bases() -> list[Any]:
    spikes_and_shifts = {k: v for k, v in q.DOLLARS.items() if k in ("spike", "shift")}
    focus = [replace(b, sizes=spikes_and_shifts) for b in q.focus_sample()]
    hourly = next(b for b in q.alibaba() if b.dataset == "alibaba GPU-h/hour")
    plus_100 = (q.Size("+100%", "rel", 1.0),)
    return [*focus, replace(hourly, y=hourly.y[1460:2600], sizes={"spike": plus_100, "shift": plus_100})]


@pytest.fixture(scope="module")
def results(bases: list[Any]) -> dict[str, dict[str, Any]]:
    out = q.evaluate(bases, TRIALS, seed=7, detectors={"product": detect, "never": _never, "always": _always})
    return {name: q.summary(res) for name, res in out.items()}


def test_the_real_series_are_what_the_bench_says(bases: list[Any]) -> None:
    focus = [b for b in bases if b.dataset == "focus-sample $/day"]
    assert len(focus) == 33 and {len(b.y) for b in focus} == {30}
    ec2 = next(b for b in focus if b.key == "Amazon Elastic Compute Cloud")
    assert int((ec2.y != 0).sum()) == 9 and float(ec2.y.max()) < 4  # $0 on 21 of 30 days, never $4 a day
    [hourly] = [b for b in bases if b.dataset == "alibaba GPU-h/hour"]
    assert len(hourly.y) == 1140 and hourly.season == 24


def test_planted_spikes_and_shifts_are_found_on_real_series(results: dict[str, dict[str, Any]]) -> None:
    got = results["product"]["by_dataset_kind"]
    # every FOCUS plant is above the floors ($100 >= $50 on days of cents); starts: 14 (spikes) and 10 (shifts)
    # days fit, so TRIALS of them x 2 sizes x 33 series each
    assert got["focus-sample $/day | spike"]["planted"] == 33 * TRIALS * 2
    assert got["focus-sample $/day | shift"]["planted"] == 33 * TRIALS * 2
    assert got["alibaba GPU-h/hour | spike"]["planted"] == TRIALS
    assert got["alibaba GPU-h/hour | shift"]["planted"] == TRIALS
    for name in ("focus-sample $/day | spike", "focus-sample $/day | shift", "alibaba GPU-h/hour | spike",
                 "alibaba GPU-h/hour | shift"):
        assert got[name]["f1"] >= 0.9, (name, got[name])
    assert got["focus-sample $/day | spike"]["delay_max"] == 0  # a spike is flagged on its first day


def test_the_clean_series_raise_no_alert(results: dict[str, dict[str, Any]]) -> None:
    assert results["product"]["clean_alert_counts"] == {"focus-sample $/day": 0, "alibaba GPU-h/hour": 0}


def test_a_broken_detector_scores_zero(results: dict[str, dict[str, Any]]) -> None:
    """Never flagging finds nothing; flagging everything flags the clean series too, so no plant is new."""
    for broken in ("never", "always"):
        for name, m in results[broken]["by_dataset_kind"].items():
            assert m["detected"] == 0 and m["f1"] == 0.0, (broken, name)
    assert results["always"]["clean_alert_counts"] == {"focus-sample $/day": 33, "alibaba GPU-h/hour": 1}


def test_scoring_by_hand() -> None:
    """Flags 0 0 1 1 0 0 0 -1 0 0 (season 7: runs join over gaps of 2): runs [2, 4) up and [7, 8) down. A plant
    at [3, 5) going up is detected at period 3 (delay 0) unless the clean series has that flag too; the down
    run is a false positive unless it overlaps a clean alert."""
    flags = np.array([0, 0, 1, 1, 0, 0, 0, -1, 0, 0])
    quiet = np.zeros(10, dtype=int)
    assert q.score(flags, quiet, 7, (3, 5), 1, []) == (True, 0, 1)
    assert q.score(flags, quiet, 7, (2, 5), 1, [(7, 9, -1)]) == (True, 0, 0)
    assert q.score(flags, flags, 7, (3, 5), 1, []) == (False, None, 1)  # the clean series flags it already
    assert q.score(flags, quiet, 7, (3, 5), -1, []) == (False, None, 1)  # wrong direction
    assert q.score(flags, quiet, 7, (4, 7), 1, []) == (False, None, 2)  # the up run misses the window


def test_gpu_hours_by_hand() -> None:
    """Pods [0, 5400) x 1 GPU, [1800, 3600) x 0.5, [3600, 7200) x 2: hour 0 = 1 + 0.5 x 0.5 = 1.25 GPU-hours,
    hour 1 = 0.5 (the first pod's last half hour) + 2 = 2.5; a third, partial hour would be left out."""
    got = q.gpu_hours(np.array([0.0, 1800, 3600]), np.array([5400.0, 3600, 7200]), np.array([1.0, 0.5, 2.0]), 3600)
    assert got.tolist() == [1.25, 2.5]
    assert q.gpu_hours(np.array([0.0]), np.array([9000.0]), np.array([1.0]), 3600).tolist() == [1.0, 1.0]


def test_noise_sd_by_hand() -> None:
    """Season 1, values 0 1 3 3 7: differences 1 2 0 4, median 1.5, absolute deviations .5 .5 1.5 2.5, their
    median 1.0 -> 1.4826 x 1.0 / sqrt(2)."""
    assert q.noise_sd(np.array([0.0, 1, 3, 3, 7]), 1) == pytest.approx(1.4826 / np.sqrt(2))
    assert q.noise_sd(np.full(30, 5.0), 7) == 0.0
