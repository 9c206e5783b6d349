"""The demo's GPU fleet files: inventory, workloads and telemetry of the scenario's GPU instances.

Derived from the same :class:`~aifinops.demo.fleet.Scenario` as the bill, so every node is a GPU
instance of the bill (``resource_id`` = its ResourceId: node cost is what the bill says, commitments and
spot included) and every workload runs only while its instance runs (``Scenario.running``). Each file is
in a format a product source reads, as the real systems write it:

- ``inventory.csv`` (``ingest inventory``): one row per GPU instance, owner = the owning team;
- ``pods/<cluster>.json`` (``ingest kubernetes``): ``kubectl get pods -A -o json`` of each eks-/gke-/aks-
  cluster and of the devboxes' JupyterHub, each pod in its last observed state (what kubectl snapshots
  every few minutes converge to: the source restates a pod by uid);
- ``sacct/<cluster>.txt`` (``ingest slurm``): ``sacct --parsable2 --allocations`` of each Slurm cluster
  (UTC, as AWS ParallelCluster runs); JobIDs of the three clusters do not overlap;
- ``azureml-jobs.csv`` (``ingest workloads-csv`` with ``AZUREML_MAPPING``): the Azure ML fine-tuning jobs;
- ``nvml/*.parquet`` (``ingest nvml``): GPU samples in the agent's schema, one file per node, with the
  labels dcgm-exporter adds (pod/namespace/container of the Kubernetes pod holding the GPU, ``job`` = the
  Slurm JobID like its hpc_job label) and ``sm_active`` as DCGM profiling reports it;
- ``dcgm/<node>.json`` (``ingest dcgm``): the MIG node as a Prometheus query_range answer of dcgm-exporter
  (default counters: GR_ENGINE_ACTIVE per MIG instance, so the allocation falls back to it).

The story: training jobs with gaps, a failed run that hangs before it dies (GPU_UTIL 100 % while
SM_ACTIVE is ~1 %), a forgotten sweep cluster; inference endpoints always on at low, diurnal and bursty
activity; notebooks held for hours at ~0-3 %; batch jobs near full activity; spot jobs cut by reclaims.
Idle GPUs draw 15-75 W by model, busy ones near their TDP.

Span and step: workloads cover the whole scenario window; telemetry the last ``telemetry_days`` (default
30, the demo's GPU window) every ``step_s`` seconds (default 300: ~0.8M samples for the 90-day demo,
written in ~1.5 s and ingested in ~3-5 s on 2 cores, most of it per-file overhead of the 37 node files;
the agent's 15 s would be 20 times as many). ``energy_j`` counts from
the start of the span and is not reset at a VM restart, so a node's file never trips the counter-reset
warning (nothing reads the counter: energy comes from ``power_w``). Seeded and deterministic; samples are
built with numpy, per node, never per sample.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aifinops.demo import catalog as cat
from aifinops.demo.fleet import Instance, Scenario
from aifinops.interfaces.cli.agent import SCHEMA

__all__ = ["AZUREML_MAPPING", "FleetFiles", "Workload", "plan_workloads", "write_gpu_fleet"]

# catalog model -> (NVML name, MiB, TDP W, idle W, Slurm gres type)
GPUS = {
    "H100-80GB": ("NVIDIA H100 80GB HBM3", 81559, 700, 72, "h100"),
    "A100-40GB": ("NVIDIA A100-SXM4-40GB", 40960, 400, 56, "a100"),
    "A100-80GB": ("NVIDIA A100 80GB PCIe", 81920, 300, 44, "a100"),
    "A10G": ("NVIDIA A10G", 23028, 300, 24, "a10g"),
    "L40S": ("NVIDIA L40S", 46068, 350, 34, "l40s"),
    "L4": ("NVIDIA L4", 23034, 72, 16, "l4"),
}
VLLM, TRITON = "vllm/vllm-openai:v0.6.3", "nvcr.io/nvidia/tritonserver:24.10-py3"
RANKER = "us-docker.pkg.dev/helix-recsys-prod/serving/ranker:7.4.1"
# endpoint group -> (profile, app, namespace, owner kind, pods per node, GPUs per pod, image)
ENDPOINTS = {
    "llm-serve-p4d": ("llm", "llama-70b-ft-vllm", "llm-serving", "StatefulSet", 2, 4, VLLM),
    "search-embed-g5": ("embed", "embed-small-triton", "search", "ReplicaSet", 4, 1, TRITON),
    "summarizer-g6e": ("summ", "summarizer-8b", "doc-summarizer", "ReplicaSet", 1, 1, VLLM),
    "summarizer-stg-g6e": ("staging", "summarizer-8b", "doc-summarizer-staging", "ReplicaSet", 1, 1, VLLM),
    "recsys-serve-l4": ("ranker", "ranker-v7-serving", "ranking", "ReplicaSet", 1, 1, RANKER),
    "recsys-burst-l4": ("ranker", "ranker-v7-serving", "ranking", "ReplicaSet", 1, 1, RANKER),
    "summarizer-nc24": ("summ", "summarizer-8b", "doc-summarizer", "ReplicaSet", 1, 1, VLLM),
}
# The staging A100 is MIG-partitioned: (app, profile, GPU instance id); 2 of its 7 slices stay free.
MIG_LAYOUT = (("summarizer-8b", "3g.40gb", "2"), ("doc-classifier", "1g.10gb", "9"), ("pii-redactor", "1g.10gb", "10"))
MIG_GROUP = "summarizer-stg-nc24"
NOTEBOOK_USERS = {"dev-g6e": ("akim", "jlopez", "rpatel"), "research-dev-g5": ("wzhang", "lokafor"),
                  "recsys-dev-a2": ("dnguyen", "smiller"), "genai-dev-nc24": ("tbrown",)}
SLURM_BASE = {"slurm-llm": 41000, "slurm-sweep": 73000, "slurm-research": 1200}
# profile -> share of the GPU's memory its process holds
MEMORY = {"train": .93, "sweep": .85, "rl": .8, "batch": .7, "llm": .9, "summ": .9, "staging": .9, "embed": .35,
          "ranker": .4, "notebook": .25}

#: workloads-csv options for ``azureml-jobs.csv`` (the CLI takes the same as ``--option`` / aifinops.yaml)
AZUREML_MAPPING: dict[str, object] = {
    "source_name": "azureml", "time_unit": "iso", "numeric": ["gpus", "cpu_cores", "memory_gb"],
    "labels": ["team", "project", "model", "env", "run", "experiment"],
    "columns": {"workload_id": "name", "kind": "'azureml-job'", "name": "display_name", "node": "node",
                "owner_kind": "'experiment'", "owner_name": "experiment_name", "start_ts": "start_time",
                "end_ts": "end_time", "phase": "status", "gpu_resource": "'nvidia.com/gpu'", "gpu_count": "gpus",
                "gpu_share": "gpus", "cpu_request": "cpu_cores", "memory_request_mib": "memory_gb * 1024"},
}
_K8S = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' generated name suffixes
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@dataclass
class Workload:
    """One pod, Slurm job or Azure ML job: where and when it held GPUs, and how busy it kept them."""

    kind: str  # pod | slurm | azureml
    inst: Instance
    gpus: tuple[int, ...]  # GPU indices on the node (MIG: the index of its MIG instance)
    start: dt.datetime
    end: dt.datetime | None  # None: still running when the data ends
    state: str  # Running | Succeeded | Failed; COMPLETED | FAILED | NODE_FAIL | RUNNING; Completed | ...
    profile: str  # activity (see _activity)
    app: str  # Deployment/StatefulSet/Job, Slurm job name or Azure ML experiment
    name: str = ""
    id: str = ""
    namespace: str | None = None
    owner_kind: str | None = None
    user: str | None = None
    partition: str | None = None
    mig: str | None = None
    exit_code: int = 0
    hang_min: int = 0  # a failed run's last minutes: GPUs held, nothing computed
    reason: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    peers: tuple[Instance, ...] = ()  # the other nodes of a multi-node job

    @property
    def nodes(self) -> tuple[Instance, ...]:
        return (self.inst, *self.peers)


@dataclass(frozen=True)
class FleetFiles:
    """What ``write_gpu_fleet`` wrote, by the source that reads it."""

    inventory: Path
    pods: list[Path]
    sacct: list[Path]
    azureml: Path
    nvml: list[Path]
    dcgm: list[Path]


def _end(sc: Scenario) -> dt.datetime:
    return sc.start + dt.timedelta(days=sc.days)


def _suffix(n: int, *parts: object) -> str:
    """A stable Kubernetes-style random suffix (``x7k2p``)."""
    h = int(cat.hash_id(*parts), 16)
    return "".join(_K8S[(h >> (5 * i)) % len(_K8S)] for i in range(n))


def _uuid(*parts: object) -> str:
    h = cat.hash_id(*parts)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _rfc(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}Z"


def _labels(inst: Instance, **extra: str | None) -> dict[str, str]:
    base = {"team": inst.team, "project": inst.project, "model": inst.model, "env": inst.env, **extra}
    return {k: v for k, v in base.items() if v}


# -- who holds which GPU when ---------------------------------------------------------------------

def _sequence(rng: np.random.Generator, a: dt.datetime, b: dt.datetime, first: tuple[float, float],
              dur_h: tuple[float, float], gap_min: tuple[float, float], open_end: bool, cut: bool,
              ) -> list[tuple[dt.datetime, dt.datetime | None, str]]:
    """Back-to-back runs in [a, b): (start, end, how it ended: done | cut | running). ``cut``: the last run
    is ended by the instance stopping (a spot reclaim); else runs that would not finish are not started."""
    out: list[tuple[dt.datetime, dt.datetime | None, str]] = []
    t = a + MIN * round(_u(rng, *first))
    while t < b - HOUR:
        end = t + MIN * round(60 * _u(rng, *dur_h))
        if end > b:
            if open_end:
                out.append((t, None, "running"))
            elif cut:
                out.append((t, b, "cut"))
            break
        out.append((t, end, "done"))
        t = end + MIN * round(_u(rng, *gap_min))
    return out


def _slurm_jobs(sc: Scenario, nodes: list[Instance], rng: np.random.Generator) -> list[Workload]:
    """slurm-llm: 32-GPU fine-tunes over the 4 nodes, the second run of each span fails (a GPU falls off the
    bus, NCCL hangs 40-60 min, then the job dies); slurm-sweep: 2-GPU sweep jobs until the sweep ended (then
    the cluster idles, forgotten); slurm-research: 8-GPU spot jobs, the last one cut by the reclaim."""
    inst, end_all = nodes[0], _end(sc)
    lanes = [(2 * k, 2 * k + 1) for k in range(4)] if inst.cluster == "slurm-sweep" else [tuple(range(8))]
    out = []
    for a, b in inst.active:
        open_end = b >= end_all
        if inst.cluster == "slurm-sweep":
            b = min(b, sc.spike("forgotten-finetune").start)
        for gpus in lanes:
            if inst.cluster == "slurm-llm":
                runs = _sequence(rng, a, b, (10, 30), (6, 30), (15, 150), open_end, False)
                name, part, user, prof = "llama3-70b-ft", "p5", "priya", "train"
            elif inst.cluster == "slurm-sweep":
                runs = _sequence(rng, a, b, (5, 20), (2, 5), (2, 20), False, False)
                name, part, user, prof = "lr-sweep", "p5-sweep", "jdoe", "sweep"
            else:
                runs = _sequence(rng, a, b, (5, 15), (4, 16), (5, 40), open_end, True)
                name, part, user, prof = "distill-7b-rl", "spot", "hsato", "rl"
            for j, (s, e, how) in enumerate(runs):
                w = Workload("slurm", inst, gpus, s, e, "COMPLETED", prof, name, user=user, partition=part,
                             labels={"account": inst.team or ""}, peers=tuple(nodes[1:]))
                if how == "running":
                    w.state = "RUNNING"
                elif how == "cut":
                    w.state = "NODE_FAIL"
                elif inst.cluster == "slurm-llm" and (j == 1 or rng.random() < .05):
                    w.state, w.exit_code, w.hang_min = "FAILED", 1, int(rng.integers(40, 61))
                out.append(w)
    return out


def _azureml_jobs(sc: Scenario, inst: Instance, rng: np.random.Generator) -> list[Workload]:
    """Fine-tuning runs of 8-30 h, waits for evaluation between them; the second run of node 00 fails."""
    out = []
    for a, b in inst.active:
        open_end = b >= _end(sc)
        for j, (s, e, how) in enumerate(_sequence(rng, a, b, (15, 40), (8, 30), (30, 180), open_end, False)):
            w = Workload("azureml", inst, tuple(range(8)), s, e, "Running" if how == "running" else "Completed",
                         "train", "summarizer-8b-sft", user="ekovacs", labels=_labels(inst))
            if inst.name.endswith("-00") and j == 1:
                w.state, w.hang_min = "Failed", int(rng.integers(30, 50))
            out.append(w)
    return out


def _revisions(sc: Scenario, group: str) -> list[dt.datetime]:
    """Rollout times of a Deployment: every 8-16 days, the same for all nodes of its group."""
    rng = np.random.default_rng([sc.seed, 3, int(cat.hash_id(group)[:8], 16)])
    t, out = sc.start + dt.timedelta(days=_u(rng, 2, 12)), []
    while t < _end(sc):
        out.append(t.replace(second=0, microsecond=0))
        t += dt.timedelta(days=_u(rng, 8, 16))
    return out


def _endpoints(sc: Scenario, inst: Instance, node_i: int, rng: np.random.Generator) -> list[Workload]:
    """Serving pods on always-on (or autoscaled) nodes: one pod generation per rollout; a node that stops is
    drained first. The search embedder's fourth replica is scaled up for US daytime only (HPA)."""
    end_all = _end(sc)
    if inst.group == MIG_GROUP:
        layout = [(app, (i,), mig) for i, (app, mig, _) in enumerate(MIG_LAYOUT)]
        prof, ns, kind, image = "staging", "doc-summarizer-staging", "ReplicaSet", VLLM
    else:
        prof, app, ns, kind, pods, per, image = ENDPOINTS[inst.group]
        layout = [(app, tuple(range(p * per, (p + 1) * per)), None) for p in range(pods)]
    cuts = _revisions(sc, inst.group)
    out = []
    for a, b in inst.active:
        edges = [a, *[c for c in cuts if a < c < b], b]
        for lo, hi in itertools.pairwise(edges):
            for slot, (app, gpus, mig) in enumerate(layout):
                ordinal = node_i * len(layout) + slot
                spans = [(lo, hi)]
                if inst.group == "search-embed-g5" and slot == 3:  # HPA: 13:00-03:00 UTC
                    day0 = lo.replace(hour=0, minute=0)
                    spans = [(max(lo, d + 13 * HOUR), min(hi, d + 27 * HOUR))
                             for d in (day0 + dt.timedelta(days=k) for k in range(-1, (hi - lo).days + 2))]
                    spans = [(s, e) for s, e in spans if e - s > HOUR]
                for s, e in spans:
                    start = s + MIN * round(_u(rng, 2, 6))
                    stop: dt.datetime | None = e - MIN * round(_u(rng, 2, 6)) if e == b else e
                    if e == b == end_all:
                        stop = None
                    w = Workload("pod", inst, gpus, start, stop, "Running" if stop is None else "Succeeded", prof,
                                 app, namespace=ns, owner_kind=kind, mig=mig, image=image,
                                 labels=_labels(inst, app=app))
                    rs = f"{app}-{_suffix(10, app, sum(c <= lo for c in cuts))}"  # one per rollout
                    w.name = f"{app}-{ordinal}" if kind == "StatefulSet" else \
                        f"{rs}-{_suffix(5, inst.name, app, slot, start)}"
                    if kind == "ReplicaSet":
                        w.labels["pod-template-hash"] = rs.rsplit("-", 1)[1]
                    out.append(w)
    return out


