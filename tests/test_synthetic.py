"""The synthetic AI company's bill: valid FOCUS 1.2, exact money, and the story the demo tells."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aifinops.demo.synthetic import Scenario, build_scenario, generate_bill, write_bill
from aifinops.model.focus import columns

ARROW_TYPES = {"Decimal": pa.decimal128(38, 12), "Date/Time": pa.timestamp("us"), "String": pa.string(),
               "JSON": pa.string()}
# Parent category of each subcategory the generator uses (FOCUS 1.2, ServiceSubcategory table).
PARENT = {"Virtual Machines": "Compute", "Containers": "Compute", "Object Storage": "Storage",
          "Block Storage": "Storage", "File Storage": "Storage", "Network Connectivity": "Networking",
          "Generative AI": "AI and Machine Learning", "Machine Learning": "AI and Machine Learning",
          "Relational Databases": "Databases", "Data Warehouses": "Databases",
          "Observability": "Management and Governance", "Support": "Management and Governance"}
LAYER_SQL = """CASE WHEN ServiceCategory = 'Compute' AND SkuPriceDetails LIKE '%GpuCount%' THEN 'gpu'
    WHEN ServiceCategory = 'Compute' THEN 'cpu' WHEN ServiceCategory = 'Storage' THEN 'storage'
    WHEN ServiceCategory = 'Networking' THEN 'network' WHEN ServiceCategory = 'AI and Machine Learning'
    THEN 'ai' ELSE 'other' END"""


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario()


@pytest.fixture(scope="module")
def bill(scenario: Scenario) -> pa.Table:
    return generate_bill(scenario)


@pytest.fixture(scope="module")
def db(bill: pa.Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("b", bill)
    return con


def scalar(db: duckdb.DuckDBPyConnection, sql: str) -> object:
    return db.execute(sql).fetchone()[0]


def untagged_share(db: duckdb.DuckDBPyConnection) -> Decimal:
    """Share of EffectiveCost that no team can be charged for: no tags, or tags without a team key."""
    return scalar(db, """SELECT sum(EffectiveCost) FILTER (WHERE Tags IS NULL OR NOT list_contains(
        json_keys(lower(Tags)), 'team')) / sum(EffectiveCost) FROM b""")


def test_same_seed_same_bill(bill: pa.Table) -> None:
    assert generate_bill(build_scenario(seed=7)).equals(bill)
    assert not generate_bill(build_scenario(seed=8)).equals(bill)


def test_exactly_the_focus_columns_in_order_with_arrow_types(bill: pa.Table) -> None:
    assert bill.column_names == [c.id for c in columns()]
    for col in columns():
        assert bill.schema.field(col.id).type == ARROW_TYPES[col.data_type], col.id


def test_values_are_allowed_and_mandatory_columns_filled(bill: pa.Table) -> None:
    for col in columns():
        if col.allowed_values:
            assert set(bill[col.id].drop_null().unique().to_pylist()) <= set(col.allowed_values), col.id
        if not col.nullable:
            assert bill[col.id].null_count == 0, col.id
    for col in ("Tags", "SkuPriceDetails"):
        assert all(isinstance(json.loads(v), dict) for v in bill[col].drop_null().unique().to_pylist())


# FOCUS 1.2 conditional rules, each as the SQL of a violation (see the columns' "MUST" lines in the spec).
CONDITIONAL_RULES = {
    "ConsumedUnit null iff ConsumedQuantity null": "(ConsumedUnit IS NULL) <> (ConsumedQuantity IS NULL)",
    "PricingUnit null iff PricingQuantity null": "(PricingUnit IS NULL) <> (PricingQuantity IS NULL)",
    "RegionName null iff RegionId null": "(RegionName IS NULL) <> (RegionId IS NULL)",
    "SubAccount name/type with id":
        "(SubAccountName IS NULL OR SubAccountType IS NULL) <> (SubAccountId IS NULL)",
    "Resource name/type need an id":
        "ResourceId IS NULL AND (ResourceName IS NOT NULL OR ResourceType IS NOT NULL)",
    "ResourceType with every id": "ResourceId IS NOT NULL AND ResourceType IS NULL",
    "ResourceName is not the id": "ResourceName = ResourceId",
    "SkuMeter needs a SkuId": "SkuId IS NULL AND SkuMeter IS NOT NULL",
    "SkuPriceDetails needs a SkuPriceId": "SkuPriceId IS NULL AND SkuPriceDetails IS NOT NULL",
    "commitment columns go together": """(CommitmentDiscountId IS NULL) <> (CommitmentDiscountName IS NULL)
        OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountType IS NULL)
        OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountCategory IS NULL)
        OR (CommitmentDiscountUnit IS NULL) <> (CommitmentDiscountQuantity IS NULL)""",
    "commitment usage has a status and quantity": """CommitmentDiscountId IS NOT NULL AND ChargeClass IS NULL
        AND ((ChargeCategory = 'Usage' AND CommitmentDiscountStatus IS NULL)
             OR (ChargeCategory IN ('Usage', 'Purchase') AND CommitmentDiscountQuantity IS NULL))""",
    "Committed pricing iff a commitment covers usage": """ChargeCategory = 'Usage'
        AND (PricingCategory = 'Committed') <> (CommitmentDiscountId IS NOT NULL)""",
    "commitment purchases and unused rows carry the commitment as resource": """(ChargeCategory = 'Purchase'
        AND CommitmentDiscountId IS NOT NULL OR CommitmentDiscountStatus = 'Unused')
        AND ResourceId <> CommitmentDiscountId""",
    "capacity reservation status with id":
        "(CapacityReservationId IS NULL) <> (CapacityReservationStatus IS NULL)",
    "consumption only for used usage": """ConsumedQuantity IS NOT NULL AND (ChargeCategory <> 'Usage'
        OR CommitmentDiscountStatus = 'Unused')""",
    "usage measures consumption": """ChargeCategory = 'Usage' AND ChargeClass IS NULL
        AND CommitmentDiscountStatus IS DISTINCT FROM 'Unused' AND ConsumedQuantity IS NULL""",
    "priced usage and purchases": """ChargeCategory IN ('Usage', 'Purchase') AND ChargeClass IS NULL AND (
        ListUnitPrice IS NULL OR ContractedUnitPrice IS NULL OR PricingQuantity IS NULL OR SkuId IS NULL
        OR SkuPriceId IS NULL OR PricingCategory IS NULL)""",
    "taxes carry no price": """ChargeCategory = 'Tax' AND (ListUnitPrice IS NOT NULL OR PricingQuantity IS NOT
        NULL OR SkuId IS NOT NULL OR SkuPriceId IS NOT NULL OR PricingCategory IS NOT NULL)""",
    "purchases are not usage-based": "ChargeCategory = 'Purchase' AND ChargeFrequency = 'Usage-Based'",
    "pricing currency mirrors billing": """PricingCurrency <> BillingCurrency
        OR PricingCurrencyEffectiveCost <> EffectiveCost
        OR PricingCurrencyListUnitPrice IS DISTINCT FROM ListUnitPrice
        OR PricingCurrencyContractedUnitPrice IS DISTINCT FROM ContractedUnitPrice""",
}


@pytest.mark.parametrize("rule", CONDITIONAL_RULES)
def test_focus_conditional_rules(db: duckdb.DuckDBPyConnection, rule: str) -> None:
    assert scalar(db, f"SELECT count(*) FROM b WHERE {CONDITIONAL_RULES[rule]}") == 0


def test_sku_ids_are_consistent(db: duckdb.DuckDBPyConnection) -> None:
    assert scalar(db, "SELECT count(*) FROM (SELECT SkuPriceId FROM b GROUP BY 1 "
                      "HAVING count(DISTINCT SkuId) > 1)") == 0
    assert scalar(db, "SELECT count(*) FROM (SELECT InvoiceId FROM b GROUP BY 1 HAVING count(DISTINCT "
                      "(BillingAccountId, BillingPeriodStart)) > 1)") == 0


def test_periods_are_ordered_and_charges_fall_in_their_billing_period(db: duckdb.DuckDBPyConnection) -> None:
    assert scalar(db, "SELECT count(*) FROM b WHERE ChargePeriodStart >= ChargePeriodEnd") == 0
    assert scalar(db, """SELECT count(*) FROM b WHERE ChargeClass IS NULL AND NOT (
        BillingPeriodStart <= ChargePeriodStart AND ChargePeriodEnd <= BillingPeriodEnd)""") == 0
    # the correction refunds hours of a period that was already invoiced
    assert scalar(db, """SELECT bool_and(ChargePeriodEnd <= BillingPeriodStart AND BilledCost < 0)
        FROM b WHERE ChargeClass = 'Correction'""") is True


def test_costs_are_exact_products_and_ordered(bill: pa.Table) -> None:
    rows = bill.select(["ChargeClass", "ChargeCategory", "PricingQuantity", "ListUnitPrice", "ListCost",
                        "ContractedUnitPrice", "ContractedCost", "EffectiveCost"]).to_pylist()
    priced = [r for r in rows if r["ChargeClass"] is None and r["PricingQuantity"] is not None]
    assert len(priced) > 0.99 * len(rows)
    for r in priced:
        assert r["ListCost"] == r["ListUnitPrice"] * r["PricingQuantity"]
        assert r["ContractedCost"] == r["ContractedUnitPrice"] * r["PricingQuantity"]
        assert r["ContractedCost"] <= r["ListCost"]
        if r["ChargeCategory"] == "Usage":
            assert 0 <= r["EffectiveCost"] <= r["ContractedCost"]


def test_each_service_has_one_category_and_subcategory(db: duckdb.DuckDBPyConnection) -> None:
    pairs = db.execute("""SELECT ServiceName, count(DISTINCT (ServiceCategory, ServiceSubcategory)),
        any_value(ServiceCategory), any_value(ServiceSubcategory) FROM b GROUP BY 1""").fetchall()
    assert len(pairs) >= 15
    for name, n, category, sub in pairs:
        assert n == 1, name
        assert PARENT[sub] == category, name


def test_credits_are_negative_and_the_refund_is_a_correction(db: duckdb.DuckDBPyConnection) -> None:
    credits = db.execute("""SELECT count(*), max(BilledCost), bool_and(ListCost = BilledCost
        AND EffectiveCost = BilledCost) FROM b WHERE ChargeCategory = 'Credit'""").fetchone()
    assert credits[0] >= 2 and credits[1] < 0 and credits[2]
    refund = db.execute("""SELECT count(*), any_value(ChargeCategory), any_value(EffectiveCost)
        FROM b WHERE ChargeClass = 'Correction'""").fetchone()
    assert refund[0] == 1 and refund[1] == "Usage" and refund[2] < 0
    assert scalar(db, "SELECT count(*) FROM b WHERE ChargeCategory = 'Tax' AND BilledCost > 0") > 0


def test_commitments_are_amortised(db: duckdb.DuckDBPyConnection, scenario: Scenario) -> None:
    upfront = db.execute("""SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM b
        WHERE ChargeCategory = 'Purchase' AND ChargeFrequency = 'One-Time'""").fetchone()
    assert upfront[0] == 1 and upfront[1] > 100_000 and upfront[2] == 0
    used = db.execute("""SELECT count(*), max(BilledCost), bool_and(EffectiveCost < ListCost) FROM b
        WHERE CommitmentDiscountStatus = 'Used'""").fetchone()
    assert used[0] > 1000 and used[1] == 0 and used[2]
    assert scalar(db, "SELECT count(*) FROM b WHERE CommitmentDiscountStatus = 'Unused'") > 0
    # a commitment billed monthly: what was billed is exactly what usage absorbed, used or unused
    cud = next(c for c in scenario.commitments if not c.upfront)
    billed, absorbed = db.execute(f"""SELECT
        sum(BilledCost) FILTER (WHERE ChargeCategory = 'Purchase'),
        sum(EffectiveCost) FILTER (WHERE ChargeCategory = 'Usage')
        FROM b WHERE CommitmentDiscountId = '{cud.id}'""").fetchone()
    assert billed == absorbed > 0


def test_spend_mix_tells_the_ai_story(db: duckdb.DuckDBPyConnection) -> None:
    layers = dict(db.execute(f"SELECT {LAYER_SQL}, sum(EffectiveCost) FROM b GROUP BY 1").fetchall())
    assert max(layers, key=layers.__getitem__) == "gpu"
    assert layers["gpu"] > Decimal("0.4") * sum(layers.values())
    assert Decimal("0.10") <= untagged_share(db) <= Decimal("0.35")
    assert scalar(db, "SELECT count(*) FROM b WHERE Tags LIKE '%\"mlplatform\"%'") > 0
    assert scalar(db, "SELECT count(*) FROM b WHERE Tags LIKE '%\"Team\"%'") > 0
    assert scalar(db, "SELECT count(*) FROM b WHERE Tags LIKE '%\"production\"%'") > 0


def test_spikes_show_in_the_bill(db: duckdb.DuckDBPyConnection, scenario: Scenario) -> None:
    forgotten = scenario.spike("forgotten-finetune")
    idle = scalar(db, f"""SELECT sum(EffectiveCost) FROM b WHERE ResourceName LIKE 'ft-sweep-p5-%'
        AND ChargePeriodStart >= TIMESTAMP '{forgotten.start}'""")
    assert idle > 2 * 98 * 24 * 6  # two p5.48xlarge idling for most of a week
    launch = scenario.spike("copilot-launch").start
    before, after = db.execute(f"""SELECT
        avg(EffectiveCost) FILTER (WHERE ChargePeriodStart < TIMESTAMP '{launch}'),
        avg(EffectiveCost) FILTER (WHERE ChargePeriodStart >= TIMESTAMP '{launch}')
        FROM b WHERE ServiceName = 'Azure OpenAI Service' AND SkuMeter LIKE 'gpt-4.1 %'""").fetchone()
    assert after > 1.8 * before


def test_row_count_and_speed(bill: pa.Table, scenario: Scenario) -> None:
    assert 60_000 <= bill.num_rows <= 200_000
    start = time.perf_counter()
    generate_bill(scenario)
    assert time.perf_counter() - start < 5


def test_golden_on_demand_hour_costs_its_list_price(bill: pa.Table, scenario: Scenario) -> None:
    """p5.48xlarge on demand is $98.32 an hour (AWS public price): every hour costs exactly that."""
    inst = next(i for i in scenario.instances if i.name == "llm-train-p5-00")
    assert (inst.instance_type, inst.pricing) == ("p5.48xlarge", "Standard")
    assert inst.hourly_price == Decimal("98.32")
    rows = bill.filter(pc.equal(bill["ResourceId"], inst.resource_id)).to_pylist()
    hours = sum((b - a) // dt.timedelta(hours=1) for a, b in inst.active)
    assert len(rows) == hours > 0
    for r in rows:
        assert r["ChargePeriodEnd"] - r["ChargePeriodStart"] == dt.timedelta(hours=1)
        assert r["PricingQuantity"] == r["ConsumedQuantity"] == 1
        assert r["ListUnitPrice"] == r["EffectiveCost"] == r["BilledCost"] == Decimal("98.32")
        assert r["ChargeDescription"] == "$98.32 per On Demand Linux p5.48xlarge Instance Hour"
        assert json.loads(r["Tags"])["team"] == "ml-platform"


def test_write_bill_splits_by_provider_and_month(tmp_path: Path, bill: pa.Table, scenario: Scenario) -> None:
    paths = write_bill(scenario, tmp_path / "bill")
    assert [p.name for p in paths] == [f"{p}-2026-{m:02d}.parquet" for p in ("aws", "azure", "gcp")
                                       for m in (8, 9, 10)]
    parts = [pq.read_table(p) for p in paths]
    assert sum(t.num_rows for t in parts) == bill.num_rows
    for p, t in zip(paths, parts, strict=True):
        assert t.schema.equals(bill.schema)
        assert len(t["ProviderName"].unique()) == len(t["BillingPeriodStart"].unique()) == 1, p.name


@pytest.mark.parametrize(("seed", "days"), [(1, 30), (42, 120)])
def test_other_seeds_and_windows_keep_the_shape(seed: int, days: int) -> None:
    sc = build_scenario(seed=seed, days=days, end=dt.date(2026, 3, 1))
    con = duckdb.connect()
    con.register("b", generate_bill(sc))
    assert scalar(con, "SELECT min(ChargePeriodStart) FROM b") >= sc.start
    assert scalar(con, "SELECT max(ChargePeriodEnd) FROM b") <= dt.datetime(2026, 3, 1)
    layers = dict(con.execute(f"SELECT {LAYER_SQL}, sum(EffectiveCost) FROM b GROUP BY 1").fetchall())
    assert max(layers, key=layers.__getitem__) == "gpu"
    assert Decimal("0.10") <= untagged_share(con) <= Decimal("0.35")
