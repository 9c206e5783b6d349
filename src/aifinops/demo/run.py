"""``aifinops demo``: the main job on bundled data, showing each promise of the ledger once.

1. the real FOCUS 1.0 sample (FinOps Foundation, CC BY 4.0) is ingested and normalised to 1.2;
2. a synthetic AI company's 90-day bill is written as per-provider monthly files; one provider's last
   month first arrives month-to-date and is then restated by the full delivery;
3. re-ingesting the sample changes nothing;
4. the company's GPU fleet (``gpu_fleet``) is ingested through the product's sources: inventory, Kubernetes
   pods, Slurm jobs, Azure ML jobs (a CSV through a mapping), NVML samples and a dcgm-exporter query;
5. its LLM features (``llm_usage``) through the request sources: the support copilot's OTel GenAI spans,
   the LiteLLM gateway's spend logs, the hourly usage rollup (a CSV through a mapping), and business outcomes;
6. planted waste (``waste_plants``): one instance of every anti-pattern the waste rules find, with a known
   size, in a part of the company the story does not touch (Helix AI Labs' own AWS and Google Cloud billing
   accounts and API accounts, two on-prem DGX servers), through the same sources: its FOCUS bill, inventory,
   pods, NVML samples, MLflow runs, and LLM requests (OTel spans and LiteLLM spend logs with prompts, the rollup);
7. the waste rules run over the GPU window (``aifinops recommend``'s default) and their findings are kept in
   the store, so ``aifinops recommend`` lists them with the same ids;
8. the first answers (spend by provider, layer, team; tag coverage; typos; GPU cost and idle GPU cost by
   team; unit costs by feature, the self-hosted model beside API models, LLM usage against the bill; the top
   waste findings) are printed and written to an HTML summary beside the store.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import waste
from ..analysis import costs as costs_mod
from ..analysis import gpu_allocation
from ..analysis import tags as tags_mod
from ..analysis.layers import LayerRule, load_rules
from ..analysis.llm_costs import self_hosted_report
from ..analysis.llm_reconcile import ledger_by_provider, reconcile
from ..analysis.unit_costs import unit_costs
from ..analysis.windows import Window, parse_window
from ..analysis.workload_costs import serving_costs
from ..config import Settings
from ..interfaces.cli.output import console, render
from ..interfaces.report import Section, write_summary
from ..sources.base import sources
from ..store import findings as findings_store
from ..store.connection import Store
from ..store.ingest import BatchResult, ingest
from ..waste.engine import data_extent
from . import alerting, bundled_sample
from .gpu_fleet import AZUREML_MAPPING, write_gpu_fleet
from .llm_usage import LLM_DAYS, ROLLUP_MAPPING, SELF_HOSTED, write_llm_usage
from .synthetic import build_scenario, write_bill
from .waste_plants import write_plants

DEMO_TAG_KEYS = ["team", "project", "env", "model"]
GPU_WINDOW = "30d"  # the GPU sections' window; the fleet's telemetry covers it (gpu_fleet's default span)
LLM_WINDOW = f"{LLM_DAYS}d"  # the LLM sections' window: the span of the LLM traffic
#: each feature's business outcome (its unit costs are per one of these); revenue gives the gross margin
OUTCOMES = {"support-copilot": "tickets_resolved", "semantic-search": "searches_with_click",
            "doc-summarizer": "documents_summarized"}
REVENUE = "revenue"
#: columns of the LLM sections shown in the HTML summary only (terminals are narrow)
CONSOLE_HIDDEN = ("tokens", "activeUsers", "revenue", "sourceCost", "gpuHours")
WASTE_WINDOW = GPU_WINDOW  # the waste rules' window: `aifinops recommend`'s default
TOP_FINDINGS = 10


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
    for stale in (db, Path(f"{db}.wal"), out / "bill", out / "deliveries", out / "gpu", out / "llm", out / "plants"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    focus = sources.get("focus")()
    scenario = build_scenario(seed=seed, days=days)
    files = write_bill(scenario, out / "bill")
    fleet = write_gpu_fleet(scenario, out / "gpu", telemetry_days=int(GPU_WINDOW[:-1]))
    llm = write_llm_usage(scenario, out / "llm", days=LLM_DAYS)
    planted = write_plants(scenario, out / "plants")
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
        llm_steps = (
            ("5a. support copilot: GenAI spans, the OTel collector's file exporter (OTLP/JSON lines)", "otel", {},
             [llm.otel]),
            ("5b. LLM gateway: LiteLLM proxy spend logs (LiteLLM_SpendLogs exported as CSV)", "litellm", {},
             [llm.litellm]),
            ("5c. service traffic: the hourly usage rollup, a CSV read through a column mapping", "llm-usage",
             ROLLUP_MAPPING, [llm.rollup]),
            ("5d. business outcomes: tickets resolved, searches with a click, documents summarized, revenue",
             "outcomes", {}, [llm.outcomes]),
        )
        plant_steps = (
            ("6a. planted waste: Helix AI Labs' own AWS and Google Cloud billing accounts (FOCUS 1.2)", "focus", {},
             planted.bill),
            ("6b. planted waste: the Labs' and the Reno colo's GPU nodes (inventory)", "inventory", {},
             planted.inventory),
            ("6c. planted waste: their pods (kubectl get pods -A -o json)", "kubernetes", {}, planted.pods),
            ("6d. planted waste: the DGX servers' NVML agent Parquet", "nvml", {}, planted.nvml),
            ("6e. planted waste: retraining runs from MLflow (a runs/search answer)", "mlflow", {}, planted.mlflow),
            ("6f. planted waste: the Labs' GenAI spans, prompts captured (OTLP/JSON lines)", "otel", {}, planted.otel),
            ("6g. planted waste: the Labs gateway's LiteLLM spend logs, prompts logged", "litellm", {},
             planted.litellm),
            ("6h. planted waste: the Labs' OpenAI traffic in the hourly usage rollup", "llm-usage", ROLLUP_MAPPING,
             planted.usage),
        )
        for step, kind, options, paths in gpu_steps + llm_steps + plant_steps:
            if paths:  # a short history plants nothing
                _say(step, ingest(store, sources.get(kind)(**options), list(paths)))
        waste_section, waste_facts = _waste_section(store, settings)
        watched = alerting.settings_for(settings)
        anomaly_section, anomaly_facts = alerting.anomaly_section(store, watched)

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
        llm_sections, llm_facts = _llm_sections(store, parse_window(LLM_WINDOW, end), settings, rules)
        budget_section, budget_facts = alerting.budget_section(store, watched, end)
        forecast_section, forecast_facts = alerting.forecast_section(store, watched)
        alert_sections = [anomaly_section, budget_section, forecast_section]
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
            *llm_sections,
            waste_section,
            *alert_sections,
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
            **llm_facts,
            **waste_facts,
            **anomaly_facts,
            **budget_facts,
            **forecast_facts,
            "charges in store": f"{store.con.execute('SELECT count(*) FROM focus_charges').fetchone()[0]:,}",
        }
    config = alerting.write_config(out)
    for s in [*sections[:3], *sections[5:8], *gpu_sections[1:], *llm_sections, waste_section, *alert_sections]:
        console.rule(f"[bold]{s.title}")
        hidden = CONSOLE_HIDDEN if any(s is x for x in llm_sections) else \
            ("recommendation",) if s is waste_section else ()
        render([{k: v for k, v in r.items() if k not in hidden} for r in s.rows[:15]])
    for r in waste_section.rows:  # the changes in full: a table column would cut them
        console.print(f"  {r['id']}  {r['recommendation']}", highlight=False)
    console.print(f"  achievable saving / month: {waste_facts['achievable saving / month']} (all findings: "
                  f"aifinops --db {db} recommend)", highlight=False)
    html = write_summary(out / "summary.html", "aifinops demo: an AI company's cloud bill, GPU fleet and LLM features",
                         sections, facts)
    console.rule("[bold]done")
    console.print(f"store: {db}\nHTML summary: {html}\n"
                  f"try: aifinops --db {db} costs --by tag:team,layer --window 30d\n"
                  f"     aifinops --db {db} tags --keys {','.join(DEMO_TAG_KEYS)}\n"
                  f"     aifinops --db {db} allocation --window {GPU_WINDOW} --aggregate label:team "
                  "--share-idle owner\n"
                  f"     aifinops --db {db} gpu utilization --by node_pool --window {GPU_WINDOW} --accumulate window\n"
                  f"     aifinops --db {db} unit-costs --by feature --outcome tickets_resolved --revenue {REVENUE}\n"
                  f"     aifinops --db {db} unit-costs --self-hosted\n"
                  f"     aifinops --db {db} unit-costs --reconcile\n"
                  f"     aifinops --db {db} prices show gpt-4.1 --provider azure\n"
                  f"     aifinops --db {db} recommend --window {WASTE_WINDOW}\n"
                  f"     aifinops --config {config} anomalies list\n"
                  f"     aifinops --config {config} budgets status --at {alerting.budget_day(end)}\n"
                  f"     aifinops --config {config} watch --once\n"
                  f"     aifinops --db {db} batches")
    return html


def _waste_section(store: Store, settings: Settings) -> tuple[Section, dict[str, str]]:
    """Run the waste rules over the waste window, keep the findings in the store (as ``aifinops recommend``
    does, so its ids and first-seen times are the demo's), and the top findings by achievable saving."""
    con = store.con
    window = parse_window(WASTE_WINDOW, data_extent(con)[1])
    result = waste.run(con, window, settings, known=findings_store.states(con))
    findings_store.record(con, [f.record() for f in result.findings], result.ran,
                          datetime.now(UTC).replace(tzinfo=None))
    shown = [f for f in result.findings if f.status != "dismissed"]
    rows = [{"id": f.id, "rule": f.rule, "scope": f.scope, "owner": f.owner,
             "monthlyWaste": f.monthly_waste.quantize(Decimal("0.01")),
             "achievableSaving": f.achievable_saving.quantize(Decimal("0.01")), "recommendation": f.recommendation}
            for f in shown[:TOP_FINDINGS]]
    section = Section(f"Top waste findings (last {WASTE_WINDOW})", rows, ("scope", "achievableSaving"), note=(
        f"The {TOP_FINDINGS} largest of {len(shown)} findings of the waste rules over {result.window}, per month: "
        "monthlyWaste is the spend that buys nothing, achievableSaving what the change saves once overlapping "
        "findings (the same dollars: an endpoint both always on and on too many GPUs) are reconciled. Besides the "
        "story's own waste, one instance of every anti-pattern is planted with a known size in Helix AI Labs and "
        "the Reno colo (aifinops/demo/waste_plants.py). aifinops recommend lists them all; aifinops recommend "
        "explain <id> shows the evidence and the saving's arithmetic."))
    return section, {"achievable saving / month": f"${result.total_saving:,.0f}"}


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


def _llm_sections(store: Store, window: Window, settings: Settings,
                  rules: list[LayerRule]) -> tuple[list[Section], dict[str, str]]:
    """Unit costs by feature (each per its own outcome), the self-hosted model beside API models, and the LLM
    usage against the ledger's AI-services charges, by provider; plus their facts."""
    con = store.con
    served = serving_costs(con, window, settings)
    by_metric = {metric: {r["feature"]: r for r in unit_costs(con, window, ["feature"], settings, served=served,
                                                                outcome=metric, revenue=REVENUE)}
                 for metric in dict.fromkeys(OUTCOMES.values())}
    features = []
    for name, r in by_metric[next(iter(by_metric))].items():
        metric = OUTCOMES.get(name)
        u = by_metric[metric][name] if metric else r
        ratio = {k: float(u[k]) if u[k] is not None else None
                 for k in ("costPerRequest", "costPer1kTokens", "costPerActiveUser")}
        features.append({
            "feature": name, "requests": u["requests"], "tokens": u["inputTokens"] + u["outputTokens"],
            "cost": u["cost"], "perRequest": ratio["costPerRequest"], "per1kTokens": ratio["costPer1kTokens"],
            "activeUsers": u["activeUsers"], "perActiveUser": ratio["costPerActiveUser"], "outcome": metric,
            "outcomes": int(u["outcome"]) if metric and u["outcome"] is not None else None,
            "perOutcome": float(u["costPerOutcome"]) if metric and u["costPerOutcome"] is not None else None,
            "revenue": u["revenue"], "grossMargin": u["grossMargin"], "unpricedRequests": u["unpricedRequests"],
            "sourceCost": u["sourceCost"], "drift": u["drift"]})
    by_model: dict[str, dict[str, Any]] = {}
    for r in self_hosted_report(con, window, served, settings):
        if r["requests"]:  # the other serving endpoints (embedder, ranker, summarizer-8b) report no request telemetry
            row = by_model.setdefault(r["model"], {
                "model": r["model"], "requests": r["requests"], "tokens": r["inputTokens"] + r["outputTokens"],
                "gpuHours": r["gpuHours"], "gpuCost": r["gpuCost"], "costPer1MTokens": r["costPer1MTokens"]})
            if r["comparedWith"]:  # one column per comparison, USD per 1M tokens
                row[str(r["comparedWith"])] = r["apiCostPer1MTokens"]
    hosted = list(by_model.values())
    usage = unit_costs(con, window, ["provider"], settings, served=served)
    ledger = ledger_by_provider(store.ibis().table("focus_charges"), window, rules)
    recon = reconcile(usage, ledger)
    sections = [
        Section(f"Unit costs by feature (last {LLM_WINDOW})", features, ("feature", "cost"), note=(
            "All LLM requests of the window (OTel spans, LiteLLM spend logs, the usage rollup), priced by aifinops at "
            "the bundled LiteLLM / genai-prices snapshot's rates; the self-hosted llama at its serving pods' GPU "
            "cost. per* columns are USD: per request, per 1K tokens, per active user, per outcome (each feature's "
            "own: tickets_resolved, searches_with_click, documents_summarized). grossMargin = (revenue - cost) / "
            "revenue. unpricedRequests have no price in any catalog (a Bedrock application inference profile ARN "
            "named as the model): counted, never costed at 0. drift = aifinops' cost - LiteLLM's own spend on the "
            "gateway's requests (its configured prices have no cache discount).")),
        Section(f"Self-hosted vs API models (last {LLM_WINDOW})", hosted, ("model", "costPer1MTokens"), note=(
            f"{SELF_HOSTED.model} on vLLM: the GPU cost of its serving pods (llm-serve-p4d) over the tokens they "
            "served, at the utilisation they had, per 1M tokens; beside it, USD per 1M of the same tokens at each "
            "API model's current standard price (llm.compare_with). qwen2.5-7b-asr-post is the Labs' ASR "
            "post-processor on an on-prem A100, up all day for one burst of requests (planted waste). Serving "
            "workloads whose model served no request telemetry are left out here (aifinops unit-costs "
            "--self-hosted lists them).")),
        Section(f"LLM usage vs the bill, by provider (last {LLM_WINDOW})", recon, ("provider", "ledgerCost"), note=(
            "usageCost: the requests priced by aifinops; ledgerCost: the ledger's ai-services charges of the provider "
            "(EffectiveCost). coverage is not exactly 1 because the two price differently: the demo bill charges "
            "every input token at its list input rate, while the usage says which were prompt-cache reads (priced "
            "at the catalogs' cache-read rate); the snapshot prices Bedrock's US cross-region profile (the "
            "summarizer) and Azure's text-embedding-3-small 10% above the demo's rates; the nightly Vertex batch "
            "job is priced at the batch tier; unpriced requests add nothing. vllm has usage but no ai-services "
            "line: the self-hosted model's cost is GPU cost, in the compute-gpu layer. openai and anthropic are "
            "Helix AI Labs' own API accounts (the planted waste), invoiced outside the FOCUS feed. A rollup row "
            "(many requests) takes the context tier of its average request, as each of its requests would.")),
    ]
    copilot = next((f for f in features if f["feature"] == "support-copilot"), None)
    api = [r for r in recon if r["ledgerCost"]]
    billed = sum((r["ledgerCost"] for r in api), Decimal(0))
    facts = {
        f"LLM feature cost ({LLM_WINDOW})": f"${sum((f['cost'] for f in features), Decimal(0)):,.0f}",
        "cost per resolved ticket": f"${copilot['perOutcome']:.3f}" if copilot and copilot["perOutcome"] else "n/a",
        "usage covers the AI bill": f"{float(sum((r['usageCost'] for r in api), Decimal(0)) / billed):.0%}"
        if billed else "n/a",
        f"{SELF_HOSTED.model} per 1M tokens": next((f"${r['costPer1MTokens']:,.2f}" for r in hosted
                                                     if r["model"] == SELF_HOSTED.model), "n/a"),
    }
    return sections, facts
