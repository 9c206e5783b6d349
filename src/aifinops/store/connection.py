"""Opening the DuckDB store: settings, migrations, read-only access, and the ibis handle analyses use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from .schema import MIGRATIONS, SCHEMA_VERSION


class StoreError(Exception):
    """The store cannot be opened or used; the message says why and what to do."""


class Store:
    """One DuckDB database file. Writes happen in explicit transactions; reads may open read-only."""

    def __init__(self, path: Path | str, *, read_only: bool = False, memory_limit: str = "1GB",
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no store here yet; run `aifinops ingest` or `aifinops demo` first")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from None
        # UTC everywhere: naive timestamps in the store mean UTC. The progress bar is drawn by us (Rich)
        # from query_progress(), never printed by DuckDB onto stderr.
        self._session(self.con)
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if not read_only:
            self.migrate()
        else:
            self._check_version()

    @staticmethod
    def _session(con: duckdb.DuckDBPyConnection) -> None:
        """Settings that belong to a connection, not to the database: every cursor needs them too."""
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
        # ibis 12 still writes `x -> ...` lambdas, which DuckDB 2.0 deprecates behind this setting.
        with suppress(duckdb.Error):  # older DuckDB: the arrow syntax is the only one
            con.execute("SET lambda_syntax = 'ENABLE_SINGLE_ARROW'")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another connection to the same database (one per thread: a server's requests run side by side, each
        in its own transaction), with the session settings of this one."""
        cur = self.con.cursor()
        self._session(cur)
        return cur

    # -- schema -----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _check_version(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: made by a newer aifinops (schema {version}, this one knows {SCHEMA_VERSION});"
                " upgrade aifinops"
            )
        if version < SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema {version} needs migrating; open it once for writing")

    def migrate(self, to: int = SCHEMA_VERSION) -> list[str]:
        """Apply the missing migrations up to ``to`` in one transaction; returns their titles."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            self._check_version()
        applied: list[str] = []
        if current >= to:
            return applied
        with self.transaction():
            for title, statements in MIGRATIONS[current:to]:
                for sql in statements:
                    self.con.execute(sql)
                applied.append(title)
            self.con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(to)]
            )
        return applied

    # -- transactions and queries -----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: an exception (or a killed process) leaves the store as it was before."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def table_columns(self, table: str) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()]

    def ibis(self) -> Any:
        """An ibis backend over this connection: analyses are ibis expressions, portable to Spark."""
        import ibis

        return ibis.duckdb.from_connection(self.con)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
