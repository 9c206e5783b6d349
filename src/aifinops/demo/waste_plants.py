"""Waste planted in the demo with a known size: one instance of every anti-pattern the waste rules look for,
each with its monthly saving computed in closed form from its own parameters, and the story's own waste.

The plants live in a part of Helix AI the rest of the story does not touch, so that each one shows up as the
finding it was planted for and as nothing else:

- **Helix AI Labs**, the applied-research org set up this year, with a billing account of its own on AWS and on
  Google Cloud (a FOCUS file of its own: a separate billing account is a separate restatement key, so it never
  replaces the company's bill). Its GPU nodes are billed by the hour while they run (an autoscaled node pool
  has a node only while a pod needs it) at the catalog's on-demand prices;
- **the Reno colo**: two on-prem DGX A100 servers, priced in the inventory at their amortised cost (``ON_PREM``
  per hour, no bill), with NVML telemetry.

Each plant is a ``Plant``: the rule, the finding's scope, the expected monthly saving (for ``untagged-spend``,
which saves nothing by design, the expected monthly *untagged cost*), the relative tolerance, and the story.
Amounts are per month as the engine scales them: a window amount x ``month_hours`` / window hours (730.5 / 720
for the demo's 30-day window, ``MONTH``). Every plant runs in the whole 30-day window (``PLANT_DAYS``), so its
arithmetic is the window's; a shorter demo history (tests with ``days`` < 30) gets no plants.

The story's own anti-patterns (notebooks held idle, endpoints always on at low activity, OOM retrains without
checkpoints, a checkpoint bucket without lifecycle, on-demand baselines, training on expensive GPUs) are found
too; they are declared as ``Story`` entries (a scope pattern and why), since their size is whatever the seeded
story makes it.

The Labs' LLM traffic goes to API accounts of their own (OpenAI, Anthropic: invoiced outside the FOCUS feed) and
to a self-hosted model on a DGX; token counts are exact per request and prices are the bundled catalogs' through
the one matching rule (``llm_prices.candidates``), so the LLM plants' savings are closed-form too.

Files (``write_plants``), each in a format a product source reads: ``bill/labs.parquet`` (FOCUS 1.2, ``ingest
focus``), ``inventory.csv`` (``ingest inventory``), ``pods/<cluster>.json`` (``kubectl get pods -A -o json``,
``ingest kubernetes``), ``nvml/*.parquet`` (the NVML agent's files, ``ingest nvml``), ``mlflow/runs_search.json``
(a ``runs/search`` answer, ``ingest mlflow``), ``llm/labs-traces.jsonl`` (OTLP/JSON GenAI spans, some with
content capture on, ``ingest otel``), ``llm/labs-spend-logs.csv`` (LiteLLM spend logs with prompts logged,
``ingest litellm``) and ``llm/labs-usage-hourly.csv`` (the platform's hourly rollup, ``ingest llm-usage`` with
``llm_usage.ROLLUP_MAPPING``). Deterministic (no randomness: the plants' parameters are constants); ~16k rows
and ~18 MB (mostly the contract-review spans' system prompts), written in ~1 s and ingested in ~2-3 s.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aifinops.analysis.llm_prices import candidates
from aifinops.demo import catalog as cat
from aifinops.demo.fleet import Account, Scenario
from aifinops.demo.rows import DAY, HOUR, I64, Rows, U, micro, priced, tags_json
from aifinops.interfaces.cli.agent import SCHEMA
from aifinops.waste.gpu_market import Price, bundled_prices, bundled_throughput

__all__ = ["MONTH", "PLANT_DAYS", "STORY", "Plant", "PlantFiles", "Story", "plants", "unplanned", "write_plants"]

PLANT_DAYS = 30  # the plants' window: the demo's GPU and waste window
MONTH_HOURS = Decimal("730.5")  # waste.month_hours (365.25 x 24 / 12)
WINDOW_HOURS = Decimal(PLANT_DAYS * 24)
#: a window amount x this = per month (the engine's RuleContext.month_factor for a 30-day window)
MONTH = MONTH_HOURS / Decimal(repr(float(WINDOW_HOURS)))
ON_PREM = Decimal("16.00")  # $ per hour of a DGX A100 in the colo: $2.00 per GPU-hour, amortised over 4 years
ON_PREM_GPU_HOUR = ON_PREM / 8
STEP_S = 300  # NVML samples every 5 minutes, as the demo's fleet

LABS_AWS = Account("aws-labs", "aws", "606214378950", "Helix AI Labs (AWS Org)", "Management Account",
                   "771938204615", "helix-labs-train", "Member Account")
LABS_EVAL = Account("gcp-labs-eval", "gcp", "01C7D8-E9F0A1-B2C3D4", "Helix AI Labs GCP", "Billing Account",
                    "helix-labs-eval", "helix-labs-eval", "Project")
LABS_MEDIA = Account("gcp-labs-media", "gcp", "01C7D8-E9F0A1-B2C3D4", "Helix AI Labs GCP", "Billing Account",
                     "helix-labs-media", "helix-labs-media", "Project")
LABS = (LABS_AWS, LABS_EVAL, LABS_MEDIA)


@dataclass(frozen=True)
class Plant:
    """An expected finding: ``rule`` on ``scope`` saving ``monthly_saving`` a month (``untagged-spend``: costing
    ``monthly_saving`` a month, untagged) within ``tolerance`` (relative)."""

    rule: str
    scope: str
    monthly_saving: Decimal
    tolerance: float
    story: str


@dataclass(frozen=True)
class Story:
    """A finding the story produces: ``rule`` on a scope matching ``scope_pattern`` (a regular expression matched
    against the whole scope); its size is the seeded story's, not computed."""

    rule: str
    scope_pattern: str
    why: str

    def matches(self, rule: str, scope: str) -> bool:
        return rule == self.rule and re.fullmatch(self.scope_pattern, scope) is not None


STORY: tuple[Story, ...] = (
    Story("underused-gpu",
          r"(search/embed-small-triton|ranking/ranker-v7-serving|doc-summarizer(-staging)?/summarizer-8b)",
          "inference endpoints always on at low, diurnal and bursty activity"),
    Story("underused-gpu", r"jupyterhub/jupyter-[a-z]+", "JupyterHub notebooks held for hours at ~0-3% activity"),
    Story("idle-dev-environment", r"jupyterhub/jupyter-[a-z]+",
          "JupyterHub servers left open for hours with no idle-culler"),
    Story("failed-runs-without-checkpoints", r"ranker-v7-retrain-\d{8}",
          "the daily ranker retrain OOMs on some days and the Job retries from zero"),
    Story("failed-runs-without-checkpoints", r"summarizer-8b-sft-\d{4}-\d{4}",
          "an Azure ML fine-tune hangs, fails and is rerun from zero"),
    Story("storage-bloat", r"arn:aws:s3:::helix-llm-checkpoints",
          "the LLM checkpoint bucket grows with every training day and has no lifecycle rule"),
    Story("commitment-coverage", r"(eks-search-prod/search-embed-g5|aks-genai-prod/summarizer-nc24|"
                                 r"gke-recsys-prod/recsys-serve-l4|eks-ml-prod/summarizer-g6e)",
          "always-on inference pools bought on demand: a steady baseline a commitment would cover"),
    Story("cheaper-hardware", r"/distill-7b-rl",
          "the acquired lab's RL distillation runs on spot A100-40GBs; spot H200s do the same work for less"),
    Story("batch-on-realtime", r"aws\.bedrock/us\.anthropic\.claude-sonnet-4-5[^/]*/doc-summarizer",
          "the doc summarizer's bulk summaries (service doc-summarizer-batch) go through real-time Bedrock"),
    Story("batch-on-realtime", r"gcp\.vertex_ai/gemini-2\.5-flash/recsys-explanations",
          "the catalog-enrichment pipeline's explanations run on the standard tier beside the nightly batch job"),
    Story("batch-on-realtime", r"gcp\.vertex_ai/gemini-2\.5-pro/analytics-assistant",
          "the scheduled analytics reports (service analytics-reports) are real-time Gemini 2.5 Pro calls"),
)


