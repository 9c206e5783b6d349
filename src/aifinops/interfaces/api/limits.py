"""How many heavy analyses run at once. An hourly GPU allocation, a forecast or a utilisation over a month holds
hundreds of MB of DuckDB memory for up to a second; forty of them side by side (the server's request threads)
exhaust the store's ``memory_limit`` and fail together (measured: 157 of 350 requests of the load benchmark
without the cache). So each takes one of a few slots (one per core, at least two) and the rest wait their
turn: they queue in order instead of failing, and cheap reads (costs, findings, cache hits) never wait.

When DuckDB runs out of memory anyway, the answer is 503 with ``Retry-After`` (the request was fine, the server
was busy), never a 500. A date past the calendar's end (``..9999-12-31`` is a day before year 10000) is the
request's fault: 400.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

RETRY_AFTER_SECONDS = 2


def slots(threads: int | None = None) -> int:
    return max(2, threads or os.cpu_count() or 2)


def install(app: FastAPI, threads: int | None = None) -> None:
    """The slots on ``app.state.heavy``, 503 for a store out of memory, 400 for dates out of range."""
    app.state.heavy = threading.BoundedSemaphore(slots(threads))

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse({"detail": f"the server is busy (the store ran out of memory: {first}); retry"}, 503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    async def out_of_range(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"a date or number out of range: {exc}"}, 400)

    app.add_exception_handler(duckdb.OutOfMemoryException, busy)
    app.add_exception_handler(OverflowError, out_of_range)


@contextmanager
def heavy(request: Request) -> Iterator[None]:
    """Hold one slot for the length of the ``with`` (no limit on an app without ``install``)."""
    gate = getattr(request.app.state, "heavy", None)
    if gate is None:
        yield
        return
    with gate:
        yield
