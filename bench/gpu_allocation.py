"""GPU allocation benchmark: hourly allocation with idle over a synthetic fleet, against a plain pandas version.

Generates a synthetic fleet straight into a fresh aifinops store, in DuckDB SQL (no Python loop over rows), cached
per size in ``bench/out/``: by default 128 nodes x 8 GPUs (H100 and A100 nodes priced by the hour in the
inventory, in node pools with owners), 30 days of 15 s samples and ~100k Kubernetes workloads: multi-GPU training
jobs (one 8-GPU or two 4-GPU pods a node), single-GPU batch jobs, notebooks that sit idle, MIG 1g.10gb pods
(1/7 of a GPU) and time-sliced pods (1/4), with gaps between them so that some GPU time is unallocated.

Each schedule lane (a node for training, a GPU, a MIG instance or a time-slice replica) runs slots of its own
period; slot k holds one workload from an offset to an end hashed from (lane, k), or nothing. So the pod that
holds a GPU at time t is arithmetic in (lane, t): samples are a cross product of streams and time steps, no join.
A MIG GPU reports one sample row per instance, a time-sliced GPU one per pod holding it (replica 0 always), so
there are more sample rows than GPUs x steps (197M rather than 177M at the default size).

Then each measured step runs in its own subprocess (seconds timed in the child around the work, peak RSS from
the child's own ``VmHWM``, as in ``bench/ingest.py``):

* aifinops: ``aggregate(con, window, ["label:team"], accumulate="hour")`` and ``aggregate(con, window,
  ["workload"])`` over the whole window of the read-only store (the hourly allocation with ``__idle__``);
* pandas: the same calculation written in plain pandas (node cost per hour, GPU-hours held per workload-hour,
  cost share = node cost x held / max(capacity, total held), idle = node cost - allocated, activity = mean of
  the preferred metric of the workload-hour's samples) on a subset (the first ``--pandas-gpus`` GPUs and
  ``--pandas-days`` days of the same fleet, its own small store), against aifinops on that same store: the
  totals and per-team and per-workload costs must agree, and the ratio of the seconds is printed.

Run: ``make bench-gpu`` (``python bench/gpu_allocation.py``) or ``PYTHONPATH=src python bench/gpu_allocation.py
--gpus 64 --days 7 [--step 15] [--workloads N] [--pandas-gpus 40 --pandas-days 7] [--repeat K] [--json] [--regen]
[--profile] [--memory-limit 1GB] [--out DIR]``; ``--profile`` lists the costliest operators of each aggregate query.
Generation is reproducible for a seed and a DuckDB version (it draws from DuckDB's hash()).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import harness  # bench/harness.py: the child-per-step runner and peak RSS

HERE = Path(__file__).resolve().parent
GEN_VERSION = 2  # bump when the generator changes: it names the cached stores
START = datetime(2026, 9, 1)
IDLE = "__idle__"
TIME_TARGET_S, RSS_TARGET_MB = 60.0, 4096.0

#: Node roles: GPU model, instance type, $ per node-hour, pricing, node pool, owner, cores, memory MiB, and whether
#: DCGM reports profiling metrics (SM_ACTIVE): the spot A100 pool's exporter runs the default counters only.
NODE_TYPES: dict[str, tuple[str, str, str, str, str, str, int, int, bool]] = {
    "train": ("NVIDIA H100 80GB HBM3", "p5.48xlarge", "38.528", "reserved", "h100-train", "ml-platform",
              192, 2_097_152, True),
    "batch": ("NVIDIA H100 80GB HBM3", "p5.48xlarge", "55.04", "on-demand", "h100-batch", "research",
              192, 2_097_152, True),
    "batch-a100": ("NVIDIA A100-SXM4-80GB", "p4de.24xlarge", "11.35", "spot", "a100-spot", "research",
                   96, 1_179_648, False),
    "dev": ("NVIDIA A100-SXM4-80GB", "p4de.24xlarge", "27.447", "on-demand", "a100-dev", "data-science",
            96, 1_179_648, True),
    "mig": ("NVIDIA H100 80GB HBM3", "p5.48xlarge", "55.04", "on-demand", "h100-mig", "inference",
            192, 2_097_152, True),
    "ts": ("NVIDIA A100-SXM4-80GB", "p4de.24xlarge", "27.447", "on-demand", "a100-shared", "inference",
           96, 1_179_648, True),
}
#: Node i has role ROLES[i % 64]: the first five cover every role (so small subsets do), then a spread mix.
_MIX = ["train", "batch", "train", "dev", "train", "batch-a100", "train", "dev", "train", "batch", "train",
        "batch-a100", "train", "dev", "batch"]
ROLES = ["train", "dev", "mig", "batch", "ts", *(_MIX[j % len(_MIX)] for j in range(59))]


@dataclass(frozen=True)
class Kind:
    """A workload class: its slot period, the gap before and the length of its workload as fractions of the slot,
    the share of empty slots, the activity range, and what its pods look like."""

    hours: float
    gap: tuple[float, float]
    dur: tuple[float, float]
    empty: float
    activity: tuple[float, float]
    prefix: str
    resource: str
    share: str  # SQL: GPU-equivalents held
    count: str  # SQL: devices requested
    owner_kind: str
    teams: tuple[str, ...]
    models: tuple[str, ...]


KINDS = {
    "train": Kind(36, (0.02, 0.15), (0.7, 1.0), 0.05, (0.45, 0.92), "train", "nvidia.com/gpu",
                  "CASE WHEN sub = 0 THEN 8.0 ELSE 4.0 END", "CASE WHEN sub = 0 THEN 8.0 ELSE 4.0 END", "Job",
                  ("ml-platform", "research", "genai-apps", "search"),
                  ("llama-3-70b-ft", "mixtral-8x22b", "ranker-v7", "vit-h-14", "distill-7b")),
    "batch": Kind(5, (0.02, 0.2), (0.5, 1.0), 0.08, (0.15, 0.85), "batch", "nvidia.com/gpu", "1.0", "1.0", "Job",
                  ("research", "recsys", "search", "data-eng", "genai-apps"),
                  ("embed-small", "ranker-v7", "whisper-l", "eval-suite", "sd-xl")),
    "notebook": Kind(10, (0.0, 0.2), (0.5, 1.0), 0.15, (0.0, 0.03), "nb", "nvidia.com/gpu", "1.0", "1.0",
                     "StatefulSet", ("research", "data-science", "recsys", "genai-apps"),
                     ("jupyter", "vscode", "rstudio")),
    "mig": Kind(4, (0.0, 0.2), (0.4, 1.0), 0.1, (0.05, 0.6), "infer", "nvidia.com/mig-1g.10gb", "1.0 / 7", "1.0",
                "ReplicaSet", ("search", "recsys", "genai-apps", "ml-platform"),
                ("embed-small", "summarizer-8b", "reranker", "guard-1b")),
    "ts": Kind(3, (0.05, 0.4), (0.3, 1.0), 0.15, (0.03, 0.35), "svc", "nvidia.com/gpu.shared", "0.25", "1.0",
               "ReplicaSet", ("search", "growth", "payments", "data-eng"),
               ("ocr-small", "tts-lite", "fraud-gbm", "ner-base")),
}
#: Schedule lanes of a node by role: (local index, kind, first GPU, GPUs, MIG instance or time-slice replica).
LAYOUT: dict[str, list[tuple[int, str, int, int, int]]] = {
    "train": [(0, "train", 0, 8, 0)],
    "batch": [(g, "batch", g, 1, 0) for g in range(8)],
    "batch-a100": [(g, "batch", g, 1, 0) for g in range(8)],
    "dev": [(g, "notebook" if g < 4 else "batch", g, 1, 0) for g in range(8)],
    "mig": [(g * 7 + s, "mig", g, 1, s) for g in range(8) for s in range(7)],
    "ts": [(g * 4 + r, "ts", g, 1, r) for g in range(8) for r in range(4)],
}
#: Model name -> (idle W, max W) for the power model.
POWER = {"H100": (70, 700), "A100": (55, 400)}


@dataclass(frozen=True)
class Fleet:
    """One generated store. ``scale_gpus``/``scale_days`` (the full fleet's) fix the slot periods, so that a
    subset is the first nodes and days of the full fleet: the same workloads and samples (cut at its end)."""

    gpus: int
    days: int
    step: int
    workloads: int
    seed: int
    scale_gpus: int
    scale_days: int

    @property
    def nodes(self) -> int:
        return self.gpus // 8

    @property
    def end(self) -> datetime:
        return START + timedelta(days=self.days)

    def path(self, out: Path) -> Path:
        scale = "" if (self.scale_gpus, self.scale_days) == (self.gpus, self.days) else \
            f"_of{self.scale_gpus}g{self.scale_days}d"
        return out / (f"gpu_{self.gpus}g_{self.days}d_{self.step}s_{self.workloads}w{scale}_seed{self.seed}"
                      f"_v{GEN_VERSION}.duckdb")


def _pick(values: tuple[str, ...] | list[str], idx: str) -> str:
    """SQL: the value at 0-based ``idx`` of a constant list."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + f"][{idx} + 1]"


