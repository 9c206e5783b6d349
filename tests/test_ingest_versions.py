"""FOCUS versions and formats: 1.2 exports round-trip, 1.1 and 1.3 headers are recognised, Parquet gives the same
totals as CSV, and column names match whatever their letter case."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
from typer.testing import CliRunner

from aifinops.interfaces.cli.app import app
from aifinops.store.ingest import ingest

SAMPLE_BY_PROVIDER = {
    "AWS": (942, Decimal("18.006638618400"), Decimal("13.000000000000")),
    "Microsoft": (51, Decimal("1.976514185860"), Decimal("1.976514185860")),
    "Oracle": (7, Decimal("0.537073924730"), Decimal("0")),
}


def by_provider(store) -> dict[str, tuple[int, Decimal, Decimal]]:
    rows = store.con.execute(
        'SELECT "ProviderName", count(*), sum("BilledCost"), sum("EffectiveCost") FROM focus_charges GROUP BY 1'
    ).fetchall()
    return {p: (n, b, e) for p, n, b, e in rows}


def raw_copy(fr, select: str, out) -> None:
    """COPY the sample (read as text, NULL and empty cells as null, as the ingest reads CSV) through ``select``."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{fr.path}', all_varchar = true, nullstr = ['NULL', ''])")
    fmt = "FORMAT parquet" if str(out).endswith(".parquet") else "FORMAT csv, HEADER true, NULLSTR 'NULL'"
    con.execute(f"COPY ({select}) TO '{out}' ({fmt})")
    con.close()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_focus_1_2_export_round_trips(suffix, tmp_path, monkeypatch, new_store, focus_source, focus_rows):
    monkeypatch.chdir(tmp_path)
    first = new_store("first.duckdb")
    ingest(first, focus_source, [focus_rows.path])
    first.close()
    out = tmp_path / f"focus12.{suffix}"
    res = CliRunner().invoke(app, ["--db", str(tmp_path / "first.duckdb"), "export", "focus", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote 1,000 FOCUS 1.2 rows" in res.output

    second = new_store("second.duckdb")
    back = ingest(second, focus_source, [out])
    assert [f.version for f in back.files] == ["1.2"]
    assert (back.rows_loaded, back.rows_quarantined) == (1000, 0)
    assert by_provider(second) == SAMPLE_BY_PROVIDER
    # the vendor column went out as x_Id and comes back under the same name, values intact
    cols = second.table_columns("focus_charges")
    assert "x_Id" in cols and "x_x_Id" not in cols
    again = new_store("third.duckdb")
    ingest(again, focus_source, [focus_rows.path])
    sql = ('SELECT x_Id, "ChargePeriodStart", "BilledCost", "ChargeFrequency", "Tags", "ServiceName" '
           "FROM focus_charges ORDER BY x_Id")
    assert second.con.execute(sql).fetchall() == again.con.execute(sql).fetchall()


def test_focus_1_1_file_is_detected(tmp_path, new_store, focus_source, focus_rows):
    out = tmp_path / "focus11.csv"
    raw_copy(focus_rows, "SELECT *, 'Virtual Machines' AS ServiceSubcategory, "
             "CAST(NULL AS VARCHAR) AS CommitmentDiscountQuantity FROM t", out)
    store = new_store()
    res = ingest(store, focus_source, [out])
    assert [f.version for f in res.files] == ["1.1"]
    assert (res.rows_loaded, res.rows_quarantined) == (1000, 0)
    assert store.con.execute("SELECT focus_version FROM batches").fetchone() == ("1.1",)
    assert store.con.execute(
        "SELECT count(*) FILTER (WHERE ServiceSubcategory = 'Virtual Machines'), count(InvoiceId) FROM focus_charges"
    ).fetchone() == (1000, 0)
    assert by_provider(store) == SAMPLE_BY_PROVIDER


def test_focus_1_3_style_file_loads(tmp_path, new_store, focus_source, focus_rows):
    out = tmp_path / "focus13.csv"
    raw_copy(focus_rows, "SELECT * EXCLUDE (ProviderName), ProviderName AS ServiceProviderName, "
             "'{\"Id\": \"c-' || Id || '\"}' AS ContractApplied FROM t", out)
    with out.open() as fh:
        header = fh.readline()
    assert "ServiceProviderName" in header and ",ProviderName," not in header
    store = new_store()
    res = ingest(store, focus_source, [out])
    assert [f.version for f in res.files] == ["1.3"]
    assert (res.rows_loaded, res.rows_quarantined) == (1000, 0)
    assert by_provider(store) == SAMPLE_BY_PROVIDER  # ProviderName filled from ServiceProviderName
    cols = store.table_columns("focus_charges")
    assert {"ServiceProviderName", "ContractApplied"} <= set(cols)
    assert "x_ContractApplied" not in cols and "x_ServiceProviderName" not in cols
    assert store.con.execute(
        "SELECT count(*) FILTER (WHERE ContractApplied = '{\"Id\": \"c-' || x_Id || '\"}'), "
        "count(*) FILTER (WHERE ServiceProviderName = ProviderName) FROM focus_charges"
    ).fetchone() == (1000, 1000)


@pytest.mark.parametrize(("tags_sql", "tags_type"), ids=["map", "json-text"], argvalues=[
    ('CAST(CAST("Tags" AS JSON) AS MAP(VARCHAR, VARCHAR))', "MAP(VARCHAR, VARCHAR)"),  # a real MAP column
    ('"Tags"', "VARCHAR"),  # JSON text, as in CSV
])
def test_parquet_with_typed_columns_gives_the_csv_totals(tags_sql, tags_type, tmp_path, new_store, focus_source,
                                                         focus_rows):
    out = tmp_path / "typed.parquet"
    decimals = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
                "PricingQuantity", "ConsumedQuantity")
    times = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
    exprs = []
    for c in focus_rows.header:
        if c in decimals:
            exprs.append(f'CAST("{c}" AS DECIMAL(38, 12)) AS "{c}"')
        elif c in times:
            exprs.append(f'CAST("{c}" AS TIMESTAMP) AS "{c}"')
        elif c == "Tags":
            exprs.append(f'{tags_sql} AS "Tags"')
        else:
            exprs.append(f'"{c}"')
    raw_copy(focus_rows, f"SELECT {', '.join(exprs)} FROM t", out)
    assert duckdb.connect().execute(
        f"SELECT typeof(BilledCost), typeof(ChargePeriodStart), typeof(Tags) FROM '{out}' LIMIT 1"
    ).fetchone() == ("DECIMAL(38,12)", "TIMESTAMP", tags_type)

    pq_store, csv_store = new_store("pq.duckdb"), new_store("csv.duckdb")
    res = ingest(pq_store, focus_source, [out])
    ingest(csv_store, focus_source, [focus_rows.path])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (1000, 1000, 0)
    assert [(f.version, f.path.suffix) for f in res.files] == [("1.0", ".parquet")]
    assert by_provider(pq_store) == by_provider(csv_store) == SAMPLE_BY_PROVIDER
    sql = ('SELECT x_Id, "ChargePeriodStart", "BillingPeriodEnd", "Tags", "ChargeFrequency", "ListUnitPrice" '
           "FROM focus_charges ORDER BY x_Id")
    assert pq_store.con.execute(sql).fetchall() == csv_store.con.execute(sql).fetchall()
    assert pq_store.con.execute("SELECT rows FROM row_warnings ORDER BY rule").fetchall() == [(7,), (7,)]


def test_column_names_in_any_letter_case(tmp_path, new_store, focus_source, focus_rows):
    header = [c.lower() if i % 2 == 0 else c.upper() for i, c in enumerate(focus_rows.header)]
    assert "billedcost" in header or "BILLEDCOST" in header
    out = focus_rows.write(tmp_path / "lowercase.csv", [list(r) for r in focus_rows.rows], header=header)
    store = new_store()
    res = ingest(store, focus_source, [out])
    assert (res.rows_loaded, res.rows_quarantined) == (1000, 0)
    assert [f.version for f in res.files] == ["1.0"]
    assert by_provider(store) == SAMPLE_BY_PROVIDER
    cols = store.table_columns("focus_charges")
    assert "BilledCost" in cols and "billedcost" not in cols and "BILLEDCOST" not in cols
    vendor = header[focus_rows.col("Id")]
    assert f"x_{vendor}" in cols  # a non-FOCUS column keeps the file's spelling
    assert store.con.execute(
        "SELECT count(*) FROM focus_charges WHERE map_contains(Tags, 'environment')"
    ).fetchone() == (660,)


def test_parquet_empty_strings_are_missing_values_as_in_csv(tmp_path, new_store, focus_source, focus_rows):
    """A straight copy of the sample to Parquet keeps '' cells (Oracle's PricingCategory): they must read
    as NULL, as they do from CSV, not be quarantined as disallowed values."""
    out = tmp_path / "plain.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{focus_rows.path}', all_varchar = true, nullstr = 'NULL')) "
                f"TO '{out}' (FORMAT parquet)")
    assert con.execute(f"SELECT count(*) FROM '{out}' WHERE PricingCategory = ''").fetchone()[0] == 7
    res = ingest(new_store("pq.duckdb"), focus_source, [out])
    assert (res.rows_loaded, res.rows_quarantined) == (1000, 0)
