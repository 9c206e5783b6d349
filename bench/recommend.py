"""Waste benchmark: ``aifinops recommend`` (every rule, savings reconciled) over the demo store and over a store
ten times bigger.

The demo store is built by ``aifinops demo`` (its bill, GPU fleet, LLM traffic and run metrics; cached in
``bench/out/recommend/demo``). The bigger store is the demo's copied ``--scale`` times (default 10) inside one
store: every GPU node, workload, sample, LLM request, run metric and ledger row again under suffixed ids
(``~2``, ``~3``, ...: node, GPU, pod, workload and run ids, run fingerprints, ResourceId, request ids and prompt
fingerprints), so each copy is a fleet of
its own with the same waste, and every rule has ten times the rows to scan. Each rule's savings in the scaled
store must be ``scale`` times the demo's (within 1%: a copy is the same waste again).

Each measured step runs in its own subprocess (harness.py: seconds timed inside the child, the child's own peak
RSS), on a read-only store with the CLI's 1 GB memory limit: ``waste.run`` over the demo's 30-day GPU window,
reporting seconds per rule and rows in the store per second.

Run: ``make bench-recommend`` (``python bench/recommend.py``) or ``PYTHONPATH=src python bench/recommend.py
[--scale 10] [--regen] [--json] [--memory-limit 1GB] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import harness  # bench/harness.py: the child-per-step runner and peak RSS

HERE = Path(__file__).resolve().parent
TABLES = ("focus_charges", "gpu_nodes", "workloads", "gpu_samples", "llm_requests", "run_metrics", "outcomes")
#: columns that identify something, suffixed per copy so that each copy is its own fleet and traffic
IDS = {
    "focus_charges": ("ResourceId", "ResourceName", "SubAccountId", "SubAccountName"),
    "gpu_nodes": ("node", "resource_id", "node_pool"),
    "workloads": ("workload_id", "name", "node", "owner_name"),
    "gpu_samples": ("node", "gpu", "pod"),
    "llm_requests": ("request_id", "feature", "conversation_id", "prompt_hash", "prefix_hash"),
    "run_metrics": ("run_id", "workload_run", "model"),
    "outcomes": ("feature",),
}
#: workload labels that name a run, a model, a Deployment's hash, or a run's configuration and data (a copy's runs
#: are not repeats of another copy's)
LABELS = ("run", "model", "pod-template-hash", "config-hash", "data-hash")
WINDOW = "30d"


def scale_store(demo: Path, db: Path, scale: int) -> dict[str, Any]:
    """Copy the demo store and append ``scale - 1`` suffixed copies of its rows, in SQL."""
    import duckdb

    from aifinops.analysis.llm_costs import SELF_HOSTED_PROVIDERS

    started = time.perf_counter()
    part = db.with_suffix(".partial")  # renamed when complete: an interrupted build is never taken as cached
    shutil.copy(demo, part)
    con = duckdb.connect(str(part))
    rows = {}
    for table in TABLES:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table]).fetchall()]
        con.execute(f"CREATE TEMP TABLE orig AS SELECT * FROM {table}")
        for k in range(2, scale + 1):
            exprs = []
            for c in cols:
                if c in IDS[table]:
                    exprs.append(f"\"{c}\" || '~{k}'")  # NULL stays NULL
                elif table == "workloads" and c == "labels":
                    named = ", ".join(f"'{lb}'" for lb in LABELS)
                    exprs.append("map_from_entries(list_transform(map_entries(labels), lambda e: struct_pack("
                                 f"key := e.key, value := CASE WHEN e.key IN ({named}) THEN e.value || '~{k}' "
                                 "ELSE e.value END)))")
                elif table == "llm_requests" and c in ("request_model", "response_model"):
                    # a self-hosted model is its copy's own endpoint (the serving workloads' model label is copied)
                    hosted = ", ".join(f"'{x}'" for x in SELF_HOSTED_PROVIDERS)
                    exprs.append(f"CASE WHEN provider IN ({hosted}) THEN \"{c}\" || '~{k}' ELSE \"{c}\" END")
                else:
                    exprs.append(f'"{c}"')
            con.execute(f"INSERT INTO {table} SELECT {', '.join(exprs)} FROM orig")
        con.execute("DROP TABLE orig")
        rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    con.execute("DELETE FROM findings")
    con.execute("CHECKPOINT")
    con.close()
    part.replace(db)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run of every rule over the store ``args.child[1]``."""
    from aifinops.analysis.windows import parse_window
    from aifinops.config import Settings
    from aifinops.store.connection import Store
    from aifinops.waste import run
    from aifinops.waste.engine import data_extent

    db = Path(args.child[1])
    with Store(db, read_only=True, memory_limit=args.memory_limit) as store:
        rows = sum(store.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)
        started = time.perf_counter()
        w = parse_window(WINDOW, data_extent(store.con)[1])
        res = run(store.con, w, Settings())
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": harness.peak_mb(), "rows": rows, "findings": len(res.findings),
            "saving": float(res.total_saving), "per_rule": res.seconds,
            "by_rule": {r: sum(1 for f in res.findings if f.rule == r) for r in res.ran},
            "saving_by_rule": {r: float(sum(f.monthly_saving for f in res.findings if f.rule == r)) for r in res.ran},
            "skipped": [s.rule for s in res.skipped]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=10, help="copies of the demo in the bigger store (default 10)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "recommend")
    ap.add_argument("--regen", action="store_true", help="rebuild the demo and the scaled store")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args), default=str))
        return
    demo = args.out / "demo" / "aifinops.duckdb"
    big = args.out / f"x{args.scale}.duckdb"
    built: dict[str, Any] = {}
    if args.regen or not demo.exists():
        sys.path.insert(0, str(HERE.parent / "src"))
        from aifinops.demo.run import run_demo

        started = time.perf_counter()
        run_demo(demo.parent)
        built["demo_seconds"] = time.perf_counter() - started
    if args.regen or not big.exists():
        built["scale"] = scale_store(demo, big, args.scale)
    script = str(Path(__file__).resolve())
    small = harness.run_child(script, ["run", str(demo)], args.memory_limit)
    large = harness.run_child(script, ["run", str(big)], args.memory_limit)
    same = all(abs(large["saving_by_rule"].get(r, 0) - args.scale * v) <= 0.01 * abs(args.scale * v) + 0.01
               for r, v in small["saving_by_rule"].items())
    res = {"demo": small, f"x{args.scale}": large, "built": built, "scaled_findings_match": same}
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return
    for name, r in (("demo", small), (f"x{args.scale}", large)):
        print(f"{name:>6}: {r['rows']:>12,} rows  {r['seconds']:7.2f} s  {r['rows'] / r['seconds']:>12,.0f} rows/s  "
              f"peak {r['peak_mb']:,.0f} MB  {r['findings']} findings, ${r['saving']:,.0f}/month achievable")
        slow = sorted(r["per_rule"].items(), key=lambda kv: -kv[1])[:5]
        print("        slowest rules: " + ", ".join(f"{k} {v:.2f} s" for k, v in slow))
    print(f"scaled store: each rule's saving x{args.scale}: {'yes' if same else 'NO'}")
    if not same:
        sys.exit("the scaled store's savings are not the demo's times the scale: "
                 + json.dumps({r: (v, large["saving_by_rule"].get(r)) for r, v in small["saving_by_rule"].items()}))


if __name__ == "__main__":
    main()