def _by_kind(expr: Any) -> str:
    """SQL: a CASE over the lane's kind of ``expr(kind)``."""
    return "CASE kind " + " ".join(f"WHEN '{k}' THEN {expr(v)}" for k, v in KINDS.items()) + " END"


def _h(seed: int, *cols: str) -> str:
    """SQL: a 64-bit hash of the seed and columns (BIGINT, so the types never change the value)."""
    return "hash(" + ", ".join(f"CAST({c} AS BIGINT)" for c in (str(seed), *cols)) + ")"


def _u(h: str, div: int) -> str:
    """SQL: a uniform [0, 1) from the digits of hash ``h`` above ``div`` (a different draw per ``div``)."""
    return f"(CAST(({h} // {div}) % 10000 AS DOUBLE) / 10000)"


def _slot_sql(seed: int) -> dict[str, str]:
    """Per (lane, k, sub): where the workload of slot k sits in it, and what it is. Workloads and samples use
    these very expressions, so a sample's pod is always the workload that holds its GPU at that time."""
    h1, h2 = "h1", "h2"
    gap = f"CAST(floor(P * (g0 + (g1 - g0) * {_u(h1, 1)})) AS BIGINT)"
    return {
        "h1": _h(seed, "lane", "k", "sub"),
        "h2": _h(seed, "lane", "k", "sub", "1"),
        "gap": gap,
        "dur": f"CAST(floor((P - gap) * (d0 + (d1 - d0) * {_u(h1, 10**4)})) AS BIGINT)",
        "busy": f"({h1} // 100000000) % 100 >= pe",
        "team": _by_kind(lambda k: _pick(k.teams, f"CAST(({h2} % 1000) % {len(k.teams)} AS INT)")),
        "model": _by_kind(lambda k: _pick(k.models, f"CAST(({h2} // 1000) % {len(k.models)} AS INT)")),
        "level": f"(a0 + (a1 - a0) * {_u(h2, 10**6)})",
        "labelled": f"({h2} // 10000000000) % 100 >= 2",  # 2% of workloads lack the team label
    }


def _name_sql() -> str:
    prefix = _by_kind(lambda k: f"'{k.prefix}'")
    return f"{prefix} || '-' || model || '-' || lane || '-' || k || CASE WHEN sub > 0 THEN '-' || sub ELSE '' END"