# -- time and identity ---------------------------------------------------------------------------------------

def _end(sc: Scenario) -> dt.datetime:
    return sc.start + dt.timedelta(days=sc.days)


def _window_start(sc: Scenario) -> dt.datetime:
    return _end(sc) - dt.timedelta(days=PLANT_DAYS)


def _hash(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def _uid(*parts: object) -> str:
    h = _hash(*parts)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _rfc(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}Z"


def _ms(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp() * 1000)


# -- the plants' machines ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    """A plant GPU node: in the inventory, and in the Labs bill by the hour when ``account`` is set."""

    name: str
    pool: str  # cluster/pool, the inventory's node_pool
    cluster: str
    gpu_model: str
    gpus: int
    vcpus: int
    memory_gib: int
    instance_type: str
    price: Decimal  # $ per hour
    owner: str
    account: Account | None = None  # None: on-prem, priced by the inventory
    region: str = "on-prem"
    zone: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    hours: Callable[[Scenario], np.ndarray] | None = None  # hour indices billed (default: every hour)

    @property
    def resource_id(self) -> str | None:
        a = self.account
        if a is None:
            return None
        if a.provider == "aws":
            return f"arn:aws:ec2:{self.region}:{a.id}:instance/i-0{_hash(self.name)[:16]}"
        return f"//compute.googleapis.com/projects/{a.id}/zones/{self.zone}/instances/{self.name}"

    def billed(self, sc: Scenario) -> np.ndarray:
        return self.hours(sc) if self.hours else np.arange(sc.days * 24)


def _table(instance_type: str, pricing_model: str = "on_demand") -> Price:
    """An instance's row in the bundled GPU price table (``gpu_market``: the prices the GPU rules compare with)."""
    return next(p for p in bundled_prices() if p.instance_type == instance_type and p.pricing_model == pricing_model)


def _table_hourly(instance_type: str) -> Decimal:
    hourly = _table(instance_type).usd_per_hour
    assert hourly is not None
    return hourly


def _nightly(first: int, last: int) -> Callable[[Scenario], np.ndarray]:
    """Hours [first, last) of every day of the scenario (UTC)."""
    return lambda sc: np.array([d * 24 + h for d in range(sc.days) for h in range(first, last)], I64)


def _hours_between(a: Callable[[Scenario], dt.datetime], b: Callable[[Scenario], dt.datetime],
                   ) -> Callable[[Scenario], np.ndarray]:
    return lambda sc: np.arange(sc.hour_index(a(sc)), sc.hour_index(b(sc)), dtype=I64)


def _labs_tags(team: str, project: str, model: str) -> tuple[tuple[str, str], ...]:
    return (("team", team), ("project", project), ("env", "prod"), ("model", model))


SPOT_START_DAY, SPOT_HOURS = 20, 96  # the p5 pretraining run: 96 h on one on-demand p5.48xlarge, from day 20


def _spot_from(sc: Scenario) -> dt.datetime:
    return _window_start(sc) + dt.timedelta(days=SPOT_START_DAY)


def _spot_to(sc: Scenario) -> dt.datetime:
    return _spot_from(sc) + dt.timedelta(hours=SPOT_HOURS)


EVAL_NODES = 4
EVAL = tuple(Node(f"gke-labs-eval-l4-pool-3c9a71e2-{k:04x}", "gke-labs/eval-l4", "gke-labs", "L4", 1, 8, 32,
                  "g2-standard-8", cat.INSTANCE_TYPES["g2-standard-8"][5], "ml-platform", LABS_EVAL, "us-central1",
                  "us-central1-a", (("goog-k8s-cluster-name", "gke-labs"),)) for k in (0x1a2b, 0x3c4d, 0x5e6f, 0x7a8b))
FEATURIZE_NODES = 3
FEATURIZE = tuple(Node(f"gke-labs-featurize-a2-pool-8d41f0b7-{k:04x}", "gke-labs/featurize-a2", "gke-labs",
                       "A100-40GB", 1, 12, 85, "a2-highgpu-1g", cat.INSTANCE_TYPES["a2-highgpu-1g"][5], "recsys",
                       LABS_MEDIA, "us-central1", "us-central1-b",
                       _labs_tags("recsys", "video-recs", "frame-encoder-v2")) for k in (0x2f1e, 0x4d3c, 0x6b5a))
CATALOG_NODES, CATALOG_FROM, CATALOG_TO = 4, 1, 9  # 4 nodes, 01:00-09:00 UTC every night
CATALOG = tuple(Node(f"ip-10-64-{12 + k}-{40 + 7 * k}.ec2.internal", "eks-labs/catalog-l4", "eks-labs", "L4", 1, 32,
                     256, "gr6.8xlarge", _table_hourly("gr6.8xlarge"), "search", LABS_AWS, "us-east-1", "us-east-1a",
                     _labs_tags("search", "catalog-search", "catalog-embed-v3"), _nightly(CATALOG_FROM, CATALOG_TO))
                for k in range(CATALOG_NODES))
PRETRAIN = Node("ip-10-64-30-5.ec2.internal", "eks-labs/train-p5", "eks-labs", "H100-80GB", 8, 192, 2048,
                "p5.48xlarge", cat.INSTANCE_TYPES["p5.48xlarge"][5], "ml-platform", LABS_AWS, "us-east-1",
                "us-east-1d", _labs_tags("ml-platform", "labs-pretrain", "llama-8b-labs"),
                _hours_between(_spot_from, _spot_to))
DGX = tuple(Node(f"reno-dgx-{k:02d}", "onprem-reno/dgx-a100", "onprem-reno", "A100-SXM4-80GB", 8, 256, 2048,
                 "DGX A100 640GB", ON_PREM, "ml-platform") for k in (1, 2))
NODES: tuple[Node, ...] = (*EVAL, *FEATURIZE, *CATALOG, PRETRAIN, *DGX)

# NVML name, MiB, TDP W, idle W of the on-prem GPUs
DGX_GPU = ("NVIDIA A100-SXM4-80GB", 81920, 400, 52)


# -- the plants' workloads -----------------------------------------------------------------------------------

@dataclass
class Pod:
    """A plant pod: where and when it holds GPUs, how busy it keeps them (``sm``: SM activity at given times)."""

    name: str
    namespace: str
    node: Node
    gpus: tuple[int, ...]
    start: dt.datetime
    end: dt.datetime | None  # None: running when the data ends
    labels: dict[str, str]
    owner_kind: str
    owner_name: str
    image: str
    container: str
    phase: str = "Succeeded"
    exit_code: int = 0
    reason: str | None = None
    sm: Callable[[np.ndarray], np.ndarray] | None = None  # None: no telemetry (the node has no agent)
    #: share of each held GPU's memory in use (the model and its caches). 60%: more than a MIG slice smaller than
    #: the GPU holds, so underused-gpu finds no MIG profile for a 1-GPU pod
    memory: float = 0.6


def _const(x: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.full(len(t), x)


def _busy_until(hour: int, busy: float, idle: float) -> Callable[[np.ndarray], np.ndarray]:
    """``busy`` activity from 00:00 to ``hour`` UTC, ``idle`` after it."""
    return lambda t: np.where(t.astype("datetime64[h]").astype(np.int64) % 24 < hour, busy, idle)


def _daily_burst(hour: int, minutes: int, busy: float, idle: float) -> Callable[[np.ndarray], np.ndarray]:
    """``busy`` activity for ``minutes`` from ``hour`` UTC every day, ``idle`` otherwise."""
    def sm(t: np.ndarray) -> np.ndarray:
        minute = t.astype("datetime64[m]").astype(np.int64) % 1440
        return np.where((minute >= hour * 60) & (minute < hour * 60 + minutes), busy, idle)
    return sm


WHISPER_ACTIVITY = 0.10  # 2 replicas x 4 A100s at 10% SM activity
NOTEBOOK_BUSY_UNTIL, NOTEBOOK_BUSY, NOTEBOOK_IDLE = 10, 0.9, 0.01  # used 00:00-10:00 UTC (09:00-19:00 in Seoul)
TRAIN_ACTIVITY = 0.9
RETRAIN_DAYS, RETRAIN_HOURS = (-5, 2, 9, 16, 23), 12  # weekly cycles, from the window's start; the first before it
RETRAIN_LOSS = (0.412, 0.398, 0.397, 0.401, 0.3965)  # val_loss per cycle: only the second improves by >= 0.5%
DUPLICATE_DAYS, DUPLICATE_HOURS = (4, 11), 36  # search, then recsys: the same config and data
FAILED_DAY = 18
FAILED_ATTEMPTS = ((0, 20, "Failed"), (21, 35, "Failed"), (36, 54, "Succeeded"))  # hours from the day's start
RUN_GPUS = (4, 5, 6, 7)  # the training runs' GPUs on reno-dgx-02 (GPU 0: the notebook; 1: the endpoint)
#: the self-hosted ASR post-processor (vLLM, 1 A100 of reno-dgx-02): always up, called once a day in a burst
ENDPOINT_MODEL, ENDPOINT_GPU = "qwen2.5-7b-asr-post", 1
BURST_HOUR, BURST_REQUESTS, BURST_GAP_S = 14, 30, 60  # 14:00-14:29 UTC, a request a minute


def _pods(sc: Scenario) -> list[Pod]:
    """Every plant pod (see ``plants`` for what each one plants)."""
    start, end, w0 = sc.start, _end(sc), _window_start(sc)
    day = dt.timedelta(days=1)
    pods: list[Pod] = []
    for d in range(sc.days):  # the nightly eval shard: node 0 of the eval pool, 01:00-05:00
        s = start + d * day + dt.timedelta(hours=1)
        job = f"eval-harness-{s:%Y%m%d}"
        pods.append(Pod(f"{job}-{_hash(job)[:5]}", "labs-eval", EVAL[0], (0,), s, s + dt.timedelta(hours=4),
                        {"team": "ml-platform", "app": "eval-harness", "batch.kubernetes.io/job-name": job}, "Job",
                        job, "us-docker.pkg.dev/helix-labs/eval/harness:1.9.0", "harness"))
    rs = "frame-featurizer-5c7f9d8b6"
    for k, node in enumerate(FEATURIZE):  # always on: 3 replicas x 1 A100, on demand
        pods.append(Pod(f"{rs}-{_hash(rs, k)[:5]}", "video", node, (0,), start, None,
                        {"team": "recsys", "app": "frame-featurizer", "pod-template-hash": rs.rsplit("-", 1)[1]},
                        "ReplicaSet", rs, "us-docker.pkg.dev/helix-labs/video/featurizer:2.1.4", "featurizer",
                        phase="Running"))
    rs = "catalog-embedder-6f8d9c7b5d"
    for d in range(sc.days):  # KEDA scales the embedder to 4 replicas 01:00-09:00 each night
        s = start + d * day + dt.timedelta(hours=CATALOG_FROM)
        for k, node in enumerate(CATALOG):
            pods.append(Pod(f"{rs}-{_hash(rs, d, k)[:5]}", "catalog", node, (0,), s,
                            s + dt.timedelta(hours=CATALOG_TO - CATALOG_FROM),
                            {"team": "search", "app": "catalog-embedder", "pod-template-hash": rs.rsplit("-", 1)[1]},
                            "ReplicaSet", rs, "ghcr.io/helix-ai/catalog-embedder:3.0.2", "embedder"))
    job = "llama-8b-pretrain-labs"  # a checkpointing PyTorchJob on an on-demand p5
    pods.append(Pod(f"{job}-master-0", "labs-train", PRETRAIN, tuple(range(8)), _spot_from(sc), _spot_to(sc),
                    {"team": "ml-platform", "run": job, "checkpoint-interval": "30m",
                     "training.kubeflow.org/job-name": job, "training.kubeflow.org/replica-type": "master"},
                    "PyTorchJob", job, "ghcr.io/helix-ai/llm-train:0.14.1", "pytorch"))
    rs = "whisper-asr-7b9c6d5f4"
    for k in range(2):  # 2 replicas x 4 A100s on reno-dgx-01, at 10% activity
        pods.append(Pod(f"{rs}-{_hash(rs, k)[:5]}", "media", DGX[0], tuple(range(4 * k, 4 * k + 4)), start, None,
                        {"team": "genai-apps", "app": "whisper-asr", "pod-template-hash": rs.rsplit("-", 1)[1]},
                        "ReplicaSet", rs, "ghcr.io/helix-ai/whisper-asr:1.4.0", "asr", phase="Running",
                        sm=_const(WHISPER_ACTIVITY), memory=0.2))
    pods.append(Pod("asr-explore-0", "kubeflow-user-sjeon", DGX[1], (0,), start, None,  # the Kubeflow notebook
                    {"team": "research", "app": "asr-explore", "notebook-name": "asr-explore",
                     "statefulset": "asr-explore"}, "StatefulSet", "asr-explore",
                    "kubeflownotebookswg/jupyter-pytorch-cuda-full:v1.9.0", "asr-explore", phase="Running",
                    sm=_busy_until(NOTEBOOK_BUSY_UNTIL, NOTEBOOK_BUSY, NOTEBOOK_IDLE)))
    rs = "qwen-asr-post-84d6b7c9f"
    pods.append(Pod(f"{rs}-{_hash(rs)[:5]}", "media", DGX[1], (ENDPOINT_GPU,), start, None,
                    {"team": "genai-apps", "app": "qwen-asr-post", "model": ENDPOINT_MODEL,
                     "pod-template-hash": rs.rsplit("-", 1)[1]}, "ReplicaSet", rs, "vllm/vllm-openai:v0.6.3", "vllm",
                    phase="Running", sm=_daily_burst(BURST_HOUR, BURST_REQUESTS, 0.6, 0.02)))
    for d in RETRAIN_DAYS:  # weekly retraining cycles of asr-whisper-ft
        s = w0 + d * day
        if s < start:
            continue  # the first cycle's GPU time is before the data (its metrics are in MLflow)
        run = f"asr-whisper-ft-{s:%Y%m%d}"
        pods.append(Pod(f"{run}-{_hash(run)[:5]}", "media", DGX[1], RUN_GPUS, s, s + dt.timedelta(hours=RETRAIN_HOURS),
                        {"team": "genai-apps", "app": "asr-whisper-ft", "run": run,
                         "batch.kubernetes.io/job-name": run}, "Job", run, "ghcr.io/helix-ai/whisper-ft:1.4.0",
                        "trainer", sm=_const(TRAIN_ACTIVITY)))
    for team, d in zip(("search", "recsys"), DUPLICATE_DAYS, strict=True):  # the same fine-tune, twice
        s = w0 + d * day
        run = f"{team}-e5-large-ft-{s:%m%d}"
        pods.append(Pod(f"{run}-{_hash(run)[:5]}", team, DGX[1], RUN_GPUS, s, s + dt.timedelta(hours=DUPLICATE_HOURS),
                        {"team": team, "app": "e5-finetune", "run": run, "config-hash": "9f2c41d",
                         "data-hash": "5be07a3", "batch.kubernetes.io/job-name": run}, "Job", run,
                        "ghcr.io/helix-ai/e5-finetune:0.3.1", "trainer", sm=_const(TRAIN_ACTIVITY)))
    run = "asr-distill-v2"  # two OOMs, each retry from zero, then a success
    for k, (a, b, phase) in enumerate(FAILED_ATTEMPTS):
        s = w0 + FAILED_DAY * day
        failed = phase == "Failed"
        pods.append(Pod(f"{run}-{_hash(run, k)[:5]}", "research", DGX[1], RUN_GPUS, s + dt.timedelta(hours=a),
                        s + dt.timedelta(hours=b), {"team": "research", "app": "asr-distill", "run": run,
                                                    "batch.kubernetes.io/job-name": run},
                        "Job", run, "ghcr.io/helix-ai/asr-distill:2.0.0", "trainer", phase=phase,
                        exit_code=137 if failed else 0, reason="OOMKilled" if failed else None,
                        sm=_const(TRAIN_ACTIVITY)))
    return [p for p in pods if p.start < end]


# -- the plants, with their sizes ----------------------------------------------------------------------------

def _training_throughput(gpu_type: str) -> Decimal:
    row = next(t for t in bundled_throughput() if t.gpu_model == gpu_type)
    assert row.training is not None
    return Decimal(repr(row.training))


def _spot_ratio(instance_type: str) -> Decimal:
    """Spot / on-demand of the instance's own pair of rows (what spot-candidate uses when the table has it)."""
    od, spot = _table(instance_type), _table(instance_type, "spot")
    assert od.usd_per_hour and spot.usd_per_hour
    return spot.usd_per_hour / od.usd_per_hour


def _idle_stretch_hours() -> int:
    """Idle hours the culler would have saved on the notebook: per day of the window one idle stretch from
    ``NOTEBOOK_BUSY_UNTIL`` to midnight (the next day starts busy), less its first hour."""
    return PLANT_DAYS * (24 - NOTEBOOK_BUSY_UNTIL - 1)


def _gcp_commitment_discount(sc: Scenario) -> Decimal:
    """The discount the ledger shows for Google Cloud: the company's a3 committed use discount, the only GCP
    usage under a commitment (1 - CUD rate / on-demand rate)."""
    cud = next(c for c in sc.commitments if c.provider == "gcp")
    return 1 - cud.hourly_rate / cud.list_price


BUCKET = "helix-labs-asr-checkpoints"
BUCKET_GB0, BUCKET_GB_PER_DAY, BUCKET_PRICE = 20_000, 400, Decimal("0.023")  # GB at the start, GB/day, $/GB-month


def _bucket_gb(day: np.ndarray) -> np.ndarray:
    return BUCKET_GB0 + BUCKET_GB_PER_DAY * day


@dataclass(frozen=True)
class Traffic:
    """One plant's LLM traffic: who calls which model how, with exact token counts per request."""

    provider: str
    model: str
    feature: str
    team: str
    service: str
    input_tokens: int
    output_tokens: int


#: the nightly customer digests: 20,000 requests at 02:00 UTC every night, standard tier (the rollup)
DIGEST = Traffic("openai", "gpt-4.1-mini", "nightly-digest", "genai-apps", "digest-worker", 3_000, 400)
DIGEST_REQUESTS, DIGEST_HOUR = 20_000, 2
#: the ticket tagger: 1,500 requests an hour around the clock, 600 tokens in, a dozen out (the rollup)
TAGGER = Traffic("openai", "gpt-4.1", "ticket-tagger", "genai-apps", "support-api", 600, 12)
TAGGER_PER_HOUR = 1_500
OPUS = "claude-opus-4-1-20250805"
#: contract review: a request every 4 min 14:00-19:00 UTC with the same long system prompt (OTel, content on)
REVIEW = Traffic("anthropic", OPUS, "contract-review", "data-eng", "contract-review", 0, 350)  # input: prefix + 75
REVIEW_FROM, REVIEW_TO, REVIEW_GAP_MIN, REVIEW_USER_TOKENS = 14, 19, 4, 75
#: the HR policy assistant: 15 questions, each asked 8 times a day at the same times (LiteLLM, prompts logged)
POLICY = Traffic("anthropic", OPUS, "policy-qa", "ml-platform", "policy-qa", 220, 600)
POLICY_QUESTIONS, POLICY_ASKS, POLICY_FROM = 15, 8, 9  # asked hourly from 09:00 UTC (+ q minutes)
REVIEW_SYSTEM = " ".join(
    f"Rule {k}: when a clause of the contract touches {topic}, quote it, say whether it departs from the Helix "
    f"standard position and by how much, and propose the fallback wording from playbook section {k}."
    for k, topic in enumerate(("limitation of liability", "indemnities", "data protection", "termination",
                               "intellectual property", "payment terms", "governing law", "confidentiality",
                               "service levels", "audit rights", "subprocessors", "insurance", "assignment",
                               "warranties", "non-solicitation", "publicity", "export control", "anti-bribery",
                               "force majeure", "change of control", "most favoured customer", "escrow",
                               "acceptance testing", "open source"), start=1))
POLICY_SYSTEM = "You answer employees' questions about Helix AI's HR policies from the handbook. Be brief."


def _system_instructions(text: str) -> str:
    """``gen_ai.system_instructions`` as the current GenAI conventions record it (a JSON array of parts)."""
    return json.dumps([{"type": "text", "content": text}], separators=(",", ":"))


def _prefix_tokens(canonical: str) -> int:
    """The prefix's tokens as the sources count them: its canonical JSON's characters / 4, rounded half up."""
    return (len(canonical) * 2 + 4) // 8


def _price(con: duckdb.DuckDBPyConnection, t: Traffic, model: str | None = None, tier: str | None = None,
           input_tokens: int | None = None) -> dict[str, Any]:
    """The catalog row a request of ``t`` is priced at (the one matching rule, ``llm_prices``)."""
    rows = candidates(con, model or t.model, t.provider, tier=tier, input_tokens=input_tokens or t.input_tokens)
    return next(r for r in rows if r["rank"] == 1)


def _mtok(r: dict[str, Any], part: str) -> Decimal:
    return Decimal(r[f"{part}_per_mtok"] or 0) / 1_000_000


def plants(sc: Scenario) -> list[Plant]:
    """The plants of ``sc`` with their expected monthly savings (none when the history is shorter than
    ``PLANT_DAYS``): the comment above each gives its arithmetic, its ``story`` what was planted. The window is
    the demo's 30 days (720 h); ``MONTH`` = 730.5 / 720 turns a window amount into a month's."""
    if sc.days < PLANT_DAYS:
        return []
    out: list[Plant] = []
    h = WINDOW_HOURS

    # idle-gpu-capacity: 4 x g2-standard-8 (1 L4), only node 0 runs the nightly eval shard, so 3 GPUs are idle in
    # every hour: remove 3 nodes. Saving = 3 GPUs x 720 h x $0.8536/GPU-h x 730.5 / 720.
    p = EVAL[0].price
    out.append(Plant("idle-gpu-capacity", EVAL[0].pool, 3 * h * p * MONTH, 0.01,
                     "the Labs eval pool was sized for 4 parallel shards; the harness now runs one shard nightly"))
    # untagged-spend: the eval pool's nodes carry only GKE's cluster label: all of helix-labs-eval is untagged.
    # Monthly untagged cost = 4 nodes x 720 h x $0.8536 x 730.5 / 720.
    out.append(Plant("untagged-spend", f"ledger:{LABS_EVAL.name}", EVAL_NODES * h * p * MONTH, 0.01,
                     "GKE node auto-provisioning created the eval pool with only goog-k8s-cluster-name: no team"))
    # commitment-coverage: 3 replicas x 1 A100 (a2-highgpu-1g, on demand, $3.6735/h) in every hour; the ledger's
    # GCP commitment discount is 1 - 55.5975 / 88.25 = 0.37. Saving = 3 x 720 h x $3.6735 x 0.37 x 730.5 / 720.
    out.append(Plant("commitment-coverage", FEATURIZE[0].pool,
                     FEATURIZE_NODES * h * FEATURIZE[0].price * _gcp_commitment_discount(sc) * MONTH, 0.01,
                     "the video featurizer runs 3 A100s around the clock at on-demand prices"))
    # cheaper-hardware: 4 x 1 L4 (gr6.8xlarge, $2.4464/GPU-h) 8 h a night = 960 GPU-h; the cheapest AWS on-demand
    # offer for that training-class work is the L40S of g6e.xlarge ($1.861/GPU-h) at 0.3659 vs 0.1223 the
    # throughput: saving = 960 x ($2.4464 - $1.861 x 0.1223 / 0.3659) x 730.5 / 720.
    gpu_hours = Decimal(CATALOG_NODES * (CATALOG_TO - CATALOG_FROM) * PLANT_DAYS)
    now = _table("gr6.8xlarge").usd_per_gpu_hour
    alt = _table("g6e.xlarge").usd_per_gpu_hour * _training_throughput("L4") / _training_throughput("L40S")
    out.append(Plant("cheaper-hardware", "catalog/catalog-embedder-6f8d9c7b5d", gpu_hours * (now - alt) * MONTH, 0.01,
                     "the nightly catalog re-embedding runs on L4s; an L40S does it for less"))
    # spot-candidate: 96 h on one on-demand p5.48xlarge ($98.32/h), checkpoints every 30 min. Spot = r = 20.9934 /
    # 98.32 of on-demand (the catalog's p5.48xlarge pair); 0.05 interruptions per node-hour each re-run 15 min:
    # saving = C - C r - 0.05 x 96 x 0.25 h x C r / 96 = C (1 - 1.0125 r), C = 96 x $98.32, x 730.5 / 720.
    r = _spot_ratio("p5.48xlarge")
    cost = SPOT_HOURS * PRETRAIN.price
    out.append(Plant("spot-candidate", "llama-8b-pretrain-labs", cost * (1 - Decimal("1.0125") * r) * MONTH, 0.01,
                     "a 4-day pretraining run that checkpoints every 30 min, on an on-demand p5"))
    # storage-bloat: the bucket grows 400 GB a day from 20,000 GB and nothing deletes. Over the window's days the
    # rule extrapolates the size 30 days before the last day linearly: first day's GB - 400 (the window is 30 days
    # of daily lines); saving = that x $0.023 per GB-month / 31 days of October x 730.5 h / 24 h (the last day's
    # cost at a month's rate).
    first = sc.days - PLANT_DAYS
    last = _end(sc) - dt.timedelta(days=1)
    month_days = calendar.monthrange(last.year, last.month)[1]
    old_gb = Decimal(int(_bucket_gb(np.array([first]))[0]) - BUCKET_GB_PER_DAY)
    out.append(Plant("storage-bloat", f"arn:aws:s3:::{BUCKET}",
                     old_gb * BUCKET_PRICE / month_days * MONTH_HOURS / 24, 0.01,
                     "the Labs ASR checkpoint bucket gains 400 GB a day and has no lifecycle rule"))
    # underused-gpu: whisper-asr holds 2 x 4 A100s (all of reno-dgx-01, $16/h) at 10% activity: 4 x 0.1 / 0.7 of
    # a GPU's work per replica, and 4 x 20% of a GPU's memory -> 1 GPU each.
    # Saving = $16 x 720 h x (1 - 1/4) x 730.5 / 720.
    out.append(Plant("underused-gpu", "media/whisper-asr", ON_PREM * h * Decimal("0.75") * MONTH, 0.01,
                     "the ASR service got 4 A100s per replica for a launch whose traffic never came"))
    # idle-dev-environment: the Kubeflow notebook asr-explore holds 1 A100 ($2/GPU-h) all day and is used
    # 00:00-10:00 UTC: each day one 14 h idle stretch, the culler (1 h) saves 13 h. Saving = 30 x 13 h x $2.
    out.append(Plant("idle-dev-environment", "kubeflow-user-sjeon/asr-explore",
                     _idle_stretch_hours() * ON_PREM_GPU_HOUR * MONTH, 0.01,
                     "a Kubeflow notebook used 10 hours a day keeps its A100 the other 14"))
    # failed-runs-without-checkpoints: asr-distill-v2 (4 A100s, $8/h) OOMs after 20 h and after 14 h, each retry
    # from zero. Saving = failed $8 x 34 h - the loss at hourly checkpoints (0.5 h of each) $8 x 0.5 x 2.
    rate = 4 * ON_PREM_GPU_HOUR
    failed = [b - a for a, b, phase in FAILED_ATTEMPTS if phase == "Failed"]
    out.append(Plant("failed-runs-without-checkpoints", "asr-distill-v2",
                     rate * (sum(failed) - Decimal("0.5") * len(failed)) * MONTH, 0.01,
                     "a distillation run OOMs twice and restarts from step 0 each time"))
    # duplicate-runs: search and recsys fine-tune e5-large on the same config and data, 36 h on 4 A100s each;
    # the second run is the repeat: $8 x 36 h.
    out.append(Plant("duplicate-runs", "config-hash=9f2c41d;data-hash=5be07a3", rate * DUPLICATE_HOURS * MONTH, 0.01,
                     "two teams fine-tune the same embedder on the same data a week apart"))
    # retraining-without-gain: asr-whisper-ft is retrained weekly (12 h on 4 A100s, $96 a cycle); of the window's
    # 4 cycles only the first beats the best val_loss before it by 0.5%: 3 x $96.
    wasted = sum(1 for i in range(1, len(RETRAIN_LOSS))  # lower is better; cycle 0 is before the window
                 if min(RETRAIN_LOSS[:i]) - RETRAIN_LOSS[i] < 0.005 * min(RETRAIN_LOSS[:i]))
    out.append(Plant("retraining-without-gain", "asr-whisper-ft", wasted * rate * RETRAIN_HOURS * MONTH, 0.01,
                     "the ASR model is retrained every week on a schedule; its val_loss stopped improving"))
    out += _llm_plants()
    return out


def _llm_plants() -> list[Plant]:
    """The LLM rules' plants; prices are the bundled catalogs' (``llm_prices.candidates``: the matching rule)."""
    with duckdb.connect() as con:
        return _llm_plants_priced(con)


def _llm_plants_priced(con: duckdb.DuckDBPyConnection) -> list[Plant]:
    out: list[Plant] = []
    # always-on-endpoint: the ASR post-processor holds 1 A100 ($2/h) all 720 h; its requests come in one burst a
    # day (30, a minute apart). Replayed with scale-to-zero (15 min idle timeout, 120 s cold start) it is up
    # 29 + 15 = 44 min a day: 22 h of 720. Saving = $2 x 720 h x (1 - 22 / 720) x 730.5 / 720.
    up = Decimal(PLANT_DAYS * ((BURST_REQUESTS - 1) * BURST_GAP_S + 15 * 60)) / 3600
    cost = ON_PREM_GPU_HOUR * WINDOW_HOURS
    out.append(Plant("always-on-endpoint", ENDPOINT_MODEL, cost * (1 - up / WINDOW_HOURS) * MONTH, 0.01,
                     "a self-hosted model kept up around the clock for one burst of requests a day"))
    # batch-on-realtime: nightly-digest sends 20,000 x (3,000 in, 400 out) to gpt-4.1-mini at 02:00 on the
    # standard tier; the batch tier's catalog price is half. Saving = N x (tokens x (standard - batch)).
    std, batch = _price(con, DIGEST), _price(con, DIGEST, tier="batch")
    assert batch["tier"] == "batch", batch  # the catalog prices the batch tier: no assumed discount
    n = DIGEST_REQUESTS * PLANT_DAYS
    per = (DIGEST.input_tokens * (_mtok(std, "input") - _mtok(batch, "input"))
           + DIGEST.output_tokens * (_mtok(std, "output") - _mtok(batch, "output")))
    out.append(Plant("batch-on-realtime", f"{DIGEST.provider}/{DIGEST.model}/{DIGEST.feature}", n * per * MONTH, 0.01,
                     "the nightly digests are a scheduled job paying real-time prices"))
    # oversized-model: ticket-tagger sends 1,500 requests an hour of 600 tokens in, 12 out to gpt-4.1: all short.
    # Saving = 0.5 (routable share) x N x (600 x ($2 - $0.4) + 12 x ($8 - $1.6)) per 1M tokens (gpt-4.1-mini).
    big, small = _price(con, TAGGER), _price(con, TAGGER, model="gpt-4.1-mini")
    n = TAGGER_PER_HOUR * 24 * PLANT_DAYS
    per = (TAGGER.input_tokens * (_mtok(big, "input") - _mtok(small, "input"))
           + TAGGER.output_tokens * (_mtok(big, "output") - _mtok(small, "output")))
    out.append(Plant("oversized-model", f"{TAGGER.provider}/{TAGGER.model}/{TAGGER.feature}",
                     Decimal("0.5") * n * per * MONTH, 0.01,
                     "a frontier model tags support tickets: 600 tokens in, a dozen out"))
    # cacheable-prompts (b): contract-review's requests share a system prompt of p tokens and never read a cache.
    # A request every 4 min (inside the 5 min TTL) finds it warm, the first of each day writes it:
    # saving = warm x p x (input - cache read) - cold x p x (cache write - input), Opus 4.1 per 1M tokens.
    p = _prefix_tokens(_system_instructions(REVIEW_SYSTEM))
    row = _price(con, REVIEW, input_tokens=p + REVIEW_USER_TOKENS)
    per_day = (REVIEW_TO - REVIEW_FROM) * 60 // REVIEW_GAP_MIN
    warm, cold = (per_day - 1) * PLANT_DAYS, PLANT_DAYS
    saving = (warm * p * (_mtok(row, "input") - _mtok(row, "cache_read"))
              - cold * p * (_mtok(row, "cache_write") - _mtok(row, "input")))
    out.append(Plant("cacheable-prompts", f"{REVIEW.provider}/{REVIEW.model}/{REVIEW.feature}", saving * MONTH, 0.01,
                     f"contract review resends its {p:,}-token system prompt with every request, no prompt caching"))
    # cacheable-prompts (a): policy-qa's 15 questions are each asked 8 times a day; a 24 h response cache answers
    # all but the first of each day: 15 x 7 x 30 requests x (220 in x $15 + 600 out x $75) per 1M tokens.
    row = _price(con, POLICY)
    hits = POLICY_QUESTIONS * (POLICY_ASKS - 1) * PLANT_DAYS
    cost = POLICY.input_tokens * _mtok(row, "input") + POLICY.output_tokens * _mtok(row, "output")
    out.append(Plant("cacheable-prompts", f"{POLICY.provider}/{POLICY.model}/{POLICY.feature}",
                     hits * cost * MONTH, 0.01, "the same HR questions are answered again and again by Opus"))
    return out


# -- files ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlantFiles:
    """What ``write_plants`` wrote, by the source that reads it (empty lists: nothing to plant)."""

    bill: list[Path] = field(default_factory=list)
    inventory: list[Path] = field(default_factory=list)
    pods: list[Path] = field(default_factory=list)
    nvml: list[Path] = field(default_factory=list)
    mlflow: list[Path] = field(default_factory=list)
    otel: list[Path] = field(default_factory=list)
    litellm: list[Path] = field(default_factory=list)
    usage: list[Path] = field(default_factory=list)


def _bill(sc: Scenario, path: Path) -> Path:
    """The Labs billing accounts' FOCUS 1.2 charges: its GPU nodes by the hour, its checkpoint bucket by the day."""
    bill = Rows(replace(sc, accounts=(*sc.accounts, *LABS)))
    for n in NODES:
        if n.account is None:
            continue
        p = n.account.provider
        service = cat.VM_SERVICE[p]
        sku = cat.sku_id(p, service, n.region, n.instance_type)
        idx = n.billed(sc)
        start = bill.t0 + idx * HOUR
        desc = (f"${n.price} per On Demand Linux {n.instance_type} Instance Hour" if p == "aws" else
                f"{n.instance_type} instance ({n.gpus}x NVIDIA {n.gpu_model}) running in Americas")
        details = json.dumps({"InstanceType": n.instance_type, "CoreCount": n.vcpus, "MemorySize": n.memory_gib,
                              "x_GpuModel": n.gpu_model, "x_GpuCount": n.gpus})
        bill.add(n.account, service, n.region, start, start + HOUR, **priced(np.full(len(idx), U, I64), micro(n.price)),
                 AvailabilityZone=n.zone, ResourceId=n.resource_id, ResourceName=n.name, ResourceType="Instance",
                 SkuId=sku, SkuMeter="Compute Usage", SkuPriceId=cat.price_id(sku, "ondemand"),
                 SkuPriceDetails=details, PricingUnit="Hours", ConsumedUnit="Hours", PricingCategory="Standard",
                 ChargeCategory="Usage", ChargeFrequency="Usage-Based", ChargeDescription=desc, Tags=tags_json(n.tags))
    days = np.arange(sc.days)
    month = (np.datetime64(sc.start, "D") + days).astype("datetime64[M]")
    month_days = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(I64)
    qty = np.round(_bucket_gb(days) * U / month_days).astype(I64)  # a day's GB as GB-Months
    service, sku = cat.S3, cat.sku_id("aws", cat.S3, "us-east-1", "Standard Storage", "GB-Months")
    start = bill.t0 + days * DAY
    bill.add(LABS_AWS, service, "us-east-1", start, start + DAY, **priced(qty, micro(BUCKET_PRICE)),
             ResourceId=f"arn:aws:s3:::{BUCKET}", ResourceName=BUCKET, ResourceType="Bucket", SkuId=sku,
             SkuMeter="Standard Storage", SkuPriceId=cat.price_id(sku, "ondemand"), PricingUnit="GB-Months",
             ConsumedUnit="GB-Months", PricingCategory="Standard", ChargeCategory="Usage",
             ChargeFrequency="Usage-Based", ChargeDescription=f"${BUCKET_PRICE} per GB-Month of Standard storage",
             SkuPriceDetails=json.dumps({"StorageClass": "Standard"}),
             Tags=tags_json(_labs_tags("genai-apps", "asr", "asr-whisper-ft")))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(bill.table(), path, compression="zstd")
    return path


def _inventory(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["node", "gpu_model", "gpu_count", "cpu_cores", "memory_mib", "instance_type", "provider",
                      "resource_id", "pricing_category", "node_pool", "region", "owner", "cluster", "hourly_price"])
        for n in NODES:
            a = n.account
            out.writerow([n.name, n.gpu_model, n.gpus, n.vcpus, n.memory_gib * 1024, n.instance_type,
                          cat.PROVIDERS[a.provider][0] if a else "", n.resource_id or "",
                          "on-demand" if a else "on-prem", n.pool, n.region, n.owner, n.cluster, "" if a else n.price])
    return path


def _pod_json(p: Pod) -> dict[str, object]:
    uid = _uid(p.node.cluster, p.namespace, p.name, p.start)
    api = {"Job": "batch/v1", "PyTorchJob": "kubeflow.org/v1"}.get(p.owner_kind, "apps/v1")
    meta = {"name": p.name, "namespace": p.namespace, "uid": uid, "labels": p.labels,
            "creationTimestamp": _rfc(p.start - dt.timedelta(seconds=20)),
            "ownerReferences": [{"apiVersion": api, "kind": p.owner_kind, "name": p.owner_name,
                                 "uid": _uid(p.node.cluster, p.namespace, p.owner_name), "controller": True,
                                 "blockOwnerDeletion": True}]}
    gpus = str(len(p.gpus))
    spec = {"containers": [{"name": p.container, "image": p.image, "resources": {
        "requests": {"cpu": str(max(1, p.node.vcpus * len(p.gpus) // p.node.gpus - 2)), "nvidia.com/gpu": gpus},
        "limits": {"nvidia.com/gpu": gpus}}}], "nodeName": p.node.name,
        "restartPolicy": "Never" if p.owner_kind in ("Job", "PyTorchJob") else "Always",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    started = _rfc(p.start)
    if p.end is None:
        state: dict[str, object] = {"running": {"startedAt": started}}
    else:
        state = {"terminated": {"exitCode": p.exit_code, "startedAt": started, "finishedAt": _rfc(p.end),
                                "reason": p.reason or ("Completed" if p.exit_code == 0 else "Error")}}
    status = {"phase": p.phase, "startTime": started, "qosClass": "Burstable",
              "containerStatuses": [{"name": p.container, "image": p.image, "restartCount": 0,
                                     "ready": p.end is None, "started": p.end is None, "state": state}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _pod_files(pods: list[Pod], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    by_cluster: dict[str, list[dict[str, object]]] = {}
    for p in pods:
        by_cluster.setdefault(p.node.cluster, []).append(_pod_json(p))
    paths = []
    for cluster, items in sorted(by_cluster.items()):
        paths.append(out / f"{cluster}.json")
        paths[-1].write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items,
                                         "metadata": {"resourceVersion": ""}}))
    return paths


def _nvml_file(sc: Scenario, node: Node, pods: list[Pod], out: Path) -> Path:
    """The node's GPUs every ``STEP_S`` over the window in the NVML agent's schema, each sample labelled with the
    pod holding the GPU (as dcgm-exporter's pod mapping does); GPUs nobody holds idle at 0."""
    name, mib, tdp, idle_w = DGX_GPU
    ts = np.arange(np.datetime64(_window_start(sc), "s"), np.datetime64(_end(sc), "s"), STEP_S)
    n, g = len(ts), node.gpus
    sm, held = np.zeros((g, n)), np.full((g, n), -1)
    for j, p in enumerate(pods):
        k0, k1 = np.searchsorted(ts, [np.datetime64(p.start, "s"), np.datetime64(p.end or _end(sc), "s")])
        if k1 <= k0 or p.sm is None:
            continue
        for gi in p.gpus:
            sm[gi, k0:k1], held[gi, k0:k1] = p.sm(ts[k0:k1]), j

    def label(values: list[str]) -> pa.Array:
        idx = held.T.ravel()
        return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32(), mask=idx < 0),
                                              pa.array(values, pa.string())).cast(pa.string())

    # each held GPU's memory as its pod uses it (Pod.memory)
    shares = np.array([p.memory for p in pods] + [0.0])
    used = np.where(held >= 0, np.round(shares[held] * mib), 0.0)
    power = np.round(idle_w + (tdp - idle_w) * sm, 2)
    cols = {
        "ts": pa.array(np.repeat(ts, g).astype("datetime64[us]")),
        "node": pa.array([node.name] * (n * g), pa.string()),
        "gpu": pa.array([f"GPU-{_uid(node.name, i)}" for i in range(g)] * n, pa.string()),
        "gpu_index": pa.array(np.tile(np.arange(g, dtype=np.int32), n)),
        "gpu_model": pa.array([name] * (n * g), pa.string()),
        "namespace": label([p.namespace for p in pods]), "pod": label([p.name for p in pods]),
        "container": label([p.container for p in pods]),
        "sm_active": pa.array(sm.T.ravel()), "gpu_util": pa.array(np.where(sm > 0, np.minimum(1, 2 * sm), 0).T.ravel()),
        "fb_used_mib": pa.array(used.T.ravel()), "fb_free_mib": pa.array((mib - used).T.ravel()),
        "power_w": pa.array(power.T.ravel()), "energy_j": pa.array(np.cumsum(power * STEP_S, axis=1).T.ravel()),
        "source": pa.array(["nvml"] * (n * g), pa.string()),
    }
    table = pa.table({f.name: cols.get(f.name, pa.nulls(n * g, f.type)) for f in SCHEMA}, schema=SCHEMA)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"nvml-{node.name}-{_window_start(sc):%Y%m%dT%H%M%S}Z.parquet"
    pq.write_table(table, path, compression="zstd")
    return path


def _mlflow(sc: Scenario, path: Path) -> Path:
    """The asr-whisper-ft retraining cycles as an MLflow ``runs/search`` answer (tags model, run and team)."""
    runs = []
    for n, (d, loss) in enumerate(zip(RETRAIN_DAYS, RETRAIN_LOSS, strict=True)):
        s = _window_start(sc) + dt.timedelta(days=d)
        e = s + dt.timedelta(hours=RETRAIN_HOURS)
        run_id = _hash("asr-whisper-ft", n)[:32]
        tags = {"model": "asr-whisper-ft", "run": f"asr-whisper-ft-{s:%Y%m%d}", "team": "genai-apps",
                "mlflow.runName": f"weekly-{s:%Y%m%d}", "mlflow.source.git.commit": _hash("asr", n)[:12]}
        runs.append({
            "info": {"run_uuid": run_id, "run_id": run_id, "experiment_id": "17", "run_name": tags["mlflow.runName"],
                     "user_id": "ci-bot", "status": "FINISHED", "start_time": _ms(s), "end_time": _ms(e),
                     "artifact_uri": f"s3://{BUCKET}/mlruns/17/{run_id}/artifacts", "lifecycle_stage": "active"},
            "data": {"metrics": [{"key": "val_loss", "value": loss, "timestamp": _ms(e), "step": 3},
                                 {"key": "train_loss", "value": round(loss - 0.05, 4), "timestamp": _ms(e),
                                  "step": 3}],
                     "params": [{"key": "lr", "value": "2e-5"}, {"key": "epochs", "value": "3"}],
                     "tags": [{"key": k, "value": v} for k, v in tags.items()]},
            "inputs": {}, "outputs": {}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}, indent=1))
    return path


def _ns(t: dt.datetime) -> int:
    return _ms(t) * 1_000_000


def _otel(sc: Scenario, path: Path) -> Path:
    """OTLP/JSON lines (the collector's file exporter), one request per service and day: the ASR post-processor's
    calls of its self-hosted model (no content) and contract review's, with content capture on (its system
    instructions and input messages, which the otel source turns into prompt fingerprints)."""
    w0, day = _window_start(sc), dt.timedelta(days=1)

    def attr(k: str, v: object) -> dict[str, object]:
        return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}}

    def span(n: int, name: str, t: dt.datetime, ms: int, attrs: list[dict[str, object]]) -> dict[str, object]:
        h = _hash(name, t, n)
        return {"traceId": h[:32], "spanId": h[32:40] + h[:8], "name": name, "kind": 3,
                "startTimeUnixNano": str(_ns(t)), "endTimeUnixNano": str(_ns(t) + ms * 1_000_000),
                "attributes": attrs, "status": {}}

    system = _system_instructions(REVIEW_SYSTEM)
    p = _prefix_tokens(system)
    lines = []
    for d in range(PLANT_DAYS):
        post, review = [], []
        for k in range(BURST_REQUESTS):
            t = w0 + d * day + dt.timedelta(hours=BURST_HOUR, seconds=k * BURST_GAP_S)
            post.append(span(k, f"chat {ENDPOINT_MODEL}", t, 1800, [
                attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "vllm"),
                attr("gen_ai.request.model", ENDPOINT_MODEL), attr("gen_ai.usage.input_tokens", 900),
                attr("gen_ai.usage.output_tokens", 220), attr("feature", "call-notes"),
                attr("server.address", "qwen-asr-post.media.svc.cluster.local")]))
        for k in range((REVIEW_TO - REVIEW_FROM) * 60 // REVIEW_GAP_MIN):
            t = w0 + d * day + dt.timedelta(hours=REVIEW_FROM, minutes=k * REVIEW_GAP_MIN)
            clause = f"C-{2026_0000 + d * 1000 + k}"
            messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": (
                f"Review contract {clause}, section {1 + k % 24}, against the playbook and list the deviations.")}]}],
                separators=(",", ":"))
            review.append(span(k, f"chat {OPUS}", t, 21_000, [
                attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "anthropic"),
                attr("gen_ai.request.model", OPUS), attr("gen_ai.response.model", OPUS),
                attr("gen_ai.usage.input_tokens", p + REVIEW_USER_TOKENS),
                attr("gen_ai.usage.output_tokens", REVIEW.output_tokens), attr("feature", REVIEW.feature),
                attr("gen_ai.system_instructions", system), attr("gen_ai.input.messages", messages),
                attr("server.address", "api.anthropic.com")]))
        for service, team, spans in (("asr-postprocess", "genai-apps", post), (REVIEW.service, REVIEW.team, review)):
            resource = {"attributes": [attr("service.name", service), attr("service.version", "1.2.0"),
                                       attr("team", team), attr("deployment.environment.name", "prod")]}
            lines.append(json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{
                "scope": {"name": "opentelemetry.instrumentation.genai", "version": "0.3b0"}, "spans": spans}]}]},
                separators=(",", ":")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


