"""GPU utilisation, idle and fragmentation, hand-computed.

Window 2026-10-01 00:00..02:00 UTC: two hourly cells per GPU. Workloads are in namespace ``default``; samples
name the pod they belong to; "h0" is 00:00-01:00, "h1" 01:00-02:00.

  node (model, pool)   GPU     workload (share, when, team)            samples (activity per hour)
  node-a (H100, train) GPU-a0  train (1, 00-02, ml)                    SM_ACTIVE 0.5, 0.7 -> 0.6 | 0.8, 0.8 -> 0.8
                                                                       (GPU_UTIL 1.0 beside them, not used; an older
                                                                       copy of the 00:40 sample said 0.1: superseded)
                       GPU-a1  idle (1, 00-02, ml)                     only GPU_UTIL 0.02 | 0.04 (below 5%)
                       GPU-a2  MIG: 3g.40gb mig-a (3/7, 00-02, research) SM 0.42; 1g.10gb mig-b (1/7, 00-02, ml)
                               SM 0.14; 1g.10gb unheld SM 0.0; GPU-level rows carry power only
                               -> GPU 0.42 x 3/7 + 0.14 x 1/7 + 0 = 0.2 | 0.2; held 4/7: partly allocated
                       GPU-a3  -                                       none: unknown
  node-b (A100, infer) GPU-b0  ts-1 (0.5, 00-02, web), ts-2 (0.5, 00:30-02, no team): time-sliced, the GPU's
                               values once per pod: ts-1 0.2 0.2 0.6 0.6 at :00 :15 :30 :45, ts-2 0.6 0.6 at :30 :45
                               -> 0.4 (not the pooled 0.467) | both 0.1, 0.1 -> 0.1; held 0.5 for 00:00-00:30
                       GPU-b1  -                                       only GR_ENGINE_ACTIVE 0.01 | 0.01
  node-c (-, infer)    2 GPUs  frac-1 (0.5, 00-02, web), frac-2 (0.25, 00-01, web), frac-3 (0.5, 01-02, research)
                               no telemetry: fragmentation bound from the node's held GPU-equivalents, h0 0.75 -> at
                               least 1 partly allocated GPU, h1 1.0 -> 0 (whole, although two GPUs may be half used)

By node, accumulate day (one row each):

  node    gpus gpuHours allocated unallocated telemetry unknown meanActivity  <5%  <30%  <50%  idle   partly basis
  node-a  4    8        36/7      20/7        6         2       1.86/6=0.31   1/3  2/3   2/3   34/7   1    telemetry
  node-b  2    4        1.75      2.25        4         0       0.52/4=0.13   1/2  3/4   1     2.25   0.25 telemetry
  node-c  2    4        1.75      2.25        0         4       unknown       -    -     -     2.25   0.5  bound

  node-a idle = 20/7 unallocated + 2 held by `idle` below 5%; partly = GPU-a2 both hours.
  node-b hourly: h0 allocated 0.75, mean (0.4 + 0.01) / 2 = 0.205, partly 0.5; h1 allocated 1, mean 0.055, partly 0.
  node_pool infer = node-b + node-c: basis bound, partly (0.5 + 1) / 2 = 0.75, mean 0.13 over node-b's 4 GPU-hours.

By label:team (GPU-hours weighted by what each workload held on the GPUs its samples show):

  team              gpuHours         telemetry  meanActivity                    <5%    <30%   <50%   idle
  ml                2 + 2 + 2/7      30/7       (1.4 + 0.06 + 0.04) / (30/7)    14/30  16/30  16/30  2
  research          6/7 + 0.5        6/7        0.42                            0      0      1      0
  web               1 + 1 + 0.25     1          (0.5 x 0.4 + 0.5 x 0.1) = 0.25  0      0.5    1      0
  __unallocated__   0.25 + 0.5       0.75       (0.25 x 0.6 + 0.5 x 0.1) / 0.75 0      2/3    2/3    0
  __idle__          20/7 + 4.5       2 (GPU-b1) 0.01                            1      1      1      20/7 + 4.5
  total gpuHours 16 = 8 GPUs x 2 h; __idle__ partly (2 + 0.5 + 1) / 2 = 1.75, basis bound.
"""