def _sub_sql(seed: int) -> str:
    """SQL: a training slot holds one 8-GPU pod (sub 0) or two 4-GPU pods (sub 1 on GPUs 0-3, sub 2 on 4-7)."""
    return f"CASE WHEN split AND {_h(seed, 'lane', 'k', '99')} % 2 = 1 THEN 1 + gpu_index // 4 ELSE 0 END"


def build_lanes(con: duckdb.DuckDBPyConnection, fleet: Fleet, nodes: int, scale: float) -> None:
    """Tables gen_nodes, gen_lanes and gen_streams (one row per sample series) for the first ``nodes`` nodes."""
    seed = fleet.seed
    types = ", ".join(f"('{r}', '{m}', '{it}', CAST({p} AS DECIMAL(38, 12)), '{pc}', '{pool}', '{own}', {c}, {mem}, "
                      f"{str(sm).lower()})" for r, (m, it, p, pc, pool, own, c, mem, sm) in NODE_TYPES.items())
    layout = ", ".join(f"('{r}', {li}, '{k}', {g}, {w}, {s})" for r, rows in LAYOUT.items() for li, k, g, w, s in rows)
    kinds = ", ".join(f"('{n}', " + ", ".join(f"CAST({v!r} AS DOUBLE)" for v in (k.hours, *k.gap, *k.dur)) +
                      f", {round(k.empty * 100)}, " + ", ".join(f"CAST({v!r} AS DOUBLE)" for v in k.activity) + ")"
                      for n, k in KINDS.items())
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE gen_nodes AS
SELECT i AS node_idx, printf('gpu-node-%04d', i) AS node, t.*
FROM (SELECT i, {_pick(ROLES, f'CAST(i % {len(ROLES)} AS INT)')} AS role FROM range({nodes}) r(i)) n
JOIN (VALUES {types}) t(role, gpu_model, instance_type, price, pricing, pool, owner, cores, memory, profiling)
  USING (role)""")
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE gen_lanes AS
SELECT *, CAST({_h(seed, 'lane', '6')} % P AS BIGINT) AS phase FROM (
  SELECT n.node_idx * 64 + l.local AS lane, n.node_idx, n.node, n.role, n.gpu_model, n.profiling, l.kind,
         l.first_gpu, l.width, l.sub_idx, l.kind = 'train' AS split, g0, g1, d0, d1, pe, a0, a1,
         CAST(round(k.hours * 3600 * CAST({scale!r} AS DOUBLE)
                    * (0.75 + 0.5 * {_u(_h(seed, 'n.node_idx * 64 + l.local', '5'), 1)})) AS BIGINT) AS P
  FROM gen_nodes n JOIN (VALUES {layout}) l(role, local, kind, first_gpu, width, sub_idx) USING (role)
  JOIN (VALUES {kinds}) k(kind, hours, g0, g1, d0, d1, pe, a0, a1) USING (kind)
)""")
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE gen_streams AS
SELECT l.*, lane * 8 + o AS stream_id, first_gpu + o AS gpu_index,
       'GPU-' || substr(md5('{seed}/' || node || '/' || (first_gpu + o)), 1, 8) || '-' ||
         substr(md5('{seed}/' || node || '/' || (first_gpu + o)), 9, 4) || '-' ||
         substr(md5('{seed}/' || node || '/' || (first_gpu + o)), 13, 4) || '-' ||
         substr(md5('{seed}/' || node || '/' || (first_gpu + o)), 17, 4) || '-' ||
         substr(md5('{seed}/' || node || '/' || (first_gpu + o)), 21, 12) AS gpu,
       CASE WHEN kind = 'mig' THEN CAST(7 + sub_idx AS VARCHAR) END AS instance_id,
       CASE WHEN kind = 'mig' THEN '1g.10gb' END AS profile,
       kind <> 'ts' OR sub_idx = 0 AS always, kind <> 'mig' AS has_power,
       CASE WHEN gpu_model LIKE '%H100%' THEN {POWER['H100'][0]} ELSE {POWER['A100'][0]} END AS idle_w,
       CASE WHEN gpu_model LIKE '%H100%' THEN {POWER['H100'][1]} ELSE {POWER['A100'][1]} END AS max_w
FROM gen_lanes l, (SELECT unnest(range(8)) AS o) offs WHERE o < width""")


def workloads_sql(fleet: Fleet) -> str:
    """SELECT of the workloads of gen_lanes overlapping the window (workload table columns plus start/end s)."""
    s, w = _slot_sql(fleet.seed), fleet.days * 86400
    return f"""
