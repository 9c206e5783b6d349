"""Bad inputs: each gives a clear message naming the file (and row and column when it is one row), and nothing
is lost: a rejected file loads nothing, a quarantined row is kept with its reason, and rows and money read always
equal loaded + quarantined. Every bad file is derived at test time from the first rows of the real sample."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aifinops.interfaces.cli.app import app
from aifinops.store.ingest import IngestError, ingest

N = 20  # rows of the sample each case starts from
BAD = 5  # the 1-based data row a row-level case breaks


def store_state(store) -> dict[str, object]:
    q = store.con.execute
    return {
        "batches": q("SELECT batch_id, status, rows_read, rows_loaded, rows_quarantined FROM batches "
                     "ORDER BY 1").fetchall(),
        "batch_files": q("SELECT count(*) FROM batch_files").fetchone()[0],
        "rows": q('SELECT count(*), sum("BilledCost"), sum("EffectiveCost") FROM focus_charges').fetchone(),
        "quarantine": q("SELECT count(*) FROM quarantine").fetchone()[0],
        "warnings": q("SELECT count(*) FROM row_warnings").fetchone()[0],
        "restatements": q("SELECT count(*) FROM restatements").fetchone()[0],
    }


EMPTY_STATE = {"batches": [], "batch_files": 0, "rows": (0, None, None), "quarantine": 0, "warnings": 0,
               "restatements": 0}


# -- whole files rejected -------------------------------------------------------------------------

def _missing_billed_cost(fr, path: Path) -> Path:
    keep = [i for i, n in enumerate(fr.header) if n != "BilledCost"]
    return fr.write(path, [[r[i] for i in keep] for r in fr.head(N)], header=[fr.header[i] for i in keep])


def _empty(fr, path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncated_gzip(fr, path: Path) -> Path:
    whole = fr.path.read_bytes()  # the full 1,000-row sample, gzip
    path = path.with_suffix(".csv.gz")
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _rows_with_semicolons(fr, path: Path) -> Path:
    fr.write(path, [])
    body = fr.write(path.with_name("body.csv"), fr.head(N), delimiter=";").read_text().split("\n", 1)[1]
    path.write_text(path.read_text() + body)
    return path


def _rows_with_semicolons_everywhere(fr, path: Path) -> Path:
    # every comma of the rows becomes a semicolon, inside quoted values too: DuckDB reads each line as 1 field
    fr.write(path, fr.head(N))
    header, body = path.read_text().split("\n", 1)
    path.write_text(header + "\n" + body.replace(",", ";"))
    return path


def _unbalanced_quote(fr, path: Path) -> Path:
    fr.write(path, fr.head(N))
    lines = path.read_text().split("\n")
    assert ",$" in lines[BAD]
    lines[BAD] = lines[BAD].replace(",$", ',"$', 1)  # ChargeDescription opens a quote that never closes
    path.write_text("\n".join(lines))
    return path


def _duplicated_column(fr, path: Path) -> Path:
    return fr.write(path, [[*r, r[fr.col("BilledCost")]] for r in fr.head(N)], header=[*fr.header, "BilledCost"])


def _latin1(fr, path: Path) -> Path:
    rows = fr.head(N)
    rows[BAD - 1][fr.col("ChargeDescription")] = "Caf\u00e9 compute"
    fr.write(path, rows)
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    return path


REJECTED = {
    "missing required column": (_missing_billed_cost, ["missing required column(s) BilledCost"]),
    "empty file": (_empty, ["the file is empty"]),
    "truncated gzip": (_truncated_gzip, ["gzip", "corrupt or truncated"]),
    "rows use another delimiter": (_rows_with_semicolons, ["is the delimiter of the rows the same as the header's"]),
    "rows use another delimiter, quoted values too": (_rows_with_semicolons_everywhere,
                                                      ["is the delimiter of the rows the same as the header's"]),
    "unbalanced quote": (_unbalanced_quote, ["are quotes balanced"]),
    "duplicated column": (_duplicated_column, ["duplicated column"]),
    "not UTF-8": (_latin1, ["not UTF-8", "line 6"]),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_file_loads_nothing(case, tmp_path, new_store, focus_source, focus_rows):
    build, phrases = REJECTED[case]
    path = build(focus_rows, tmp_path / "bad.csv")
    store = new_store()
    with pytest.raises(IngestError) as err:
        ingest(store, focus_source, [path])
    msg = str(err.value)
    print(f"{case}: {msg}")
    assert str(path) in msg
    for phrase in phrases:
        assert phrase in msg
    if case == "duplicated column":
        assert "billedcost" in msg.lower()
    assert store_state(store) == EMPTY_STATE


def test_header_only_is_empty_and_loads_nothing(tmp_path, new_store, focus_source, focus_rows):
    path = focus_rows.write(tmp_path / "header_only.csv", [])
    store = new_store()
    res = ingest(store, focus_source, [path])
    assert (res.status, res.batch_id, res.rows_read, res.rows_loaded) == ("empty", None, 0, 0)
    assert res.notes == ["no data rows in the given files (header only): nothing loaded"]
    assert store_state(store) == EMPTY_STATE


# -- one row quarantined, the others loaded -------------------------------------------------------

def _set(col: str, value: str):
    def change(fr, row: list[str]) -> None:
        row[fr.col(col)] = value
    return change


def _end_equals_start(fr, row: list[str]) -> None:
    row[fr.col("ChargePeriodEnd")] = row[fr.col("ChargePeriodStart")]


ROW_CASES = {
    "non-numeric cost": (_set("BilledCost", "12,50 EUR"), "BilledCost", "not a decimal number: '12,50 EUR'"),
    "bad timestamp": (_set("ChargePeriodStart", "2024-13-45T99:00:00Z"), "ChargePeriodStart",
                      "not an ISO 8601 date/time: '2024-13-45T99:00:00Z'"),
    "invalid Tags JSON": (_set("Tags", '{"environment": "dev"'), "Tags",
                          "not a JSON object of tags: '{\"environment\": \"dev\"'"),
    "Tags not an object": (_set("Tags", '["dev"]'), "Tags", "not a JSON object of tags: '[\"dev\"]'"),
    "Tags key repeated": (_set("Tags", '{"env": "dev", "env": "prod"}'), "Tags",
                          "a tag key appears more than once: '{\"env\": \"dev\", \"env\": \"prod\"}'"),
    "period start not before end": (_end_equals_start, "ChargePeriodStart",
                                    "ChargePeriodStart '2024-09-22 00:00:00' is not before ChargePeriodEnd "
                                    "'2024-09-22 00:00:00'"),
    "infinite timestamp": (_set("ChargePeriodEnd", "infinity"), "ChargePeriodEnd",
                           "not an ISO 8601 date/time: 'infinity'"),
    "unknown currency": (_set("BillingCurrency", "XYZ"), "BillingCurrency", "not an ISO 4217 currency code: 'XYZ'"),
    "charge category not allowed": (_set("ChargeCategory", "Refund"), "ChargeCategory",
                                    "not an allowed ChargeCategory: 'Refund'"),
    "null billed cost": (_set("BilledCost", "NULL"), "BilledCost", "BilledCost must not be null"),
}


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_bad_row_is_quarantined_and_the_rest_loaded(case, tmp_path, new_store, focus_source, focus_rows):
    change, column, reason = ROW_CASES[case]
    rows = focus_rows.head(N)
    change(focus_rows, rows[BAD - 1])
    path = focus_rows.write(tmp_path / "one_bad_row.csv", rows)
    store = new_store()
    res = ingest(store, focus_source, [path])

    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", N, N - 1, 1)
    q = store.rows("SELECT file, row_number, errors, \"BilledCost\", raw FROM quarantine")
    assert len(q) == 1
    assert q[0]["file"] == str(path)
    assert q[0]["row_number"] == BAD
    assert q[0]["errors"] == [{"column": column, "reason": reason}]
    bad_cell = rows[BAD - 1][focus_rows.col(column)]
    assert q[0]["raw"][column] == (None if bad_cell == "NULL" else bad_cell)  # the row as read, to fix
    loaded = [r[0] for r in store.con.execute("SELECT _row FROM focus_charges ORDER BY _row").fetchall()]
    assert loaded == [i for i in range(1, N + 1) if i != BAD]

    # Nothing lost: read = loaded + quarantined, for rows and for both costs.
    b = store.rows("SELECT * FROM batches")[0]
    assert b["rows_read"] == b["rows_loaded"] + b["rows_quarantined"] == N
    for col, prefix in (("BilledCost", "billed"), ("EffectiveCost", "effective")):
        expected_read = focus_rows.money(rows, col)
        in_store = store.con.execute(f'SELECT coalesce(sum("{col}"), 0) FROM focus_charges').fetchone()[0]
        in_quarantine = store.con.execute(f'SELECT coalesce(sum("{col}"), 0) FROM quarantine').fetchone()[0]
        assert b[f"{prefix}_read"] == expected_read
        assert b[f"{prefix}_loaded"] == in_store
        assert b[f"{prefix}_quarantined"] == in_quarantine
        assert b[f"{prefix}_read"] == in_store + in_quarantine
    good = [r for i, r in enumerate(rows, 1) if i != BAD]
    assert store.con.execute('SELECT sum("BilledCost") FROM focus_charges').fetchone()[0] == \
        focus_rows.money(good, "BilledCost")


def test_quarantined_row_is_listed_by_the_cli(tmp_path, monkeypatch, focus_rows):
    monkeypatch.chdir(tmp_path)
    rows = focus_rows.head(N)
    rows[BAD - 1][focus_rows.col("BilledCost")] = "abc"
    path = focus_rows.write(tmp_path / "one_bad_row.csv", rows)
    db = tmp_path / "cli.duckdb"
    res = CliRunner().invoke(app, ["--db", str(db), "ingest", "focus", str(path)])
    assert res.exit_code == 0, res.output
    assert "19 loaded, 1 quarantined" in res.output
    res = CliRunner().invoke(app, ["--db", str(db), "quarantine", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert f"{path},5,BilledCost,not a decimal number: 'abc'" in res.output


def test_row_with_too_many_fields(tmp_path, new_store, focus_source, focus_rows):
    rows = focus_rows.head(N)
    rows[9][focus_rows.col("BilledCost")] = "abc"  # row 10: quarantined by a rule, after the malformed line
    path = focus_rows.write(tmp_path / "ragged.csv", rows)
    lines = path.read_text().split("\n")
    lines[BAD] += ",surplus"  # lines[0] is the header: row 5 gets a 45th field
    path.write_text("\n".join(lines))
    store = new_store()
    res = ingest(store, focus_source, [path])

    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (N, N - 2, 2)
    assert res.files[0].reader == "duckdb"  # the fast pyarrow path gave way to the exact one
    q = store.rows("SELECT row_number, errors, raw FROM quarantine ORDER BY row_number")
    assert [r["row_number"] for r in q] == [BAD, 10]
    assert q[0]["errors"] == [{"column": None,
                               "reason": "TOO MANY COLUMNS: Expected Number of Columns: 44 Found: 45"}]
    assert q[0]["raw"] == {"_line": lines[BAD]}
    assert q[1]["errors"] == [{"column": "BilledCost", "reason": "not a decimal number: 'abc'"}]
    assert q[1]["raw"]["BilledCost"] == "abc"
    assert q[1]["raw"]["x_Id"] == rows[9][focus_rows.col("Id")]  # row 10 really is the 10th data row
    loaded = store.con.execute("SELECT _row, x_Id FROM focus_charges ORDER BY _row").fetchall()
    assert [r[0] for r in loaded] == [i for i in range(1, N + 1) if i not in (BAD, 10)]
    ids = focus_rows.col("Id")
    assert [r[1] for r in loaded] == [rows[i - 1][ids] for i in range(1, N + 1) if i not in (BAD, 10)]
    # A malformed line's money cannot be read: the batch reconciles over the lines that could be read.
    b = store.rows("SELECT * FROM batches")[0]
    readable = [r for i, r in enumerate(rows, 1) if i != BAD]
    assert b["billed_read"] == focus_rows.money(readable, "BilledCost")
    assert b["billed_read"] == b["billed_loaded"] + b["billed_quarantined"]
    assert b["rows_read"] == b["rows_loaded"] + b["rows_quarantined"] == N


def test_negative_costs_are_credits_and_load(tmp_path, new_store, focus_source, focus_rows):
    rows = focus_rows.head(N)
    for i, amount in ((BAD - 1, "-1.25"), (7, "-0.000000000001")):
        rows[i][focus_rows.col("BilledCost")] = amount
        rows[i][focus_rows.col("EffectiveCost")] = amount
        rows[i][focus_rows.col("ChargeCategory")] = "Credit"
    path = focus_rows.write(tmp_path / "credits.csv", rows)
    store = new_store()
    res = ingest(store, focus_source, [path])
    assert (res.rows_loaded, res.rows_quarantined) == (N, 0)
    got = store.con.execute('SELECT sum("BilledCost"), sum("EffectiveCost"), min("BilledCost") FROM focus_charges')
    assert got.fetchone() == (focus_rows.money(rows, "BilledCost"), focus_rows.money(rows, "EffectiveCost"),
                              Decimal("-1.25"))
    assert store.con.execute("SELECT count(*) FROM focus_charges WHERE ChargeCategory = 'Credit'").fetchone() == (2,)


def test_semicolon_delimited_file_loads(tmp_path, new_store, focus_source, focus_rows):
    rows = focus_rows.head(N)
    semi = focus_rows.write(tmp_path / "semi.csv", rows, delimiter=";")
    comma = focus_rows.write(tmp_path / "comma.csv", rows)
    a, b = new_store("a.duckdb"), new_store("b.duckdb")
    res = ingest(a, focus_source, [semi])
    ingest(b, focus_source, [comma])
    assert (res.status, res.rows_loaded, res.rows_quarantined) == ("loaded", N, 0)
    assert res.notes == ["semi.csv: read with delimiter ';'"]
    assert a.con.execute("SELECT note FROM batches").fetchone() == ("semi.csv: read with delimiter ';'",)
    cols = '"BilledCost", "EffectiveCost", "ChargeDescription", "Tags", x_Id, _row'
    sql = f"SELECT {cols} FROM focus_charges ORDER BY _row"
    assert a.con.execute(sql).fetchall() == b.con.execute(sql).fetchall()


# -- a batch of several files is all or nothing ---------------------------------------------------

@pytest.mark.parametrize("case", ["missing required column", "truncated gzip", "rows use another delimiter",
                                  "not UTF-8"])
def test_multi_file_batch_with_a_broken_file_loads_nothing(case, tmp_path, new_store, focus_source, focus_rows):
    store = new_store()
    earlier = focus_rows.write(tmp_path / "earlier.csv", [list(r) for r in focus_rows.rows[900:]])
    ingest(store, focus_source, [earlier])
    before = store_state(store)
    assert before["rows"][0] == 100

    good = focus_rows.write(tmp_path / "a_good.csv", focus_rows.head(N))
    build, _ = REJECTED[case]
    bad = build(focus_rows, tmp_path / "b_bad.csv")
    with pytest.raises(IngestError) as err:
        ingest(store, focus_source, [good, bad])
    assert str(bad) in str(err.value)
    assert str(good) not in str(err.value)
    assert store_state(store) == before
    # and the good file alone still loads: nothing of it was half-written
    res = ingest(store, focus_source, [good])
    assert (res.status, res.rows_loaded) == ("loaded", N)


# -- the CLI: one line, exit 1, no traceback ------------------------------------------------------

@pytest.mark.parametrize("case", ["missing required column", "truncated gzip"])
def test_cli_reports_a_rejected_file_in_one_line(case, tmp_path, monkeypatch, focus_rows):
    monkeypatch.chdir(tmp_path)
    build, phrases = REJECTED[case]
    path = build(focus_rows, tmp_path / "bad.csv")
    db = tmp_path / "cli.duckdb"
    res = CliRunner().invoke(app, ["--db", str(db), "ingest", "focus", str(path)])
    print(res.output)
    assert res.exit_code == 1
    assert res.output.lstrip().startswith("error:")
    assert "Traceback" not in res.output
    assert path.name in res.output
    flat = " ".join(res.output.split())
    assert phrases[-1] in flat
    res = CliRunner().invoke(app, ["--db", str(db), "batches", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().count("\n") == 0  # the header line only: no batch


def test_truncated_gzip_is_really_truncated(tmp_path, focus_rows):
    path = _truncated_gzip(focus_rows, tmp_path / "t.csv")
    with pytest.raises(EOFError), gzip.open(path) as fh:
        fh.read()
