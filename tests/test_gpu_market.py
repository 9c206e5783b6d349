"""``gpu_market``: GPU names as inventories and telemetry write them -> table keys, the bundled tables' own
arithmetic, spot ratios (instance, provider median, median over providers, override) and overrides."""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path
from statistics import median

import pytest

from aifinops.waste.gpu_market import GpuMarket, bundled_prices, bundled_throughput, match, parse

D = Decimal
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def market() -> GpuMarket:
    return GpuMarket.load()


@pytest.mark.parametrize(("name", "key"), [
    # dcgm-exporter modelName and nvidia-smi name (tests/fixtures/dcgm, tests/fixtures/nvidia-smi)
    ("NVIDIA H100 80GB HBM3", "H100-SXM-80GB"),
    ("NVIDIA A100-SXM4-80GB", "A100-SXM-80GB"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
    # the Kubernetes node label nvidia.com/gpu.product (tests/fixtures/kubernetes) and GKE's accelerator label
    ("NVIDIA-A100-SXM4-80GB", "A100-SXM-80GB"),
    ("nvidia-tesla-t4", "T4"),
    ("nvidia-h100-mega-80gb", "H100-SXM-80GB"),
    # inventory CSVs write the family only (tests/fixtures/inventory): the least specific variant
    ("H100", "H100-SXM-80GB"),
    ("A100", "A100-40GB"),
    ("V100", "V100"),
    # Alibaba's trace (tests/fixtures/alibaba): memory glued to the family
    ("V100M16", "V100"),
    ("T4", "T4"),
    ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-16GB", "V100"),
    ("Tesla V100-SXM2-32GB", "V100-32GB"),
    ("NVIDIA A100 80GB PCIe", "A100-PCIe-80GB"),
    ("NVIDIA H100 PCIe", "H100-PCIe-80GB"),
    # L4 is a substring of L40S and L40: families compare whole
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA H200", "H200-141GB"),
    ("AMD Instinct MI300X", "MI300X"),
    # not in the tables: no guess
    ("NVIDIA H100 NVL", None),
    ("NVIDIA GH200 480GB", None),
    ("P100", None),
    ("G2", None),
    ("", None),
    (None, None),
])
def test_names_match_table_keys(market: GpuMarket, name: str | None, key: str | None) -> None:
    assert market.key(name) == key


def test_every_gpu_name_in_the_telemetry_fixtures_has_a_key(market: GpuMarket) -> None:
    names = set()
    for path in (FIXTURES / "dcgm").rglob("*"):
        if path.is_file():
            names |= set(re.findall(r'modelName\\?"?[=:]\\?"([^"\\]+)', path.read_text(errors="ignore")))
    for path in (FIXTURES / "nvidia-smi").glob("*.csv"):
        names |= {row[2].strip() for row in csv.reader(path.open()) if len(row) > 2 and "NVIDIA" in row[2]}
    assert {"NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-40GB"} <= names
    assert {n: market.key(n) for n in names if market.key(n) is None} == {}


def test_parse_reads_memory_and_form_factor() -> None:
    assert parse("NVIDIA A100-SXM4-80GB", {"A100"}) == parse("A100-SXM-80GB")
    assert parse("V100M16", {"V100"}).memory_gb == 16
    assert parse("H100SXM5", {"H100"}).form == "SXM"
    assert match("NVIDIA H100 80GB HBM3", ["H100-PCIe-80GB"]) == "H100-PCIe-80GB"  # nothing contradicts it
    assert match("NVIDIA H100 PCIe", ["H100-SXM-80GB"]) is None  # the form factor does


def test_bundled_tables_hold_their_documented_arithmetic() -> None:
    prices = bundled_prices()
    assert len(prices) == 56 and all(p.source_url.startswith("http") for p in prices)
    for p in prices:
        if p.pricing_model != "capacity_block":
            assert p.usd_per_gpu_hour == pytest.approx(p.usd_per_hour / p.gpu_count, abs=D("1e-5")), p
    with (Path(__file__).parents[1] / "src/aifinops/waste/data/gpu_throughput.csv").open() as f:
        rows = {r["gpu_model"]: r for r in csv.DictReader(f)}
    for t in bundled_throughput():
        row = rows[t.gpu_model]
        if row["dense_tflops"]:
            assert t.training == round(float(row["dense_tflops"]) / 989.4, 4)
        if row["memory_bandwidth_tbs"]:
            assert t.inference == round(float(row["memory_bandwidth_tbs"]) / 3.35, 4)
        assert t.memory_gb and t.source_url.startswith("http") and t.basis


def test_spot_ratio_from_the_instance_the_provider_or_all_providers(market: GpuMarket) -> None:
    exact = market.spot_ratio("NVIDIA H100 80GB HBM3", "AWS", "p5.48xlarge")
    assert (exact.basis, exact.ratio) == ("instance", D("20.9934") / D("98.32"))
    assert exact.rows[0]["instance_type"] == "p5.48xlarge" and exact.rows[0]["source"].startswith("https://github")
    # g6e.2xlarge is not in the table: the median of AWS's four L40S pairs
    aws = market.spot_ratio("NVIDIA L40S", "Amazon Web Services", "g6e.2xlarge")
    pairs = [("6.5237", "30.13118"), ("1.2799", "4.52856"), ("1.0472", "3.00424"), ("0.787", "1.861")]
    assert (aws.basis, aws.ratio) == ("provider median", median(D(s) / D(o) for s, o in pairs))
    assert len(aws.rows) == 4
    # a provider without spot rows: the median over providers (only RunPod sells L40 spot)
    other = market.spot_ratio("NVIDIA L40", "gcp")
    assert (other.basis, other.ratio) == ("median over providers", D("0.69") / D("1.14"))
    assert market.spot_ratio("NVIDIA A10", "lambda") is None  # no spot price anywhere


def test_price_and_throughput_overrides_win(market: GpuMarket) -> None:
    m = GpuMarket.load({"H100": {"on_demand": D(4), "spot": D("1.6")}}, {"L4": 0.12, "V100": {"training": 0.127,
                                                                                          "memory_gb": 32}})
    r = m.spot_ratio("NVIDIA H100 PCIe", "AWS", "p5.48xlarge")
    assert (r.basis, r.ratio) == ("override", D("0.4"))
    offers = [o for o in m.offers("on_demand") if o.gpu_model.startswith("H100")]
    assert sorted((o.gpu_model, o.provider, o.usd_per_gpu_hour) for o in offers) == [
        ("H100-PCIe-80GB", "override", D(4)), ("H100-SXM-80GB", "override", D(4))]
    assert (m.throughput("NVIDIA L4", "training"), m.throughput("NVIDIA L4", "inference")) == (0.12, 0.12)
    assert m.spec("NVIDIA L4").memory_gb == 24  # the table's, under the override's ratios
    v100 = m.spec("Tesla V100-SXM2-32GB")
    assert (v100.training, v100.inference, v100.memory_gb) == (0.127, None, 32)
    assert market.spec("Tesla V100-SXM2-32GB") is None  # the bundled table has no V100 throughput
    only_spot = GpuMarket.load({"H100": {"spot": D("2.4580")}}).spot_ratio("H100", "aws", "p5.48xlarge")
    assert only_spot.ratio == D("2.4580") / D("12.29")  # on-demand from the table: AWS's median $/GPU-h