def _k8s_jobs(sc: Scenario, inst: Instance, node_i: int, rng: np.random.Generator) -> list[Workload]:
    """recsys: a daily 2-node retrain (01:00 UTC, 9-14 h) on committed H100s, an OOM on some days (the other
    worker hangs 30 min in NCCL, then the Job retries); data-eng: a nightly 1-GPU feature job per spot node;
    search: 4-GPU backfill Jobs on spot nodes, the last one of an episode killed by the reclaim."""
    out = []
    end_all = _end(sc)
    if inst.group == "recsys-train-a3":
        day_rng = np.random.default_rng([sc.seed, 5])  # shared by both nodes: one Job, two workers
        for d in range(sc.days):
            day = sc.start + dt.timedelta(days=d)
            s = day + HOUR + MIN * int(day_rng.integers(0, 10))
            dur, oom = MIN * int(day_rng.integers(540, 840)), day_rng.random() < .1
            job = f"ranker-v7-retrain-{day:%Y%m%d}"
            fail = s + MIN * int(day_rng.integers(120, 240))
            parts = [(s, fail, "Failed"), (fail + 32 * MIN, fail + 32 * MIN + dur, "Succeeded")] if oom else \
                [(s, s + dur, "Succeeded")]
            for k, (ps, pe, phase) in enumerate(parts):
                pe2: dt.datetime | None = pe if phase == "Succeeded" else pe + (30 * MIN if node_i else 0 * MIN)
                if pe2 is not None and pe2 > end_all:
                    pe2, phase = None, "Running"
                w = Workload("pod", inst, tuple(range(8)), ps, pe2, phase, "train", job, namespace="ranking-train",
                             owner_kind="Job", labels=_labels(inst, app="ranker-v7-retrain", run=job,
                                                              experiment="ranker-v7-daily-retrain",
                                                              model_version="ranker-v7.4.1",
                                                              **{"batch.kubernetes.io/job-name": job}),
                             image="us-docker.pkg.dev/helix-recsys-prod/train/ranker:7.4.1")
                if phase == "Failed":
                    w.exit_code, w.reason = (137, "OOMKilled") if node_i == 0 else (1, "Error")
                    w.hang_min = 30 if node_i else 0
                w.name = f"{job}-{node_i}-{_suffix(5, job, node_i, k)}"
                out.append(w)
        return out
    search = inst.group == "search-backfill-g5"
    for a, b in inst.active:
        open_end = b >= end_all
        runs = _sequence(rng, a, b, (4, 10), (3, 10), (5, 25), open_end, True) if search else \
            _sequence(rng, a, b, (3, 8), (5.5, 7.4), (0, 0), open_end, False)[:1]
        for s, e, how in runs:
            job = f"embed-backfill-{s:%m%d%H%M}" if search else f"feature-embed-{s:%Y%m%d}-{inst.name[-4:]}"
            w = Workload("pod", inst, tuple(range(inst.gpu_count)), s, e, "Succeeded", "batch", job,
                         namespace="search-batch" if search else "feature-store", owner_kind="Job",
                         labels=_labels(inst, app="embed-backfill" if search else "feature-embed",
                                        **{"batch.kubernetes.io/job-name": job}),
                         image="ghcr.io/helix-ai/embed-batch:2.3.0")
            if how == "running":
                w.state = "Running"
            elif how == "cut":
                w.state, w.exit_code, w.reason = "Failed", 143, "Terminated"
            w.name = f"{job}-{_suffix(5, job, inst.name)}"
            out.append(w)
    return out


