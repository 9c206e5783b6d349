"""What the API server serves beside ``/api/v1``: the OTLP/HTTP trace receiver at ``/v1/traces`` (an OpenTelemetry
SDK points at the server itself), Prometheus ``/metrics``, and the response cache in front of the read
endpoints. ``mount(app, settings, db_path)`` installs all three (and ``limits``: heavy analyses a few at a
time); ``create_app`` starts and stops the receiver's flusher with the store.

- ``/v1/traces`` is ``otlp_receiver.TracesEndpoint`` (accepted bodies are spooled durably in
  ``<db>.otlp-spool`` before the 200) behind an admin token, since what it accepts is ingested
  (``OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer afo_..."``). Its ``Flusher`` ingests the spool every 5 s
  through the server's write lock (``Database.write``), so a flush queues behind other writes instead of
  conflicting with them, and readers never wait for it.
- ``/metrics`` is ``exporter.make_asgi`` over the server's read cursors. Prometheus scrapes without a token, so
  none is needed; a request that sends one must send a valid token that sees every team (a team-scoped token
  is refused: the families are fleet-wide).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from ...config import Settings
from ...sources.base import Source, sources
from ...store.connection import Store
from ..exporter import make_asgi
from ..otlp_receiver import Flusher, Spool, TracesEndpoint
from .cache import DataVersion, ResponseCache, token_of
from .db import Database
from .limits import install

OTLP_MAX_BODY = 16 << 20
OTLP_FLUSH_SECONDS = 5.0
METRICS_TTL_SECONDS = 15.0


class CursorStore(Store):
    """The ingest engine's view of a write cursor: it uses ``con``, ``transaction`` and ``table_columns`` only,
    so a cursor of the server's database stands in for a store opened on its own."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:  # no super(): nothing to open
        self.con, self.path, self.read_only = con, path, False

    def close(self) -> None:  # the cursor belongs to Database.write
        return None


@contextmanager
def store_for_write(db: Database, version: DataVersion | None = None) -> Iterator[Store]:
    """A store over a write cursor, under the write lock; the data version moves once it is released."""
    try:
        with db.write() as con:
            yield CursorStore(con, db.store.path)
    finally:
        if version is not None:
            version.bump()


class OtlpReceiver:
    """ASGI app for ``POST /v1/traces``: an admin token, then the standalone receiver's endpoint."""

    def __init__(self, settings: Settings, spool_dir: Path) -> None:
        self.settings, self.spool_dir = settings, spool_dir
        self.endpoint: TracesEndpoint | None = None
        self.flusher: Flusher | None = None

    def _source(self) -> Source:
        return sources.get("otel")(**dict(self.settings.sources.get("otel", {})))

    def start(self, db: Database, version: DataVersion) -> None:
        spool = Spool(self.spool_dir)
        self.endpoint = TracesEndpoint(spool, OTLP_MAX_BODY)
        self.flusher = Flusher(spool, lambda: store_for_write(db, version), self._source, OTLP_FLUSH_SECONDS,
                               strict=self.settings.ingest.strict)
        self.flusher.start()

    def stop(self) -> None:
        """Flush what is spooled (what cannot be stored now stays spooled for the next start)."""
        if self.flusher is not None:
            self.flusher.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        token = token_of(scope)
        db = scope["app"].state.db
        who = await run_in_threadpool(db.principal, token) if token else None
        if who is None or not who.can("admin") or self.endpoint is None:
            status = 401 if who is None else 403 if not who.can("admin") else 503
            msg = {401: "an admin API token is needed: OTEL_EXPORTER_OTLP_HEADERS='Authorization=Bearer <token>'",
                   403: f"ingesting spans needs the admin role; the token has {who.role if who else None}",
                   503: "the receiver is not running"}[status]
            await JSONResponse({"detail": msg}, status)(scope, receive, send)
            return
        await self.endpoint(scope, receive, send)


def mount(app: FastAPI, settings: Settings, db_path: Path) -> OtlpReceiver:
    """The response cache, ``/v1/traces`` and ``/metrics`` on ``app``; returns the receiver to start and stop (its
    spool is ``<db>.otlp-spool``, as ``aifinops receive otlp``'s)."""
    version = app.state.data_version = DataVersion()
    install(app, settings.threads)  # a few heavy analyses at a time; 503 when the store is out of memory
    app.add_middleware(ResponseCache, version=version)
    receiver = OtlpReceiver(settings, Path(f"{db_path}.otlp-spool"))
    app.add_route("/v1/traces", receiver, include_in_schema=False)

    def authorize(request: Request) -> bool:
        token = token_of(request.scope)
        if token is None:
            return True  # Prometheus scrapes without one
        who = request.app.state.db.principal(token)
        return who is not None and who.team is None

    app.add_route("/metrics", make_asgi(lambda: app.state.db.cursor(), settings, METRICS_TTL_SECONDS,
                                        authorize=authorize), include_in_schema=False)
    return receiver
