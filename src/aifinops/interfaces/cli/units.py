"""``aifinops unit-costs``: inference unit economics, training run costs, self-hosted vs API, and the check
of usage against the bill — one command, as the unit users think in decides the view."""

from __future__ import annotations

from typing import Annotated

import typer

from ...analysis import costs as costs_mod
from ...analysis.layers import load_rules
from ...analysis.llm_costs import self_hosted_report
from ...analysis.llm_reconcile import ledger_by_provider, reconcile
from ...analysis.unit_costs import unit_costs, within_usage_data
from ...analysis.windows import parse_window
from ...analysis.workload_costs import TRAINING, serving_costs, training_costs
from .common import check_format, friendly, open_store, state
from .output import render


@friendly
def unit_costs_cmd(
    by: Annotated[str, typer.Option(help="model, feature, team, user, provider, tenant, service, environment, "
                                         "attribute:KEY (comma list); or run, experiment, model_version.")]
    = "model",
    window: Annotated[str, typer.Option(help="30d, 7d, 2026-10, START..END or all.")] = "30d",
    accumulate: Annotated[str, typer.Option(help="window (one row per group), day, week or month.")] = "window",
    outcome: Annotated[str | None, typer.Option(help="Outcome metric to divide by (tickets_resolved, ...).")] = None,
    revenue: Annotated[str | None, typer.Option(help="Outcome metric that is revenue: gives grossMargin.")] = None,
    reconcile_ledger: Annotated[bool, typer.Option(
        "--reconcile", help="Beside the FOCUS ledger's AI-services charges, by provider: coverage, unexplained.")]
    = False,
    self_hosted: Annotated[bool, typer.Option(
        "--self-hosted", help="Self-hosted models: GPU cost per 1M tokens beside comparable API models.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Cost per request, per 1K tokens, per active user, per outcome; per training run; self-hosted vs API."""
    check_format(fmt)
    dims = [d.strip() for d in by.split(",") if d.strip()]
    s = state.settings
    with open_store(read_only=True) as store:
        con = store.con
        end = con.execute(
            "SELECT greatest((SELECT max(ts) FROM llm_requests WHERE NOT _superseded), "
            "(SELECT max(coalesce(end_ts, start_ts)) FROM workloads), "
            "(SELECT max(\"ChargePeriodEnd\") FROM focus_charges))").fetchall()[0][0]
        w = parse_window(window, end)
        if not reconcile_ledger:  # the ledger's side keeps the window as given: its charges need not match hours
            w = within_usage_data(con, w)
        try:
            if len(dims) == 1 and dims[0] in TRAINING:
                rows = training_costs(con, w, dims[0], s)
                title = f"GPU cost per {dims[0]} (training)"
                if not rows:
                    label = s.llm.training_labels.get(dims[0], dims[0])
                    raise costs_mod.DimensionError(
                        f"no workload in {w} carries the label {label!r} (set llm.training_labels to the label "
                        f"your jobs use for their {dims[0]})")
            elif self_hosted:
                rows = self_hosted_report(con, w, serving_costs(con, w, s), s)
                title = "self-hosted models: GPU cost per 1M tokens beside API models"
            elif reconcile_ledger:
                usage = unit_costs(con, w, ["provider"], s, served=serving_costs(con, w, s))
                ledger = ledger_by_provider(store.ibis().table("focus_charges"), w, load_rules(s.layers_file))
                rows = reconcile(usage, ledger)
                title = "LLM spend from usage vs the ledger, by provider"
            else:
                rows = unit_costs(con, w, dims, s, accumulate=accumulate, served=serving_costs(con, w, s),
                                  outcome=outcome, revenue=revenue)
                title = f"unit costs by {by}"
        except ValueError as exc:
            raise costs_mod.DimensionError(str(exc)) from None
    unpriced = sum(int(r.get("unpricedRequests") or 0) for r in rows)
    caption = f"window {w}" + (f"; {unpriced:,} request(s) unpriced (no price for their model): see "
                               "unpricedRequests, or set llm.prices / llm.aliases" if unpriced else "")
    render(rows, fmt, title=title, caption=caption, drop_empty=True)


def register(app: typer.Typer) -> None:
    """Add ``unit-costs`` to ``app`` (app.py calls this once)."""
    app.command("unit-costs")(unit_costs_cmd)