def _notebooks(sc: Scenario, inst: Instance, node_i: int, rng: np.random.Generator) -> list[Workload]:
    """JupyterHub servers: started in the US morning, stopped 2-8 h later, or left open until the VM stops."""
    out = []
    users = NOTEBOOK_USERS[inst.group]
    mine = [users[node_i]] if len(users) > 1 and inst.gpu_count == 1 else list(users)
    end_all = _end(sc)
    for g, user in enumerate(mine):
        for a, b in inst.active:
            t = a
            while t < b - 2 * HOUR:
                day = t.replace(hour=0, minute=0)
                s = max(t, a + 5 * MIN, day + 13 * HOUR + MIN * int(rng.integers(0, 180)))
                if s >= b - HOUR:
                    break
                if g and rng.random() < .6:  # the second researcher comes in two days a week
                    t = day + dt.timedelta(days=1)
                    continue
                e = min(b, s + MIN * int(rng.integers(120, 480))) if rng.random() < .75 else b
                w = Workload("pod", inst, (g,), s, None if e == b == end_all else e, "Succeeded", "notebook",
                             "jupyterhub", name=f"jupyter-{user}", namespace="jupyterhub", user=user,
                             labels=_labels(inst, app="jupyterhub", component="singleuser-server",
                                            **{"hub.jupyter.org/username": user}),
                             image="quay.io/jupyter/pytorch-notebook:cuda12-2024-10-14")
                w.state = "Running" if w.end is None else "Succeeded"
                out.append(w)
                t = (e.replace(hour=0, minute=0) + dt.timedelta(days=1))
    return out


