"""LLM price commands: ``aifinops prices show MODEL`` (every row a model matches, which wins and why) and
``aifinops prices diff`` (where the two catalogs disagree).

Both read the store when there is one (ingested catalog snapshots) and work without one: the bundled
snapshots and ``llm.prices`` from aifinops.yaml are always there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import duckdb
import typer

from ...analysis import costs as costs_mod
from ...analysis import llm_prices
from ...model.llm import TIERS
from .common import check_format, friendly, open_store, state
from .output import console, render

prices_app = typer.Typer(help="LLM price catalogs: what a model costs, and where catalogs disagree.",
                         no_args_is_help=True)

#: table header -> row key: the table keeps what fits a terminal (csv and json give every field)
_TABLE = {"rank": "rank", "kind": "kind", "catalog": "catalog", "provider": "provider", "model": "model",
          "match": "match", "tier": "tier", "above": "above_tokens", "from": "valid_from", "to": "valid_to",
          "input": "input_per_mtok", "output": "output_per_mtok", "cache_rd": "cache_read_per_mtok",
          "cache_wr": "cache_write_per_mtok", "why": "why"}


@contextmanager
def _connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """The store read-only when it exists; else a scratch connection (bundled snapshots and settings only)."""
    if state.settings.db.exists():
        with open_store(read_only=True) as store:
            yield store.con
    else:
        con = duckdb.connect()
        try:
            yield con
        finally:
            con.close()


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise costs_mod.DimensionError(f"--at {text!r}: expected a date or time such as 2026-05-01 or "
                                       "2026-05-01T12:00:00Z") from None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _exact(row: dict[str, Any]) -> dict[str, Any]:
    """Decimals without the store's trailing zeros (2.1, not 2.100000000000), for csv and json."""
    return {k: v.normalize() if isinstance(v, Decimal) else v for k, v in row.items()}


def _price_text(v: Any) -> Any:
    """A price for a table cell: every decimal it has, none it lacks (0.003625, not 0.0036)."""
    return format(v.normalize(), "f") if isinstance(v, Decimal) else v


@friendly
def show(
    model: Annotated[str, typer.Argument(help="The model as a request names it (gpt-4o, openai/gpt-4o, "
                                              "us.anthropic.claude-...-v2:0, a deployment alias).")],
    provider: Annotated[str | None, typer.Option(help="The request's provider (openai, aws.bedrock, azure, ...).")]
    = None,
    at: Annotated[str | None, typer.Option(help="The request's time (UTC unless it says): prices in force then; "
                                                "default now.")] = None,
    tier: Annotated[str, typer.Option(help="standard, batch, priority or flex.")] = "standard",
    input_tokens: Annotated[int | None, typer.Option(help="The request's input tokens (context tiers above a "
                                                          "threshold).")] = None,
    limit: Annotated[int, typer.Option(help="Rows in the table (0 = all; csv and json give all).")] = 25,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Every price row a model matches across catalogs and settings; which one wins and why."""
    check_format(fmt)
    if tier not in TIERS:
        raise costs_mod.DimensionError(f"--tier {tier!r}: use {', '.join(TIERS)}")
    when = _time(at)
    with _connection() as con:
        rows = llm_prices.candidates(con, model, provider, when, input_tokens, tier, state.settings.llm)
    if not rows:
        raise costs_mod.DimensionError(
            f"no price for {model!r}{f' (provider {provider})' if provider else ''} in "
            f"{', '.join(state.settings.llm.catalogs)} or llm.prices; give it a price in aifinops.yaml "
            "(llm.prices) or an alias to a priced model (llm.aliases)")
    if fmt != "table":
        render([_exact(r) for r in rows], fmt)
        return
    winner = next((r for r in rows if r["rank"] == 1), None)
    if winner:
        console.print(f"[bold]{model}[/] -> {winner['catalog']} {winner['provider']}/{winner['model']}: "
                      f"{winner['why']}", highlight=False)
    shown = rows[:limit] if limit else rows
    render([{h: _price_text(r[k]) for h, k in _TABLE.items()} for r in shown], drop_empty=True,
           title=f"prices matching {model} (USD per 1M tokens)",
           caption=f"{len(shown)} of {len(rows)} rows; rank 1 prices the request "
                   f"({'now' if when is None else when}, tier {tier}, {input_tokens or 0:,} input tokens)")


@friendly
def diff(
    min_diff: Annotated[float, typer.Option(help="Relative difference above which two prices disagree.")] = 0.05,
    catalogs: Annotated[str | None, typer.Option(help="Two catalogs A,B (default: the first two of "
                                                      "llm.catalogs).")] = None,
    limit: Annotated[int, typer.Option(help="Rows in the table (0 = all; csv and json give all).")] = 25,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Models both catalogs price whose input, output or cache prices differ by more than --min-diff."""
    check_format(fmt)
    names = [c.strip() for c in catalogs.split(",") if c.strip()] if catalogs else state.settings.llm.catalogs[:2]
    if len(names) != 2 or names[0] == names[1]:
        raise costs_mod.DimensionError("--catalogs: give two different catalogs, e.g. litellm,genai-prices")
    try:
        threshold = Decimal(str(min_diff))
    except InvalidOperation:
        raise costs_mod.DimensionError(f"--min-diff {min_diff!r}: not a number") from None
    if threshold < 0:
        raise costs_mod.DimensionError("--min-diff must not be negative")
    a, b = names
    with _connection() as con:
        summary, rows = llm_prices.diff(con, a, b, threshold, state.settings.llm)
    if fmt == "json":
        doc = {"summary": _exact(summary), "disagreements": [_exact(r) for r in rows]}
        sys.stdout.write(json.dumps(doc, indent=1, default=str) + "\n")
        return
    if fmt == "csv":
        render([_exact(r) for r in rows], fmt)
        return
    caption = (f"{a}: {summary[f'models_{a}']:,} models; {b}: {summary[f'models_{b}']:,}; in both: "
               f"{summary['models_in_both']:,}; disagree by more than {float(threshold):.0%}: {summary['disagree']:,}"
               " (standard tier, base context, prices in force now; a missing cache price is the input price)")
    shown = rows[:limit] if limit else rows
    render([{k: (f"{v:.1%}" if k == "max_diff" else _price_text(v)) for k, v in r.items()} for r in shown],
           title=f"where {a} and {b} disagree", caption=caption)


def register(app: typer.Typer) -> None:
    """Add the ``prices`` group to ``app`` (app.py calls this once)."""
    prices_app.command("show")(show)
    prices_app.command("diff")(diff)
    app.add_typer(prices_app, name="prices")
