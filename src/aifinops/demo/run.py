"""``aifinops demo``: the main job on bundled data, showing each promise of the ledger once.

1. the real FOCUS 1.0 sample (FinOps Foundation, CC BY 4.0) is ingested and normalised to 1.2;
2. a synthetic AI company's 90-day bill is written as per-provider monthly files; one provider's last
   month first arrives month-to-date and is then restated by the full delivery;
3. re-ingesting the sample changes nothing;
4. the company's GPU fleet (``gpu_fleet``) is ingested through the product's sources: inventory, Kubernetes
   pods, Slurm jobs, Azure ML jobs (a CSV through a mapping), NVML samples and a dcgm-exporter query;
5. the first answers (spend by provider, layer, team; tag coverage; typos; GPU cost and idle GPU cost by
   team) are printed and written to an HTML summary beside the store.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..analysis import costs as costs_mod
from ..analysis import gpu_allocation
from ..analysis import tags as tags_mod
from ..analysis.layers import load_rules
from ..analysis.windows import parse_window
from ..config import Settings
from ..interfaces.cli.output import console, render
from ..interfaces.report import Section, write_summary
from ..sources.base import sources
from ..store.connection import Store
from ..store.ingest import BatchResult, ingest
from . import bundled_sample
from .gpu_fleet import AZUREML_MAPPING, write_gpu_fleet
from .synthetic import build_scenario, write_bill

DEMO_TAG_KEYS = ["team", "project", "env", "model"]
GPU_WINDOW = "30d"  # the GPU sections' window; the fleet's telemetry covers it (gpu_fleet's default span)


def _month_to_date(full: Path, out: Path) -> Path:
    """A month-to-date delivery cut from a full month's file: charges of its first 20 days."""
    table = pq.read_table(full)
    start = pc.min(table["ChargePeriodStart"]).as_py()
    cut = start.replace(day=1) + timedelta(days=20)
    mtd = table.filter(pc.less(table["ChargePeriodStart"], cut))
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(mtd, out, compression="zstd")
    return out


def _say(step: str, res: BatchResult) -> None:
    from ..interfaces.cli.common import print_batch

    console.rule(f"[bold]{step}")
    print_batch(res)