def plan_workloads(sc: Scenario) -> list[Workload]:
    """Every workload of the scenario's GPU instances, with its id and name (deterministic for a seed)."""
    out: list[Workload] = []
    group_i: dict[str, int] = {}
    for i, inst in enumerate(sc.instances):
        if not inst.gpu_count:
            continue
        node_i = group_i[inst.group] = group_i.get(inst.group, -1) + 1
        rng = np.random.default_rng([sc.seed, 2, i])
        if inst.cluster == "slurm-llm":  # one job over all nodes of the group
            if node_i == 0:
                out += _slurm_jobs(sc, [n for n in sc.instances if n.group == inst.group], rng)
        elif inst.cluster.startswith("slurm-"):
            out += _slurm_jobs(sc, [inst], rng)
        elif inst.cluster == "azureml-ft":
            out += _azureml_jobs(sc, inst, rng)
        elif inst.role == "dev":
            out += _notebooks(sc, inst, node_i, rng)
        elif inst.role == "inference":
            out += _endpoints(sc, inst, node_i, rng)
        else:
            out += _k8s_jobs(sc, inst, node_i, rng)
    for cluster, base in SLURM_BASE.items():  # JobIDs in submission order, one range per cluster
        jobs = sorted((w for w in out if w.kind == "slurm" and w.inst.cluster == cluster),
                      key=lambda w: (w.start, w.inst.name, w.gpus))
        for n, w in enumerate(jobs):
            w.id = w.name = str(base + n)
    for w in out:
        if w.kind == "pod":
            w.id = _uuid(w.inst.cluster, w.name, w.start)
        elif w.kind == "azureml":  # Azure ML's generated names: adjective_noun_suffix
            adjective, noun = ("amber", "brave", "calm", "eager")[w.start.day % 4], ("lime", "fig")[w.start.hour % 2]
            w.id, w.name = f"{adjective}_{noun}_{_suffix(10, w.inst.name, w.start)}", f"{w.app}-{w.start:%m%d-%H%M}"
    return out


