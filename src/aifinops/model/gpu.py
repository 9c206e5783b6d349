"""The GPU fleet model: canonical columns of telemetry, workloads and inventory, and the sharing rules.

Conventions every GPU source follows, so that analyses never guess units:

- time is UTC, stored as naive ``TIMESTAMP``;
- activities (``sm_active``, ``gr_engine_active``, ``gpu_util``) are ratios in [0, 1]: DCGM's
  ``DCGM_FI_DEV_GPU_UTIL`` and nvidia-smi's ``utilization.gpu`` are percentages and are divided by 100;
- memory is MiB, power is W, energy is J (DCGM's ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` is a counter in
  mJ since boot and is divided by 1000; it resets when the GPU resets);
- ``gpu`` identifies one physical GPU: its UUID, or ``<node>/<index>`` when no UUID is known;
- a sample is one observation of (``gpu``, ``gpu_instance_id``, ``ts``, ``namespace``, ``pod``, ``container``,
  ``job``): time-sliced pods sharing a GPU each get their own row. Ingest keeps one row per observation
  (``SAMPLE_KEY``): when the same one arrives again, the newest batch's row wins and the older one is marked
  ``_superseded``, so analyses read ``NOT _superseded`` and never count a sample twice;
- a workload's ``gpu_share`` is the number of GPU-equivalents it holds while it runs (see ``gpu_share``).
"""

from __future__ import annotations

import csv
import io
import re
from importlib import resources

#: Compute slices of one GPU of each MIG-capable model: a ``<g>g.<mem>gb`` profile holds g of them.
#: A100 / H100 / H200 / B200 / GB200 have 7 slices; A30 has 4. Unknown models default to 7.
MIG_SLICES = {"A100": 7, "H100": 7, "H200": 7, "H800": 7, "A800": 7, "B200": 7, "GB200": 7, "A30": 4}
DEFAULT_MIG_SLICES = 7

GPU_SAMPLE_COLUMNS: dict[str, str] = {
    "ts": "TIMESTAMP",
    "node": "VARCHAR",
    "gpu": "VARCHAR",
    "gpu_index": "INTEGER",
    "gpu_model": "VARCHAR",
    "gpu_instance_id": "VARCHAR",  # MIG GPU instance (GPU_I_ID); NULL for a whole GPU
    "gpu_instance_profile": "VARCHAR",  # MIG profile (GPU_I_PROFILE), e.g. 1g.10gb
    "namespace": "VARCHAR",
    "pod": "VARCHAR",
    "container": "VARCHAR",
    "job": "VARCHAR",  # HPC job id (dcgm-exporter's hpc_job label): ties samples to a Slurm job
    "sm_active": "DOUBLE",
    "gr_engine_active": "DOUBLE",
    "gpu_util": "DOUBLE",
    "fb_used_mib": "DOUBLE",
    "fb_free_mib": "DOUBLE",
    "power_w": "DOUBLE",
    "energy_j": "DOUBLE",
    "source": "VARCHAR",  # dcgm | nvidia-smi | nvml
}

WORKLOAD_COLUMNS: dict[str, str] = {
    "workload_id": "VARCHAR",  # stable: Kubernetes pod UID, Slurm JobID, or the id column of a CSV
    "source": "VARCHAR",  # kubernetes | slurm | csv
    "kind": "VARCHAR",  # pod | slurm-job | ... (what one row is)
    "name": "VARCHAR",
    "namespace": "VARCHAR",
    "owner_kind": "VARCHAR",  # Job, ReplicaSet, StatefulSet, ... (Kubernetes owner reference)
    "owner_name": "VARCHAR",
    "node": "VARCHAR",
    "start_ts": "TIMESTAMP",  # when it started holding its GPUs; NULL: before the data begins
    "end_ts": "TIMESTAMP",  # NULL while still running
    "phase": "VARCHAR",  # Running, Succeeded, Failed, COMPLETED, PREEMPTED, ...
    "gpu_resource": "VARCHAR",  # nvidia.com/gpu, nvidia.com/mig-1g.10gb, nvidia.com/gpu.shared, gpu_milli ...
    "gpu_count": "DOUBLE",  # devices requested: GPUs, MIG slices or shared replicas
    "gpu_share": "DOUBLE",  # GPU-equivalents held, see gpu_share()
    "gpu_uuids": "VARCHAR[]",  # the GPUs it held, when the source knows them
    "cpu_request": "DOUBLE",  # cores
    "memory_request_mib": "DOUBLE",
    "labels": "MAP(VARCHAR, VARCHAR)",
    "annotations": "MAP(VARCHAR, VARCHAR)",
    "exit_code": "INTEGER",
}

