"""The ``aifinops`` command. Thin: it parses, calls the store and the analyses, and renders.

Expected failures (a bad file, an unknown column, a missing store) print one clear line and exit 1;
only bugs show a traceback.
"""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ... import __version__
from ...analysis import costs as costs_mod
from ...analysis import tags as tags_mod
from ...analysis.layers import LayerRuleError, load_rules
from ...analysis.windows import WindowError, parse_window
from ...config import ConfigError, Settings, load_settings
from ...sources.base import SourceError, SourceFile, sources
from ...store.connection import Store, StoreError
from ...store.export import ExportError, export_focus
from ...store.ingest import BatchResult, IngestError, IngestProgress, ingest
from .agent import register as _register_agent
from .collect import register as _register_collect
from .output import FORMATS, console, err_console, render

app = typer.Typer(help="aifinops: the economics of AI infrastructure.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
ingest_app = typer.Typer(help="Load data into the store (one atomic batch per command).", no_args_is_help=True)
export_app = typer.Typer(help="Write data out in standard formats.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(export_app, name="export")

EXPECTED = (IngestError, StoreError, ConfigError, WindowError, costs_mod.DimensionError, LayerRuleError,
            ExportError, KeyError)


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


@app.callback()
def main_options(
    db: Annotated[Path | None, typer.Option(help="Store file (default ./aifinops.duckdb; env AIFINOPS_DB).")] = None,
    config: Annotated[Path | None, typer.Option(help="Settings file (default ./aifinops.yaml).")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 1GB.")] = None,
) -> None:
    try:
        state.settings = load_settings(config, {"db": db, "memory_limit": memory_limit})
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def open_store(read_only: bool = False) -> Store:
    s = state.settings
    return Store(s.db, read_only=read_only, memory_limit=s.memory_limit, threads=s.threads)


_register_collect(app)
_register_agent(app)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"aifinops {__version__}")


# -- ingest ---------------------------------------------------------------------------------------

class _RichProgress(IngestProgress):
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


def _make_ingest_command(kind: str, doc: str) -> None:
    @ingest_app.command(name=kind, help=doc)
    @friendly
    def command(
        paths: Annotated[list[str], typer.Argument(help="Files, folders or globs; given together = one batch.")],
        strict: Annotated[bool | None, typer.Option(
            "--strict/--no-strict", help="Quarantine rows that break any spec rule, not only those that "
            "affect money.")] = None,
        allow_older: Annotated[bool | None, typer.Option(
            "--allow-older", help="Restate a period even when these files end earlier than the loaded data.")] = None,
        option: Annotated[list[str] | None, typer.Option(
            "--option", "-o", help="A source option KEY=VALUE (repeatable); overrides aifinops.yaml.")] = None,
    ) -> None:
        s = state.settings
        options = dict(s.sources.get(kind, {}))
        for item in option or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise IngestError(f"--option {item!r}: expected KEY=VALUE")
            options[key.strip()] = value
        try:
            source = sources.get(kind)(**options)
        except SourceError as exc:
            raise IngestError(str(exc)) from None
        with open_store() as store, Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), console=err_console, transient=True, disable=not err_console.is_terminal,
        ) as progress:
            res = ingest(store, source, paths, strict=s.ingest.strict if strict is None else strict,
                         allow_older=s.ingest.allow_older if allow_older is None else allow_older,
                         progress=_RichProgress(progress))
        print_batch(res)


for _kind, _cls in sources:
    _make_ingest_command(_kind, (_cls.__doc__ or _kind).strip().splitlines()[0])