# -- files ----------------------------------------------------------------------------------------

def _inventory(sc: Scenario, path: Path) -> Path:
    pricing = {"Standard": "on-demand", "Dynamic": "spot", "Committed": "reserved"}
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["node", "gpu_model", "gpu_count", "cpu_cores", "memory_mib", "instance_type", "provider",
                      "resource_id", "pricing_category", "node_pool", "region", "owner", "cluster"])
        for i in sc.gpu_instances:
            out.writerow([i.node_name, i.gpu_model, i.gpu_count, i.vcpus, i.memory_gib * 1024, i.instance_type,
                          cat.PROVIDERS[i.provider][0], i.resource_id, pricing[i.pricing],
                          f"{i.cluster}/{i.group}", i.region, i.team, i.cluster])
    return path


def _requests(w: Workload) -> tuple[float, int]:
    """(CPU cores, memory GiB) a workload asks for: the node's share of its GPUs, a little less."""
    share = len(w.gpus) / w.inst.gpu_count if not w.mig else int(w.mig[0]) / 7
    return max(1.0, int(w.inst.vcpus * share * .9)), max(4, int(w.inst.memory_gib * share * .85))


def _pod(w: Workload) -> dict[str, object]:
    cpu, mem = _requests(w)
    gpu_res = f"nvidia.com/mig-{w.mig}" if w.mig else "nvidia.com/gpu"
    owner = w.app if w.owner_kind != "ReplicaSet" else w.name.rsplit("-", 1)[0]
    meta: dict[str, object] = {"name": w.name, "namespace": w.namespace, "uid": w.id,
                               "creationTimestamp": _rfc(w.start - dt.timedelta(seconds=20)), "labels": w.labels}
    if w.owner_kind:
        api = "batch/v1" if w.owner_kind == "Job" else "apps/v1"
        meta["ownerReferences"] = [{"apiVersion": api, "kind": w.owner_kind, "name": owner,
                                    "uid": _uuid(w.inst.cluster, owner), "controller": True,
                                    "blockOwnerDeletion": True}]
    spec: dict[str, object] = {
        "containers": [{"name": w.app if w.profile != "notebook" else "notebook", "image": w.image,
                        "resources": {"requests": {"cpu": str(cpu), "memory": f"{mem}Gi", gpu_res: str(
                            1 if w.mig else len(w.gpus))}, "limits": {gpu_res: str(1 if w.mig else len(w.gpus))}}}],
        "nodeName": w.inst.node_name, "restartPolicy": "Never" if w.owner_kind == "Job" else "Always",
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    if w.mig:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-A100-80GB-PCIe"}
    started = _rfc(w.start + dt.timedelta(seconds=15))
    status: dict[str, object] = {"phase": w.state, "startTime": _rfc(w.start), "qosClass": "Burstable"}
    c: dict[str, object] = {"name": spec["containers"][0]["name"], "image": w.image,  # type: ignore[index]
                            "restartCount": 0, "ready": w.end is None, "started": w.end is None}
    if w.end is None:
        c["state"] = {"running": {"startedAt": started}}
    else:
        c["state"] = {"terminated": {"exitCode": w.exit_code, "startedAt": started, "finishedAt": _rfc(w.end),
                                     "reason": w.reason or ("Completed" if w.exit_code == 0 else "Error")}}
        if w.reason == "Terminated":
            status.update(reason="Terminated", message="Pod was terminated in response to imminent node shutdown.")
    status["containerStatuses"] = [c]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _elapsed(s: dt.datetime, e: dt.datetime) -> str:
    sec = int((e - s).total_seconds())
    d, rest = divmod(sec, 86400)
    return f"{d}-" * bool(d) + f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _sacct(works: list[Workload], end_all: dt.datetime, path: Path) -> Path:
    lines = ["JobID|JobName|User|Account|Partition|NodeList|Start|End|State|ExitCode|AllocTRES|Elapsed"]
    for w in sorted(works, key=lambda w: int(w.id)):
        k = len(w.nodes)
        cpu, mem = (int(x * k) for x in _requests(w))
        n, gres = len(w.gpus) * k, GPUS[w.inst.gpu_model or ""][4]
        tres = f"billing={cpu},cpu={cpu},gres/gpu:{gres}={n},gres/gpu={n},mem={mem}G,node={k}"
        nodelist = w.inst.node_name if k == 1 else \
            f"{w.inst.node_name[:-2]}[{w.inst.node_name[-2:]}-{w.nodes[-1].node_name[-2:]}]"
        end = "Unknown" if w.end is None else f"{w.end:%Y-%m-%dT%H:%M:%S}"
        lines.append("|".join([w.id, w.app, w.user or "", w.labels["account"], w.partition or "", nodelist,
                               f"{w.start:%Y-%m-%dT%H:%M:%S}", end, w.state, f"{w.exit_code}:0", tres,
                               _elapsed(w.start, w.end or end_all)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _azureml_csv(works: list[Workload], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["name", "display_name", "experiment_name", "status", "compute", "node", "start_time",
                      "end_time", "gpus", "cpu_cores", "memory_gb", "team", "project", "model", "env", "run",
                      "experiment"])
        for w in sorted(works, key=lambda w: (w.start, w.inst.name)):
            cpu, mem = _requests(w)
            out.writerow([w.id, w.name, w.app, w.state, "nd96-ft", w.inst.node_name, _rfc(w.start),
                          "" if w.end is None else _rfc(w.end), len(w.gpus), cpu, mem, *(
                              w.labels.get(k, "") for k in ("team", "project", "model", "env")), w.name, w.app])
    return path


# -- telemetry ------------------------------------------------------------------------------------

def _bursts(n: int, step: int, per_hour: float, minutes: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of bursts starting at ``per_hour`` and lasting ``minutes``."""
    starts = rng.random(n) < per_hour * step / 3600
    return np.convolve(starts, np.ones(max(1, round(minutes * 60 / step))))[:n] > 0


def _activity(w: Workload, t: np.ndarray, step: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SM activity of a workload over sample times ``t`` (datetime64[s]), and where it hangs (GPU_UTIL 100 %
    while nothing computes: a collective waiting for a dead peer)."""
    n = len(t)
    minute = (t - np.datetime64(w.start, "s")).astype(np.int64) / 60
    hod = t.astype("datetime64[m]").astype(np.int64) % 1440 / 60
    weekend = (t.astype("datetime64[D]").astype(np.int64) + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    load = (0.5 - 0.5 * np.cos(2 * np.pi * (hod - 5) / 24)) * np.where(weekend, .6, 1)  # US traffic, peak 17 UTC
    p = w.profile
    if p == "train":
        sm = rng.normal(.8, .03, n)
        sm[minute % 120 < 6] = .04  # checkpoint every 2 h
        sm[minute < 15] = .12  # data loading, compilation
    elif p == "sweep":
        sm = rng.normal(.62, .05, n)
    elif p == "rl":  # rollouts (generation) alternate with updates
        sm = np.where(minute // 20 % 2 == 0, .78, .28) + rng.normal(0, .04, n)
    elif p == "batch":
        sm = rng.normal(.9, .03, n)
    elif p == "llm":
        sm = .06 + .38 * load * rng.lognormal(0, .25, n)
    elif p == "embed":
        sm = .02 + .2 * load * rng.lognormal(0, .35, n)
    elif p == "ranker":
        sm = .08 + .42 * load * rng.lognormal(0, .2, n)
    elif p == "summ":
        sm = .01 + .3 * load * rng.gamma(.6, 1 / .6, n)
    elif p == "staging":  # CI smoke tests now and then
        sm = .004 + .3 * _bursts(n, step, .3, 5, rng)
    else:  # notebook: a cell run now and then
        sm = .003 + rng.uniform(.25, .6) * _bursts(n, step, .25, 10, rng)
    hang = minute >= (((w.end or w.start) - w.start).total_seconds() / 60 - w.hang_min) if w.hang_min else \
        np.zeros(n, bool)
    sm[hang] = .01
    return np.clip(sm, 0, 1), hang


@dataclass
class _Node:
    """One node's devices over the sample grid: the workload holding each (-1: none) and its readings."""

    run: np.ndarray  # (N,) the instance runs
    holder: np.ndarray  # (D, N) index into works
    sm: np.ndarray
    util: np.ndarray
    mem: np.ndarray  # share of the device's memory in use
    works: list[Workload]


def _node(sc: Scenario, inst: Instance, works: list[Workload], ts: np.ndarray, step: int, devices: int,
          rng: np.random.Generator) -> _Node:
    n = len(ts)
    hours = ((ts - np.datetime64(sc.start, "s")).astype(np.int64) // 3600)
    node = _Node(sc.running(inst)[hours], np.full((devices, n), -1, np.int32), np.zeros((devices, n)),
                 np.zeros((devices, n)), np.full((devices, n), .0005), works)
    end = ts[-1] + 1
    for j, w in enumerate(works):
        k0, k1 = np.searchsorted(ts, [np.datetime64(w.start, "s"), np.datetime64(w.end, "s") if w.end else end])
        if k1 <= k0:
            continue
        sm, hang = _activity(w, ts[k0:k1], step, rng)
        mem = MEMORY[w.profile] * (rng.uniform(.2, 1.8) if w.profile == "notebook" else 1)
        for g in w.gpus:
            x = np.clip(sm + rng.normal(0, .012, k1 - k0) * (sm > .02), 0, 1)
            node.holder[g, k0:k1], node.sm[g, k0:k1], node.mem[g, k0:k1] = j, x, mem
            node.util[g, k0:k1] = np.where(hang, 1, np.clip(1 - (1 - x) ** 3 + rng.normal(0, .02, k1 - k0), 0, 1))
    node.util = np.round(np.where(node.sm > .002, node.util, 0), 2)
    node.sm = np.round(node.sm, 4)
    return node


def _power(sm: np.ndarray, util: np.ndarray, held: np.ndarray, model: str, rng: np.random.Generator) -> np.ndarray:
    _, _, tdp, idle, _ = GPUS[model]
    busy = np.clip(.75 * sm + .25 * util, 0, 1) * rng.uniform(.94, 1.01, sm.shape)
    return np.round(np.minimum(tdp, idle * (1 + .1 * held) + (tdp - idle) * busy + rng.normal(0, .8, sm.shape)), 2)


def _labels_column(node: _Node, sel: np.ndarray, values: list[str | None]) -> pa.Array:
    """A text column of the holder's ``values`` (NULL where no workload, or one without the value)."""
    names = sorted({v for v in values if v})
    lookup = np.array([names.index(v) if v else -1 for v in values] + [-1], np.int32)
    idx = lookup[node.holder[:, sel].T.ravel()]  # holder -1 picks the trailing -1
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0), pa.array(names, pa.string())).cast(pa.string())


def _nvml_file(sc: Scenario, inst: Instance, node: _Node, ts: np.ndarray, step: int, out: Path,
               rng: np.random.Generator) -> Path | None:
    sel = node.run
    n, g = int(sel.sum()), inst.gpu_count
    if not n:
        return None
    name, mib, *_ = GPUS[inst.gpu_model or ""]
    power = _power(node.sm, node.util, node.holder >= 0, inst.gpu_model or "", rng)
    energy = np.round(np.cumsum(power * sel * step, axis=1), 1)
    used = np.round(node.mem * mib)
    uuids = [f"GPU-{_uuid(inst.resource_id, i)}" for i in range(g)]

    def flat(a: np.ndarray) -> np.ndarray:  # ts-major: the agent writes one sample of all GPUs at a time
        return a[:, sel].T.ravel()

    kinds = [w.kind for w in node.works]
    offset = np.timedelta64(int(cat.hash_id(inst.name)[:4], 16) % 9, "s")  # the agent's clock is not on the minute
    cols = {
        "ts": pa.array(np.repeat(ts[sel] + offset, g).astype("datetime64[us]")),
        "node": pa.array([inst.node_name] * (n * g), pa.string()),
        "gpu": pa.DictionaryArray.from_arrays(pa.array(np.tile(np.arange(g, dtype=np.int32), n)),
                                              pa.array(uuids)).cast(pa.string()),
        "gpu_index": pa.array(np.tile(np.arange(g, dtype=np.int32), n)),
        "gpu_model": pa.array([name] * (n * g), pa.string()),
        "namespace": _labels_column(node, sel, [w.namespace for w in node.works]),
        "pod": _labels_column(node, sel, [w.name if k == "pod" else None for w, k in zip(node.works, kinds,
                                                                                          strict=True)]),
        "container": _labels_column(node, sel, [("notebook" if w.profile == "notebook" else w.app)
                                                if w.kind == "pod" else None for w in node.works]),
        "job": _labels_column(node, sel, [w.id if w.kind == "slurm" else None for w in node.works]),
        "sm_active": pa.array(flat(node.sm)), "gpu_util": pa.array(flat(node.util)),
        "fb_used_mib": pa.array(flat(used)), "fb_free_mib": pa.array(flat(mib - used)),
        "power_w": pa.array(flat(power)), "energy_j": pa.array(flat(energy)),
        "source": pa.array(["nvml"] * (n * g), pa.string()),
    }
    table = pa.table({f.name: cols.get(f.name, pa.nulls(n * g, f.type)) for f in SCHEMA}, schema=SCHEMA)
    stem = f"nvml-{re.sub(r'[^A-Za-z0-9_.-]', '_', inst.node_name)}-{ts[0].astype(dt.datetime):%Y%m%dT%H%M%S}Z"
    path = out / f"{stem}.parquet"  # named as the agent names its files
    pq.write_table(table, path, compression="zstd")
    return path


def _dcgm_file(inst: Instance, node: _Node, ts: np.ndarray, step: int, out: Path, rng: np.random.Generator) -> Path:
    """The MIG node as dcgm-exporter reports it through Prometheus (query_range, ``honor_labels: false``) with
    its default counters: per MIG instance GR_ENGINE_ACTIVE (SM_ACTIVE is off by default; GPU_UTIL is not
    reported in MIG mode) and memory, labelled with the pod holding it; power and energy per GPU."""
    name, mib, *_ = GPUS[inst.gpu_model or ""]
    uuid = f"GPU-{_uuid(inst.resource_id, 0)}"
    target = {"DCGM_FI_DRIVER_VERSION": "550.90.07", "Hostname": inst.node_name, "UUID": uuid, "device": "nvidia0",
              "gpu": "0", "modelName": name, "pci_bus_id": "00000001:00:00.0", "container": "nvidia-dcgm-exporter",
              "endpoint": "gpu-metrics", "instance": "10.224.0.31:9400", "job": "nvidia-dcgm-exporter",
              "namespace": "gpu-operator", "pod": f"nvidia-dcgm-exporter-{_suffix(5, inst.node_name)}",
              "service": "nvidia-dcgm-exporter"}
    sel = np.flatnonzero(node.run)
    epoch = ts.astype(np.int64).astype(object)
    result = []

    def series(metric: str, labels: dict[str, str], idx: np.ndarray, values: np.ndarray) -> None:
        text = np.char.mod("%.6g", values[idx])
        result.append({"metric": {"__name__": metric, **labels},
                       "values": np.stack([epoch[idx], text.astype(object)], 1).tolist()})

    slices = np.zeros(len(ts))
    for d, (_, profile, gi) in enumerate(MIG_LAYOUT):
        size = int(profile[0])
        slices += node.sm[d] * size / 7
        inst_mib = round(mib * size / 8)
        for h in np.unique(node.holder[d, sel]):  # one series per pod that held the instance (none: -1)
            idx = sel[node.holder[d, sel] == h]
            labels = {**target, "GPU_I_ID": gi, "GPU_I_PROFILE": profile}
            if h >= 0:
                w = node.works[h]
                labels.update(exported_namespace=w.namespace or "", exported_pod=w.name, exported_container=w.app)
            used = np.round(node.mem[d] * inst_mib)
            series("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, idx, np.round(np.minimum(1, node.sm[d] * 1.12), 4))
            series("DCGM_FI_DEV_FB_USED", labels, idx, used)
            series("DCGM_FI_DEV_FB_FREE", labels, idx, inst_mib - used)
    busy = np.round(slices, 4)[None, :]
    power = _power(busy, busy, (node.holder >= 0).any(0)[None, :], inst.gpu_model or "", rng)[0]
    series("DCGM_FI_DEV_POWER_USAGE", target, sel, power)
    series("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", target, sel, np.round(np.cumsum(power * node.run * step) * 1000))
    path = out / f"{inst.node_name}.json"
    path.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}))
    return path


def write_gpu_fleet(sc: Scenario, out_dir: Path, telemetry_days: int = 30, step_s: int = 300) -> FleetFiles:
    """Write the fleet's files under ``out_dir`` (see the module docstring); telemetry covers the last
    ``telemetry_days`` of the scenario (at most all of it) every ``step_s`` seconds."""
    out_dir = Path(out_dir)
    for sub in ("pods", "sacct", "nvml", "dcgm"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    works = plan_workloads(sc)
    end_all = _end(sc)
    pods: dict[str, list[dict[str, object]]] = {}
    for w in works:
        if w.kind == "pod":
            pods.setdefault(w.inst.cluster, []).append(_pod(w))
    pod_files = []
    for cluster, items in sorted(pods.items()):
        pod_files.append(out_dir / "pods" / f"{cluster}.json")
        pod_files[-1].write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items,
                                             "metadata": {"resourceVersion": ""}}))
    sacct = [_sacct([w for w in works if w.kind == "slurm" and w.inst.cluster == c], end_all,
                    out_dir / "sacct" / f"{c}.txt") for c in SLURM_BASE]
    t0 = max(sc.start, end_all - dt.timedelta(days=telemetry_days))
    ts = np.arange(np.datetime64(t0, "s"), np.datetime64(end_all, "s"), step_s)
    nvml, dcgm = [], []
    by_node: dict[str, list[Workload]] = {}
    for w in works:
        for inst in w.nodes:
            by_node.setdefault(inst.name, []).append(w)
    for i, inst in enumerate(sc.instances):
        if not inst.gpu_count:
            continue
        rng = np.random.default_rng([sc.seed, 4, i])
        mig = inst.group == MIG_GROUP
        node = _node(sc, inst, by_node.get(inst.name, []), ts, step_s, len(MIG_LAYOUT) if mig else inst.gpu_count, rng)
        if mig:
            dcgm.append(_dcgm_file(inst, node, ts, step_s, out_dir / "dcgm", rng))
        elif path := _nvml_file(sc, inst, node, ts, step_s, out_dir / "nvml", rng):
            nvml.append(path)
    return FleetFiles(_inventory(sc, out_dir / "inventory.csv"), pod_files, sacct,
                      _azureml_csv([w for w in works if w.kind == "azureml"], out_dir / "azureml-jobs.csv"), nvml, dcgm)