GPU_NODE_COLUMNS: dict[str, str] = {
    "node": "VARCHAR",
    "gpu_model": "VARCHAR",
    "gpu_count": "INTEGER",
    "cpu_cores": "DOUBLE",  # capacity, for the CPU part of a node's cost (allocation.cpu_share)
    "memory_mib": "DOUBLE",  # capacity, for the memory part (allocation.memory_share)
    "instance_type": "VARCHAR",
    "provider": "VARCHAR",
    "resource_id": "VARCHAR",  # FOCUS ResourceId of the instance: joins the ledger
    "pricing_category": "VARCHAR",  # on-demand | spot | reserved | on-prem
    "node_pool": "VARCHAR",
    "region": "VARCHAR",
    "owner": "VARCHAR",  # team that owns the node pool (for the charge-idle-to-owner policy)
    "hourly_price": "DECIMAL(38, 12)",  # user price for the whole node when no bill covers it
    "labels": "MAP(VARCHAR, VARCHAR)",
}

#: What makes a GPU sample one observation (see the module docstring).
SAMPLE_KEY = ("gpu", "gpu_instance_id", "ts", "namespace", "pod", "container", "job")

_MIG = re.compile(r"(?:mig-)?(\d+)g\.(\d+)gb", re.I)


def mig_slices(gpu_model: str | None) -> int:
    model = (gpu_model or "").upper()
    for name, slices in sorted(MIG_SLICES.items(), key=lambda kv: -len(kv[0])):
        if name in model:
            return slices
    return DEFAULT_MIG_SLICES


def gpu_share(resource: str, count: float, gpu_model: str | None = None, replicas: int | None = None,
              fraction: float | None = None) -> float:
    """GPU-equivalents held by ``count`` units of ``resource``. The rule, documented once:

    - ``nvidia.com/gpu``: whole GPUs, share = count;
    - ``nvidia.com/mig-<g>g.<mem>gb``: MIG slices, share = count x g / slices of the GPU model
      (``1g.10gb`` on an H100 = 1/7);
    - time-sliced (``nvidia.com/gpu.shared`` or ``replicas`` given): share = count / replicas;
    - fractional GPUs (``fraction``, e.g. Alibaba's ``gpu_milli`` / 1000, run:ai's gpu-fraction): share =
      count x fraction.
    """
    if fraction is not None:
        return count * fraction
    if m := _MIG.search(resource):
        return count * int(m.group(1)) / mig_slices(gpu_model)
    if replicas:
        return count / replicas
    return count


def tdp_table(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """GPU board power (W) by model substring: the bundled table (``data/gpu_tdp.csv``, sourced in its
    SOURCE note), extended and overridden by the user's ``gpu_tdp_w``."""
    text = resources.files(__package__).joinpath("data/gpu_tdp.csv").read_text()
    table = {r["pattern"]: float(r["tdp_watts"]) for r in csv.DictReader(io.StringIO(text))}
    return {**table, **(overrides or {})}


def hostlist_sql(col: str) -> str:
    """SQL: the node names of a node column as a list. Slurm prints a job's nodes as a hostlist
    (``gpu[01-02,05],cpu7``: prefix, ranges keeping their zero padding, suffix); any other name is itself.
    A hostlist that cannot be expanded stays one (unknown) name, so its workload is counted as unmatched
    instead of disappearing."""
    pad = ("CASE WHEN length(CAST(n AS VARCHAR)) >= length(split_part(p, '-', 1)) THEN CAST(n AS VARCHAR) "
           "ELSE lpad(CAST(n AS VARCHAR), CAST(length(split_part(p, '-', 1)) AS INTEGER), '0') END")
    lo = "TRY_CAST(split_part(p, '-', 1) AS BIGINT)"
    hi = f"coalesce(TRY_CAST(nullif(split_part(p, '-', 2), '') AS BIGINT), {lo})"
    expanded = (
        f"flatten(list_transform(regexp_extract_all({col}, '[^,\\[]+(?:\\[[^\\]]*\\])?[^,\\[]*'), "
        "lambda item: CASE WHEN contains(item, '[') THEN "
        "flatten(list_transform(string_split(regexp_extract(item, '\\[([^\\]]*)\\]', 1), ','), "
        f"lambda p: list_transform(range({lo}, {hi} + 1), "
        f"lambda n: regexp_extract(item, '^([^\\[]*)', 1) || {pad} || regexp_extract(item, '\\]([^\\]]*)$', 1))))"
        " ELSE [item] END))")
    return (f"CASE WHEN NOT regexp_matches({col}, '[\\[,]') THEN [{col}] "
            f"WHEN len({expanded}) > 0 THEN {expanded} ELSE [{col}] END")
