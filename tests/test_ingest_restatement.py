"""Idempotence and restatement: the same content is a no-op, a newer delivery for the same (ProviderName,
BillingAccountId, BillingPeriodStart) replaces the old rows (never adds to them), older data is refused."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from aifinops.store.ingest import IngestError, ingest


def totals(store) -> tuple[int, Decimal, Decimal]:
    return store.con.execute(
        'SELECT count(*), coalesce(sum("BilledCost"), 0), coalesce(sum("EffectiveCost"), 0) FROM focus_charges'
    ).fetchone()


def statuses(store) -> list[tuple[int, str]]:
    return store.con.execute("SELECT batch_id, status FROM batches ORDER BY batch_id").fetchall()


def rows_of(fr, provider: str) -> list[list[str]]:
    return [list(r) for r in fr.rows if r[fr.col("ProviderName")] == provider]


def scaled(fr, rows: list[list[str]], factor: int) -> list[list[str]]:
    """A restated delivery: same keys and periods, every cost multiplied by ``factor``."""
    out = []
    for r in rows:
        r = list(r)
        for col in ("BilledCost", "EffectiveCost"):
            r[fr.col(col)] = str(Decimal(r[fr.col(col)]) * factor)
        out.append(r)
    return out


def test_same_file_again_is_unchanged(tmp_path, new_store, focus_source, focus_rows):
    store = new_store()
    first = ingest(store, focus_source, [focus_rows.path])
    before = totals(store)
    again = ingest(store, focus_source, [focus_rows.path])
    assert (again.status, again.batch_id, again.duplicate_of, again.rows_loaded) == ("unchanged", None, 1, 0)
    assert again.notes == ["same content as batch 1 (loaded): nothing to do"]
    assert statuses(store) == [(1, "loaded")]
    assert totals(store) == before
    assert before == (1000, first.money["BilledCost"]["loaded"], first.money["EffectiveCost"]["loaded"])

    copy = tmp_path / "renamed" / "another_name.csv.gz"
    copy.parent.mkdir()
    shutil.copyfile(focus_rows.path, copy)
    renamed = ingest(store, focus_source, [copy])
    assert (renamed.status, renamed.duplicate_of) == ("unchanged", 1)
    assert statuses(store) == [(1, "loaded")]
    assert store.con.execute("SELECT count(*) FROM batch_files").fetchone() == (1,)
    assert totals(store) == before


def test_newer_delivery_replaces_the_old_rows(tmp_path, new_store, focus_source, focus_rows):
    aws = rows_of(focus_rows, "AWS")
    v1 = focus_rows.write(tmp_path / "aws_2024-09_v1.csv", aws)
    v2 = focus_rows.write(tmp_path / "aws_2024-09_v2.csv", scaled(focus_rows, aws, 2))
    store = new_store()
    ingest(store, focus_source, [v1])
    assert totals(store) == (942, Decimal("18.006638618400"), Decimal("13.000000000000"))

    res = ingest(store, focus_source, [v2])
    assert (res.status, res.batch_id, res.rows_loaded, res.rows_replaced, res.replaced_batches) == \
        ("loaded", 2, 942, 942, [1])
    # the new file's total, never the sum of both deliveries
    assert totals(store) == (942, Decimal("36.013277236800"), Decimal("26.000000000000"))
    assert statuses(store) == [(1, "replaced"), (2, "loaded")]
    assert store.con.execute("SELECT DISTINCT _batch_id FROM focus_charges").fetchall() == [(2,)]
    restated = store.rows("SELECT * FROM restatements")
    assert len(restated) == 1
    r = restated[0]
    assert (r["batch_id"], r["replaced_batch_id"], r["ProviderName"], r["BillingAccountId"]) == \
        (2, 1, "AWS", "1234567890123")
    assert r["BillingPeriodStart"].isoformat() == "2024-09-01T00:00:00"
    assert (r["rows_replaced"], r["billed_replaced"], r["effective_replaced"]) == \
        (942, Decimal("18.006638618400"), Decimal("13.000000000000"))
    assert store.con.execute("SELECT rows_replaced FROM batches WHERE batch_id = 2").fetchone() == (942,)

    # the old delivery again: same bytes as batch 1, a no-op (it does not undo the restatement)
    again = ingest(store, focus_source, [v1])
    assert (again.status, again.duplicate_of) == ("unchanged", 1)
    assert totals(store)[1] == Decimal("36.013277236800")


def test_restating_one_of_two_accounts_leaves_the_other(tmp_path, new_store, focus_source, focus_rows):
    aws = rows_of(focus_rows, "AWS")[:40]
    acct = focus_rows.col("BillingAccountId")
    for r in aws[20:]:
        r[acct] = "999999999999"
    both = focus_rows.write(tmp_path / "two_accounts.csv", aws)
    only_second = focus_rows.write(tmp_path / "second_account_v2.csv", scaled(focus_rows, aws[20:], 3))
    store = new_store()
    ingest(store, focus_source, [both])
    first = focus_rows.money(aws[:20], "BilledCost")
    second = focus_rows.money(aws[20:], "BilledCost")
    assert totals(store)[:2] == (40, first + second)

    res = ingest(store, focus_source, [only_second])
    assert (res.rows_loaded, res.rows_replaced, res.replaced_batches) == (20, 20, [1])
    assert statuses(store) == [(1, "partly replaced"), (2, "loaded")]
    by_account = dict(store.con.execute(
        'SELECT "BillingAccountId", sum("BilledCost") FROM focus_charges GROUP BY 1').fetchall())
    assert by_account == {"1234567890123": first, "999999999999": second * 3}
    assert store.con.execute(
        'SELECT _batch_id, "BillingAccountId", count(*) FROM focus_charges GROUP BY ALL ORDER BY 1').fetchall() == \
        [(1, "1234567890123", 20), (2, "999999999999", 20)]
    assert store.con.execute(
        'SELECT replaced_batch_id, "BillingAccountId", rows_replaced, billed_replaced FROM restatements').fetchall() \
        == [(1, "999999999999", 20, second)]


def test_older_data_is_refused_unless_allowed(tmp_path, new_store, focus_source, focus_rows):
    aws = rows_of(focus_rows, "AWS")
    end = focus_rows.col("ChargePeriodEnd")
    early = [r for r in aws if r[end] <= "2024-09-15 00:00:00"]
    assert 0 < len(early) < len(aws)
    full = focus_rows.write(tmp_path / "aws_full.csv", aws)
    older = focus_rows.write(tmp_path / "aws_month_to_date.csv", early)
    store = new_store()
    ingest(store, focus_source, [full])
    before = totals(store)

    with pytest.raises(IngestError) as err:
        ingest(store, focus_source, [older])
    msg = str(err.value)
    assert "older data than what is loaded for 1 billing period(s)" in msg
    assert "AWS account 1234567890123 period 2024-09" in msg
    assert f"data ends {max(r[end] for r in early)} but the store has data to 2024-10-01 00:00:00" in msg
    assert "--allow-older" in msg
    assert totals(store) == before
    assert statuses(store) == [(1, "loaded")]
    assert store.con.execute("SELECT count(*) FROM restatements").fetchone() == (0,)

    res = ingest(store, focus_source, [older], allow_older=True)
    assert (res.status, res.rows_loaded, res.rows_replaced) == ("loaded", len(early), 942)
    assert statuses(store) == [(1, "replaced"), (2, "loaded")]
    assert totals(store)[:2] == (len(early), focus_rows.money(early, "BilledCost"))


def _parts(fr, folder, microsoft_factor: int = 1):
    folder.mkdir(exist_ok=True)
    fr.write(folder / "part-0.csv", rows_of(fr, "AWS"))
    fr.write(folder / "part-1.csv", scaled(fr, rows_of(fr, "Microsoft"), microsoft_factor))
    fr.write(folder / "part-2.csv.gz", rows_of(fr, "Oracle"), gz=True)
    return folder


def test_folder_of_parts_is_one_batch_and_restates_atomically(tmp_path, new_store, focus_source, focus_rows):
    folder = _parts(focus_rows, tmp_path / "export-2024-09")
    store = new_store()
    res = ingest(store, focus_source, [folder])
    assert (res.batch_id, len(res.files), res.rows_loaded) == (1, 3, 1000)
    assert store.con.execute("SELECT path, format, rows_read FROM batch_files ORDER BY path").fetchall() == [
        (str(folder / "part-0.csv"), "csv", 942), (str(folder / "part-1.csv"), "csv", 51),
        (str(folder / "part-2.csv.gz"), "csv.gz", 7)]
    assert totals(store) == (1000, Decimal("20.520226728990"), Decimal("14.976514185860"))
    assert ingest(store, focus_source, [folder]).status == "unchanged"

    # a newer export of the folder: one part changed. The whole key set is replaced in one batch.
    _parts(focus_rows, folder, microsoft_factor=10)
    res = ingest(store, focus_source, [folder])
    assert (res.batch_id, res.rows_loaded, res.rows_replaced, res.replaced_batches) == (2, 1000, 1000, [1])
    assert statuses(store) == [(1, "replaced"), (2, "loaded")]
    assert store.con.execute("SELECT count(*) FROM restatements WHERE batch_id = 2").fetchone() == (4,)
    ms = Decimal("1.976514185860")
    assert totals(store) == (1000, Decimal("20.520226728990") + 9 * ms, Decimal("14.976514185860") + 9 * ms)
    assert store.con.execute("SELECT count(*) FROM batch_files WHERE batch_id = 2").fetchone() == (3,)


def test_folder_with_a_broken_part_replaces_nothing(tmp_path, new_store, focus_source, focus_rows):
    folder = _parts(focus_rows, tmp_path / "export")
    store = new_store()
    ingest(store, focus_source, [folder])
    before = totals(store)
    _parts(focus_rows, folder, microsoft_factor=10)
    (folder / "part-2.csv.gz").write_bytes((folder / "part-2.csv.gz").read_bytes()[:200])  # truncated
    with pytest.raises(IngestError, match=r"part-2\.csv\.gz"):
        ingest(store, focus_source, [folder])
    assert totals(store) == before
    assert statuses(store) == [(1, "loaded")]
    assert store.con.execute("SELECT count(*) FROM restatements").fetchone() == (0,)


def test_glob(tmp_path, new_store, focus_source, focus_rows):
    folder = _parts(focus_rows, tmp_path / "export")
    store = new_store()
    res = ingest(store, focus_source, [str(folder / "part-*.csv")])
    assert [f.path.name for f in res.files] == ["part-0.csv", "part-1.csv"]
    assert (res.rows_loaded, totals(store)[0]) == (993, 993)
    res = ingest(store, focus_source, [str(tmp_path / "**" / "part-*")])
    assert [f.path.name for f in res.files] == ["part-0.csv", "part-1.csv", "part-2.csv.gz"]
    assert (res.rows_loaded, res.rows_replaced) == (1000, 993)
    assert totals(store) == (1000, Decimal("20.520226728990"), Decimal("14.976514185860"))
    # the same files by folder: same content, nothing to do
    assert ingest(store, focus_source, [folder]).status == "unchanged"
    with pytest.raises(IngestError, match="no file matches this pattern"):
        ingest(store, focus_source, [str(tmp_path / "nothing-*.csv")])
