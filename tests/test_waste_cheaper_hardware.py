"""``cheaper-hardware`` by hand, on the bundled AWS rows (us-east-1, on demand). Window 24 h.

  resnet-sweep  a Job on 8 x A100 40GB (p4d.24xlarge, $32.7726/h = $4.096575/GPU-h), peak framebuffer
                30,000 MiB = 29.3 GB: GPU cost 32.7726 x 24 = $786.5424 for 192 GPU-hours.
                Per A100 GPU-hour (training ratios: A100 0.3153, L40S 0.3659, H200 1.0006, H100 1.0) on 8-GPU
                instances: L40S g6e.48xlarge 3.766398 x 0.3153 / 0.3659 = $3.2455 (48 GB fits), H200
                10.6 x 0.3153 / 1.0006 = $3.3402, H100 12.29 x 0.3153 = $3.8750.
                L40S: 192 x 0.3153 / 0.3659 = 165.448 GPU-hours x $3.766398 = $623.1448;
                saving $786.5424 - $623.1448 = $163.3976 (20.8% >= 20%); per month x 30.4375.
  pretrain      a Job on 8 x H100 (p5.48xlarge, $12.29/GPU-h): the best is H200 at 10.6 / 1.0006 = $10.5936
                per H100 GPU-hour, 13.8% less: under 20%, silent (reported with min_saving_pct 0.1).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from waste_fixtures import T0, add_activity, add_node, add_workload, findings, window

from aifinops.store.connection import Store

D = Decimal
W = window(24)
M = D("30.4375")
TOL = D("1e-6")
A100 = "NVIDIA A100-SXM4-40GB"


def _a100(store: Store, peak_mib: float | None = 30000, gpus: int = 8, owner_kind: str = "Job",
          labels: dict[str, str] | None = None) -> None:
    con = store.con
    add_node(con, "a1", 8, "32.7726", gpu_model=A100, provider="AWS", instance_type="p4d.24xlarge", node_pool="a100")
    add_workload(con, "w1", "a1", gpus, T0, None, labels=labels or {"team": "cv"}, owner_kind=owner_kind,
                 owner_name="resnet-sweep", name="resnet-sweep-x1")
    if peak_mib is not None:
        add_activity(con, "a1", 0, T0, 24, 0.9, pod="resnet-sweep-x1", every_s=3600, fb_used_mib=peak_mib,
                     fb_total_mib=40960, gpu_model=A100)


def _h100(store: Store) -> None:
    add_node(store.con, "h1", 8, "98.32", provider="AWS", instance_type="p5.48xlarge", node_pool="h100")
    add_workload(store.con, "w2", "h1", 8, T0, None, labels={"team": "nlp"}, owner_kind="Job", owner_name="pretrain")


def test_the_same_training_costs_less_on_l40s(store: Store) -> None:
    _a100(store)
    _h100(store)
    [f] = findings(store.con, W, "cheaper-hardware").findings
    assert (f.scope_kind, f.scope, f.owner, f.pool, f.confidence) == (
        "workload", "default/resnet-sweep", "cv", "workload:w1", "medium")
    alt_cost = D(192) * D("0.3153") / D("0.3659") * D("3.766398")
    assert f.monthly_saving == pytest.approx((D("786.5424") - alt_cost) * M, abs=TOL)
    assert f.monthly_saving == pytest.approx(D("163.3976") * M, abs=D("0.01"))
    assert f.monthly_cost == pytest.approx(D("786.5424") * M, abs=TOL)
    e = f.evidence
    assert (e["current_gpu_type"], e["pricing_model"], e["work"]) == ("A100-40GB", "on_demand", "training")
    assert (e["alternative_gpu_type"], e["alternative_provider"], e["alternative_instance_type"],
            e["alternative_price_per_gpu_hour"], e["alternative_memory_gb"]) == (
        "L40S", "aws", "g6e.48xlarge", D("3.766398"), 48.0)
    assert "skypilot-catalog" in e["alternative_price_source"]
    assert (e["throughput_current"], e["throughput_alternative"]) == (0.3153, 0.3659)
    assert "dense BF16 362" in e["throughput_basis_alternative"]
    assert "glennklockwood" in " ".join(e["throughput_sources"])
    assert (e["equivalent_gpu_hours"], e["memory_needed_gb"]) == (165.448, 29.297)
    assert e["runner_up"].startswith("H200-141GB aws p5en.48xlarge us-east-1 at $10.6000/GPU-h = $3.3402")
    assert f.recommendation.startswith(
        f"Run default/resnet-sweep on L40S (aws g6e.48xlarge us-east-1) instead of {A100}")
    assert "192.000 GPU-h x 0.3153 / 0.3659 x $3.7664/GPU-h" in f.saving_formula


def test_efficient_hardware_and_serving_stay_silent(store: Store) -> None:
    _h100(store)  # best alternative saves 13.8%
    _a100(store, peak_mib=10000, gpus=1, owner_kind="ReplicaSet", labels={"model": "llama-8b", "team": "cv"})
    res = findings(store.con, W, "cheaper-hardware")
    assert res.findings == [] and res.ran == ["cheaper-hardware"]
    [h100] = findings(store.con, W, "cheaper-hardware", min_saving_pct=0.1, include_serving=False).findings
    assert (h100.scope, h100.evidence["alternative_gpu_type"]) == ("default/pretrain", "H200-141GB")


def test_serving_is_judged_by_inference_throughput_when_asked(store: Store) -> None:
    """1 A100 40GB serving a model, 10,000 MiB peak: $4.096575 x 24 = $98.3178. Inference ratios (bandwidth):
    A100 40GB 0.4642; on 1-GPU AWS instances with >= 9.8 GB the cheapest is T4 g4dn.xlarge: 0.526 x 0.4642 /
    0.0955 = $2.5567 per A100-hour (A10G g5.xlarge: 1.006 x 0.4642 / 0.1791 = $2.6074).
    Saving: 98.3178 - 24 x 0.4642 / 0.0955 x 0.526 = $36.9556."""
    _a100(store, peak_mib=10000, gpus=1, owner_kind="ReplicaSet", labels={"model": "llama-8b", "team": "cv"})
    [f] = findings(store.con, W, "cheaper-hardware", include_serving=True).findings
    assert (f.evidence["work"], f.evidence["alternative_instance_type"]) == ("inference", "g4dn.xlarge")
    expected = D("4.096575") * 24 - D(24) * D("0.4642") / D("0.0955") * D("0.526")
    assert f.monthly_saving == pytest.approx(expected * M, abs=TOL)
    assert f.evidence["runner_up"].startswith("A10G aws g5.xlarge")


def test_memory_prices_and_providers_are_options(store: Store) -> None:
    _a100(store, peak_mib=None)  # no telemetry: needs 40 GB x min_memory_ratio
    [f] = findings(store.con, W, "cheaper-hardware").findings
    assert (f.evidence["alternative_gpu_type"], f.confidence) == ("L40S", "low")
    assert f.evidence["memory_basis"].startswith("1 x the current GPU's 40 GB")
    # 50 GB needed: L40S (48 GB) no longer fits, H200 saves 18.5% < 20%
    assert findings(store.con, W, "cheaper-hardware", min_memory_ratio=1.25).findings == []
    # your L40S price: 5 x 0.3153 / 0.3659 = $4.31 per A100-hour, more than now
    assert findings(store.con, W, "cheaper-hardware", prices={"L40S": {"on_demand": 5}}).findings == []


def test_a_gpu_the_table_lacks_and_other_providers(store: Store) -> None:
    """1 V100 16GB at AWS (p3.2xlarge, $3.06/h) for 24 h = $73.44, 12,000 MiB peak; the table has no V100
    throughput, so the throughput option gives it (0.127 training, 16 GB). Same provider, per V100-hour: L40S
    g6e.xlarge 1.861 x 0.127 / 0.3659 = $0.6459 (T4 g4dn.xlarge 0.526 x 0.127 / 0.0658 = $1.0152) -> saving
    73.44 - 24 x 0.127 / 0.3659 x 1.861 = $57.9377. Other providers: RunPod's L40 at $1.14 -> $0.3957 per
    V100-hour -> 73.44 - 24 x 0.127 / 0.3659 x 1.14 = $63.9435."""
    add_node(store.con, "v1", 1, "3.06", gpu_model="Tesla V100-SXM2-16GB", provider="AWS", instance_type="p3.2xlarge",
             region="us-west-2", node_pool="v100")
    add_workload(store.con, "j1", "v1", 1, T0, None, source="slurm", kind="slurm-job", name="bert-ft", namespace=None)
    add_activity(store.con, "v1", 0, T0, 24, 0.8, pod="bert-ft", namespace=None, every_s=3600, fb_used_mib=12000,
                 fb_total_mib=16384, gpu_model="Tesla V100-SXM2-16GB")
    assert findings(store.con, W, "cheaper-hardware").findings == []  # no throughput for V100: not judged
    tp = {"V100": {"training": 0.127, "memory_gb": 16}}
    [aws] = findings(store.con, W, "cheaper-hardware", throughput=tp).findings
    assert (aws.scope, aws.evidence["alternative_instance_type"]) == ("/bert-ft", "g6e.xlarge")
    assert aws.evidence["runner_up"].startswith("T4 aws g4dn.xlarge")  # the next other GPU type
    assert aws.monthly_saving == pytest.approx(
        (D("73.44") - D(24) * D("0.127") / D("0.3659") * D("1.861")) * M, abs=TOL)
    [anywhere] = findings(store.con, W, "cheaper-hardware", throughput=tp, allow_other_providers=True).findings
    assert (anywhere.evidence["alternative_provider"], anywhere.evidence["alternative_gpu_type"]) == ("runpod", "L40")
    assert anywhere.monthly_saving == pytest.approx(
        (D("73.44") - D(24) * D("0.127") / D("0.3659") * D("1.14")) * M, abs=TOL)


def test_the_same_gpu_for_less_elsewhere(store: Store) -> None:
    """1 H100 SXM at RunPod ($4.69/GPU-h) for 24 h = $112.56, 60,000 MiB peak (58.6 GB: no 48 GB card fits).
    Elsewhere: Lambda's 1x H100 SXM at $3.78 (throughput 1:1) saves 24 x 0.91 = $21.84, 19.4%: silent at 20%,
    reported at 15%, with high confidence (same GPU, known memory)."""
    add_node(store.con, "r1", 8, "37.52", provider="runpod", instance_type="8x_H100-SXM_SECURE", region="US",
             node_pool="rp")
    add_workload(store.con, "p1", "r1", 1, T0, None, owner_kind="Job", owner_name="dpo", name="dpo-0")
    add_activity(store.con, "r1", 0, T0, 24, 0.9, pod="dpo-0", every_s=3600, fb_used_mib=60000)
    assert findings(store.con, W, "cheaper-hardware", allow_other_providers=True).findings == []
    [f] = findings(store.con, W, "cheaper-hardware", allow_other_providers=True, min_saving_pct=0.15).findings
    assert (f.confidence, f.evidence["alternative_provider"], f.evidence["alternative_price_per_gpu_hour"]) == (
        "high", "lambda", D("3.78"))
    assert f.recommendation.startswith("Run default/dpo on the same H100-SXM-80GB in lambda")
    assert f.monthly_saving == pytest.approx(D("21.84") * M, abs=TOL)


def test_skipped_without_workloads(store: Store) -> None:
    res = findings(store.con, W, "cheaper-hardware")
    assert res.findings == [] and [(s.rule, s.reason) for s in res.skipped] == [
        ("cheaper-hardware", "no GPU node inventory (aifinops ingest inventory / kubernetes)")]
