"""Anomaly scan and forecast benchmark: 1,000 series x 365 days of daily cost, as a numpy matrix and as a FOCUS
ledger in a store.

The cost (seeded, numpy): per series a level (log-normal around $300 a day: many series are small), weekends at
45-100% of weekdays, a trend (about +0.08% a day, some shrinking), log-normal noise of 3-20%, about one spike a
series (1-3 days of +50% to +300%, on its second SKU) and a persistent step (x1.3 to x2) on 5% of the series.
Each series is a project (``tag:project``, 12 teams) billed on two SKUs; every (project, SKU, day) is one
usage-based charge in cents, so the matrix and the ledger hold the same numbers (1,000 x 365 x 2 = 730k rows,
written in SQL; cached per size and seed in ``bench/out/anomalies``).

Each measured step runs in its own subprocess (harness.py: seconds timed inside the child, the child's own
peak RSS), the store read-only with the CLI's 1 GB memory limit:

* ``detect``: ``detect()`` over the series x days matrix;
* ``scan``: ``anomalies(con, window, "tag:project")`` over the store (the ledger query, the matrix, detection;
  window = the year after its first four weeks, which are the baseline's history);
* ``scan+causes``: the same with ``child="SkuId"``: every anomaly's root causes (one child query each);
* ``forecast``: ``forecast(y, 7, 30)`` over the matrix (``auto``: MSTL, beside the seasonal naive baseline),
  with statsforecast's import timed apart, and the seasonal naive alone (``naive``).

The scan's anomalies must be the matrix's (same series, start, length, direction): the ledger path adds query
time, not different answers.

Run: ``python bench/anomalies.py [--series 1000] [--days 365] [--seed 7] [--no-forecast] [--json]
[--regen] [--memory-limit 1GB] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # bench/harness.py: the child-per-step runner and peak RSS
import numpy as np

HERE = Path(__file__).resolve().parent
GEN_VERSION = 1  # bump when the generator changes: it names the cached files
START = datetime(2026, 1, 5)  # a Monday
SEASON = 7
HISTORY = 28  # anomalies() reads seasons x season days before its window
HORIZON = 30
TEAMS = 12


def generate(series: int, days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(series, SKU, day) costs in cents (SKU a carries the steady part, SKU b a share plus the spikes), and the
    series x days mask of the planted changes (spike days, a step's first week)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = np.clip(np.exp(rng.normal(np.log(300), 1.3, series)), 5, 50_000)
    weekend = rng.uniform(0.45, 1.0, series)
    week = np.where(((START.weekday() + t) % 7)[None, :] >= 5, weekend[:, None], 1.0)
    trend = np.exp(rng.normal(0.0005, 0.001, series)[:, None] * t[None, :])
    noise = rng.lognormal(0.0, rng.uniform(0.02, 0.1, series)[:, None], (series, days))
    base = level[:, None] * week * trend * noise
    stepped = rng.random(series) < 0.05
    at = rng.integers(60, days - 35, series)
    after = stepped[:, None] & (t[None, :] >= at[:, None])
    base *= np.where(after, rng.uniform(1.3, 2.0, series)[:, None], 1.0)
    planted = after & (t[None, :] < at[:, None] + 7)
    share = rng.uniform(0.5, 0.9, series)[:, None]
    sku_a, sku_b = base * share, base * (1 - share)
    n_spikes = rng.poisson(1.0, series)
    rows = np.repeat(np.arange(series), n_spikes)
    first = rng.integers(HISTORY + 7, days, rows.size)
    length = rng.integers(1, 4, rows.size)
    size = rng.uniform(0.5, 3.0, rows.size) * level[rows]
    for k in range(3):  # a spike's k-th day, for every spike at once
        on = (k < length) & (first + k < days)
        np.add.at(sku_b, (rows[on], first[on] + k), size[on])
        planted[rows[on], first[on] + k] = True
    return np.round(np.stack([sku_a, sku_b], axis=1) * 100).astype(np.int64), planted


def build(out: Path, series: int, days: int, seed: int) -> tuple[Path, Path]:
    """The matrix (.npy, dollars, series x days) and the store, cached by size and seed."""
    import duckdb
    import pyarrow as pa

    from aifinops.store.connection import Store

    name = f"s{series}_d{days}_seed{seed}_v{GEN_VERSION}"
    npy, db = out / f"{name}.npy", out / f"{name}.duckdb"
    if npy.exists() and db.exists() and npy.with_suffix(".planted.npy").exists():
        return npy, db
    out.mkdir(parents=True, exist_ok=True)
    cents, planted = generate(series, days, seed)
    np.save(npy, cents.sum(axis=1) / 100)
    np.save(npy.with_suffix(".planted.npy"), planted)
    part = db.with_suffix(".partial")  # renamed when complete: an interrupted build is never taken as cached
    part.unlink(missing_ok=True)
    s, k, d = np.meshgrid(np.arange(series), np.arange(2), np.arange(days), indexing="ij")
    rows = pa.table({"s": s.ravel(), "k": k.ravel(), "d": d.ravel(), "cents": cents.ravel()})
    with Store(part) as store:
        con: duckdb.DuckDBPyConnection = store.con
        con.register("gen", rows)
        con.execute(f"""
            INSERT INTO focus_charges ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart",
                "BillingPeriodEnd", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency",
                "ChargeCategory", "ChargeFrequency", "ProviderName", "BillingAccountId", "ServiceName", "SkuId",
                "Tags", _batch_id, _file, _row)
            WITH g AS (
                SELECT *, TIMESTAMP '{START:%Y-%m-%d}' + to_days(CAST(d AS INTEGER)) AS day,
                       CAST((cents // 100)::VARCHAR || '.' || lpad((cents % 100)::VARCHAR, 2, '0')
                            AS DECIMAL(38, 12)) AS cost
                FROM gen)
            SELECT day, day + INTERVAL 1 DAY, date_trunc('month', day), date_trunc('month', day) + INTERVAL 1 MONTH,
                   cost, cost, cost, cost, 'USD', 'Usage', 'Usage-Based', 'AWS', 'acct-1', 'Amazon EC2',
                   CASE k WHEN 0 THEN 'sku-a' ELSE 'sku-b' END,
                   map(['project', 'team'], ['p' || lpad(s::VARCHAR, 4, '0'), 'team-' || (s % {TEAMS})::VARCHAR]),
                   1, 'bench', row_number() OVER ()
            FROM g""")
        con.unregister("gen")
        con.execute("CHECKPOINT")
    part.replace(db)
    return npy, db


def _runs_in_window(flagged: np.ndarray, keys: list[str]) -> set[tuple[str, int, int, int]]:
    from aifinops.analysis.anomalies import _runs

    return {(keys[i], a, b - a, d) for i in range(len(keys)) for a, b, d in _runs(flagged[i], SEASON // 3)
            if b > HISTORY}


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measured step: ``args.child`` = (step, npy, db)."""
    from aifinops.analysis.anomalies import Settings, anomalies, detect
    from aifinops.analysis.windows import Window
    from aifinops.store.connection import Store

    step, npy, db = args.child
    y = np.load(npy)
    keys = [f"p{i:04d}" for i in range(y.shape[0])]
    window = Window(START + timedelta(days=HISTORY), START + timedelta(days=y.shape[1]))
    if step == "detect":
        started = time.perf_counter()
        flagged = detect(y, SEASON, Settings())[3]
        seconds = time.perf_counter() - started
        found = _runs_in_window(flagged, keys)
        planted = np.load(Path(npy).with_suffix(".planted.npy"))
        on_planted = sum(1 for k, a, n, _ in found if planted[int(k[1:]), a:a + n].any())
        return {"seconds": seconds, "peak_mb": harness.peak_mb(), "anomalies": len(found),
                "on_planted": on_planted, "runs": sorted(found)}
    if step in ("scan", "scan+causes"):
        with Store(db, read_only=True, memory_limit=args.memory_limit) as store:
            rows = store.con.execute("SELECT count(*) FROM focus_charges").fetchone()[0]
            started = time.perf_counter()
            got = anomalies(store.con, window, "tag:project", child="SkuId" if step == "scan+causes" else None)
            seconds = time.perf_counter() - started
        found = {(a.series, int((a.start - START) / timedelta(days=1)), a.periods, 1 if a.direction == "up" else -1)
                 for a in got}
        causes = [a.root_causes[0]["value"] for a in got if a.root_causes]
        return {"seconds": seconds, "peak_mb": harness.peak_mb(), "rows": rows, "anomalies": len(got),
                "runs": sorted(found), "with_causes": len(causes),
                "top_cause_sku_b": sum(1 for c in causes if c == "sku-b")}
    if step == "forecast":
        from aifinops.analysis.forecast import forecast

        started = time.perf_counter()
        import statsforecast  # noqa: F401  (its import is part of the first forecast's cost)

        imported = time.perf_counter() - started
        started = time.perf_counter()
        fc = forecast(y, SEASON, HORIZON, "auto")
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        forecast(y, SEASON, HORIZON, "naive")
        naive = time.perf_counter() - started
        return {"seconds": seconds, "import_seconds": imported, "naive_seconds": naive, "peak_mb": harness.peak_mb(),
                "model": fc.model, "fallback": len(fc.fallback)}
    raise SystemExit(f"unknown step {step!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "anomalies")
    ap.add_argument("--regen", action="store_true", help="rebuild the matrix and the store")
    ap.add_argument("--no-forecast", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args), default=str))
        return
    if args.days < HISTORY + 2 * SEASON:
        sys.exit(f"--days must be at least {HISTORY + 2 * SEASON}: four weeks of history and two to scan")
    sys.path.insert(0, str(HERE.parent / "src"))
    if args.regen:
        for f in args.out.glob(f"s{args.series}_d{args.days}_seed{args.seed}_v{GEN_VERSION}.*"):
            f.unlink()
    started = time.perf_counter()
    npy, db = build(args.out, args.series, args.days, args.seed)
    built = time.perf_counter() - started
    script = str(Path(__file__).resolve())
    steps = ["detect", "scan", "scan+causes", *([] if args.no_forecast else ["forecast"])]
    res: dict[str, Any] = {"series": args.series, "days": args.days, "seed": args.seed, "build_seconds": built}
    for step in steps:
        res[step] = harness.run_child(script, [step, str(npy), str(db)], args.memory_limit)
    same = res["detect"]["runs"] == res["scan"]["runs"] == res["scan+causes"]["runs"]
    res["scan_matches_matrix"] = same
    for step in ("detect", "scan", "scan+causes"):
        res[step].pop("runs")
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        cells = args.series * args.days
        print(f"{args.series:,} series x {args.days} days ({cells:,} series-days; store of "
              f"{res['scan']['rows']:,} ledger rows), built/cached in {built:.1f} s")
        for step in ("detect", "scan", "scan+causes"):
            r = res[step]
            print(f"{step:>12}: {r['seconds']:7.2f} s  {cells / r['seconds']:>12,.0f} series-days/s  "
                  f"peak {r['peak_mb']:,.0f} MB  {r['anomalies']:,} anomalies")
        d = res["detect"]
        print(f"              {d['on_planted']:,} of the {d['anomalies']:,} overlap a planted spike or step; the rest "
              f"are the noise's (z = 3 over {args.days - HISTORY} days a series)")
        c = res["scan+causes"]
        print(f"              root causes: {c['with_causes']:,} anomalies with one; the top cause is the spiking SKU "
              f"(sku-b) in {c['top_cause_sku_b']:,}")
        if "forecast" in res:
            f = res["forecast"]
            print(f"{'forecast':>12}: {f['seconds']:7.2f} s  {f['seconds'] / args.series * 1000:6.1f} ms a series  "
                  f"peak {f['peak_mb']:,.0f} MB  (MSTL + seasonal naive, {HORIZON} days ahead; statsforecast "
                  f"import {f['import_seconds']:.1f} s apart; {f['fallback']} series fell back; the seasonal "
                  f"naive alone {f['naive_seconds']:.2f} s)")
        print(f"the scan over the store finds the matrix's anomalies: {'yes' if same else 'NO'}")
    if not same:
        sys.exit("the store's anomalies differ from the matrix's")


if __name__ == "__main__":
    main()
