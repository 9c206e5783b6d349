"""The server's hold on the store: one DuckDB database for the process, a cursor per request.

DuckDB lets one process write a database file; within it, each cursor is its own connection with its own
transactions, so reads run side by side and see a consistent snapshot while an ingest commits beside them.
Writes (ingest, feedback, dismissals, tokens) take one lock, so they queue instead of conflicting; a read never
waits for it. Read endpoints only ever get a read cursor, which they use for SELECTs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ...config import Settings
from ...store.connection import Store
from ...store.tokens import Principal, verify

TOKEN_CACHE_SECONDS = 10.0


class Database:
    def __init__(self, path: Path, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(path, memory_limit=settings.memory_limit, threads=settings.threads)
        self._write = threading.Lock()
        self._local = threading.local()
        self._tokens: dict[str, tuple[Principal | None, float]] = {}

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor (created once per worker thread: opening one costs more than a query)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self.store.cursor()
        return cur

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self.cursor()

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor under the write lock: one writer at a time, readers undisturbed."""
        with self._write:
            cur = self.store.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def principal(self, token: str) -> Principal | None:
        """The token's principal, remembered for a few seconds (a revocation takes effect within that)."""
        now = time.monotonic()
        hit = self._tokens.get(token)
        if hit and hit[1] > now:
            return hit[0]
        who = verify(self.cursor(), token)
        self._tokens[token] = (who, now + TOKEN_CACHE_SECONDS)
        return who

    def forget_tokens(self) -> None:
        """Drop the remembered principals (after a revocation through this server: it holds at once)."""
        self._tokens.clear()

    def close(self) -> None:
        self.store.close()
