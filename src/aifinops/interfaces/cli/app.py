"""The ``aifinops`` command. Thin: it parses, calls the store and the analyses, and renders.

Expected failures (a bad file, an unknown column, a missing store) print one clear line and exit 1;
only bugs show a traceback.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ... import __version__
from ...analysis import costs as costs_mod
from ...analysis import tags as tags_mod
from ...analysis.layers import load_rules
from ...analysis.windows import parse_window
from ...config import ConfigError, load_settings
from ...governance.watch import after_ingest
from ...sources.base import SourceError, sources
from ...store.export import export_focus
from ...store.ingest import IngestError, ingest
from .agent import register as _register_agent
from .alerts import register as _register_alerts
from .anomalies import register as _register_anomalies
from .budgets import register as _register_budgets
from .collect import register as _register_collect
from .collect_mlflow import register as _register_collect_mlflow
from .common import RichProgress, check_format, friendly, open_store, print_batch, state
from .forecast import register as _register_forecast
from .gpu import register as _register_gpu
from .output import console, err_console, render
from .prices import register as _register_prices
from .receive import register as _register_receive
from .recommend import register as _register_recommend
from .report import register as _register_report
from .serve import register as _register_serve
from .units import register as _register_units
from .watch import register as _register_watch

app = typer.Typer(help="aifinops: the economics of AI infrastructure.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
ingest_app = typer.Typer(help="Load data into the store (one atomic batch per command).", no_args_is_help=True)
export_app = typer.Typer(help="Write data out in standard formats.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(export_app, name="export")

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


_register_collect(app)
_register_collect_mlflow(app)
_register_agent(app)
_register_gpu(app)
_register_prices(app)
_register_receive(app)
_register_units(app)
_register_recommend(app)
_register_anomalies(app)
_register_watch(app)
_register_alerts(app)
_register_budgets(app)
_register_forecast(app)
_register_report(app)
_register_serve(app)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"aifinops {__version__}")


# -- ingest ---------------------------------------------------------------------------------------

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
        scan: Annotated[bool, typer.Option(
            "--scan/--no-scan", help="After loading, run the anomaly scans and budgets and send due alerts "
            "(as one `aifinops watch` cycle).")] = True,
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
                         progress=RichProgress(progress))
            watched = after_ingest(store.con, s) if scan and res.rows_loaded else None
        print_batch(res)
        if watched is not None:
            err_console.print(f"watch: {watched.line()}", highlight=False)
            for e in watched.errors:
                err_console.print(f"  [yellow]warning:[/] {e}", highlight=False)


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
    check_format(fmt)
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
    check_format(fmt)
    with open_store(read_only=True) as store:
        where, params = ("WHERE batch_id = ?", [batch]) if batch is not None else ("", [])
        rows = store.rows(
            f"SELECT batch_id AS batch, file, row_number AS row, \"column\", reason FROM quarantine_errors {where} "
            f"ORDER BY batch_id, file, row_number LIMIT {int(limit)}", params)
    render(rows, fmt, title="quarantined rows")


# -- analyses -------------------------------------------------------------------------------------

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
    check_format(fmt)
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
    check_format(fmt)
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
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Then serve the dashboard over the store.")]
    = True,
    host: Annotated[str, typer.Option(help="Where the dashboard listens.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the dashboard.")] = 8000,
) -> None:
    """Build a store from the bundled FOCUS sample and a synthetic AI company's bill, answer questions, and serve
    the dashboard over it (a read-only token in the printed link)."""
    from ...demo.run import run_demo
    from .serve import _store, run_server

    run_demo(out, seed=seed, settings=state.settings)
    if not serve:
        return
    settings = load_settings(out / "aifinops.yaml", {"db": out / "aifinops.duckdb"})
    from ...store import tokens as tokens_store

    with _store(settings) as store:
        _, token = tokens_store.create(store.con, "viewer", None, "demo (read-only)", datetime.now(UTC)
                                       .replace(tzinfo=None))
    run_server(settings, host, port, 40, f"dashboard: http://{host}:{port}/login?token={token}\n"
               f"(a read-only token; API docs at http://{host}:{port}/docs)")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted: the store is unchanged by the interrupted command")
        sys.exit(130)


if __name__ == "__main__":
    main()
