"""GPU fleet commands: ``aifinops allocation`` (cost per workload with idle) and ``aifinops gpu ...``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from ...analysis import costs as costs_mod
from ...analysis import gpu_allocation
from ...analysis import gpu_utilization as gpu_utilization_mod
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
            "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads))").fetchall()[0][0]
        w = gpu_allocation.within_gpu_data(store.con, parse_window(window, end))
        try:
            rows = gpu_allocation.aggregate(
                store.con, w, [d.strip() for d in aggregate.split(",") if d.strip()], idle_threshold=idle_threshold,
                accumulate=accumulate, share_idle=share_idle, settings=state.settings, share_namespaces=namespaces,
                share_labels=labels, share_split=share_split)
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
        unmatched = gpu_allocation.unmatched_workloads(store.con, w)
    total = sum((r["totalCost"] or 0) for r in rows)
    render(rows, fmt, title=f"GPU allocation by {aggregate}", caption=f"total GPU cost {total:,.2f}; window {w}",
           drop_empty=True)
    if unmatched:
        err_console.print(f"[yellow]note[/]: {unmatched:,} workload(s) held GPUs on nodes the inventory does not "
                          "know; their GPUs have no cost to share (ingest the inventory of those nodes)")


@friendly
def gpu_capacity(
    window: Annotated[str, typer.Option(help="30d, 2026-10, START..END or all (the workloads' span).")] = "all",
    by: Annotated[str | None, typer.Option(
        help="label:KEY, namespace or workload (cost per pod): allocated GPU-hours per group.")] = None,
    accumulate: Annotated[str, typer.Option(help="day, or window (one row per group for the whole window).")]
    = "day",
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
            rows = daily_capacity(store.con, w, by, state.settings.gpu_prices, accumulate=accumulate)
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
    render(rows, fmt, title="GPU capacity per day" if accumulate == "day" else "GPU capacity over the window",
           caption=f"window {w}", drop_empty=True)


@friendly
def gpu_utilization(
    by: Annotated[str, typer.Option(help="node, gpu_model, node_pool or label:KEY.")] = "node",
    window: Annotated[str, typer.Option(help="7d, 48h, 2026-10, START..END or all (the data's span).")] = "7d",
    accumulate: Annotated[str, typer.Option(help="hour, day or window (one row per group).")] = "day",
    idle_threshold: Annotated[float, typer.Option(help="Activity below which a held GPU counts as idle.")] = 0.05,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Utilisation and idle per GPU-hour: mean activity, shares below 5/30/50 %, partly allocated GPUs."""
    check_format(fmt)
    with open_store(read_only=True) as store:
        # Relative windows end with the hour of the latest sample or workload end, so cells are clock hours.
        first, last = store.con.execute(
            "SELECT date_trunc('hour', least((SELECT min(ts) FROM gpu_samples WHERE NOT _superseded),"
            " (SELECT min(start_ts) FROM workloads WHERE gpu_share > 0))),"
            " greatest(date_trunc('hour', (SELECT max(ts) FROM gpu_samples WHERE NOT _superseded)) + INTERVAL 1 HOUR,"
            " date_trunc('hour', (SELECT max(coalesce(end_ts, start_ts)) FROM workloads WHERE gpu_share > 0)"
            " - INTERVAL 1 MICROSECOND) + INTERVAL 1 HOUR)").fetchone()
        if last is None:
            raise costs_mod.DimensionError("no GPU samples or workloads in the store: ingest them first")
        if not store.con.execute("SELECT count(*) FROM gpu_nodes WHERE gpu_count > 0").fetchone()[0]:
            raise costs_mod.DimensionError("no GPU nodes in the inventory, which gives the capacity: "
                                           "run `aifinops ingest inventory nodes.csv` first")
        w = Window(first, last) if window == "all" else parse_window(window, last)
        try:
            rows = gpu_utilization_mod.utilization(store.con, w, by, accumulate=accumulate,
                                                   idle_threshold=idle_threshold)
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
    render(_utilization_table(rows) if fmt == "table" else rows, fmt,
           title=f"GPU utilization by {by} (GPU-hours; activity over the hours with samples)",
           caption=f"window {w}; idle: unallocated + held below {idle_threshold:.0%} activity; partly: mean "
                   "partly allocated GPUs (bound: a lower bound); metric sm = sm_active, gr = gr_engine_active, "
                   "util = gpu_util")


_UTIL_HEADERS = {"gpuHours": "GPU-h", "allocatedGpuHours": "alloc", "unallocatedGpuHours": "unalloc",
                 "telemetryGpuHours": "telemetry", "meanActivity": "activity", "shareBelow5": "below5%",
                 "shareBelow30": "below30%", "shareBelow50": "below50%", "idleGpuHours": "idle",
                 "partlyAllocatedGpus": "partly", "fragmentation_basis": "basis", "activity_metric": "metric"}
_UTIL_METRICS = {"sm_active": "sm", "gr_engine_active": "gr", "gpu_util": "util"}


def _utilization_table(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The same numbers under short headers, without ``end``, ``unknownGpuHours`` (GPU-h - telemetry) and
    columns empty in every row, so that a row fits a terminal."""
    drop = {"end", "unknownGpuHours"} | {k for k in (rows[0] if rows else {}) if all(r[k] is None for r in rows)}
    out = []
    for r in rows:
        metric = r["activity_metric"]
        short = {**r, "activity_metric": ",".join(_UTIL_METRICS[m] for m in str(metric).split(",")) if metric else None}
        out.append({_UTIL_HEADERS.get(k, k): v for k, v in short.items() if k not in drop})
    return out


def register(app: typer.Typer) -> None:
    """Add ``allocation`` and the ``gpu`` group to ``app`` (app.py calls this once)."""
    app.command()(allocation)
    gpu_app.command("capacity")(gpu_capacity)
    gpu_app.command("utilization")(gpu_utilization)
    app.add_typer(gpu_app, name="gpu")
