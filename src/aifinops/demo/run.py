"""``aifinops demo``: the main job on bundled data, showing each promise of the ledger once.

1. the real FOCUS 1.0 sample (FinOps Foundation, CC BY 4.0) is ingested and normalised to 1.2;
2. a synthetic AI company's 90-day bill is written as per-provider monthly files; one provider's last
   month first arrives month-to-date and is then restated by the full delivery;
3. re-ingesting the sample changes nothing;
4. the first answers (spend by provider, layer, team; tag coverage; typos) are printed and written to an
   HTML summary beside the store.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..analysis import costs as costs_mod
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
from .synthetic import build_scenario, write_bill

DEMO_TAG_KEYS = ["team", "project", "env", "model"]


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


def run_demo(out: Path, seed: int = 7, settings: Settings | None = None) -> Path:
    settings = settings or Settings()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "aifinops.duckdb"
    for stale in (db, Path(f"{db}.wal"), out / "bill", out / "deliveries"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    focus = sources.get("focus")()
    scenario = build_scenario(seed=seed)
    files = write_bill(scenario, out / "bill")
    latest = max(files, key=lambda p: p.name)  # the newest month of the first provider, by file name
    mtd = _month_to_date(latest, out / "deliveries" / f"{latest.stem}-month-to-date.parquet")

    with Store(db, memory_limit=settings.memory_limit, threads=settings.threads) as store:
        sample = ingest(store, focus, [bundled_sample()])
        _say("1. the FinOps Foundation's FOCUS 1.0 sample, normalised to FOCUS 1.2", sample)
        _say(f"2a. a month-to-date delivery ({mtd.name})", ingest(store, focus, [mtd]))
        _say("2b. the full 90-day bill: one batch of monthly files; it restates the month-to-date rows",
             ingest(store, focus, [out / "bill"]))
        _say("3. the sample again: same content, nothing changes", ingest(store, focus, [bundled_sample()]))

        t = store.ibis().table("focus_charges")
        rules = load_rules(settings.layers_file)
        end = costs_mod.data_end(t)
        window = parse_window(f"{scenario.days}d", end)
        ai = t.filter(t._batch_id != sample.batch_id)  # the synthetic company; the sample is another (2024) bill

        def q(expr: object) -> list[dict[str, object]]:
            return expr.to_pyarrow().to_pylist()  # type: ignore[attr-defined]

        by = costs_mod.parse_by
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
            "charges in store": f"{store.con.execute('SELECT count(*) FROM focus_charges').fetchone()[0]:,}",
        }
    for s in sections[:3] + sections[5:8]:
        console.rule(f"[bold]{s.title}")
        render(s.rows[:15])
    html = write_summary(out / "summary.html", "aifinops demo: an AI company's cloud bill", sections, facts)
    console.rule("[bold]done")
    console.print(f"store: {db}\nHTML summary: {html}\n"
                  f"try: aifinops --db {db} costs --by tag:team,layer --window 30d\n"
                  f"     aifinops --db {db} tags --keys {','.join(DEMO_TAG_KEYS)}\n"
                  f"     aifinops --db {db} batches")
    return html


def _share(rows: list[dict[str, object]], layer: str, total: object) -> str:
    value = next((r["cost"] for r in rows if r["layer"] == layer), 0)
    return f"{float(value) / float(total):.0%}" if total else "n/a"  # type: ignore[arg-type]
