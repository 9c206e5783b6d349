"""GPU fleet commands: ``aifinops allocation`` (cost per workload with idle) and ``aifinops gpu ...``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from ...analysis import costs as costs_mod
from ...analysis import gpu_allocation
from ...analysis.gpu_capacity import daily_capacity
from ...analysis.windows import Window, parse_window
from .common import check_format, friendly, open_store, state
from .output import err_console, render

gpu_app = typer.Typer(help="GPU fleet views.", no_args_is_help=True)


@friendly
def allocation(
    window: Annotated[str, typer.Option(help="7d, 30d, 2026-10, START..END.")] = "7d",
    aggregate: Annotated[str, typer.Option(help="node, namespace, workload, node_pool, owner, label:KEY (comma list).")]
    = "node",
    accumulate: Annotated[str, typer.Option(help="window (one row per group), hour or day.")] = "window",
    share_idle: Annotated[str | None, typer.Option(
        help="none (idle its own line), weighted, even, or owner (default: allocation.share_idle).")] = None,
    share_namespaces: Annotated[str | None, typer.Option(
        help="Comma list of namespaces whose cost is spread over the others (e.g. kube-system,monitoring).")] = None,
    share_labels: Annotated[str | None, typer.Option(
        help="Comma list of KEY=VALUE labels whose workloads' cost is spread over the others.")] = None,
    share_split: Annotated[str | None, typer.Option(help="Spread shared cost weighted (by cost) or even.")] = None,
    idle_threshold: Annotated[float | None, typer.Option(
        help="Activity below which a held GPU counts as idle (default: allocation.idle_threshold, 0.05).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """GPU cost by workload with idle as its own line (OpenCost field names: gpuHours, gpuCost, totalCost)."""
    check_format(fmt)
    labels = None
    if share_labels is not None:
        pairs = [item.partition("=") for item in share_labels.split(",") if item.strip()]
        if any(not sep or not k.strip() for k, sep, _ in pairs):
            raise costs_mod.DimensionError(f"--share-labels {share_labels!r}: expected KEY=VALUE[,KEY=VALUE]")
        labels = {k.strip(): v.strip() for k, _, v in pairs}
    namespaces = [n.strip() for n in share_namespaces.split(",") if n.strip()] if share_namespaces else None
    with open_store(read_only=True) as store:
        end = store.con.execute(
            "SELECT greatest((SELECT max(\"ChargePeriodEnd\") FROM focus_charges), "
            "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads))").fetchone()[0]
        w = parse_window(window, end)
        try:
            rows = gpu_allocation.aggregate(
                store.con, w, [d.strip() for d in aggregate.split(",") if d.strip()], idle_threshold=idle_threshold,
                accumulate=accumulate, share_idle=share_idle, settings=state.settings, share_namespaces=namespaces,
                share_labels=labels, share_split=share_split)
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
        unmatched = gpu_allocation.unmatched_workloads(store.con, w)
    total = sum((r["totalCost"] or 0) for r in rows)
    if fmt == "table":  # the full record is in csv/json; the table leaves out columns with nothing in them
        keep = [k for k in (rows[0] if rows else {}) if any(r[k] not in (None, 0) for r in rows)
                or k in ("gpuHours", "gpuCost", "totalCost")]
        rows = [{k: r[k] for k in keep} for r in rows]
    render(rows, fmt, title=f"GPU allocation by {aggregate}", caption=f"total GPU cost {total:,.2f}; window {w}")
    if unmatched:
        err_console.print(f"[yellow]note[/]: {unmatched:,} workload(s) held GPUs on nodes the inventory does not "
                          "know; their GPUs have no cost to share (ingest the inventory of those nodes)")


@friendly
def gpu_capacity(
    window: Annotated[str, typer.Option(help="30d, 2026-10, START..END or all (the workloads' span).")] = "all",
    by: Annotated[str | None, typer.Option(help="label:KEY or namespace: allocated GPU-hours per group.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Available vs allocated GPU-hours per day, unallocated share, fractional sharing, cost at gpu_prices."""
    check_format(fmt)
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


def register(app: typer.Typer) -> None:
    """Add ``allocation`` and the ``gpu`` group to ``app`` (app.py calls this once)."""
    app.command()(allocation)
    gpu_app.command("capacity")(gpu_capacity)
    app.add_typer(gpu_app, name="gpu")