@app.command()
@friendly
def batches(fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table") -> None:
    """What was loaded, replaced and quarantined, batch by batch."""
    with open_store(read_only=True) as store:
        rows = store.rows(
            "SELECT b.batch_id AS batch, b.source_kind AS source, b.status, b.started_at AS loaded_at, "
            "(SELECT count(*) FROM batch_files f WHERE f.batch_id = b.batch_id) AS files, b.focus_version AS focus, "
            "b.rows_read, b.rows_loaded, b.rows_quarantined, b.rows_replaced, "
            "b.effective_read, b.effective_loaded, b.effective_quarantined, "
            "(SELECT count(*) FROM focus_charges c WHERE c._batch_id = b.batch_id) AS rows_live, "
            "(SELECT string_agg(DISTINCT r.batch_id::VARCHAR, ',') FROM restatements r "
            " WHERE r.replaced_batch_id = b.batch_id) AS replaced_by, "
            "round(b.seconds, 2) AS seconds FROM batches b ORDER BY b.batch_id"
        )
    _check_format(fmt)
    if fmt == "table":  # the full record is in csv/json; the table keeps what fits a terminal
        keep = ("batch", "source", "status", "loaded_at", "files", "rows_read", "rows_loaded", "rows_quarantined",
                "rows_replaced", "effective_loaded", "replaced_by")
        rows = [{k: r[k] for k in keep} for r in rows]
    render(rows, fmt, title="batches")


@app.command()
@friendly
def quarantine(
    batch: Annotated[int | None, typer.Option(help="Only this batch.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Rows that were not loaded: file, row number, column and reason."""
    _check_format(fmt)
    with open_store(read_only=True) as store:
        where, params = ("WHERE batch_id = ?", [batch]) if batch is not None else ("", [])
        rows = store.rows(
            f"SELECT batch_id AS batch, file, row_number AS row, \"column\", reason FROM quarantine_errors {where} "
            f"ORDER BY batch_id, file, row_number LIMIT {int(limit)}", params)
    render(rows, fmt, title="quarantined rows")


# -- analyses -------------------------------------------------------------------------------------

def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise costs_mod.DimensionError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")


@app.command()
@friendly
def costs(
    window: Annotated[str, typer.Option(help="7d, 30d, 2026-10, 2026-Q3, START..END or all.")] = "30d",
    by: Annotated[str, typer.Option(help="Comma-separated: FOCUS columns, tag:KEY, layer, day/week/month.")]
    = "ServiceName",
    cost: Annotated[str, typer.Option(help="effective, billed, list or contracted.")] = "effective",
    limit: Annotated[int, typer.Option(help="Rows to show (0 = all).")] = 25,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Spend grouped by any FOCUS column or tag key over a window."""
    _check_format(fmt)
    with open_store(read_only=True) as store:
        t = store.ibis().table("focus_charges")
        w = parse_window(window, costs_mod.data_end(t))
        expr = costs_mod.cost_by(t, costs_mod.parse_by(by), w, cost, load_rules(state.settings.layers_file))
        rows = expr.to_pyarrow().to_pylist()
        total = sum((r["cost"] or 0) for r in rows)
    shown = rows[:limit] if limit else rows
    caption = f"{len(shown)} of {len(rows)} groups; total {cost} cost {total:,.2f}; window {w}"
    render(shown, fmt, title=f"{cost} cost by {by}", caption=caption)


@app.command()
@friendly
def tags(
    keys: Annotated[str | None, typer.Option(help="Tag keys that every charge should carry.")] = None,
    window: Annotated[str, typer.Option(help="7d, 30d, 2026-10, START..END or all.")] = "30d",
    limit: Annotated[int, typer.Option(help="Untagged resources to show.")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Tag coverage, the largest untagged resources, and tag values that look like typos."""
    _check_format(fmt)
    key_list = [k.strip() for k in keys.split(",")] if keys else state.settings.tag_keys
    with open_store(read_only=True) as store:
        t = store.ibis().table("focus_charges")
        w = parse_window(window, costs_mod.data_end(t))
        cov = tags_mod.coverage(t, key_list, w).to_pyarrow().to_pylist()
        untagged = tags_mod.untagged_resources(t, key_list, w, limit).to_pyarrow().to_pylist()
        typos = tags_mod.typo_pairs(t, w).to_pyarrow().to_pylist()
    if fmt == "table":
        render(cov, title="tag coverage (share of positive EffectiveCost)", caption=f"window {w}")
        render(untagged, title=f"largest resources missing a key of {', '.join(key_list)}")
        render(typos, title="tag keys and values that look like typos of each other")
    else:
        render([{"section": "coverage", **r} for r in cov] + [{"section": "untagged", **r} for r in untagged]
               + [{"section": "typos", **r} for r in typos] if fmt == "json" else cov, fmt)


@app.command()
@friendly
def allocation(
    window: Annotated[str, typer.Option(help="7d, 30d, 2026-10, START..END.")] = "7d",
    aggregate: Annotated[str, typer.Option(help="node, namespace, workload, node_pool, owner, label:KEY (comma list).")]
    = "node",
    accumulate: Annotated[str, typer.Option(help="window (one row per group), hour or day.")] = "window",
    share_idle: Annotated[str, typer.Option(help="none (idle its own line), weighted, even, or owner.")] = "none",
    idle_threshold: Annotated[float, typer.Option(help="Activity below which a held GPU counts as idle.")] = 0.05,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """GPU cost by workload with idle as its own line (OpenCost field names: gpuHours, gpuCost, totalCost)."""
    from ...analysis import gpu_allocation

    _check_format(fmt)
    with open_store(read_only=True) as store:
        end = store.con.execute(
            "SELECT greatest((SELECT max(\"ChargePeriodEnd\") FROM focus_charges), "
            "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads))").fetchone()[0]
        w = parse_window(window, end)
        try:
            rows = gpu_allocation.aggregate(store.con, w, [d.strip() for d in aggregate.split(",") if d.strip()],
                                            idle_threshold=idle_threshold, accumulate=accumulate,
                                            share_idle=share_idle, gpu_prices=state.settings.gpu_prices)
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
    total = sum((r["totalCost"] or 0) for r in rows)
    render(rows, fmt, title=f"GPU allocation by {aggregate}", caption=f"total GPU cost {total:,.2f}; window {w}")


gpu_app = typer.Typer(help="GPU fleet views.", no_args_is_help=True)
app.add_typer(gpu_app, name="gpu")


@gpu_app.command("capacity")
@friendly
def gpu_capacity(
    window: Annotated[str, typer.Option(help="30d, 2026-10, START..END or all (the workloads' span).")] = "all",
    by: Annotated[str | None, typer.Option(help="label:KEY or namespace: allocated GPU-hours per group.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Available vs allocated GPU-hours per day, unallocated share, fractional sharing, cost at gpu_prices."""
    from datetime import timedelta

    from ...analysis.gpu_capacity import daily_capacity
    from ...analysis.windows import Window

    _check_format(fmt)
    with open_store(read_only=True) as store:
        first, last = store.con.execute(
            "SELECT min(start_ts), max(coalesce(end_ts, start_ts)) FROM workloads WHERE gpu_share > 0").fetchone()
        if first is None:
            raise costs_mod.DimensionError("no workload holds GPUs in the store: ingest workloads first")
        if window == "all":
            start = first.replace(hour=0, minute=0, second=0, microsecond=0)
            w = Window(start, last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1))
        else:
            w = parse_window(window, last)
        try:
            rows = daily_capacity(store.con, w, by, state.settings.gpu_prices)
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
    render(rows, fmt, title="GPU capacity per day", caption=f"window {w}")


@export_app.command("focus")
@friendly
def export_focus_cmd(
    out: Annotated[Path, typer.Argument(help="OUT.csv or OUT.parquet")],
    window: Annotated[str, typer.Option(help="Only this window (default: everything).")] = "all",
) -> None:
    """Write the ledger as FOCUS 1.2 (the FinOps Foundation validator's input)."""
    with open_store(read_only=True) as store:
        t = store.ibis().table("focus_charges")
        w = parse_window(window, costs_mod.data_end(t))
        n = export_focus(store, out, None if window == "all" else w.start, None if window == "all" else w.end)
    console.print(f"wrote {n:,} FOCUS 1.2 rows to {out}")


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo store, bill files and HTML summary.")]
    = Path("aifinops-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic AI company.")] = 7,
) -> None:
    """Build a store from the bundled FOCUS sample and a synthetic AI company's bill, and answer questions."""
    from ...demo.run import run_demo

    run_demo(out, seed=seed, settings=state.settings)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted: the store is unchanged by the interrupted command")
        sys.exit(130)


if __name__ == "__main__":
    main()