WITH slots AS (
  SELECT l.*, unnest(range(0, ({w} + phase) // P + 1)) AS k FROM gen_lanes l
), subs AS (
  SELECT *, unnest(CASE WHEN split AND {_h(fleet.seed, 'lane', 'k', '99')} % 2 = 1 THEN [1, 2] ELSE [0] END) AS sub
  FROM slots
), a AS (SELECT *, {s['h1']} AS h1, {s['h2']} AS h2 FROM subs
), b AS (SELECT *, {s['gap']} AS gap FROM a
), c AS (SELECT *, {s['dur']} AS dur, {s['busy']} AS busy, {s['team']} AS team, {s['model']} AS model,
                   {s['labelled']} AS labelled, k * P - phase + gap AS start_s FROM b
), d AS (SELECT *, start_s + dur AS end_s, {_name_sql()} AS name FROM c WHERE busy)
SELECT *, {_by_kind(lambda k: k.share)} AS share, {_by_kind(lambda k: k.count)} AS devices
FROM d WHERE start_s < {w} AND end_s > 0"""


def generate(fleet: Fleet, db: Path, memory_limit: str) -> dict[str, Any]:
    """Write the fleet into a fresh store at ``db`` (via a temporary file, so a killed run leaves no cache)."""
    from aifinops.store.connection import Store

    started = time.perf_counter()
    tmp = db.with_name(db.name + ".tmp")
    for p in (tmp, tmp.with_name(tmp.name + ".wal")):
        p.unlink(missing_ok=True)
    st = Store(tmp, memory_limit=memory_limit)
    con = st.con
    scale = workload_scale(con, fleet)
    build_lanes(con, fleet, fleet.nodes, scale)
    seed, w, step = fleet.seed, fleet.days * 86400, fleet.step
    batch = "INSERT INTO batches (batch_id, source_kind, status, fingerprint, started_at, seconds, rows_read, " \
            "rows_loaded, rows_quarantined, note) VALUES (?, ?, 'loaded', ?, now()::TIMESTAMP, 0, ?, ?, 0, 'bench')"
    with st.transaction():
        con.execute(f"""
INSERT INTO gpu_nodes (node, gpu_model, gpu_count, cpu_cores, memory_mib, instance_type, provider, resource_id,
                       pricing_category, node_pool, region, owner, hourly_price, labels, _batch_id, _file, _row)
SELECT node, gpu_model, 8, cores, memory, instance_type, 'AWS',
       'arn:aws:ec2:us-east-1:123456789012:instance/i-' || substr(md5('{seed}' || node), 1, 17), pricing, pool,
       'us-east-1', owner, price, MAP(['role', 'nvidia.com/mig.config', 'karpenter.sh/capacity-type'],
       [role, CASE WHEN role = 'mig' THEN 'all-1g.10gb' ELSE 'all-disabled' END, pricing]), 1, 'bench://inventory',
       node_idx + 1
FROM gen_nodes""")
        con.execute(batch, [1, "inventory", f"bench-{seed}-nodes", fleet.nodes, fleet.nodes])
        con.execute(f"""
INSERT INTO workloads (workload_id, source, kind, name, namespace, owner_kind, owner_name, node, start_ts, end_ts,
                       phase, gpu_resource, gpu_count, gpu_share, gpu_uuids, cpu_request, memory_request_mib, labels,
                       exit_code, _batch_id, _file, _row)
WITH wl AS ({workloads_sql(fleet)}), g AS (
  SELECT lane, list(gpu ORDER BY gpu_index) AS gpus FROM gen_streams GROUP BY lane
)
SELECT printf('%08x-%04x-4%03x-8%03x-%012x', h1 % 4294967296, h2 % 65536, (h1 // 65536) % 4096,
              (h2 // 65536) % 4096, (h1 // 4294967296) % 281474976710656) AS uid,
       'kubernetes', 'pod', name, 'team-' || team, {_by_kind(lambda k: f"'{k.owner_kind}'")},
       CASE WHEN kind IN ('mig', 'ts') THEN {_by_kind(lambda k: f"'{k.prefix}'")} || '-' || model || '-' || lane
            WHEN kind = 'notebook' THEN 'nb-' || lane ELSE name END,
       node, TIMESTAMP '{START}' + to_seconds(start_s), CASE WHEN end_s <= {w} THEN
         TIMESTAMP '{START}' + to_seconds(end_s) END,
       CASE WHEN end_s > {w} THEN 'Running' WHEN (h1 // 10000000000) % 100 < 6 THEN 'Failed' ELSE 'Succeeded' END,
       {_by_kind(lambda k: f"'{k.resource}'")}, devices, share,
       CASE sub WHEN 0 THEN g.gpus WHEN 1 THEN g.gpus[1:4] ELSE g.gpus[5:8] END, share * 20, share * 200000,
       CASE WHEN labelled THEN MAP(['team', 'model', 'app.kubernetes.io/component', 'env'],
                                   [team, model, kind, CASE WHEN kind = 'notebook' THEN 'dev' ELSE 'prod' END])
            ELSE MAP(['model', 'app.kubernetes.io/component'], [model, kind]) END,
       CASE WHEN end_s > {w} THEN NULL WHEN (h1 // 10000000000) % 100 < 6 THEN 1 ELSE 0 END,
       2, 'bench://workloads', row_number() OVER (ORDER BY lane, k, sub)
FROM wl JOIN g USING (lane)""")
        n_wl = con.execute("SELECT count(*) FROM workloads").fetchone()[0]
        con.execute(batch, [2, "kubernetes", f"bench-{seed}-workloads", n_wl, n_wl])
    per_day = 86400 // step
    s = _slot_sql(seed)
    samples = 0
    for day in range(fleet.days):
        i0, i1 = day * per_day, (day + 1) * per_day
        with st.transaction():  # a day at a time: bounded memory, and one batch a day as an agent would send
            con.execute(f"""
INSERT INTO gpu_samples (ts, node, gpu, gpu_index, gpu_model, gpu_instance_id, gpu_instance_profile, namespace, pod,
                         container, sm_active, gpu_util, power_w, source, _batch_id, _file, _row)
WITH a AS (
  SELECT st.*, r.i, r.i * {step} AS t, (r.i * {step} + phase) // P AS k
  FROM gen_streams st CROSS JOIN range({i0}, {i1}) r(i)
), b AS (SELECT *, {_sub_sql(seed)} AS sub FROM a
), c AS (SELECT *, {s['h1']} AS h1, t + phase - k * P AS pos FROM b
), d AS (SELECT *, {s['gap']} AS gap FROM c
), e AS (SELECT *, {s['busy']} AND pos >= gap AND pos < gap + {s['dur']} AS held FROM d
), f AS (
  SELECT *, CASE WHEN held THEN {s['h2']} END AS h2, {_h(seed, 'stream_id', 'i')} AS hs FROM e WHERE held OR always
), g AS (
  SELECT *, {s['team']} AS team, {s['model']} AS model, {_u('hs', 1)} AS u,
         CASE WHEN NOT held THEN 0.0
              WHEN kind = 'notebook' AND (hs // 10000) % 100 < 3 THEN 0.4 + 0.5 * {_u('hs', 1)}
              ELSE least(1.0, {s['level']} * (0.7 + 0.6 * {_u('hs', 1)})) END AS act
  FROM f
)
SELECT TIMESTAMP '{START}' + to_seconds(t), node, gpu, gpu_index, gpu_model, instance_id, profile,
       CASE WHEN held THEN 'team-' || team END, CASE WHEN held THEN {_name_sql()} END,
       CASE WHEN held THEN 'main' END, CASE WHEN profiling THEN round(act, 4) END,
       round(CASE WHEN held THEN least(1.0, 0.1 + 1.5 * act) ELSE 0.0 END, 2),
       CASE WHEN has_power THEN round(idle_w + (max_w - idle_w) * act * (0.85 + 0.3 * {_u('hs', 10**6)})
                                      + 5 * u, 1) END,
       'dcgm', {3 + day}, 'bench://gpu_samples/day-{day + 1:02d}', stream_id * {per_day} + i - {i0} + 1
FROM g""")
            n = con.execute(f"SELECT count(*) FROM gpu_samples WHERE _batch_id = {3 + day}").fetchone()[0]
            con.execute(batch, [3 + day, "dcgm", f"bench-{seed}-samples-{day}", n, n])
            samples += n
        print(f"  day {day + 1}/{fleet.days}: {samples:,} samples, {time.perf_counter() - started:.0f}s",
              file=sys.stderr)
    info = {"seconds": time.perf_counter() - started, "samples": samples, "workloads": n_wl, "nodes": fleet.nodes,
            "gpus": fleet.gpus, "streams": con.execute("SELECT count(*) FROM gen_streams").fetchone()[0],
            "scale": scale, "duckdb": duckdb.__version__, "fleet": asdict(fleet), "peak_mb": _peak_mb()}
    con.execute("INSERT INTO meta VALUES ('bench_generation', ?)", [json.dumps(info)])
    con.execute("CHECKPOINT")
    st.close()
    tmp.replace(db)
    return info


def workload_scale(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> float:
    """The factor on every slot period that gives the full fleet (scale_gpus over scale_days) about
    ``workloads`` workloads: a first guess from the expected slots, then one correction by counting."""
    full = Fleet(fleet.scale_gpus, fleet.scale_days, fleet.step, fleet.workloads, fleet.seed, fleet.scale_gpus,
                 fleet.scale_days)
    w = full.days * 86400
    build_lanes(con, full, full.nodes, 1.0)
    expected = con.execute(f"SELECT sum({w} / P * (1 - pe / 100) * CASE WHEN split THEN 1.5 ELSE 1 END) "
                           "FROM gen_lanes").fetchone()[0]
    scale = expected / fleet.workloads
    build_lanes(con, full, full.nodes, scale)
    got = con.execute(f"SELECT count(*) FROM ({workloads_sql(full)})").fetchone()[0]
    return scale * got / fleet.workloads


# -- measurement -------------------------------------------------------------------------------------------------


_peak_mb = harness.peak_mb


def _fleet_cost(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> Any:
    """The fleet's cost in the window, exact: every node's hourly price x the hours (no bill in this store)."""
    return con.execute(f"SELECT sum(hourly_price) * {fleet.days * 24} FROM gpu_nodes WHERE gpu_count > 0").fetchone()[0]


CALLS = {"team-hour": (["label:team"], "hour"), "workload": (["workload"], "window")}


def top_operators(profile: Path, n: int = 8) -> list[tuple[float, str, int, str]]:
    """The ``n`` costliest operators of a DuckDB JSON profile: (CPU seconds, operator, rows out, what)."""
    ops: list[tuple[float, str, int, str]] = []

    def walk(node: dict[str, Any]) -> None:
        info = node.get("extra_info") if isinstance(node.get("extra_info"), dict) else {}
        what = info.get("Table") or info.get("Groups") or info.get("Conditions") or ""
        ops.append((round(node.get("timing", 0.0), 2), node.get("name", ""), node.get("intermediate_rows", 0),
                    str(what)[:80]))
        for c in node.get("children", []):
            walk(c)

    for root in json.loads(profile.read_text()).get("operator", []):
        walk(root)
    return sorted(ops, reverse=True)[:n]


def run_aifinops(fleet: Fleet, db: Path, calls: list[str], dump: Path | None, memory_limit: str,
                 profile: bool = False) -> dict[str, Any]:
    """The timed aggregate() calls on the read-only store; checks that every call's costs add up to the fleet cost.
    ``profile``: DuckDB's profiler on (it slows the query), and the costliest operators of each call."""
    from aifinops.analysis.gpu_allocation import aggregate
    from aifinops.analysis.windows import Window
    from aifinops.store.connection import Store, StoreError

    try:
        st = Store(db, read_only=True, memory_limit=memory_limit)
    except StoreError:  # a cached store from before a schema migration: migrate it once, as the CLI would ask
        Store(db, memory_limit=memory_limit).close()
        st = Store(db, read_only=True, memory_limit=memory_limit)
    window = Window(START, fleet.end)
    samples = st.con.execute("SELECT count(*) FROM gpu_samples").fetchone()[0]
    fleet_cost = _fleet_cost(st.con, fleet)
    report: dict[str, Any] = {"samples": samples, "fleet_cost": str(fleet_cost), "calls": {}}
    results: dict[str, list[Any]] = {}
    total = 0.0
    prof = db.with_name(f"profile_{os.getpid()}.json")
    for call in calls:
        by, accumulate = CALLS[call]
        if profile:
            st.con.execute("SET enable_profiling = 'json'")
            st.con.execute(f"SET profiling_output = '{prof}'")
        started = time.perf_counter()
        rows = aggregate(st.con, window, by, accumulate=accumulate)
        seconds = time.perf_counter() - started
        total += seconds
        report["calls"][call] = {"rows": len(rows), "seconds": seconds,
                                 "conserved": sum(r["totalCost"] for r in rows) == fleet_cost}
        if profile:
            st.con.execute("SET enable_profiling = 'no_output'")
            report["calls"][call]["operators"] = top_operators(prof)
            prof.unlink(missing_ok=True)
        key = "start" if accumulate == "hour" else None
        results[call] = [[r[key].isoformat() if key else None, r[by[0]], r["gpuHours"], str(r["gpuCost"]),
                          str(r["totalCost"]), r["gpuEfficiency"]] for r in rows]
    st.close()
    if dump:
        dump.write_text(json.dumps({"fleet_cost": str(fleet_cost), **results}))
    return {**report, "seconds": total, "peak_mb": _peak_mb()}


def pandas_allocation(frames: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    """The hourly allocation with idle in plain pandas (the rule of aifinops.analysis.gpu_allocation, no bill):
    the same team-hour and workload tables as aggregate() (gpuHours, gpuCost, totalCost = gpuCost, efficiency)."""
    import numpy as np
    import pandas as pd

    hour = pd.Timedelta(hours=1)
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    nodes = frames["nodes"][frames["nodes"]["gpu_count"] > 0]
    hours = pd.DataFrame({"bucket": pd.date_range(start_ts, end_ts, freq="h", inclusive="left")})
    node_cost = nodes.merge(hours, how="cross")
    node_cost["cost"] = node_cost["hourly_price"]  # the inventory price per node-hour

    # GPU-hours held: one row per workload and hour it overlaps
    w = frames["workloads"]
    w = w[(w["gpu_share"] > 0) & w["node"].notna()].copy()
    w["end_ts"] = w["end_ts"].fillna(end_ts)
    w = w[(w["start_ts"] < end_ts) & (w["end_ts"] > start_ts)]
    first = ((w["start_ts"].clip(lower=start_ts) - start_ts) // hour).to_numpy()
    last = ((w["end_ts"].clip(upper=end_ts) - start_ts - pd.Timedelta(microseconds=1)) // hour).to_numpy()
    n = last - first + 1
    held = w.iloc[np.repeat(np.arange(len(w)), n)].reset_index(drop=True)
    offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    held["bucket"] = start_ts + pd.to_timedelta(np.repeat(first, n) + offset, unit="h")
    overlap = held["end_ts"].clip(upper=held["bucket"] + hour) - held["start_ts"].clip(lower=held["bucket"])
    held["gpu_hours"] = held["gpu_share"] * overlap.dt.total_seconds() / 3600.0
    held["name"] = held["name"].fillna(held["workload_id"])
    held["ns"] = held["namespace"].fillna("")

    # activity per workload-hour: the mean of SM_ACTIVE, else GR_ENGINE_ACTIVE, else GPU_UTIL
    s = frames["samples"]
    s = s[(s["ts"] >= start_ts) & (s["ts"] < end_ts) & s["pod"].notna() & ~s["_superseded"].fillna(False)]
    s = s.assign(ns=s["namespace"].fillna(""), bucket=start_ts + (s["ts"] - start_ts) // hour * hour)
    act = s.groupby(["node", "pod", "ns", "bucket"], sort=False)[["sm_active", "gr_engine_active", "gpu_util"]].mean()
    act = act["sm_active"].fillna(act["gr_engine_active"]).fillna(act["gpu_util"]).rename("activity").reset_index()

    # cost share = node cost x held / max(capacity, total held); idle = node cost - allocated
    alloc = held.merge(act, how="left", left_on=["node", "name", "ns", "bucket"],
                       right_on=["node", "pod", "ns", "bucket"])
    alloc = alloc.merge(node_cost[["node", "bucket", "gpu_count", "cost"]], on=["node", "bucket"])
    alloc["node_held"] = alloc.groupby(["node", "bucket"])["gpu_hours"].transform("sum")
    alloc["gpu_cost"] = alloc["cost"] * alloc["gpu_hours"] / np.maximum(alloc["gpu_count"], alloc["node_held"])
    used = alloc.groupby(["node", "bucket"])[["gpu_hours", "gpu_cost"]].sum().reset_index()
    idle = node_cost.merge(used, how="left", on=["node", "bucket"]).fillna({"gpu_hours": 0.0, "gpu_cost": 0.0})
    idle["gpu_hours"] = np.maximum(idle["gpu_count"] - idle["gpu_hours"], 0.0)
    idle["gpu_cost"] = idle["cost"] - idle["gpu_cost"]
    idle = idle.assign(name=IDLE, team=IDLE, activity=np.nan)

    alloc["team"] = [d.get("team", "__unallocated__") if isinstance(d, dict) else "__unallocated__"
                     for d in alloc["labels"]]
    cols = ["bucket", "name", "team", "gpu_hours", "gpu_cost", "activity"]
    rows = pd.concat([alloc[cols], idle[cols]], ignore_index=True)
    rows["used"] = rows["gpu_hours"] * rows["activity"]
    rows["held_seen"] = rows["gpu_hours"].where(rows["activity"].notna())

    def table(keys: list[str]) -> Any:
        g = rows.groupby(keys, sort=False)[["gpu_hours", "gpu_cost", "used", "held_seen"]].sum(min_count=1)
        g["eff"] = g["used"] / g["held_seen"]
        return g.reset_index()

    team, wl = table(["bucket", "team"]), table(["name"])
    return {"team-hour": [[b.isoformat(), t, h, c, c, e if e == e else None] for b, t, h, c, e in
                          zip(team["bucket"], team["team"], team["gpu_hours"], team["gpu_cost"], team["eff"],
                              strict=True)],
            "workload": [[None, nm, h, c, c, e if e == e else None] for nm, h, c, e in
                         zip(wl["name"], wl["gpu_hours"], wl["gpu_cost"], wl["eff"], strict=True)],
            "allocated": float(alloc["gpu_cost"].sum()), "idle": float(idle["gpu_cost"].sum())}


def run_pandas(fleet: Fleet, db: Path, dump: Path) -> dict[str, Any]:
    """Load the three tables from the store into pandas (timed apart), then the allocation in pandas. Samples come
    through Arrow: DuckDB's ``.df()`` builds a Python string per cell and takes ~10x longer for the same frame."""
    started = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    frames = {
        "nodes": con.sql("SELECT node, gpu_count, hourly_price FROM gpu_nodes").df(),
        "workloads": con.sql("SELECT workload_id, name, namespace, node, start_ts, end_ts, gpu_share, labels "
                             "FROM workloads").df(),  # labels as dicts
        "samples": con.sql("SELECT ts, node, pod, namespace, sm_active, gr_engine_active, gpu_util, _superseded "
                           "FROM gpu_samples").to_arrow_table().to_pandas(),
    }
    con.close()
    loaded = time.perf_counter()
    res = pandas_allocation(frames, START, fleet.end)
    done = time.perf_counter()
    dump.write_text(json.dumps(res))
    return {"samples": len(frames["samples"]), "load_seconds": loaded - started, "compute_seconds": done - loaded,
            "seconds": done - started, "peak_mb": _peak_mb(), "allocated": res["allocated"], "idle": res["idle"]}


def child(args: argparse.Namespace) -> dict[str, Any]:
    step, spec, db, extra = args.child[0], Fleet(**json.loads(args.child[1])), Path(args.child[2]), args.child[3]
    if step == "generate":
        return generate(spec, db, args.memory_limit)
    if step == "pandas":
        return run_pandas(spec, db, Path(extra))
    calls, _, dump = extra.partition("@")
    return run_aifinops(spec, db, calls.split(","), Path(dump) if dump else None, args.memory_limit, args.profile)


def run_child(step: str, fleet: Fleet, db: Path, extra: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step in a fresh interpreter (``harness.run_child``); returns its JSON report."""
    child = [step, json.dumps(asdict(fleet)), str(db), extra]
    return harness.run_child(str(Path(__file__).resolve()), child, args.memory_limit, args.profile,
                             show_stderr=step == "generate")


def ensure(fleet: Fleet, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The cached store of ``fleet`` (generated in a child when missing or --regen) and its generation info."""
    db = fleet.path(args.out)
    fresh = not db.exists() or args.regen
    if fresh:
        args.out.mkdir(parents=True, exist_ok=True)
        print(f"generating {db.name} ...", file=sys.stderr)
        info = run_child("generate", fleet, db, "", args)
        print(f"generated {db.name} in {info['seconds']:.0f}s, peak RSS {info['peak_mb']:.0f} MB", file=sys.stderr)
    else:
        with duckdb.connect(str(db), read_only=True) as con:
            info = json.loads(con.execute("SELECT value FROM meta WHERE key = 'bench_generation'").fetchone()[0])
    return db, {**info, "cached": not fresh, "bytes": db.stat().st_size}


def compare(a: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """Largest differences between the aifinops and pandas tables (cost, GPU-hours, efficiency), and per team."""
    out: dict[str, Any] = {}
    for call in CALLS:
        ai = {(r[0], r[1]): r for r in a[call]}
        pd_ = {(r[0], r[1]): r for r in p[call]}
        both = ai.keys() & pd_.keys()
        out[call] = {
            "rows": [len(ai), len(pd_)], "missing": len(ai.keys() ^ pd_.keys()),
            "max_cost_diff": max((abs(float(ai[k][3]) - pd_[k][3]) for k in both), default=0.0),
            "max_hours_diff": max((abs(ai[k][2] - pd_[k][2]) for k in both), default=0.0),
            "max_eff_diff": max((abs((ai[k][5] or 0) - (pd_[k][5] or 0)) for k in both), default=0.0),
            "eff_null_mismatch": sum((ai[k][5] is None) != (pd_[k][5] is None) for k in both),
        }
    teams: dict[str, list[float]] = {}
    for src, rows in ((0, a["team-hour"]), (1, p["team-hour"])):
        for r in rows:
            teams.setdefault(r[1], [0.0, 0.0])[src] += float(r[3])
    fleet = float(a["fleet_cost"])
    out["team"] = {t: {"aifinops": v[0], "pandas": v[1]} for t, v in sorted(teams.items())}
    out["max_team_diff"] = max(abs(v[0] - v[1]) for v in teams.values())
    out["fleet_cost"] = fleet
    out["pandas_total_diff"] = abs(p["allocated"] + p["idle"] - fleet)
    out["ok"] = bool(out["max_team_diff"] <= 1e-6 and out["pandas_total_diff"] <= 1e-6
                     and all(out[c]["missing"] == 0 and out[c]["max_cost_diff"] <= 1e-6 and out[c]["max_eff_diff"]
                             <= 1e-9 and out[c]["eff_null_mismatch"] == 0 for c in CALLS))
    return out


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with the highest peak RSS of all and every run's seconds."""
    fast = min(runs, key=lambda r: r["seconds"])
    return {**fast, "peak_mb": max(r["peak_mb"] for r in runs), "all_seconds": [round(r["seconds"], 3) for r in runs]}


def show(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    g, s = res["generation"], res["subset_generation"]
    table = Table(title=f"GPU allocation benchmark, {g['gpus']:,} GPUs x {res['fleet']['days']} days x "
                        f"{res['fleet']['step']} s, {g['samples']:,} samples, {g['workloads']:,} workloads, "
                        f"{os.cpu_count()} cores, duckdb {duckdb.__version__}")
    for col in ("step", "store", "rows out", "seconds", "samples/s", "peak RSS MB"):
        table.add_column(col, justify="left" if col in ("step", "store") else "right", no_wrap=True)
    full, sub = f"{g['gpus']} GPUs", f"{s['gpus']} GPUs x {res['subset']['days']} d"
    gen_note = "cached; " if g["cached"] else ""
    table.add_row(f"generate ({gen_note}first run)", full, f"{g['samples']:,}", f"{g['seconds']:.1f}",
                  f"{g['samples'] / g['seconds']:,.0f}", f"{g.get('peak_mb', 0):.0f}" if not g["cached"] else "")
    for call, r in res["aifinops"].items():
        table.add_row(f"aifinops aggregate {call}", full, f"{r['calls'][call]['rows']:,}", f"{r['seconds']:.2f}",
                      f"{r['samples'] / r['seconds']:,.0f}", f"{r['peak_mb']:.0f}")
    a, p = res["subset_aifinops"], res["pandas"]
    table.add_row("aifinops both aggregates", sub, f"{a['samples']:,}", f"{a['seconds']:.2f}",
                  f"{a['samples'] / a['seconds']:,.0f}", f"{a['peak_mb']:.0f}")
    table.add_row(f"pandas (load {p['load_seconds']:.1f} s + compute {p['compute_seconds']:.1f} s)", sub,
                  f"{p['samples']:,}", f"{p['seconds']:.2f}", f"{p['samples'] / p['seconds']:,.0f}",
                  f"{p['peak_mb']:.0f}")
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    c, t = res["check"], res["targets"]
    console.print(f"pandas / aifinops on the subset: {res['ratio']:.1f}x (compute only {res['ratio_compute']:.1f}x); "
                  f"totals agree: {'yes' if c['ok'] else 'NO'} (fleet ${c['fleet_cost']:,.2f}, largest team "
                  f"difference {c['max_team_diff']:.2e}, pandas allocated + idle - fleet {c['pandas_total_diff']:.2e})")
    for call, r in res["aifinops"].items():
        if ops := r["calls"][call].get("operators"):
            console.print(f"\n[bold]aggregate {call}: costliest operators (CPU seconds, all threads)")
            for secs, name, rows, what in ops:
                console.print(f"  {secs:7.2f}s  {name:<16} {rows:>13,} rows  {what}", markup=False, highlight=False)
    console.print(f"target <= {TIME_TARGET_S:.0f} s and <= {RSS_TARGET_MB / 1024:.0f} GB per aggregate: "
                  + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in t.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=1024, help="GPUs, 8 a node (default 1024)")
    ap.add_argument("--days", type=int, default=30, help="days of samples from 2026-09-01 (default 30)")
    ap.add_argument("--step", type=int, default=15, help="seconds between samples of a GPU (default 15)")
    ap.add_argument("--workloads", type=int, default=100_000, help="about this many workloads (default 100k)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pandas-gpus", type=int, default=40, help="GPUs of the pandas subset (the first nodes)")
    ap.add_argument("--pandas-days", type=int, default=None, help="days of the pandas subset (default --days)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--regen", action="store_true", help="regenerate the stores even if cached")
    ap.add_argument("--json", action="store_true", help="print JSON results")
    ap.add_argument("--profile", action="store_true", help="profile the aggregate queries (slower): top operators")
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit of the store (as the CLI)")
    ap.add_argument("--repeat", type=int, default=1, help="run the steps this many times; keep the fastest run")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # STEP FLEET DB EXTRA: how run_child runs a step
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args), default=str))
        return
    if args.gpus % 8 or args.pandas_gpus % 8 or 86400 % args.step:
        ap.error("--gpus and --pandas-gpus must be multiples of 8, and --step must divide a day")
    sub_gpus, sub_days = min(args.pandas_gpus, args.gpus), min(args.pandas_days or args.days, args.days)
    fleet = Fleet(args.gpus, args.days, args.step, args.workloads, args.seed, args.gpus, args.days)
    subset = Fleet(sub_gpus, sub_days, args.step, args.workloads, args.seed, args.gpus, args.days)
    db, gen = ensure(fleet, args)
    sub_db, sub_gen = ensure(subset, args) if subset != fleet else (db, gen)
    dumps = {k: args.out / f"result_{k}_{os.getpid()}.json" for k in ("aifinops", "pandas")}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in (*CALLS, "subset", "pandas")}
    try:
        for _ in range(args.repeat):  # interleaved, so that a slow spell of a shared machine hits every step
            for call in CALLS:
                runs[call].append(run_child("aifinops", fleet, db, call, args))
            runs["subset"].append(run_child("aifinops", subset, sub_db, f"{','.join(CALLS)}@{dumps['aifinops']}",
                                            args))
            runs["pandas"].append(run_child("pandas", subset, sub_db, str(dumps["pandas"]), args))
        check = compare(json.loads(dumps["aifinops"].read_text()), json.loads(dumps["pandas"].read_text()))
    finally:
        for p in dumps.values():
            p.unlink(missing_ok=True)
    aif = {call: best(runs[call]) for call in CALLS}
    sub_a, pan = best(runs["subset"]), best(runs["pandas"])
    res = {
        "fleet": asdict(fleet), "subset": asdict(subset), "store": str(db), "subset_store": str(sub_db),
        "generation": gen, "subset_generation": sub_gen, "aifinops": aif, "subset_aifinops": sub_a, "pandas": pan,
        "ratio": pan["seconds"] / sub_a["seconds"], "ratio_compute": pan["compute_seconds"] / sub_a["seconds"],
        "conserved": all(r["calls"][c]["conserved"] for c, r in aif.items())
        and all(v["conserved"] for v in sub_a["calls"].values()),
        "check": check,
        "targets": {f"{c} time": r["seconds"] <= TIME_TARGET_S for c, r in aif.items()}
        | {f"{c} RSS": r["peak_mb"] <= RSS_TARGET_MB for c, r in aif.items()},
    }
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        show(res)
    if not (check["ok"] and res["conserved"]):
        sys.exit("aifinops and pandas disagree, or costs do not add up to the fleet cost: see the check above")


if __name__ == "__main__":
    main()
