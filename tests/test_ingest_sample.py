"""The real FOCUS 1.0 sample (AWS 942, Microsoft 51, Oracle 7 rows) through the ingest, checked against DuckDB
reading the raw file directly: every total is exact, and the 1.0 -> 1.2 mapping keeps every value."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aifinops.model import focus
from aifinops.store.ingest import ingest

ADDED_AFTER_1_0 = ("ServiceSubcategory", "SkuMeter", "SkuPriceDetails", "InvoiceId", "CapacityReservationId",
                   "CommitmentDiscountQuantity", "PricingCurrency", "BillingAccountType")


def raw_relation(path: Path) -> str:
    return f"read_csv('{path}', header = true, all_varchar = true, nullstr = 'NULL')"


def raw_totals(path: Path, group: str) -> dict[object, tuple[Decimal, Decimal]]:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT {group} AS g, sum(CAST(BilledCost AS DECIMAL(38, 12))), sum(CAST(EffectiveCost AS DECIMAL(38, 12))) "
        f"FROM {raw_relation(path)} GROUP BY ALL"
    ).fetchall()
    con.close()
    return {g: (b, e) for g, b, e in rows}


def store_totals(store, group: str) -> dict[object, tuple[Decimal, Decimal]]:
    rows = store.con.execute(
        f'SELECT {group} AS g, sum("BilledCost"), sum("EffectiveCost") FROM focus_charges GROUP BY ALL'
    ).fetchall()
    return {g: (b, e) for g, b, e in rows}


@pytest.fixture
def loaded(new_store, focus_source, focus_rows):
    store = new_store()
    res = ingest(store, focus_source, [focus_rows.path])
    return store, res


@pytest.mark.parametrize(("store_group", "raw_group", "groups"), [
    ('"ProviderName"', "ProviderName", 3),
    ('"ServiceName"', "ServiceName", None),
    ("\"Tags\"['environment']", "json_extract_string(Tags, '$.environment')", 3),
    ("\"Tags\"['business_unit']", "json_extract_string(Tags, '$.business_unit')", None),
])
def test_totals_equal_a_direct_computation_on_the_raw_file(loaded, focus_rows, store_group, raw_group, groups):
    store, _ = loaded
    expected = raw_totals(focus_rows.path, raw_group)
    got = store_totals(store, store_group)
    assert got == expected  # Decimal equality, to the 12th decimal
    if groups is not None:
        assert len(got) == groups


def test_provider_totals_exact_values(loaded):
    store, _ = loaded
    got = store_totals(store, '"ProviderName"')
    counts = dict(store.con.execute('SELECT "ProviderName", count(*) FROM focus_charges GROUP BY 1').fetchall())
    assert counts == {"AWS": 942, "Microsoft": 51, "Oracle": 7}
    assert got["AWS"] == (Decimal("18.006638618400"), Decimal("13.000000000000"))
    assert got["Microsoft"] == (Decimal("1.976514185860"), Decimal("1.976514185860"))
    assert got["Oracle"] == (Decimal("0.537073924730"), Decimal("0"))
    total = store.con.execute('SELECT sum("BilledCost"), sum("EffectiveCost") FROM focus_charges').fetchone()
    assert total == (Decimal("20.520226728990"), Decimal("14.976514185860"))


def test_version_and_all_1_2_columns(loaded):
    store, res = loaded
    assert res.status == "loaded"
    assert [f.version for f in res.files] == ["1.0"]
    cols = store.table_columns("focus_charges")
    assert len(focus.column_names()) == 57
    assert set(focus.column_names()) <= set(cols)
    assert store.con.execute("SELECT focus_version FROM batches").fetchall() == [("1.0",)]
    assert store.con.execute("SELECT focus_version, rows_read FROM batch_files").fetchall() == [("1.0", 1000)]


def test_columns_added_after_1_0_are_null(loaded):
    store, _ = loaded
    counts = store.con.execute(
        "SELECT " + ", ".join(f'count("{c}")' for c in ADDED_AFTER_1_0) + ", count(*) FROM focus_charges"
    ).fetchone()
    assert counts == (0,) * len(ADDED_AFTER_1_0) + (1000,)


def test_vendor_column_kept_as_x_with_original_values(loaded, focus_rows):
    store, _ = loaded
    assert "x_Id" in store.table_columns("focus_charges")
    assert "Id" not in store.table_columns("focus_charges")
    got = [r[0] for r in store.con.execute("SELECT x_Id FROM focus_charges ORDER BY _row").fetchall()]
    assert got == [r[focus_rows.col("Id")] for r in focus_rows.rows]
    assert len(set(got)) == 1000


def test_tags_is_a_map_with_the_json_keys(loaded, focus_rows):
    store, _ = loaded
    assert store.con.execute("SELECT typeof(Tags) FROM focus_charges LIMIT 1").fetchone() == ("MAP(VARCHAR, VARCHAR)",)
    con = duckdb.connect()
    raw = dict(con.execute(
        "SELECT Id, CASE WHEN Tags IS NULL THEN NULL ELSE list_sort(json_keys(Tags)) END "
        f"FROM {raw_relation(focus_rows.path)}"
    ).fetchall())
    raw_env = dict(con.execute(
        f"SELECT Id, json_extract_string(Tags, '$.environment') FROM {raw_relation(focus_rows.path)}"
    ).fetchall())
    con.close()
    got = dict(store.con.execute(
        "SELECT x_Id, CASE WHEN Tags IS NULL THEN NULL ELSE list_sort(map_keys(Tags)) END FROM focus_charges"
    ).fetchall())
    assert got == raw
    assert sum(1 for v in got.values() if v is not None) == 711
    env = dict(store.con.execute("SELECT x_Id, Tags['environment'] FROM focus_charges").fetchall())
    assert env == raw_env
    # A key with a leading space (" org" in a Microsoft row) is a different key from "org", as in the JSON.
    both = store.con.execute(
        "SELECT count(*) FROM focus_charges WHERE list_contains(map_keys(Tags), ' org') "
        "AND list_contains(map_keys(Tags), 'org')"
    ).fetchone()[0]
    assert both >= 1


def test_timestamps_are_naive_utc(loaded, focus_rows):
    store, _ = loaded
    types = dict(store.con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'focus_charges' "
        "AND column_name IN ('ChargePeriodStart', 'ChargePeriodEnd', 'BillingPeriodStart', 'BillingPeriodEnd')"
    ).fetchall())
    assert types == dict.fromkeys(("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart",
                                   "BillingPeriodEnd"), "TIMESTAMP")
    got = dict(store.con.execute("SELECT x_Id, ChargePeriodStart FROM focus_charges").fetchall())
    i, s = focus_rows.col("Id"), focus_rows.col("ChargePeriodStart")
    assert got == {r[i]: datetime.fromisoformat(r[s]) for r in focus_rows.rows}
    first = store.con.execute(
        "SELECT ChargePeriodStart, BillingPeriodStart FROM focus_charges WHERE _row = 1").fetchone()
    assert first == (datetime(2024, 9, 18, 22, 0), datetime(2024, 9, 1, 0, 0))


def test_offsets_are_converted_to_utc(tmp_path, new_store, focus_source, focus_rows):
    rows = focus_rows.head(3)
    s, e = focus_rows.col("ChargePeriodStart"), focus_rows.col("ChargePeriodEnd")
    rows[0][s], rows[0][e] = "2024-09-18T22:00:00+02:00", "2024-09-18T23:00:00+02:00"
    rows[1][s], rows[1][e] = "2024-09-30T22:00:00Z", "2024-09-30T23:00:00Z"
    rows[2][s], rows[2][e] = "2024-09-24T16:00:00-05:00", "2024-09-24T17:00:00-05:00"
    store = new_store()
    ingest(store, focus_source, [focus_rows.write(tmp_path / "tz.csv", rows)])
    got = store.con.execute("SELECT ChargePeriodStart, ChargePeriodEnd FROM focus_charges ORDER BY _row").fetchall()
    assert got == [
        (datetime(2024, 9, 18, 20), datetime(2024, 9, 18, 21)),
        (datetime(2024, 9, 30, 22), datetime(2024, 9, 30, 23)),
        (datetime(2024, 9, 24, 21), datetime(2024, 9, 24, 22)),
    ]


def test_usage_based_spelling_normalised_with_a_warning(loaded, focus_rows):
    store, res = loaded
    freq = store.con.execute(
        'SELECT "ProviderName", "ChargeFrequency", count(*) FROM focus_charges '
        "WHERE \"ChargeFrequency\" ILIKE 'usage-based' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert freq == [("AWS", "Usage-Based", 941), ("Microsoft", "Usage-Based", 51), ("Oracle", "Usage-Based", 7)]
    raw_count = sum(1 for r in focus_rows.rows if r[focus_rows.col("ChargeFrequency")] == "Usage-based")
    assert raw_count == 7
    warnings = store.con.execute(
        'SELECT rule, "column", rows, first_row FROM row_warnings ORDER BY rule, "column"'
    ).fetchall()
    assert warnings == [("allowed-value-case", "ChargeFrequency", 7, 926), ("not-null", "ContractedCost", 7, 926)]
    assert {(w["rule"], w["column"], w["rows"]) for w in res.warnings} == {
        ("allowed-value-case", "ChargeFrequency", 7), ("not-null", "ContractedCost", 7)}
    # Row 926 of the file is the first Oracle row.
    assert focus_rows.rows[925][focus_rows.col("ProviderName")] == "Oracle"


def test_batch_record_reconciles(loaded, focus_rows):
    store, res = loaded
    b = store.rows("SELECT * FROM batches")
    assert len(b) == 1
    b = b[0]
    assert (b["status"], b["rows_read"], b["rows_loaded"], b["rows_quarantined"]) == ("loaded", 1000, 1000, 0)
    assert b["billed_read"] == b["billed_loaded"] + b["billed_quarantined"] == Decimal("20.520226728990")
    assert b["effective_read"] == b["effective_loaded"] + b["effective_quarantined"] == Decimal("14.976514185860")
    assert b["billed_quarantined"] == 0 and b["effective_quarantined"] == 0
    assert b["billed_read"] == focus_rows.money([list(r) for r in focus_rows.rows], "BilledCost")
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (1000, 1000, 0)
    assert res.money["BilledCost"]["read"] == Decimal("20.520226728990")
    assert store.con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    lineage = store.con.execute(
        "SELECT min(_row), max(_row), count(DISTINCT _row), any_value(_file) FROM focus_charges")
    assert lineage.fetchone() == (1, 1000, 1000, str(focus_rows.path))


def test_strict_quarantines_what_is_otherwise_a_warning(new_store, focus_source, focus_rows):
    store = new_store()
    res = ingest(store, focus_source, [focus_rows.path], strict=True)
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined, res.warnings) == (1000, 993, 7, [])
    assert res.money["BilledCost"] == {"read": Decimal("20.520226728990"), "loaded": Decimal("19.983152804260"),
                                       "quarantined": Decimal("0.537073924730")}
    q = store.rows("SELECT row_number, errors FROM quarantine ORDER BY row_number")
    oracle = [i for i, r in enumerate(focus_rows.rows, 1) if r[focus_rows.col("ProviderName")] == "Oracle"]
    assert [r["row_number"] for r in q] == oracle
    assert oracle[:2] == [926, 927]
    assert q[0]["errors"] == [
        {"column": "ChargeFrequency", "reason": "allowed ChargeFrequency in the wrong letter case: 'Usage-based'"},
        {"column": "ContractedCost", "reason": "ContractedCost must not be null"},
    ]
    assert store.con.execute("SELECT count(*) FROM row_warnings").fetchone() == (0,)
    assert store.con.execute("SELECT DISTINCT \"ProviderName\" FROM focus_charges ORDER BY 1").fetchall() == \
        [("AWS",), ("Microsoft",)]


def test_fast_and_exact_csv_paths_load_identical_rows(new_store, focus_source, focus_rows, monkeypatch):
    """The pyarrow fast path and DuckDB's exact reader give the same rows, row numbers and warnings."""
    fast = new_store("fast.duckdb")
    res = ingest(fast, focus_source, [focus_rows.path])
    assert res.files[0].reader == "pyarrow"

    original = type(focus_source).read

    def exact_only(self, file):
        read = original(self, file)
        read.stream = None
        return read

    monkeypatch.setattr(type(focus_source), "read", exact_only)
    exact = new_store("exact.duckdb")
    res2 = ingest(exact, focus_source, [focus_rows.path])
    assert res2.files[0].reader == "duckdb"
    cols = ", ".join(f'"{c}"' for c in focus.column_names())
    sql = f"SELECT {cols}, x_Id, _row, _warnings FROM focus_charges ORDER BY _row"
    assert fast.con.execute(sql).fetchall() == exact.con.execute(sql).fetchall()
    assert fast.rows("SELECT rule, rows, first_row FROM row_warnings ORDER BY ALL") == \
        exact.rows("SELECT rule, rows, first_row FROM row_warnings ORDER BY ALL")
