"""``aifinops receive otlp``: an OTLP/HTTP receiver for GenAI spans, writing them into the store in batches.

Point an OpenTelemetry SDK (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://host:4318/v1/traces``) or a collector's
``otlphttp`` exporter at it. Spans answered 200 are durable (see ``interfaces/otlp_receiver.py``): SIGTERM,
SIGINT or a crash after the answer loses none. Between flushes the store is closed, so other aifinops
commands can use it; the spool folder (default ``<db>.otlp-spool``) holds what is not yet in the store.

Signals: uvicorn's own handlers re-raise the signal once the server has stopped, which would end the process
before the last flush. So the command installs its own (in the main thread only, restored afterwards, as
``agent`` does): the first SIGTERM or SIGINT stops accepting and lets requests in flight finish, a second
SIGINT drops them (never an acknowledged one: those are spooled), and the last flush then runs; exit 0.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from ...sources.base import Source, SourceError, sources
from ...store.connection import Store
from ...store.ingest import IngestError
from ..otlp_receiver import Flusher, Spool, TracesEndpoint, make_app, parse_size
from .agent import parse_duration
from .common import friendly, open_store, state
from .output import err_console

receive_app = typer.Typer(help="Receive telemetry that running systems push.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``receive`` group to ``app`` (idempotent, so tests may register it on the shared app)."""
    if not any(g.name == "receive" for g in app.registered_groups):
        app.add_typer(receive_app, name="receive")


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the command's handlers set ``should_exit`` / ``force_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None


def _log(msg: str) -> None:
    err_console.print(msg, highlight=False)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run_receiver(host: str, port: int, spool_dir: Path, every: float, max_body: int,
                 make_source: Callable[[], Source], open_db: Callable[[], Store], strict: bool = False,
                 log: Callable[[str], None] = _log) -> int:
    """Serve until SIGTERM/SIGINT, then flush; returns the number of spooled files left for the next start."""
    spool = Spool(spool_dir)
    if leftover := len(spool.ready()):
        log(f"{leftover} spooled file(s) from an earlier run: ingesting them first")
    try:
        sock = _listen(host, port)
    except OSError as exc:
        raise IngestError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    endpoint = TracesEndpoint(spool, max_body, log)
    server = _Server(uvicorn.Config(make_app(endpoint), log_config=None, access_log=False, lifespan="off",
                                    timeout_graceful_shutdown=10, log_level="warning"))
    flusher = Flusher(spool, open_db, make_source, every, strict=strict, log=log)

    def on_signal(sig: int, _frame: Any) -> None:
        if server.should_exit and sig == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        flusher.start()
        bound = sock.getsockname()[1]
        log(f"listening on http://{host}:{bound}/v1/traces (spool {spool_dir}, flush every {every:g}s, "
            f"max body {max_body:,} bytes)")
        server.run(sockets=[sock])
        log("stopping: no new requests; flushing the spool")
    finally:
        left = flusher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    st = endpoint.stats
    log(f"stopped: {st.requests:,} request(s) with {st.spans:,} span(s) ({st.genai_spans:,} GenAI) accepted, "
        f"{st.rejected:,} refused" + (f"; {left} spooled file(s) wait for the next start" if left else
                                      "; everything is in the store"))
    return left


@receive_app.command("otlp")
@friendly
def otlp(
    port: Annotated[int, typer.Option(help="TCP port (4318 is OTLP/HTTP's; 0 picks a free one).", min=0,
                                      max=65535)] = 4318,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    spool: Annotated[Path | None, typer.Option(help="Folder of accepted, not yet stored requests "
                                                    "(default <db>.otlp-spool).")] = None,
    flush_every: Annotated[str, typer.Option(help="Time between batches into the store, e.g. 5s, 1m.")] = "5s",
    max_body: Annotated[str, typer.Option(help="Largest request body, compressed or not, e.g. 16MB.")] = "16MB",
) -> None:
    """Receive OTLP/HTTP traces (POST /v1/traces, protobuf or JSON) and store their GenAI spans."""
    s = state.settings
    every = parse_duration(flush_every)
    try:
        limit = parse_size(max_body)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max-body") from None
    options = dict(s.sources.get("otel", {}))
    source_cls = sources.get("otel")
    try:
        source_cls(**options)  # options errors now, not at the first flush
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    run_receiver(host, port, spool or Path(f"{s.db}.otlp-spool"), every, limit, lambda: source_cls(**options),
                 open_store, strict=s.ingest.strict)
