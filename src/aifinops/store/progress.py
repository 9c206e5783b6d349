"""Run a long DuckDB statement while reporting its progress, so the CLI can draw a bar."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import duckdb

ProgressFn = Callable[[float], None]  # receives 0..100


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None = None,
            on_progress: ProgressFn | None = None, poll: float = 0.2,
            fraction: Callable[[], float] | None = None) -> Any:
    """``con.execute`` in a worker thread while the caller's thread polls ``query_progress`` (or
    ``fraction``, 0..1, for scans DuckDB cannot measure, such as an Arrow stream)."""
    if on_progress is None:
        return con.execute(sql, params or []).fetchall()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["rows"] = con.execute(sql, params or []).fetchall()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(poll)
            pct = fraction() * 100 if fraction is not None else con.query_progress()
            if pct >= 0:
                on_progress(pct)
    except KeyboardInterrupt:
        con.interrupt()
        worker.join()
        raise
    if "error" in result:
        raise result["error"]
    on_progress(100.0)
    return result.get("rows")
