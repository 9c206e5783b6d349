"""The CLI end to end on the real sample: ingest, batches, quarantine, costs, tags, export."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from aifinops.interfaces.cli.app import app

runner = CliRunner()


def run(db: Path, *args: str) -> str:
    res = runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def fail(db: Path, *args: str) -> str:
    res = runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    return res.output


@pytest.fixture
def db(tmp_path: Path, sample_path: Path) -> Path:
    path = tmp_path / "cli.duckdb"
    out = run(path, "ingest", "focus", str(sample_path))
    assert "1,000 rows read, 1,000 loaded, 0 quarantined" in out
    return path


def raw_totals(sample_path: Path, by: str) -> dict[str, Decimal]:
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT {by}, sum(CAST(EffectiveCost AS DECIMAL(38, 12))) FROM read_csv(?, all_varchar = true, "
        "nullstr = 'NULL') GROUP BY 1", [str(sample_path)]).fetchall()
    return {k: v for k, v in rows}


def test_costs_json_matches_the_raw_file(db: Path, sample_path: Path) -> None:
    got = json.loads(run(db, "costs", "--by", "ProviderName", "--window", "all", "--format", "json"))
    assert {r["ProviderName"]: Decimal(r["cost"]) for r in got} == raw_totals(sample_path, "ProviderName")


def test_costs_csv_by_tag(db: Path, sample_path: Path) -> None:
    out = run(db, "costs", "--by", "tag:business_unit", "--window", "all", "--format", "csv", "--limit", "0")
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = raw_totals(sample_path, "coalesce(json_extract_string(Tags, '$.business_unit'), '(untagged)')")
    assert {r["tag:business_unit"]: Decimal(r["cost"]) for r in rows} == expected


def test_costs_table_and_window_default(db: Path) -> None:
    out = " ".join(run(db, "costs", "--by", "ServiceName").split())  # captions wrap to the table's width
    assert "effective cost by ServiceName" in out and "window 2024-09-01 00:00..2024-10-01 00:00 UTC" in out


def test_costs_bad_dimension_is_one_clear_line(db: Path) -> None:
    out = fail(db, "costs", "--by", "NoSuchColumn")
    assert "unknown dimension 'NoSuchColumn'" in out


def test_costs_bad_window(db: Path) -> None:
    assert "unknown window" in fail(db, "costs", "--window", "soon")


def test_batches_and_reingest(db: Path, sample_path: Path) -> None:
    assert "unchanged" in run(db, "ingest", "focus", str(sample_path))
    rows = json.loads(run(db, "batches", "--format", "json"))
    assert len(rows) == 1 and rows[0]["rows_loaded"] == 1000 and rows[0]["status"] == "loaded"
    assert Decimal(rows[0]["effective_read"]) == Decimal(rows[0]["effective_loaded"])


def test_quarantine_lists_rows(tmp_path: Path, sample_path: Path) -> None:
    import gzip

    lines = gzip.decompress(sample_path.read_bytes()).decode().splitlines()
    lines[3] = lines[3].replace('"USD"', '"US$"', 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines[:11]) + "\n")
    db = tmp_path / "q.duckdb"
    out = run(db, "ingest", "focus", str(bad))
    assert "10 rows read, 9 loaded, 1 quarantined" in out
    rows = json.loads(run(db, "quarantine", "--format", "json"))
    assert rows == [{"batch": 1, "file": str(bad), "row": 3, "column": "BillingCurrency",
                     "reason": "not an ISO 4217 currency code: 'US$'"}]


def test_tags(db: Path) -> None:
    out = run(db, "tags", "--keys", "environment,application", "--window", "all")
    assert "tag coverage" in out and "environment" in out
    data = json.loads(run(db, "tags", "--keys", "environment", "--window", "all", "--format", "json"))
    typos = [r for r in data if r["section"] == "typos"]
    assert {"kind": "key", "a": " org", "b": "org"}.items() <= typos[0].items()


def test_export_roundtrip(db: Path, tmp_path: Path, sample_path: Path) -> None:
    out_csv = tmp_path / "out.csv"
    assert "wrote 1,000 FOCUS 1.2 rows" in run(db, "export", "focus", str(out_csv))
    with out_csv.open() as fh:
        header = next(csv.reader(fh))
    assert header[:3] == ["AvailabilityZone", "BilledCost", "BillingAccountId"] and header[-1] == "x_Id"
    assert len(header) == 58
    db2 = tmp_path / "again.duckdb"
    run(db2, "ingest", "focus", str(out_csv))
    a = json.loads(run(db, "costs", "--by", "ProviderName,ServiceName", "--window", "all", "--format", "json",
                       "--limit", "0"))
    b = json.loads(run(db2, "costs", "--by", "ProviderName,ServiceName", "--window", "all", "--format", "json",
                       "--limit", "0"))
    assert sorted(map(json.dumps, a)) == sorted(map(json.dumps, b))
    out_pq = tmp_path / "out.parquet"
    run(db, "export", "focus", str(out_pq), "--window", "2024-09")
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(out_pq)]).fetchone()[0] > 900


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    assert "no store here yet" in fail(tmp_path / "none.duckdb", "costs")


def test_unknown_source_option_is_a_clear_error(tmp_path: Path, sample_path: Path) -> None:
    out = fail(tmp_path / "o.duckdb", "ingest", "focus", str(sample_path), "--option", "colour=blue")
    assert "options of source 'focus'" in out and "colour" in out
    assert "expected KEY=VALUE" in fail(tmp_path / "o.duckdb", "ingest", "focus", str(sample_path), "-o", "x")