def run_demo(out: Path, seed: int = 7, settings: Settings | None = None, days: int = 90) -> Path:
    """Build the demo store in ``out`` and write its summary; ``days`` shortens the company's history (tests)."""
    settings = settings or Settings()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "aifinops.duckdb"
    for stale in (db, Path(f"{db}.wal"), out / "bill", out / "deliveries", out / "gpu"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    focus = sources.get("focus")()
    scenario = build_scenario(seed=seed, days=days)
    files = write_bill(scenario, out / "bill")
    fleet = write_gpu_fleet(scenario, out / "gpu", telemetry_days=int(GPU_WINDOW[:-1]))
    latest = max(files, key=lambda p: p.name)  # the newest month of the first provider, by file name
    mtd = _month_to_date(latest, out / "deliveries" / f"{latest.stem}-month-to-date.parquet")

    with Store(db, memory_limit=settings.memory_limit, threads=settings.threads) as store:
        sample = ingest(store, focus, [bundled_sample()])
        _say("1. the FinOps Foundation's FOCUS 1.0 sample, normalised to FOCUS 1.2", sample)
        _say(f"2a. a month-to-date delivery ({mtd.name})", ingest(store, focus, [mtd]))
        _say(f"2b. the full {days}-day bill: one batch of monthly files; it restates the month-to-date rows",
             ingest(store, focus, [out / "bill"]))
        _say("3. the sample again: same content, nothing changes", ingest(store, focus, [bundled_sample()]))
        gpu_steps = (
            ("4a. GPU nodes: the inventory, tied to the bill by ResourceId", "inventory", {}, [fleet.inventory]),
            ("4b. Kubernetes pods: kubectl get pods -A -o json of each cluster", "kubernetes", {}, fleet.pods),
            ("4c. Slurm jobs: sacct --parsable2 --allocations of each cluster", "slurm", {}, fleet.sacct),
            ("4d. Azure ML jobs: a CSV read through a column mapping", "workloads-csv", AZUREML_MAPPING,
             [fleet.azureml]),
            (f"4e. GPU samples: NVML agent Parquet, one file per node, last {GPU_WINDOW} every 5 min", "nvml", {},
             fleet.nvml),
            ("4f. GPU samples of the MIG node: a dcgm-exporter query_range answer", "dcgm", {}, fleet.dcgm),
        )
        for step, kind, options, paths in gpu_steps:
            _say(step, ingest(store, sources.get(kind)(**options), list(paths)))

        t = store.ibis().table("focus_charges")
        rules = load_rules(settings.layers_file)
        end = costs_mod.data_end(t)
        window = parse_window(f"{scenario.days}d", end)
        ai = t.filter(t._batch_id != sample.batch_id)  # the synthetic company; the sample is another (2024) bill

        def q(expr: object) -> list[dict[str, object]]:
            return expr.to_pyarrow().to_pylist()  # type: ignore[attr-defined]

        by = costs_mod.parse_by
        gpu_window = parse_window(GPU_WINDOW, end)
        by_team, idle_by_team = _gpu_by_team(store, gpu_window, settings)
        gpu_total = sum((r["gpuCost"] for r in by_team), Decimal(0))
        gpu_idle = sum((r["idleCost"] for r in idle_by_team), Decimal(0))
        gpu_sections = [
            Section(f"GPU cost by team (last {GPU_WINDOW})", by_team, ("team", "gpuCost"), note=(
                "Every dollar the GPU nodes' bill charged in the window, split between the workloads that held "
                "their GPUs (Kubernetes pods, Slurm and Azure ML jobs) and __idle__ (no workload held them). "
                "team is the workload's team label (a Slurm job's is its account). "
                "gpuEfficiency: used / allocated GPU-hours (SM activity). "
                "gpuCostAllocatedIdle: held at under 5% activity; gpuCostInefficiency: the unused part of GPUs "
                "held above it. Hours an instance was stopped count neither as cost nor as idle.")),
            Section(f"Idle GPU cost by team (last {GPU_WINDOW})", idle_by_team, ("team", "idleCost"), note=(
                "What each team's GPUs cost while doing no work: unallocatedIdleCost (the team's nodes when no "
                "workload held their GPUs: __idle__ charged to the node owner, share-idle owner) + "
                "allocatedIdleCost (GPUs its workloads held at under 5% activity) + inefficiencyCost (the "
                "unused part, 1 - activity, of GPUs held above that). gpuCost is everything the team's GPU "
                "nodes cost; share = idleCost / gpuCost.")),
        ]
        sections = [
            Section("Spend by provider", q(costs_mod.cost_by(ai, by("ProviderName"), window)),
                    ("ProviderName", "cost")),
            Section("Spend by cost layer", q(costs_mod.cost_by(ai, by("layer"), window, rules=rules)),
                    ("layer", "cost"),
                    note="Layer rules are data: analysis/data/layers.yaml; extend them with layers_file."),
            Section("Spend by team tag", q(costs_mod.cost_by(ai, by("tag:team"), window)), ("tag:team", "cost")),
            Section("Monthly spend by layer", q(costs_mod.cost_by(ai, by("month,layer"), window, rules=rules)
                                                 .order_by(["month", "layer"]))),
            Section("Top services", q(costs_mod.cost_by(ai, by("ServiceName"), window).limit(12)),
                    ("ServiceName", "cost")),
            Section("Tag coverage", q(tags_mod.coverage(ai, DEMO_TAG_KEYS, window)), ("key", "share"),
                    note="Share of positive EffectiveCost carrying each key."),
            Section("Largest resources missing team, project or env",
                    q(tags_mod.untagged_resources(ai, DEMO_TAG_KEYS[:3], window, 10))),
            Section("Tag keys and values that look like typos", q(tags_mod.typo_pairs(ai, window))),
            *gpu_sections,
            Section("FOCUS sample (real data, Sep 2024): spend by provider and layer",
                    q(costs_mod.cost_by(t.filter(t._batch_id == sample.batch_id), by("ProviderName,layer"),
                                        parse_window("all", None), rules=rules))),
            Section("Batches", store.rows(
                "SELECT batch_id, status, rows_read, rows_loaded, rows_quarantined, rows_replaced, "
                "effective_loaded FROM batches ORDER BY batch_id")),
        ]
        total = sum(r["cost"] or 0 for r in sections[0].rows)
        facts = {
            "window": str(window),
            "AI company spend": f"${total:,.0f}",
            "GPU share": _share(sections[1].rows, "compute-gpu", total),
            "fully tagged": f"{float(sections[5].rows[-1]['share']):.0%}",
            f"GPU cost ({GPU_WINDOW})": f"${gpu_total:,.0f}",
            "idle GPU share": f"{float(gpu_idle / gpu_total):.0%}" if gpu_total else "n/a",
            "charges in store": f"{store.con.execute('SELECT count(*) FROM focus_charges').fetchone()[0]:,}",
        }
    for s in sections[:3] + sections[5:8] + gpu_sections[1:]:
        console.rule(f"[bold]{s.title}")
        render(s.rows[:15])
    html = write_summary(out / "summary.html", "aifinops demo: an AI company's cloud bill and GPU fleet", sections,
                         facts)
    console.rule("[bold]done")
    console.print(f"store: {db}\nHTML summary: {html}\n"
                  f"try: aifinops --db {db} costs --by tag:team,layer --window 30d\n"
                  f"     aifinops --db {db} tags --keys {','.join(DEMO_TAG_KEYS)}\n"
                  f"     aifinops --db {db} allocation --window {GPU_WINDOW} --aggregate label:team "
                  "--share-idle owner\n"
                  f"     aifinops --db {db} gpu utilization --by node_pool --window {GPU_WINDOW} --accumulate window\n"
                  f"     aifinops --db {db} batches")
    return html


def _share(rows: list[dict[str, object]], layer: str, total: object) -> str:
    value = next((r["cost"] for r in rows if r["layer"] == layer), 0)
    return f"{float(value) / float(total):.0%}" if total else "n/a"  # type: ignore[arg-type]


def _gpu_by_team(store: Store, window: Any, settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(GPU cost by team with idle its own line, idle GPU cost by team) over ``window``. Slurm jobs carry their
    account as the team label (the slurm source's ``team_from``), so one grouping covers every scheduler."""
    alone = gpu_allocation.aggregate(store.con, window, ["label:team"], share_idle="none", settings=settings)
    by_team = [{"team": r["label:team"], "gpuHours": round(r["gpuHours"]), "gpuCost": r["gpuCost"],
                "gpuEfficiency": r["gpuEfficiency"], "gpuCostAllocatedIdle": r["gpuCostAllocatedIdle"],
                "gpuCostInefficiency": r["gpuCostInefficiency"], "energyKwh": round(r["energyKwh"] or 0)}
               for r in alone]
    idle = []
    for r in gpu_allocation.aggregate(store.con, window, ["label:team"], share_idle="owner", settings=settings):
        if r["label:team"] == gpu_allocation.IDLE:  # idle of nodes without an owner
            continue
        waste = r["gpuCostUnallocated"] + r["gpuCostAllocatedIdle"] + r["gpuCostInefficiency"]
        idle.append({"team": r["label:team"], "gpuCost": r["gpuCost"], "unallocatedIdleCost": r["gpuCostUnallocated"],
                     "allocatedIdleCost": r["gpuCostAllocatedIdle"], "inefficiencyCost": r["gpuCostInefficiency"],
                     "idleCost": waste, "share": float(waste / r["gpuCost"]) if r["gpuCost"] else None})
    key = lambda r: (r["team"] == gpu_allocation.IDLE, -r["gpuCost"])  # noqa: E731
    return sorted(by_team, key=key), sorted(idle, key=lambda r: -r["idleCost"])
