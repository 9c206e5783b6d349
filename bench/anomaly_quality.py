"""Anomaly detection quality on real series: anomalies of known size and timing are planted into real cost and
usage series, ``detect()`` + ``_runs()`` run with the product's default thresholds, and the table reports
precision, recall, F1, the delay to detection and the alerts on the clean (un-planted) series.

Series (committed fixtures by default; ``--data ../shared/data`` reads the full upstream files):

* **focus-sample**: daily EffectiveCost per ServiceName (33 series) of the FinOps Foundation's FOCUS 1.0
  sample, through the product's own series (``analysis.series``) over a store. The sample is 1,000 rows over 30
  days (2024-09-01..30), $25 in all: EffectiveCost is $0 on 21 of 30 days and no service reaches $4 a day, so
  sizes relative to its level would be cents. Plants are in dollars instead (+$100 and +$250: 2x and 5x the $50
  minimum impact) on that real background, and there are no drops (nothing to drop). It answers whether the
  sample's own noise stays silent and planted dollars are found. 30 days leave 16 with a baseline (two weeks).
* **alibaba**: requested GPU-hours per day (season 7) and per hour (season 24) of the Alibaba GPU cluster
  trace v2023 (openb pods: num_gpu x gpu_milli / 1000 GPUs from creation to deletion; 149 whole days). The
  trace has no calendar: the weekly season is the product's daily default, not a known pattern of the trace.
  It is a staircase (long-running pods arrive and stay; 24 to 700 GPU-hours a day in the slice, 1,000+ in
  the full list) with almost no day-to-day noise.
* **azure-llm**: requests and tokens (context + generated) per minute of the Azure LLM inference trace 2023
  (code; 57 whole minutes). Season 5 minutes: an hour holds no daily or weekly cycle, so the season is a stride,
  not a cycle; the baseline is then the median of minutes t-5, t-10, t-15, t-20 (a robust 20-minute level),
  a level shift is learnt after 3 of 5 minutes, and runs join over 1-minute gaps. A season of 1 makes every
  flag a level shift (``season // 2`` = 0); one of 10 leaves 17 minutes after the four seasons of history. The
  trace comes in bursts (its 10-second counts are 0 in 46% of bins; gaps of up to 217 s), so its per-minute
  noise is about half its level.
* **demo**: daily cost by ServiceName (22) and by tag:team (7) of the demo company's 90-day bill
  (``build_scenario`` + ``write_bill`` ingested into a store; nothing is served). Its story anomalies (the
  forgotten fine-tune, the copilot launch, the egress export) are known events: a flag on one is neither a
  false positive nor a clean alert.

Minimum impact: $50 (the default) for dollar series; usage series take 5% of their median level in their own
units (what $50 is to a $1,000-a-day service), so that the relative thresholds, not the dollar floor, decide.

Plants, each on its own copy of a series (all copies of a series are rows of one matrix: one ``detect()`` call
scores them), at seeded random starts after the warm-up (four seasons of history where the series has room,
else two; runs that end in the warm-up are history, as ``anomalies()`` drops them) and a season away from any
alert of the clean series:

* spike: 1-3 periods up; drop: 1-3 periods down (an outage, a missing delivery);
* shift: a step up that persists to the end; ramp: linear growth over ``k`` periods (four seasons where the
  series has room, else two) to the full size, then persists;
* sizes: 3 and 5 x the series' noise (``noise_sd``: a robust sd of its seasonal differences), and +50% / +100%
  of the actual values (drops: -50% / -90%).

Scoring. A plant is detected when a period of its window (spike and drop: its periods; shift: its first season;
ramp: the ramp and one season more) is flagged in its direction and the same period of the clean series is
not; the delay is the first such period minus the start. A run that overlaps neither the plant's window nor an
alert of the clean series (the data's own event, counted once as a clean alert) nor a known event is a false
positive. Precision, recall and F1 are over plants *in scope*: at one period of the window, the change reaches
``min_impact``, ``min_change`` of the expected value and more than ``z`` x the noise (what the detector
promises to flag). 3-sd plants sit exactly at the threshold (a coin flip by construction) and are counted apart,
as are plants under a floor (with how many alerted anyway). "all" rows pool the counts; their F1 is the mean of
the datasets' F1, so the 33 near-empty FOCUS series do not outweigh the rest.

``--detector`` (repeatable) scores the product's ``detect()`` and variants of a copy of it defined here, on the
same plants (experiments: the product's code is not changed by this script). Seeded and reproducible.

Run: ``python bench/anomaly_quality.py [--data ../shared/data] [--trials 10] [--seed 7] [--detector product
--detector lagged-scale ...] [--no-demo] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from aifinops.analysis.anomalies import Settings, _runs, detect
from aifinops.analysis.windows import Window

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures"
ALIBABA = {"fixtures": FIXTURES / "alibaba" / "openb_pods_slice.csv",
           "full": Path("alibaba-gpu-v2023-openb") / "openb_pod_list_default.csv"}
AZURE = {"fixtures": FIXTURES / "anomaly-quality" / "AzureLLMInferenceTrace_code.csv.gz",
         "full": Path("azure-llm-inference-2023") / "AzureLLMInferenceTrace_code.csv"}
KINDS = ("spike", "shift", "ramp", "drop")
USAGE_FLOOR = 0.05  # usage series: min_impact = this share of the median level, in the series' units
Detector = Callable[[np.ndarray, int, Settings], tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class Size:
    label: str
    mode: str  # sd: x the robust sd | rel: x the actual value | abs: in the series' units
    value: float


RELATIVE = {k: (Size("3sd", "sd", 3), Size("5sd", "sd", 5), Size("+50%", "rel", .5), Size("+100%", "rel", 1.))
            for k in ("spike", "shift", "ramp")}
RELATIVE["drop"] = (Size("-3sd", "sd", -3), Size("-5sd", "sd", -5), Size("-50%", "rel", -.5),
                    Size("-90%", "rel", -.9))
DOLLARS = {k: (Size("+$100", "abs", 100.), Size("+$250", "abs", 250.)) for k in ("spike", "shift", "ramp")}


@dataclass
class Base:
    """One real series to plant anomalies in."""

    dataset: str
    key: str
    unit: str
    season: int
    y: np.ndarray
    min_impact: float
    sizes: dict[str, tuple[Size, ...]] = field(default_factory=lambda: RELATIVE)
    #: anomalies the data is known to hold (the demo's story): a run on one is no false positive, no clean alert
    events: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Trial:
    kind: str
    size: Size
    start: int
    window: tuple[int, int]  # the periods a detection must overlap
    y: np.ndarray
    scope: str  # in: the detector promises to flag it | threshold: z robust sds exactly | below: under a floor
    direction: int


# -- the series ------------------------------------------------------------------------------------------------


def _store_series(paths: list[Path], dims: Iterable[str], window: Window | None = None
                  ) -> dict[str, tuple[list[str], np.ndarray]]:
    """Daily cost series per dimension through the product's own series (``analysis.series``: usage-based
    EffectiveCost), over a throwaway store of ``paths``; the window defaults to the whole days of the data."""
    from aifinops.analysis.series import load, metric
    from aifinops.sources.base import sources
    from aifinops.store.connection import Store
    from aifinops.store.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.duckdb") as store:
        ingest(store, sources.get("focus")(), paths)
        if window is None:
            lo, hi = store.con.execute('SELECT min("ChargePeriodStart"), max("ChargePeriodStart") '
                                       "FROM focus_charges").fetchone()
            window = Window(datetime(lo.year, lo.month, lo.day), datetime(hi.year, hi.month, hi.day) + timedelta(1))
        m = metric(store.con, "cost")
        return {d: ((ser := load(m, d, window, "day")).keys, ser.values) for d in dims}


def focus_sample(data: Path | None = None) -> list[Base]:
    """Daily EffectiveCost per ServiceName of the FOCUS 1.0 sample (the bundled copy, or ``data``'s)."""
    from aifinops.demo import bundled_sample

    path = data / "focus-sample-1.0" / "focus_sample.csv" if data else bundled_sample()
    keys, y = _store_series([path], ["ServiceName"])["ServiceName"]
    return [Base("focus-sample $/day", k, "$", 7, y[i], Settings().min_impact, DOLLARS) for i, k in enumerate(keys)]


def gpu_hours(start: np.ndarray, end: np.ndarray, gpus: np.ndarray, step: float) -> np.ndarray:
    """GPU-hours requested per whole period of ``step`` seconds from t=0 (the trace's last, partial period is left
    out: it would read as a drop): sum of gpus x overlap([start, end), period), from prefix sums over the sorted
    starts and ends (no loop over pods): the GPU-seconds used before t are t x (gpus started - gpus ended) -
    sum(gpus x start of started) + sum(gpus x end of ended)."""
    edges = np.arange(int(end.max() // step) + 1) * step

    def before(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(times)
        i = np.searchsorted(times[order], edges, side="left")
        g = np.concatenate([[0.0], np.cumsum(gpus[order])])
        gt = np.concatenate([[0.0], np.cumsum(gpus[order] * times[order])])
        return g[i], gt[i]

    started, started_t = before(start)
    ended, ended_t = before(end)
    used = edges * (started - ended) - started_t + ended_t
    return np.diff(used) / 3600


def alibaba(data: Path | None = None) -> list[Base]:
    """Requested GPU-hours per day and per hour of the openb pods (the committed slice, or the full list)."""
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(data / ALIBABA["full"] if data else ALIBABA["fixtures"]).to_pydict()
    a, b = np.array(t["creation_time"], float), np.array(t["deletion_time"], float)
    g = np.array(t["num_gpu"], float) * np.array(t["gpu_milli"], float) / 1000
    keep = (g > 0) & (b > a)
    out = []
    for name, step, season in (("day", 86400, 7), ("hour", 3600, 24)):
        y = gpu_hours(a[keep], b[keep], g[keep], step)
        out.append(Base(f"alibaba GPU-h/{name}", "requested GPU-hours", "GPU-h", season, y,
                        USAGE_FLOOR * float(np.median(y))))
    return out


def azure(data: Path | None = None) -> list[Base]:
    """Requests and tokens per minute of the Azure LLM inference trace (code), every minute from the first
    request's to the last request's, which is left out (the trace ends inside it)."""
    import duckdb

    path = data / AZURE["full"] if data else AZURE["fixtures"]
    rows = duckdb.sql(f"""
        SELECT date_trunc('minute', CAST(left("TIMESTAMP", 26) AS TIMESTAMP)) AS m, count(*) AS requests,
               sum("ContextTokens" + "GeneratedTokens") AS tokens
        FROM read_csv('{path}', header = true, columns = {{'TIMESTAMP': 'VARCHAR', 'ContextTokens': 'BIGINT',
                                                           'GeneratedTokens': 'BIGINT'}})
        GROUP BY 1 ORDER BY 1""").fetchnumpy()
    minute = ((rows["m"] - rows["m"][0]) // np.timedelta64(1, "m")).astype(int)
    out = []
    for metric in ("requests", "tokens"):
        y = np.zeros(minute[-1] + 1)
        y[minute] = rows[metric]
        y = y[:-1]
        out.append(Base(f"azure-llm {metric}/min", metric, metric, 5, y, USAGE_FLOOR * float(np.median(y))))
    return out


def demo(seed: int = 7, days: int = 90) -> list[Base]:
    """Daily cost by ServiceName and by tag:team of the demo company's bill, its story spikes as known events."""
    from aifinops.demo.synthetic import build_scenario, write_bill

    sc = build_scenario(seed=seed, days=days)
    start = sc.start
    events = [(int((s.start - start) / timedelta(days=1)), int(np.ceil((s.end - start) / timedelta(days=1))))
              for s in sc.spikes]
    with tempfile.TemporaryDirectory() as tmp:
        write_bill(sc, Path(tmp) / "bill")
        got = _store_series([Path(tmp) / "bill"], ["ServiceName", "tag:team"],
                            Window(start, start + timedelta(days=days)))
    return [Base(f"demo {dim} $/day", k, "$", 7, y[i], Settings().min_impact, events=events)
            for dim, (keys, y) in got.items() for i, k in enumerate(keys)]


# -- planting and scoring --------------------------------------------------------------------------------------


def noise_sd(y: np.ndarray, season: int) -> float:
    """The series' noise as a robust standard deviation, independent of the detector: 1.4826 x the median
    absolute deviation (around their median, so a trend is not noise) of the differences to the same period one
    season earlier (which remove the level and the seasonal pattern), over sqrt(2) (a difference of two noisy
    values has sqrt(2) times their noise)."""
    d = y[season:] - y[:-season]
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2) if d.size else 0.0


def _delta(y: np.ndarray, size: Size, sd: float) -> np.ndarray:
    """The full-size change of every period (before the shape of the plant: which periods, how much of it)."""
    if size.mode == "rel":
        return size.value * y
    return np.full(y.shape, size.value * (sd if size.mode == "sd" else 1.0))


def warmup(n: int, season: int, s: Settings) -> int:
    """Periods of history before anything counts: ``seasons`` seasons (what ``anomalies()`` reads before its
    window) where the series has room for two more, else two (the detector's minimum)."""
    return s.seasons * season if n >= (s.seasons + 2) * season else 2 * season


def plan(base: Base, clean_runs: list[tuple[int, int, int]], trials: int, seed: int,
         s: Settings) -> list[Trial]:
    """``trials`` plants per kind and size at seeded starts (the same starts for every size of a kind), a season
    away from the clean series' runs."""
    y, season, n = base.y, base.season, len(base.y)
    warm = warmup(n, season, s)
    k = s.seasons * season if warm + s.seasons * season <= n else 2 * season
    sd = noise_sd(y, season)
    expected = detect(y[None, :], season, replace(s, min_impact=np.inf))[0][0]  # the median of past seasons
    blocked = np.zeros(n + 1, bool)
    for a, b, _ in clean_runs:
        blocked[max(0, a - season):min(n, b + season)] = True
    rng = np.random.default_rng([seed, zlib.crc32(f"{base.dataset}/{base.key}".encode())])
    hits = np.concatenate([[0], np.cumsum(blocked)])  # blocked periods before each index
    out: list[Trial] = []
    for kind, sizes in base.sizes.items():
        spans = rng.integers(1, 4, size=trials)  # spike and drop lengths
        need = {"spike": 3, "drop": 3, "shift": season, "ramp": k}[kind]
        tail = {"spike": 3, "drop": 3, "shift": season, "ramp": k + season}[kind]
        t = np.arange(warm, max(warm, n - need + 1))
        starts = t[hits[np.minimum(n, t + tail)] == hits[t]]  # no blocked period in [t, t + tail)
        if not starts.size:
            continue
        for j, st in enumerate(rng.choice(starts, size=min(trials, starts.size), replace=False).tolist()):
            if kind in ("spike", "drop"):
                window = (st, min(n, st + int(spans[j])))
                shape = np.zeros(n)
                shape[window[0]:window[1]] = 1.0
            else:
                window = (st, min(n, st + tail))
                shape = np.clip((np.arange(n) - st + 1) / (k if kind == "ramp" else 1), 0, 1)
            for size in sizes:
                y2 = y + shape * _delta(y, size, sd)
                if size.value < 0:
                    y2 = np.maximum(y2, 0.0)  # a drop stops at zero
                d = np.abs(y2 - y)[window[0]:window[1]]
                e = np.abs(expected[window[0]:window[1]])
                floors = (d > 0) & (d >= s.min_impact) & (d >= s.min_change * np.nan_to_num(e, nan=np.inf))
                if not floors.any():
                    scope = "below"
                elif size.mode == "sd" and abs(size.value) == s.z:
                    scope = "threshold"
                else:
                    scope = "in" if (floors & (d > s.z * sd)).any() else "below"
                out.append(Trial(kind, size, st, window, y2, scope, 1 if size.value > 0 else -1))
    return out


def _overlaps(a: tuple[int, int, Any], b: tuple[int, int, Any]) -> bool:
    return a[0] < b[1] and a[1] > b[0]


def score(flags: np.ndarray, clean_flags: np.ndarray, season: int, window: tuple[int, int], direction: int,
          ignore: list[tuple[int, int, int]]) -> tuple[bool, int | None, int]:
    """(detected, delay in periods, false-positive runs) of one trial's flags. Detected: a period of the plant's
    window is flagged in its direction where the clean series is not (so a clean alert that happens to overlap
    is never taken for a detection); a false positive: a run that overlaps neither the window nor ``ignore``."""
    a, b = window
    new = np.flatnonzero((flags[a:b] == direction) & (clean_flags[a:b] != direction))
    runs = _runs(flags, season // 3)
    fp = sum(1 for r in runs if not _overlaps(r, window) and not any(_overlaps(r, c) for c in ignore))
    return (True, int(new[0]), fp) if new.size else (False, None, fp)


def evaluate(bases: list[Base], trials: int = 10, seed: int = 7,
             detectors: dict[str, Detector] | None = None) -> dict[str, dict[str, Any]]:
    """Plant, detect and score every base series, per detector: cells per (dataset, kind, size) and the clean
    series' alerts. Every detector scores the same plants, kept a season away from the first detector's clean
    runs."""
    detectors = detectors or {"product": detect}
    out: dict[str, dict[str, Any]] = {
        name: {"cells": {}, "clean_alerts": [], "known_events_flagged": [],
               "series": {b.dataset: sum(1 for x in bases if x.dataset == b.dataset) for b in bases}}
        for name in detectors}
    for base in bases:
        s = replace(Settings(), min_impact=base.min_impact)
        events = [(a, b, 0) for a, b in base.events]
        warm = warmup(len(base.y), base.season, s)
        runs: dict[str, list[tuple[int, int, int]]] = {}
        clean_flags: dict[str, np.ndarray] = {}
        for name, det in detectors.items():
            expected, *_, flags = det(base.y[None, :], base.season, s)
            clean_flags[name] = flags[0]
            runs[name] = _runs(flags[0], base.season // 3)
            for r in runs[name]:
                if r[1] <= warm:  # history only, as anomalies() drops it
                    continue
                row = {"dataset": base.dataset, "series": base.key, "start": r[0], "end": r[1], "direction": r[2],
                       "actual": float(base.y[r[0]:r[1]].sum()), "expected": float(expected[0, r[0]:r[1]].sum()),
                       "unit": base.unit}
                res = out[name]
                (res["known_events_flagged"] if any(_overlaps(r, e) for e in events) else res["clean_alerts"]
                 ).append(row)
        plants = plan(base, next(iter(runs.values())), trials, seed, s)
        if not plants:
            continue
        ys = np.stack([p.y for p in plants])
        for name, det in detectors.items():
            flagged = det(ys, base.season, s)[3]
            for p, f in zip(plants, flagged, strict=True):
                c = out[name]["cells"].setdefault((base.dataset, p.kind, p.size.label), {
                    "planted": 0, "detected": 0, "false_positives": 0, "delays": [], "at_threshold": 0,
                    "at_threshold_detected": 0, "below_floor": 0, "below_floor_alerted": 0})
                hit, delay, fp = score(f, clean_flags[name], base.season, p.window, p.direction,
                                       [*runs[name], *events])
                if p.scope != "in":
                    key = "below_floor" if p.scope == "below" else "at_threshold"
                    c[key] += 1
                    c[f"{key}_{'alerted' if p.scope == 'below' else 'detected'}"] += int(hit)
                    continue
                c["planted"] += 1
                c["detected"] += int(hit)
                c["false_positives"] += fp
                if delay is not None:
                    c["delays"].append(delay)
    for res in out.values():
        res["cells"] = [{"dataset": d, "kind": k, "size": z, **v} for (d, k, z), v in res["cells"].items()]
    return out


def metrics(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision, recall, F1 and delays of a group of cells."""
    planted = sum(c["planted"] for c in cells)
    tp = sum(c["detected"] for c in cells)
    fp = sum(c["false_positives"] for c in cells)
    delays = [d for c in cells for d in c["delays"]]
    p = tp / (tp + fp) if tp + fp else None
    r = tp / planted if planted else None
    f1 = 2 * p * r / (p + r) if p and r else (0.0 if planted else None)
    return {"planted": planted, "detected": tp, "false_positives": fp, "precision": p, "recall": r, "f1": f1,
            "delay_median": float(np.median(delays)) if delays else None,
            "delay_max": int(max(delays)) if delays else None,
            "at_threshold": sum(c["at_threshold"] for c in cells),
            "at_threshold_detected": sum(c["at_threshold_detected"] for c in cells),
            "below_floor": sum(c["below_floor"] for c in cells),
            "below_floor_alerted": sum(c["below_floor_alerted"] for c in cells)}


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Metrics per dataset x kind (with recall per size), per kind, and overall."""
    cells = res["cells"]
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    by = {}
    for d in datasets:
        for k in KINDS:
            group = [c for c in cells if c["dataset"] == d and c["kind"] == k]
            if group:
                by[f"{d} | {k}"] = {**metrics(group), "by_size": {c["size"]: metrics([c]) for c in group}}
    by_kind = {}
    for k in KINDS:
        f1s = [m["f1"] for name, m in by.items() if name.endswith(f" | {k}") and m["f1"] is not None]
        by_kind[k] = {**metrics([c for c in cells if c["kind"] == k]),
                      "f1_mean": float(np.mean(f1s)) if f1s else None}
    return {"by_dataset_kind": by, "by_kind": by_kind,
            "overall": metrics(cells),
            "clean_alert_counts": {d: sum(1 for a in res["clean_alerts"] if a["dataset"] == d) for d in res["series"]}}


# -- a variant of the detector, for experiments ----------------------------------------------------------------

def variant(lagged_scale: bool = False, centred: bool = False, relearn: bool = False, relative: bool = False,
            scale_seasons: int | None = None) -> Detector:
    """A copy of the product's ``detect()`` (without feedback, in the series' units) with optional changes:

    * ``lagged_scale``: the robust scale reads the residuals of the ``seasons`` seasons that end one season
      before t, so a change never widens its own bounds in its first season;
    * ``centred``: the scale is the MAD around the median residual (a lagging baseline's bias is not noise);
    * ``relearn``: when a level shift is learnt, the history before the season also moves to the new level (by
      the mean impact of the season's flagged periods, as ``expected`` feedback does), so the baseline does not
      mix the old and new levels for ``seasons`` seasons, and their difference does not inflate the scale;
    * ``relative``: the scale is the MAD of the residuals relative to their expected values, times the expected
      value (noise proportional to the level: weekday and weekend residuals are not pooled in dollars);
    * ``scale_seasons``: the scale reads this many seasons of residuals instead of ``seasons`` (a MAD of 28
      daily residuals is itself noisy: its low draws put the bounds inside the noise).
    """

    def run(y: np.ndarray, season: int, s: Settings | None = None) -> tuple[np.ndarray, ...]:
        s = s or Settings()
        n_series, n = y.shape
        clean = y.astype(float).copy()
        expected = np.full(y.shape, np.nan)
        lower, upper = expected.copy(), expected.copy()
        flagged = np.zeros(y.shape, dtype=int)
        residual = np.full(y.shape, np.nan)
        lag = season if lagged_scale else 0
        for t in range(n):
            lags = [t - k * season for k in range(1, s.seasons + 1) if t - k * season >= 0]
            if len(lags) < 2:
                continue
            e = np.median(clean[:, lags], axis=1)
            width = (scale_seasons or s.seasons) * season
            past = residual[:, max(0, t - lag - width):max(0, t - lag)]
            mad = np.full(n_series, np.nan)
            seen = ~np.isnan(past).all(axis=1) if past.shape[1] else np.zeros(n_series, bool)
            if seen.any():
                centre = np.nanmedian(past[seen], axis=1, keepdims=True) if centred else 0.0
                mad[seen] = np.nanmedian(np.abs(past[seen] - centre), axis=1)
            scale = np.fmax(np.nan_to_num(1.4826 * mad * (np.abs(e) if relative else 1.0), nan=0.0),
                            s.min_relative_scale * np.abs(e))
            lo, hi = e - s.z * scale, e + s.z * scale
            impact = y[:, t] - e
            big = (np.abs(impact) >= s.min_impact) & (np.abs(impact) >= s.min_change * np.abs(e))
            f = np.where((y[:, t] > hi) & big, 1, np.where((y[:, t] < lo) & big, -1, 0))
            expected[:, t], lower[:, t], upper[:, t], flagged[:, t] = e, lo, hi, f
            clean[:, t] = np.where(f != 0, e, y[:, t])
            recent = flagged[:, max(0, t - season + 1):t + 1]
            shift = (np.abs((recent == np.sign(f)[:, None]).sum(axis=1)) > season // 2) & (f != 0)
            if shift.any():
                lo_t = max(0, t - season + 1)
                if relearn:
                    same = flagged[shift, lo_t:t + 1] == f[shift, None]
                    step = np.where(same, y[shift, lo_t:t + 1] - expected[shift, lo_t:t + 1], 0).sum(axis=1)
                    clean[shift, :lo_t] += (step / same.sum(axis=1))[:, None]
                clean[shift, lo_t:t + 1] = y[shift, lo_t:t + 1]
            r = y[:, t] - e
            if relative:
                r = np.divide(r, np.abs(e), out=np.full(n_series, np.nan), where=e != 0)
            residual[:, t] = np.where(f != 0, np.nan, r)
        return expected, lower, upper, flagged

    return run


VARIANTS: dict[str, Detector] = {"product": detect, "copy": variant(), "lagged-scale": variant(lagged_scale=True),
                                 "centred": variant(centred=True),
                                 "lagged-centred": variant(lagged_scale=True, centred=True),
                                 "relearn": variant(relearn=True),
                                 "lagged-relearn": variant(lagged_scale=True, relearn=True),
                                 "relative": variant(relative=True),
                                 "lagged-relative": variant(lagged_scale=True, relative=True),
                                 "scale-8": variant(scale_seasons=8),
                                 "lagged-scale-8": variant(lagged_scale=True, scale_seasons=8)}


# -- output ----------------------------------------------------------------------------------------------------


def _f(v: float | None, pct: bool = True) -> str:
    return "-" if v is None else (f"{v:.0%}" if pct else f"{v:g}")


def show(res: dict[str, Any], summ: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("dataset", "kind", "planted", "found", "FP", "precision", "recall", "F1", "delay med/max",
                "recall by size", "at 3 sd (found)", "below floor (alerted)"):
        table.add_column(col, justify="left" if col in ("dataset", "kind", "recall by size") else "right")

    def tail(m: dict[str, Any]) -> list[str]:
        return [f"{_f(m['delay_median'], False)}/{_f(m['delay_max'], False)}",
                "  ".join(f"{z} {_f(v['recall'])}" for z, v in m.get("by_size", {}).items() if v["planted"]),
                f"{m['at_threshold']} ({m['at_threshold_detected']})",
                f"{m['below_floor']} ({m['below_floor_alerted']})"]

    for name, m in summ["by_dataset_kind"].items():
        d, k = name.split(" | ")
        table.add_row(d, k, str(m["planted"]), str(m["detected"]), str(m["false_positives"]), _f(m["precision"]),
                      _f(m["recall"]), _f(m["f1"]), *tail(m))
    for k, m in summ["by_kind"].items():
        table.add_row("[bold]all (F1: mean of the datasets')", f"[bold]{k}", str(m["planted"]), str(m["detected"]),
                      str(m["false_positives"]), _f(m["precision"]), _f(m["recall"]), f"[bold]{_f(m['f1_mean'])}",
                      *tail(m))
    console = Console(width=200)
    console.print(table)
    console.print("alerts on the clean series: " + ", ".join(
        f"{d} {n} ({res['series'][d]} series)" for d, n in summ["clean_alert_counts"].items()))
    for a in res["clean_alerts"]:
        pct = a["actual"] / a["expected"] - 1 if a["expected"] else None
        console.print(f"  {a['dataset']} {a['series']!r}: periods {a['start']}-{a['end']} "
                      f"{'up' if a['direction'] > 0 else 'down'} actual {a['actual']:,.1f} vs expected "
                      f"{a['expected']:,.1f} {a['unit']} ({_f(pct)})")
    if res["known_events_flagged"]:
        console.print(f"known events flagged (demo story): {len(res['known_events_flagged'])} runs on "
                      + ", ".join(sorted({a['series'] for a in res['known_events_flagged']})))


def compare(report: dict[str, dict[str, Any]]) -> None:
    """F1 (recall) per dataset and kind, and the clean series' alerts, side by side per detector."""
    from rich.console import Console
    from rich.table import Table

    names = list(report)
    table = Table(title="detectors on the same plants: F1 (recall), alerts on the clean series")
    table.add_column("dataset | kind")
    for n in names:
        table.add_column(n, justify="right")
    first = report[names[0]]
    for row in first["by_dataset_kind"]:
        table.add_row(row, *(f"{_f(report[n]['by_dataset_kind'][row]['f1'])} "
                             f"({_f(report[n]['by_dataset_kind'][row]['recall'])})" for n in names))
    for k in KINDS:
        table.add_row(f"[bold]mean over datasets | {k}", *(f"{_f(report[n]['by_kind'][k]['f1_mean'])}"
                                                           for n in names))
    for d in first["clean_alert_counts"]:
        table.add_row(f"clean alerts | {d}", *(str(report[n]["clean_alert_counts"][d]) for n in names))
    Console(width=200).print(table)


def load(data: Path | None, with_demo: bool) -> list[Base]:
    return [*focus_sample(data), *alibaba(data), *azure(data), *(demo() if with_demo else [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="read the full upstream files from here (e.g. ../shared/data)")
    ap.add_argument("--trials", type=int, default=10, help="plants per series, kind and size (default 10)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--detector", action="append", choices=sorted(VARIANTS),
                    help="the product's detect() (default) or a variant; repeat to compare on the same plants")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo company's bill")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    names = args.detector or ["product"]
    bases = load(args.data, not args.no_demo)
    results = evaluate(bases, args.trials, args.seed, {n: VARIANTS[n] for n in names})
    report = {}
    for name, res in results.items():
        summ = summary(res)
        show(res, summ, f"anomaly detection quality: detector {name}, seed {args.seed}, {args.trials} plants per "
                        f"series x kind x size, data {args.data or 'fixtures'}")
        report[name] = {**summ, **res}
    if len(report) > 1:
        compare(report)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "trials": args.trials,
                                         "data": str(args.data or "fixtures"), "detectors": report}, indent=2,
                                        default=str))


if __name__ == "__main__":
    main()
