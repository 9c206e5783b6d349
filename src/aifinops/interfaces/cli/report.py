"""``aifinops report``: the review pack of one period (spend, unit economics, idle and waste, anomalies, budgets,
forecast, recommendations) beside the previous period, as one self-contained HTML file or as Markdown."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ...analysis.costs import DimensionError
from ...analysis.windows import WindowError
from ...governance.budgets import TICK
from ..review import FORMATS, build_review, render
from .common import friendly, open_store, state
from .output import console


def default_period(ledger_end: datetime | None) -> str:
    """The month holding the ledger's last instant (data ending 2026-11-01 00:00 has all of 2026-10)."""
    if ledger_end is None:
        raise WindowError("the store holds no charges: give --period (e.g. 2026-10) or ingest a bill first")
    return f"{ledger_end - TICK:%Y-%m}"


def out_path(period: str, fmt: str) -> Path:
    """``report-2026-10.html``; a START..END period keeps only file-name-safe characters."""
    slug = re.sub(r"[^0-9A-Za-z-]+", "_", period.strip().replace("..", "_to_")).strip("_")
    return Path(f"report-{slug}.{fmt}")


@friendly
def report_cmd(
    period: Annotated[str | None, typer.Option(help="2026-10, 2026-Q3, 2026 or START..END (default: the month "
                                                    "holding the end of the ledger).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html (self-contained, charts inline) or md (GitHub "
                                                      "Markdown).")] = "html",
    out: Annotated[Path | None, typer.Option(help="Output file (default report-<period>.<html|md>).")] = None,
) -> None:
    """The review pack of a period beside the previous one: spend, unit economics, idle and waste, anomalies,
    budgets, forecast and recommendations with owners."""
    if fmt not in FORMATS:
        raise DimensionError(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    started = time.perf_counter()
    with open_store(read_only=True) as store:
        if period is None:
            period = default_period(store.con.execute('SELECT max("ChargePeriodEnd") FROM focus_charges')
                                    .fetchall()[0][0])
        review = build_review(store.con, period, state.settings)
    path = out or out_path(period, fmt)
    path.write_text(render(review, fmt), encoding="utf-8")
    console.print(f"wrote {path} (review of {review['period'].label} beside {review['period'].previous_label}; "
                  f"{time.perf_counter() - started:.1f}s)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the root app (app.py calls this once)."""
    app.command("report")(report_cmd)