from __future__ import annotations

import json

import pytest

from aifinops.analysis.gpu_utilization import IDLE, NO_LABEL, utilization
from aifinops.analysis.windows import parse_window
from aifinops.store.connection import Store

WINDOW = parse_window("2026-10-01T00:00..2026-10-01T02:00", None)
H100 = "NVIDIA H100 80GB HBM3"


def add_node(store: Store, node: str, gpus: int, model: str | None, pool: str) -> None:
    store.con.execute("INSERT INTO gpu_nodes (node, gpu_count, gpu_model, node_pool, _batch_id, _file, _row) "
                      "VALUES (?, ?, ?, ?, 0, 'test', 0)", [node, gpus, model, pool])


def add_workload(store: Store, name: str, node: str, share: float, start: str, end: str | None,
                 team: str | None) -> None:
    labels = {"team": team} if team else {}
    store.con.execute("INSERT INTO workloads (workload_id, name, namespace, source, node, gpu_share, start_ts, end_ts, "
                      "labels, _batch_id, _file, _row) VALUES (?, ?, 'default', 'test', ?, ?, ?, ?, ?, 0, 'test', 0)",
                      [f"uid-{name}", name, node, share, start, end, labels])


def add_sample(store: Store, ts: str, node: str, gpu: str, pod: str | None = None, inst: str | None = None,
               profile: str | None = None, model: str | None = None, superseded: bool = False, job: str | None = None,
               **metrics: float) -> None:
    cols = "".join(f", {c}" for c in metrics)
    marks = "".join(", ?" for _ in metrics)
    store.con.execute(
        f"INSERT INTO gpu_samples (ts, node, gpu, pod, namespace, job, gpu_instance_id, gpu_instance_profile, "
        f"gpu_model, _superseded{cols}, _batch_id, _file, _row) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?{marks}, 1, 'test', 0)",
        [ts, node, gpu, pod, "default" if pod else None, job, inst, profile, model, superseded, *metrics.values()])


@pytest.fixture
def fleet(store: Store) -> Store:
    add_node(store, "node-a", 4, "H100", "train")
    add_node(store, "node-b", 2, "A100", "infer")
    add_node(store, "node-c", 2, None, "infer")
    day = "2026-10-01 "
    for name, node, share, start, end, team in [
        ("train", "node-a", 1, "00:00", "02:00", "ml"), ("idle", "node-a", 1, "00:00", "02:00", "ml"),
        ("mig-a", "node-a", 3 / 7, "00:00", "02:00", "research"), ("mig-b", "node-a", 1 / 7, "00:00", "02:00", "ml"),
        ("ts-1", "node-b", 0.5, "00:00", "02:00", "web"), ("ts-2", "node-b", 0.5, "00:30", "02:00", None),
        ("frac-1", "node-c", 0.5, "00:00", "02:00", "web"), ("frac-2", "node-c", 0.25, "00:00", "01:00", "web"),
        ("frac-3", "node-c", 0.5, "01:00", "02:00", "research"),
    ]:
        add_workload(store, name, node, share, day + start, day + end, team)
    add_sample(store, day + "00:40", "node-a", "GPU-a0", "train", model=H100, superseded=True, sm_active=0.1)
    for t, sm in [("00:10", 0.5), ("00:40", 0.7), ("01:10", 0.8), ("01:40", 0.8)]:
        add_sample(store, day + t, "node-a", "GPU-a0", "train", model=H100, sm_active=sm, gpu_util=1.0)
    for t, util in [("00:10", 0.02), ("00:40", 0.02), ("01:10", 0.04), ("01:40", 0.04)]:
        add_sample(store, day + t, "node-a", "GPU-a1", "idle", model=H100, gpu_util=util)
    for t in ("00:10", "01:10"):
        add_sample(store, day + t, "node-a", "GPU-a2", "mig-a", "1", "3g.40gb", H100, sm_active=0.42)
        add_sample(store, day + t, "node-a", "GPU-a2", "mig-b", "2", "1g.10gb", H100, sm_active=0.14)
        add_sample(store, day + t, "node-a", "GPU-a2", None, "3", "1g.10gb", H100, sm_active=0.0)
        add_sample(store, day + t, "node-a", "GPU-a2", model=H100, power_w=300.0)
    for t, sm in [("00:00", 0.2), ("00:15", 0.2), ("00:30", 0.6), ("00:45", 0.6), ("01:00", 0.1), ("01:30", 0.1)]:
        add_sample(store, day + t, "node-b", "GPU-b0", "ts-1", sm_active=sm)
        if t >= "00:30":
            add_sample(store, day + t, "node-b", "GPU-b0", "ts-2", sm_active=sm)
    for t in ("00:00", "01:00"):
        add_sample(store, day + t, "node-b", "GPU-b1", gr_engine_active=0.01)
    return store


