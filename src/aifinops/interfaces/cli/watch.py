"""``aifinops watch --every 5m``: a watch cycle (anomaly scans, budgets, alerts) every interval, until stopped.

The store is opened for each cycle and closed between them, so ingests, ``aifinops receive otlp`` flushes and
other commands use it in between; whatever they loaded (spans the OTLP receiver took in included) is in the
next cycle. A cycle that finds the store busy (another process writing) waits for the next one. SIGTERM or
Ctrl-C ends the loop after the cycle in progress.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ...governance.watch import cycle
from ...store.connection import StoreError
from .agent import parse_duration
from .common import friendly, open_store, state
from .output import console, err_console


def register(app: typer.Typer) -> None:
    """Add ``watch`` to ``app`` (app.py calls this once)."""
    app.command("watch")(watch)


@friendly
def watch(
    every: Annotated[str, typer.Option(help="Time between cycles: 30s, 5m, 1h.")] = "5m",
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit (for cron or CI).")] = False,
    cycles: Annotated[int | None, typer.Option(help="Stop after this many cycles.")] = None,
    window: Annotated[str | None, typer.Option(help="Where anomalies are reported (default anomalies.window).")]
    = None,
) -> None:
    """Scan for anomalies, check budgets and send due alerts (retrying failed ones) every interval."""
    interval = parse_duration(every)
    stop = threading.Event()
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    limit = 1 if once else cycles
    done = 0
    try:
        while not stop.is_set():
            stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
            try:
                with open_store() as store:
                    report = cycle(store.con, state.settings, window=window)
                console.print(f"{stamp} {report.line()}", highlight=False)
                for e in report.errors:
                    err_console.print(f"  [yellow]warning:[/] {e}", highlight=False)
            except StoreError as exc:
                err_console.print(f"{stamp} store busy, next cycle in {every}: {exc}", highlight=False)
            done += 1
            if limit is not None and done >= limit:
                break
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
