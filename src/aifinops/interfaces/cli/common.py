"""What every command module of the CLI shares: the settings of this invocation, opening the store,
turning expected failures into one clear line, format checks and the ingest progress bar.

Kept apart from ``app.py`` so that command modules (``gpu.py``, ``collect.py``, ``agent.py``) import it
without importing the app that registers them.
"""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, TaskID

from ...analysis import costs as costs_mod
from ...analysis.forecast import ForecastError
from ...analysis.layers import LayerRuleError
from ...analysis.windows import WindowError
from ...config import ConfigError, Settings
from ...sources.base import SourceFile
from ...store.anomalies import AnomalyError
from ...store.connection import Store, StoreError
from ...store.export import ExportError
from ...store.findings import FindingError
from ...store.ingest import BatchResult, IngestError, IngestProgress
from ...store.tokens import TokenError
from ...waste.engine import RuleError
from .output import FORMATS, console, err_console, render

EXPECTED: tuple[type[BaseException], ...] = (
    IngestError, StoreError, ConfigError, WindowError, costs_mod.DimensionError, LayerRuleError, ExportError, KeyError,
    RuleError, FindingError, AnomalyError, ForecastError, TokenError)


class State:
    settings: Settings


state = State()


def friendly(fn: Any) -> Any:
    """Turn expected errors into one red line and exit status 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            err_console.print(f"[bold red]error:[/] {msg}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def open_store(read_only: bool = False) -> Store:
    s = state.settings
    return Store(s.db, read_only=read_only, memory_limit=s.memory_limit, threads=s.threads)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise costs_mod.DimensionError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")


class RichProgress(IngestProgress):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def start_file(self, file: SourceFile, index: int, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=100)
        label = f"[{index + 1}/{total}] {file.path.name} ({file.bytes / 1e6:,.1f} MB)"
        self.task = self.progress.add_task(label, total=100)

    def update(self, pct: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=pct)


def print_batch(res: BatchResult) -> None:
    if res.status == "unchanged":
        console.print(f"[yellow]unchanged[/]: {'; '.join(res.notes)}")
        return
    if res.status == "empty":
        console.print(f"[yellow]empty[/]: {'; '.join(res.notes)}")
        return
    console.print(
        f"[green]batch {res.batch_id}[/] ({res.source_kind}): {len(res.files)} file(s), "
        f"{res.rows_read:,} rows read, {res.rows_loaded:,} loaded, {res.rows_quarantined:,} quarantined "
        f"in {res.seconds:.1f}s ({res.rows_read / max(res.seconds, 1e-9):,.0f} rows/s)"
    )
    if res.rows_replaced:
        console.print(f"  restated: replaced {res.rows_replaced:,} rows of batch(es) "
                      f"{', '.join(map(str, res.replaced_batches))} for the same provider, account and period")
    rows = [{"money": col, "read": m["read"], "loaded": m["loaded"], "quarantined": m["quarantined"],
             "reconciles": "yes" if m["read"] == m["loaded"] + m["quarantined"] else "NO"}
            for col, m in res.money.items()]
    render(rows, title="reconciliation: read = loaded + quarantined")
    for w in res.warnings:
        console.print(f"  [yellow]warning[/]: {w['rows']:,} row(s) of {Path(str(w['file'])).name}: "
                      f"{w['rule']} on {w['column']} (first at row {w['first_row']}); loaded")
    if res.rows_quarantined:
        console.print(f"  see them: aifinops quarantine --batch {res.batch_id}")
    for note in res.notes:
        console.print(f"  note: {note}")