LITELLM_COLUMNS = (
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens", "startTime",
    "endTime", "request_duration_ms", "completionStartTime", "model", "model_id", "model_group",
    "custom_llm_provider", "api_base", "user", "metadata", "cache_hit", "cache_key", "request_tags", "team_id",
    "organization_id", "end_user", "requester_ip_address", "messages", "response", "session_id", "status",
    "mcp_namespaced_tool_name", "agent_id", "proxy_server_request")


def _litellm(sc: Scenario, path: Path) -> Path:
    """The Labs gateway's ``LiteLLM_SpendLogs`` (``\\copy ... CSV HEADER``) with ``store_prompts_in_spend_logs``
    on: the HR policy assistant's requests with their messages; ``spend`` at the catalog's list price."""
    w0, day = _window_start(sc), dt.timedelta(days=1)
    with duckdb.connect() as con:
        row = _price(con, POLICY)
    spend = float(POLICY.input_tokens * _mtok(row, "input") + POLICY.output_tokens * _mtok(row, "output"))
    key = hashlib.sha256(b"sk-helix-labs-policy-qa").hexdigest()
    team_id = _uid("litellm-team", POLICY.team)
    questions = [f"What does the handbook say about {topic}?" for topic in (
        "parental leave", "remote work abroad", "expense limits for travel", "the equipment budget",
        "sabbaticals", "on-call compensation", "conference attendance", "relocation support", "sick leave",
        "public holidays in Ireland", "the referral bonus", "stock option vesting", "learning budgets",
        "volunteering days", "the notice period")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(LITELLM_COLUMNS)
        for d in range(PLANT_DAYS):
            for a in range(POLICY_ASKS):
                for q in range(POLICY_QUESTIONS):
                    t = w0 + d * day + dt.timedelta(hours=POLICY_FROM + a, minutes=q)
                    rid = _hash("policy-qa", d, a, q)
                    usage = {"completion_tokens": POLICY.output_tokens, "prompt_tokens": POLICY.input_tokens,
                             "total_tokens": POLICY.input_tokens + POLICY.output_tokens,
                             "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0}}
                    meta = {"user_api_key_alias": "policy-qa", "user_api_key_team_alias": POLICY.team,
                            "user_api_key_team_id": team_id, "user_api_key_user_id": "svc-policy-qa",
                            "usage_object": usage, "status": "success"}
                    messages = [{"role": "system", "content": POLICY_SYSTEM}, {"role": "user", "content": questions[q]}]
                    stamp = [f"{x:%Y-%m-%d %H:%M:%S}.000" for x in (t, t + dt.timedelta(seconds=24),
                                                                     t + dt.timedelta(seconds=2))]
                    values = {
                        "request_id": f"chatcmpl-{rid[:24]}", "call_type": "acompletion", "api_key": key,
                        "spend": round(spend, 10), "total_tokens": POLICY.input_tokens + POLICY.output_tokens,
                        "prompt_tokens": POLICY.input_tokens, "completion_tokens": POLICY.output_tokens,
                        "startTime": stamp[0], "endTime": stamp[1], "request_duration_ms": 24_000,
                        "completionStartTime": stamp[2], "model": OPUS, "model_id": key[:10],
                        "model_group": "policy-qa-opus", "custom_llm_provider": "anthropic",
                        "api_base": "https://api.anthropic.com/v1/messages", "user": "svc-policy-qa",
                        "metadata": json.dumps(meta), "cache_hit": "False", "cache_key": "Cache OFF",
                        "request_tags": json.dumps([f"feature:{POLICY.feature}"]), "team_id": team_id,
                        "end_user": f"e-{1000 + (d * 7 + a * 3 + q) % 250:04d}", "messages": json.dumps(messages),
                        "response": "{}", "status": "success", "proxy_server_request": "{}"}
                    out.writerow([values.get(c, "") for c in LITELLM_COLUMNS])
    return path


def _usage(sc: Scenario, path: Path) -> Path:
    """The platform's hourly usage rollup (the demo's ``ROLLUP_MAPPING`` format) of the Labs' OpenAI traffic."""
    w0 = _window_start(sc)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        out.writerow(["hour_utc", "account", "provider", "model", "operation", "feature", "team", "service", "tier",
                      "requests", "input_tokens", "cached_input_tokens", "output_tokens"])
        for h in range(PLANT_DAYS * 24):
            hour = w0 + dt.timedelta(hours=h)
            for t, n in ((DIGEST, DIGEST_REQUESTS if h % 24 == DIGEST_HOUR else 0), (TAGGER, TAGGER_PER_HOUR)):
                if n:
                    out.writerow([_rfc(hour), "openai:org-helixlabs", t.provider, t.model, "chat", t.feature, t.team,
                                  t.service, "standard", n, n * t.input_tokens, 0, n * t.output_tokens])
    return path


def write_plants(sc: Scenario, out_dir: Path) -> PlantFiles:
    """Write the plants' files under ``out_dir`` (nothing when the history is shorter than ``PLANT_DAYS``)."""
    if sc.days < PLANT_DAYS:
        return PlantFiles()
    out_dir = Path(out_dir)
    pods = _pods(sc)
    nvml = [_nvml_file(sc, n, [p for p in pods if p.node is n], out_dir / "nvml") for n in DGX]
    return PlantFiles(bill=[_bill(sc, out_dir / "bill" / "labs.parquet")],
                      inventory=[_inventory(out_dir / "inventory.csv")], pods=_pod_files(pods, out_dir / "pods"),
                      nvml=nvml, mlflow=[_mlflow(sc, out_dir / "mlflow" / "runs_search.json")],
                      otel=[_otel(sc, out_dir / "llm" / "labs-traces.jsonl")],
                      litellm=[_litellm(sc, out_dir / "llm" / "labs-spend-logs.csv")],
                      usage=[_usage(sc, out_dir / "llm" / "labs-usage-hourly.csv")])


def unplanned(findings: Iterable[tuple[str, str]], sc: Scenario) -> list[tuple[str, str]]:
    """(rule, scope) of the findings that are neither a plant nor a story entry."""
    planted = {(p.rule, p.scope) for p in plants(sc)}
    return [(r, s) for r, s in findings if (r, s) not in planted and not any(e.matches(r, s) for e in STORY)]
