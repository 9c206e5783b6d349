"""``aifinops serve``: the API, the dashboard and /metrics on one port; ``aifinops tokens``: who may use them.

While ``serve`` runs it holds the store (DuckDB lets one process write a file): load data through its upload
endpoints, or stop it to ingest from the command line.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn

from ...config import Settings
from ...store import tokens as tokens_store
from ...store.connection import Store
from ...store.tokens import ROLES, TokenError
from .common import check_format, friendly, open_store, state
from .output import console, render

tokens_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``tokens`` group to ``app`` (app.py calls this once)."""
    app.command("serve")(serve)
    app.add_typer(tokens_app, name="tokens")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@friendly
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    threads: Annotated[int, typer.Option("--threads", help="Request threads.")] = 40,
) -> None:
    """Serve the REST API (OpenAPI at /docs), the dashboard and /metrics over the store."""
    s = state.settings
    run_server(s, host, port, threads, f"aifinops serving {s.db} on http://{host}:{port}/ (API docs: /docs)")


def run_server(settings: Settings, host: str, port: int, threads: int, banner: str) -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn's own handling: requests in flight finish)."""
    import anyio

    from ..api.app import create_app

    app = create_app(settings.db, settings)
    app.state.dashboard_warm_on_start = True  # build the pages' default views at start: no slow first visit

    async def main() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        console.print(f"{banner}; Ctrl-C stops", highlight=False)
        await _Server(config).serve()

    anyio.run(main)


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT or SIGTERM once requests in flight finish, and then exiting 0 (uvicorn
    re-raises the signal after its shutdown, which would end the process as killed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, lambda *_: self.handle_exit(0, None))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _store(settings: Settings) -> Store:
    return Store(settings.db, memory_limit=settings.memory_limit, threads=settings.threads)


@tokens_app.command("create")
@friendly
def create(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "viewer",
    team: Annotated[str | None, typer.Option(help="Only this team's detail (others as totals).")] = None,
    name: Annotated[str | None, typer.Option(help="A name to recognise it by.")] = None,
) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    with open_store() as store:
        token_id, token = tokens_store.create(store.con, role, team, name, _now())
    console.print(f"token {token_id} ({role}{', team ' + team if team else ''}); keep it, it is not shown again:",
                  highlight=False)
    print(token)


@tokens_app.command("list")
@friendly
def list_cmd(fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table") -> None:
    """Every token: id, name, role, team, when created, last used and revoked (never the secret)."""
    check_format(fmt)
    with open_store(read_only=True) as store:
        render(tokens_store.listing(store.con), fmt, title="API tokens")


@tokens_app.command("revoke")
@friendly
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (tokens list).")]) -> None:
    """Revoke a token: requests with it are refused from then on (a running server within 10 s)."""
    with open_store() as store:
        tokens_store.revoke(store.con, token_id, _now())
    console.print(f"token {token_id} revoked")
