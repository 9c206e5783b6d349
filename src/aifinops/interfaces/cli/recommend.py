"""``aifinops recommend``: waste findings sorted by what fixing them saves, and what a person decided
about them (explain, accept, dismiss with a reason, reopen)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer

from ...analysis.windows import parse_window
from ...store.findings import get, record, set_status, states
from ...waste import registry as rules
from ...waste import run as run_rules
from ...waste.engine import data_extent
from .common import check_format, friendly, open_store, state
from .output import console, render

app = typer.Typer(help="Waste findings with monthly savings, and what was decided about them.",
                  invoke_without_command=True, no_args_is_help=False)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _money(v: Any) -> Decimal:
    return Decimal(v or 0).quantize(Decimal("0.01"))


@app.callback()
@friendly
def recommend(
    ctx: typer.Context,
    window: Annotated[str, typer.Option(help="30d, 7d, 2026-10, START..END or all (ends where the data ends).")]
    = "30d",
    rule: Annotated[list[str] | None, typer.Option(help="Only this rule (repeatable); see `recommend rules`.")] = None,
    team: Annotated[str | None, typer.Option(help="Only findings this team owns.")] = None,
    min_saving: Annotated[float, typer.Option(help="Only findings saving at least this ($ per month, achievable).")]
    = 0.0,
    show_all: Annotated[bool, typer.Option("--all", help="Also dismissed findings.")] = False,
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Do not keep the findings in the store (read-only; ids are still stable).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Find waste over the window, price it per month, and list the findings by achievable saving."""
    if ctx.invoked_subcommand:
        return
    check_format(fmt)
    only = [r.strip() for item in rule or [] for r in item.split(",") if r.strip()] or None
    s = state.settings
    with open_store(read_only=no_record) as store:
        w = parse_window(window, data_extent(store.con)[1])
        result = run_rules(store.con, w, s, only, known=states(store.con))
        if not no_record:
            record(store.con, [f.record() for f in result.findings], result.ran, _now())
            seen = states(store.con)
            for f in result.findings:
                f.first_seen = seen[f.id]["first_seen"]
    shown = [f for f in result.findings
             if (show_all or f.status != "dismissed") and (team is None or f.owner == team)
             and f.achievable_saving >= Decimal(repr(min_saving))]
    rows = [{"id": f.id, "rule": f.rule, "scope": f.scope, "owner": f.owner,
             "monthlyWaste": _money(f.monthly_waste), "monthlySaving": _money(f.monthly_saving),
             "achievableSaving": _money(f.achievable_saving), "confidence": f.confidence, "status": f.status,
             "firstSeen": f.first_seen, "recommendation": f.recommendation}
            for f in shown]
    total = sum((f.achievable_saving for f in shown if f.status != "dismissed"), Decimal(0))
    if fmt != "table":
        if fmt == "json":
            rows = [{**r, "scopeKind": f.scope_kind, "monthlyCost": _money(f.monthly_cost),
                     "windowStart": result.window.start, "windowEnd": result.window.end,
                     "statusReason": f.status_reason, "evidence": f.evidence, "assumptions": f.assumptions,
                     "savingFormula": f.saving_formula, "pool": f.pool} for r, f in zip(rows, shown, strict=True)]
        render(rows, fmt)
        return
    keep = ("id", "rule", "scope", "owner", "monthlyWaste", "achievableSaving", "confidence",
            *(("status",) if show_all else ()), "recommendation")
    table_rows = [{k: r[k] for k in keep} for r in rows]
    render(table_rows, title="waste findings (per month)",
           caption=f"{len(shown)} finding(s); achievable saving ${total:,.2f}/month (overlapping savings "
                   f"reconciled); window {result.window}")
    for sk in result.skipped:
        console.print(f"  [dim]skipped {sk.rule}: {sk.reason}[/]", highlight=False)
    if shown:
        console.print(f"  why and how: aifinops recommend explain {shown[0].id}", highlight=False)


@app.command("explain")
@friendly
def explain(finding: Annotated[str, typer.Argument(help="Finding id (or a unique prefix of it).")],
            fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """The evidence behind a finding and how its saving was computed."""
    with open_store(read_only=True) as store:
        f = get(store.con, finding)
    if fmt == "json":
        console.print_json(json.dumps(f, default=str))
        return
    d = f["detail"]
    console.print(f"[bold]{f['finding_id']}[/] {f['rule']} on {f['scope_kind']} {f['scope']}"
                  f" (owner: {f['owner'] or 'unknown'}; {f['status']}"
                  f"{': ' + f['status_reason'] if f['status_reason'] else ''})", highlight=False)
    console.print(f"  change:      {f['recommendation']}", highlight=False)
    console.print(f"  per month:   cost ${_money(f['monthly_cost']):,}, waste ${_money(f['monthly_waste']):,}, "
                  f"saving ${_money(f['monthly_saving']):,}, achievable ${_money(f['achievable_saving']):,}"
                  f" (confidence {f['confidence']})", highlight=False)
    console.print(f"  saving:      {d.get('saving_formula')}", highlight=False)
    if d.get("pool") and _money(f["achievable_saving"]) != _money(f["monthly_saving"]):
        console.print(f"  overlap:     shares the dollars of {d['pool']} (${_money(d.get('pool_cost')):,}/month) with "
                      "other findings; achievable is what is left after the larger ones", highlight=False)
    console.print(f"  window:      {f['window_start']} .. {f['window_end']}; first seen {f['first_seen']}, "
                  f"last seen {f['last_seen']}{'' if f['active'] else ' (no longer found)'}", highlight=False)
    console.print("  assumptions:", highlight=False)
    for a in d.get("assumptions", []):
        console.print(f"    - {a}", highlight=False)
    render([{"evidence": k, "value": json.dumps(v) if isinstance(v, list | dict) else v}
            for k, v in d.get("evidence", {}).items()])


def _status_command(name: str, status: str, doc: str) -> None:
    @app.command(name, help=doc)
    @friendly
    def command(finding: Annotated[str, typer.Argument(help="Finding id (or a unique prefix of it).")],
                reason: Annotated[str | None, typer.Option(help="Why (required to dismiss).")] = None) -> None:
        with open_store() as store:
            fid = set_status(store.con, finding, status, reason, _now())
        console.print(f"{fid}: {status}" + (f" ({reason})" if reason else ""), highlight=False)


_status_command("dismiss", "dismissed", "Mark a finding as not waste; it stays dismissed when found again.")
_status_command("accept", "accepted", "Mark a finding as accepted (the change is planned or done).")
_status_command("reopen", "open", "Set a finding back to open.")


@app.command("rules")
@friendly
def list_rules(fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table") -> None:
    """Every rule: what it targets, the data it needs and its thresholds (override in aifinops.yaml)."""
    check_format(fmt)
    s = state.settings
    rows = []
    for rid, cls in rules:
        options = cls(s.waste.rules.get(rid)).options.model_dump(mode="json")
        rows.append({"rule": rid, "title": cls.title, "targets": cls.targets, "needs": ", ".join(cls.needs),
                     "enabled": rid not in s.waste.disabled,
                     "thresholds": json.dumps(options) if fmt != "json" else options})
    render(rows, fmt, title="waste rules")


def register(root: typer.Typer) -> None:
    """Add ``recommend`` to the root app (app.py calls this once)."""
    root.add_typer(app, name="recommend")
