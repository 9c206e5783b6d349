"""A store made by an older aifinops opens and is migrated, keeping its data."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from aifinops.sources.base import sources
from aifinops.store.connection import Store, StoreError
from aifinops.store.ingest import ingest
from aifinops.store.schema import MIGRATIONS, SCHEMA_VERSION


def test_new_store_is_current(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as s:
        assert s.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)


def test_old_store_is_migrated_and_keeps_data(tmp_path: Path, sample_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    # Make a store as the first release did: only the first migration, with a batch in it.
    con = duckdb.connect(str(db))
    for sql in MIGRATIONS[0][1]:
        con.execute(sql)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO batches (batch_id, source_kind, status, fingerprint, started_at, seconds, rows_read, "
                "rows_loaded, rows_quarantined) VALUES (1, 'focus', 'loaded', 'x', now(), 0, 0, 0, 0)")
    con.close()
    with pytest.raises(StoreError, match="needs migrating"):
        Store(db, read_only=True)
    with Store(db) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.rows("SELECT batch_id FROM batches") == [{"batch_id": 1}]
        res = ingest(s, sources.get("focus")(), [sample_path])
        assert res.batch_id == 2 and res.rows_loaded == 1000


def test_newer_store_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    with Store(db) as s:
        s.con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer aifinops"):
        Store(db)


def test_read_only_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store here"):
        Store(tmp_path / "none.duckdb", read_only=True)


def test_a_store_migrated_from_any_version_has_the_columns_of_a_new_one(tmp_path: Path) -> None:
    """Migration 4 creates the GPU tables as it was released; later columns come from later migrations."""
    with Store(tmp_path / "new.duckdb") as s:
        want = {t: sorted(s.table_columns(t)) for t in ("gpu_samples", "gpu_nodes", "workloads", "focus_charges")}
    for version in range(1, SCHEMA_VERSION):
        db = tmp_path / f"v{version}.duckdb"
        con = duckdb.connect(str(db))
        for _, statements in MIGRATIONS[:version]:
            for sql in statements:
                con.execute(sql)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(version)])
        con.close()
        with Store(db) as s:
            assert {t: sorted(s.table_columns(t)) for t in want} == want, f"from version {version}"