def approx_rows(rows: list[dict[str, object]], key: str) -> dict[object, dict[str, object]]:
    return {r[key]: {k: pytest.approx(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows}


def test_by_node_per_day(fleet: Store) -> None:
    rows = utilization(fleet.con, WINDOW, "node")
    assert [r["node"] for r in rows] == ["node-a", "node-b", "node-c"]
    assert {r["start"].isoformat() for r in rows} == {"2026-10-01T00:00:00"}
    assert {r["end"].isoformat() for r in rows} == {"2026-10-01T02:00:00"}
    got = {r["node"]: {k: v for k, v in r.items() if k not in ("start", "end", "node")} for r in rows}
    assert got["node-a"] == {
        "gpus": 4, "gpuHours": 8.0, "allocatedGpuHours": pytest.approx(36 / 7),
        "unallocatedGpuHours": pytest.approx(20 / 7), "telemetryGpuHours": 6.0, "unknownGpuHours": 2.0,
        "meanActivity": pytest.approx(0.31), "shareBelow5": pytest.approx(1 / 3), "shareBelow30": pytest.approx(2 / 3),
        "shareBelow50": pytest.approx(2 / 3), "idleGpuHours": pytest.approx(34 / 7),
        "partlyAllocatedGpus": pytest.approx(1.0), "fragmentation_basis": "telemetry",
        "activity_metric": "sm_active,gpu_util",
    }
    assert got["node-b"] == {
        "gpus": 2, "gpuHours": 4.0, "allocatedGpuHours": pytest.approx(1.75),
        "unallocatedGpuHours": pytest.approx(2.25), "telemetryGpuHours": 4.0,
        "unknownGpuHours": 0.0, "meanActivity": pytest.approx(0.13),
        "shareBelow5": pytest.approx(0.5), "shareBelow30": pytest.approx(0.75), "shareBelow50": pytest.approx(1.0),
        "idleGpuHours": pytest.approx(2.25), "partlyAllocatedGpus": pytest.approx(0.25),
        "fragmentation_basis": "telemetry", "activity_metric": "sm_active,gr_engine_active",
    }
    assert got["node-c"] == {
        "gpus": 2, "gpuHours": 4.0, "allocatedGpuHours": pytest.approx(1.75),
        "unallocatedGpuHours": pytest.approx(2.25), "telemetryGpuHours": 0.0,
        "unknownGpuHours": 4.0, "meanActivity": None, "shareBelow5": None,
        "shareBelow30": None, "shareBelow50": None, "idleGpuHours": pytest.approx(2.25),
        "partlyAllocatedGpus": pytest.approx(0.5), "fragmentation_basis": "bound", "activity_metric": None,
    }


def test_accumulate_by_hour(fleet: Store) -> None:
    rows = utilization(fleet.con, WINDOW, "node", accumulate="hour")
    assert [(r["start"].hour, r["node"]) for r in rows] == [
        (0, "node-a"), (0, "node-b"), (0, "node-c"), (1, "node-a"), (1, "node-b"), (1, "node-c")]
    got = {(r["start"].hour, r["node"]): r for r in rows}
    b0, b1 = got[(0, "node-b")], got[(1, "node-b")]
    assert (b0["allocatedGpuHours"], b0["unallocatedGpuHours"], b0["partlyAllocatedGpus"]) == (0.75, 1.25, 0.5)
    assert b0["meanActivity"] == pytest.approx(0.205)  # the time-sliced GPU counts 0.4, not the pooled 0.467
    assert (b0["shareBelow5"], b0["shareBelow30"], b0["shareBelow50"]) == (0.5, 0.5, 1.0)
    assert (b1["allocatedGpuHours"], b1["partlyAllocatedGpus"]) == (1.0, 0.0)
    assert b1["meanActivity"] == pytest.approx(0.055)
    assert (b1["shareBelow5"], b1["shareBelow30"], b1["shareBelow50"]) == (0.5, 1.0, 1.0)
    assert got[(0, "node-a")]["meanActivity"] == pytest.approx(0.82 / 3)  # 0.6 (superseded 0.1 ignored), 0.02, 0.2
    assert got[(1, "node-a")]["meanActivity"] == pytest.approx(1.04 / 3)
    assert got[(0, "node-a")]["end"].hour == 1 and got[(0, "node-a")]["gpuHours"] == 4.0
    assert (got[(0, "node-c")]["partlyAllocatedGpus"], got[(1, "node-c")]["partlyAllocatedGpus"]) == (1.0, 0.0)
    # summed over hours, the day's GPU-hours are the same
    assert sum(r["gpuHours"] for r in rows) == 16.0
    assert sum(r["idleGpuHours"] for r in rows) == pytest.approx(34 / 7 + 4.5)


def test_by_node_pool_mixes_bases_into_a_bound(fleet: Store) -> None:
    rows = approx_rows(utilization(fleet.con, WINDOW, "node_pool", accumulate="window"), "node_pool")
    assert rows["infer"] == {
        "start": WINDOW.start, "end": WINDOW.end, "node_pool": "infer", "gpus": 4, "gpuHours": 8.0,
        "allocatedGpuHours": 3.5, "unallocatedGpuHours": 4.5, "telemetryGpuHours": 4.0, "unknownGpuHours": 4.0,
        "meanActivity": 0.13, "shareBelow5": 0.5, "shareBelow30": 0.75, "shareBelow50": 1.0, "idleGpuHours": 4.5,
        "partlyAllocatedGpus": 0.75, "fragmentation_basis": "bound", "activity_metric": "sm_active,gr_engine_active",
    }
    assert rows["train"]["gpus"] == 4 and rows["train"]["meanActivity"] == 0.31
    models = {r["gpu_model"]: r["gpus"] for r in utilization(fleet.con, WINDOW, "gpu_model")}
    assert models == {"A100": 2, "H100": 4, NO_LABEL: 2}


def test_by_label_with_unallocated(fleet: Store) -> None:
    rows = utilization(fleet.con, WINDOW, "label:team")
    assert [r["label:team"] for r in rows] == [IDLE, NO_LABEL, "ml", "research", "web"]
    got = approx_rows(rows, "label:team")
    keys = ("gpuHours", "allocatedGpuHours", "unallocatedGpuHours", "telemetryGpuHours", "unknownGpuHours",
            "meanActivity", "shareBelow5", "shareBelow30", "shareBelow50", "idleGpuHours")
    table = {
        "ml": (30 / 7, 30 / 7, 0, 30 / 7, 0, 0.35, 14 / 30, 16 / 30, 16 / 30, 2),
        "research": (19 / 14, 19 / 14, 0, 6 / 7, 0.5, 0.42, 0, 0, 1, 0),
        "web": (2.25, 2.25, 0, 1, 1.25, 0.25, 0, 0.5, 1, 0),
        NO_LABEL: (0.75, 0.75, 0, 0.75, 0, 0.2 / 0.75, 0, 2 / 3, 2 / 3, 0),
        IDLE: (20 / 7 + 4.5, 0, 20 / 7 + 4.5, 2, 20 / 7 + 2.5, 0.01, 1, 1, 1, 20 / 7 + 4.5),
    }
    for team, expected in table.items():
        assert {k: got[team][k] for k in keys} == dict(zip(keys, expected, strict=True)), team
    assert got["ml"]["activity_metric"] == "sm_active,gpu_util" and got["ml"]["partlyAllocatedGpus"] is None
    assert got[IDLE]["partlyAllocatedGpus"] == 1.75 and got[IDLE]["fragmentation_basis"] == "bound"
    assert got[IDLE]["activity_metric"] == "gr_engine_active"
    assert sum(r["gpuHours"] for r in rows) == pytest.approx(16.0)  # every GPU-hour of the fleet, once


def test_idle_threshold(fleet: Store) -> None:
    rows = {r["node"]: r for r in utilization(fleet.con, WINDOW, "node", idle_threshold=0.15)}
    assert rows["node-a"]["idleGpuHours"] == pytest.approx(36 / 7)  # mig-b (0.14 on its slice) is idle now
    team = {r["label:team"]: r for r in utilization(fleet.con, WINDOW, "label:team", idle_threshold=0.15)}
    assert team["ml"]["idleGpuHours"] == pytest.approx(2 + 2 / 7)


def test_the_exact_count_beats_the_bound(store: Store) -> None:
    """Two GPUs, each half held for the hour: pod p1 (0.5, team a) on GPU-0 and Slurm job 4242 (0.5, team b,
    matched by the samples' hpc_job) on GPU-1. The node holds 1.0 GPU-equivalent, a whole number, so the bound
    says 0; the samples show both GPUs half held: exactly 2 partly allocated GPUs. When GPU-1's samples name no
    job, the job is unplaced: the node falls back to the bound (0), and GPU-1 cannot be called free (it may be
    the job's), so ``__idle__`` has no telemetry."""
    one_hour = parse_window("2026-10-01T00:00..2026-10-01T01:00", None)
    add_node(store, "n", 2, "A100", "p")
    add_workload(store, "p1", "n", 0.5, "2026-10-01 00:00", "2026-10-01 01:00", "a")
    store.con.execute("INSERT INTO workloads (workload_id, name, source, node, gpu_share, start_ts, end_ts, labels, "
                      "_batch_id, _file, _row) VALUES ('4242', 'train.sh', 'slurm', 'n', 0.5, '2026-10-01 00:00', "
                      "'2026-10-01 01:00', MAP {'team': 'b'}, 0, 'test', 0)")
    add_sample(store, "2026-10-01 00:10", "n", "GPU-0", "p1", sm_active=0.3)
    add_sample(store, "2026-10-01 00:10", "n", "GPU-1", job="4242", sm_active=0.3)
    [row] = utilization(store.con, one_hour, "node")
    assert (row["partlyAllocatedGpus"], row["fragmentation_basis"]) == (2.0, "telemetry")
    teams = {r["label:team"]: r for r in utilization(store.con, one_hour, "label:team")}
    assert teams["b"]["telemetryGpuHours"] == 0.5 and teams["b"]["meanActivity"] == pytest.approx(0.3)
    assert teams[IDLE]["partlyAllocatedGpus"] == 2.0 and teams[IDLE]["telemetryGpuHours"] == 0
    store.con.execute("UPDATE gpu_samples SET job = NULL")
    [row] = utilization(store.con, one_hour, "node")
    assert (row["partlyAllocatedGpus"], row["fragmentation_basis"]) == (0.0, "bound")
    assert row["telemetryGpuHours"] == 2.0 and row["meanActivity"] == pytest.approx(0.3)
    teams = {r["label:team"]: r for r in utilization(store.con, one_hour, "label:team")}
    assert teams["b"]["telemetryGpuHours"] == 0 and teams["b"]["unknownGpuHours"] == 0.5
    assert teams[IDLE]["unallocatedGpuHours"] == 1.0 and teams[IDLE]["telemetryGpuHours"] == 0


def test_gpu_level_activity_wins_over_mig_instances_and_a_profile_is_needed(store: Store) -> None:
    """GPU-G has GPU-level SM_ACTIVE 0.9 and an instance at 0.1: the GPU reads 0.9. In h0 one of GPU-U's two
    instances has no profile: its slice share, so the GPU's activity, is unknown (no telemetry, not 0 and not
    the other instance's 0.8 x 1/4 alone). In h1 its profile is known: 0.5 x 2/4 slices of an A30."""
    add_node(store, "n", 2, "A30", "p")
    add_sample(store, "2026-10-01 00:10", "n", "GPU-G", sm_active=0.9)
    add_sample(store, "2026-10-01 00:10", "n", "GPU-G", inst="1", profile="1g.6gb", sm_active=0.1)
    add_sample(store, "2026-10-01 00:10", "n", "GPU-U", inst="1", sm_active=0.5)
    add_sample(store, "2026-10-01 00:10", "n", "GPU-U", inst="2", profile="1g.6gb", sm_active=0.8)
    add_sample(store, "2026-10-01 01:10", "n", "GPU-U", inst="1", profile="2g.12gb", sm_active=0.5)
    rows = utilization(store.con, WINDOW, "node", accumulate="hour")
    assert [(r["telemetryGpuHours"], r["meanActivity"]) for r in rows] == [(1.0, pytest.approx(0.9)),
                                                                            (1.0, pytest.approx(0.25))]


def test_a_multi_gpu_pod_is_spread_over_the_gpus_its_samples_show(store: Store) -> None:
    """wide holds 2 GPUs; its samples show GPU-0 at 0.2 and GPU-1 at 0.6: 1 GPU-hour each, mean 0.4, no GPU partly
    allocated, nothing unknown."""
    add_node(store, "m", 2, "H100", "p")
    add_workload(store, "wide", "m", 2, "2026-10-01 00:00", "2026-10-01 02:00", "ml")
    for hour in ("00", "01"):
        add_sample(store, f"2026-10-01 {hour}:10", "m", "GPU-0", "wide", sm_active=0.2)
        add_sample(store, f"2026-10-01 {hour}:10", "m", "GPU-1", "wide", sm_active=0.6)
    rows = {r["label:team"]: r for r in utilization(store.con, WINDOW, "label:team")}
    ml, free = rows["ml"], rows[IDLE]
    assert (ml["gpuHours"], ml["telemetryGpuHours"], ml["unknownGpuHours"]) == (4.0, 4.0, 0.0)
    assert ml["meanActivity"] == pytest.approx(0.4)
    assert (free["gpuHours"], free["partlyAllocatedGpus"], free["fragmentation_basis"]) == (0.0, 0.0, "telemetry")


def test_bad_arguments(fleet: Store) -> None:
    with pytest.raises(ValueError, match="unknown --by 'colour'"):
        utilization(fleet.con, WINDOW, "colour")
    with pytest.raises(ValueError, match="unknown accumulate"):
        utilization(fleet.con, WINDOW, "node", accumulate="week")
    with pytest.raises(ValueError, match="idle threshold"):
        utilization(fleet.con, WINDOW, "node", idle_threshold=5)


def test_cli(fleet: Store) -> None:
    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app

    db = fleet.path
    fleet.close()
    run = CliRunner().invoke
    res = run(app, ["--db", str(db), "gpu", "utilization", "--by", "node", "--window", "2h", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["node"]: r for r in json.loads(res.output)}
    # 2h ends at the end of the hour of the latest sample (01:40) or workload end (02:00): 00:00..02:00
    assert rows["node-a"]["start"] == "2026-10-01T00:00:00" and rows["node-a"]["end"] == "2026-10-01T02:00:00"
    assert rows["node-a"]["meanActivity"] == pytest.approx(0.31) and rows["node-c"]["fragmentation_basis"] == "bound"
    hourly = run(app, ["--db", str(db), "gpu", "utilization", "--by", "label:team", "--accumulate", "hour",
                       "--window", "all", "--format", "json"])
    assert hourly.exit_code == 0, hourly.output
    assert sum(r["gpuHours"] for r in json.loads(hourly.output)) == pytest.approx(16.0)
    table = run(app, ["--db", str(db), "gpu", "utilization"])
    assert table.exit_code == 0 and "node-a" in table.output
    bad = run(app, ["--db", str(db), "gpu", "utilization", "--by", "colour"])
    assert bad.exit_code == 1 and "unknown --by 'colour'" in bad.output
    bad_window = run(app, ["--db", str(db), "gpu", "utilization", "--window", "soon"])
    assert bad_window.exit_code == 1 and "unknown window 'soon'" in bad_window.output
    with Store(db) as store:
        store.con.execute("DELETE FROM gpu_nodes")
    no_inventory = run(app, ["--db", str(db), "gpu", "utilization"])
    assert no_inventory.exit_code == 1 and "no GPU nodes in the inventory" in no_inventory.output


def test_slurm_hostlists_stopped_instances_and_unknown_starts(store: Store, tmp_path) -> None:
    """Job 77 on gpu[01-02] holds 8 GPUs: 4 on each 4-GPU node, all of them. gpu03 has a bill that charges
    hour 00 only, and the ledger runs to 02:00: in hour 01 it was stopped, so its 4 GPUs are neither capacity
    nor idle. old (no start: it began before the data) holds 1 GPU of gpu03 in hour 00."""
    from helpers import write_focus_csv

    from aifinops.sources.base import sources
    from aifinops.store.ingest import ingest

    bill = [{"ResourceId": "i-3", "EffectiveCost": "4", "BilledCost": "4", "ChargePeriodStart": "2026-10-01T00:00:00Z",
             "ChargePeriodEnd": "2026-10-01T01:00:00Z"},
            {"ResourceId": "other", "EffectiveCost": "1", "BilledCost": "1",
             "ChargePeriodStart": "2026-10-01T01:00:00Z", "ChargePeriodEnd": "2026-10-01T02:00:00Z"}]
    ingest(store, sources.get("focus")(), [write_focus_csv(tmp_path / "bill.csv", bill)])
    for n in ("gpu01", "gpu02"):
        add_node(store, n, 4, "H100", "slurm")
    add_node(store, "gpu03", 4, "H100", "slurm")
    store.con.execute("UPDATE gpu_nodes SET resource_id = 'i-3' WHERE node = 'gpu03'")
    add_workload(store, "77", "gpu[01-02]", 8, "2026-10-01 00:00", "2026-10-01 02:00", "hpc")
    add_workload(store, "old", "gpu03", 1, "2026-10-01 00:00", "2026-10-01 01:00", "ml")
    store.con.execute("UPDATE workloads SET start_ts = NULL WHERE name = 'old'")
    rows = approx_rows(utilization(store.con, WINDOW, "node", accumulate="window"), "node")
    assert rows["gpu01"]["allocatedGpuHours"] == 8 and rows["gpu01"]["unallocatedGpuHours"] == 0
    assert rows["gpu02"]["allocatedGpuHours"] == 8
    assert (rows["gpu03"]["gpuHours"], rows["gpu03"]["allocatedGpuHours"], rows["gpu03"]["idleGpuHours"]) == (4, 1, 3)
