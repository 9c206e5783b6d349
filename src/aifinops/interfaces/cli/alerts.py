"""``aifinops alerts``: the alerts kept in the store and where each stands on its channels, the delivery log,
a test message to a channel, and sending what is due (first sends, updates, retries of failed sends)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from ...governance.alerts import deliver, deliveries, listing, try_channel
from ...governance.channels import ChannelError
from .common import check_format, friendly, open_store, state
from .output import console, err_console, render

app = typer.Typer(help="Alerts to owners: what was sent where, tests of channels, retries.", no_args_is_help=True)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _state(c: dict[str, Any]) -> str:
    """``slack: sent`` / ``mail: failed x3, next 12:05:00``: one channel's standing in a table cell."""
    text = f"{c['channel']}: {c['state']}"
    if c["state"] != "sent" and c["attempts"]:
        text += f" x{c['attempts']}"
    if c["next_attempt_at"] is not None:
        text += f", next {c['next_attempt_at']:%Y-%m-%d %H:%M:%S}"
    return text


@app.command("list")
@friendly
def list_cmd(
    show_all: Annotated[bool, typer.Option("--all", help="Also resolved alerts.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Alerts by dollar impact, with their state on each channel (pending, sent, failed and when it retries)."""
    check_format(fmt)
    with open_store(read_only=True) as store:
        rows = listing(store.con, include_resolved=show_all)
    if fmt == "json":
        render([{"key": r["key"], "kind": r["kind"], "subject": r["subject"], "owner": r["owner"],
                 "severity": r["severity"], "impactCost": r["impact_cost"], "link": r["link"],
                 "channels": r["channels"], "details": r["details"], "createdAt": r["created_at"],
                 "updatedAt": r["updated_at"], "resolvedAt": r["resolved_at"]} for r in rows], fmt)
        return
    table = [{"key": r["key"], "subject": r["subject"], "owner": r["owner"], "severity": r["severity"],
              "impactCost": r["impact_cost"], "channels": "; ".join(_state(c) for c in r["channels"]),
              "updated": r["updated_at"], **({"resolved": r["resolved_at"]} if show_all else {})} for r in rows]
    if fmt == "csv":
        render(table, fmt)
        return
    failing = sum(c["state"] == "failed" for r in rows for c in r["channels"])
    render(table, title="alerts", caption=f"{len(rows)} alert(s); {failing} failed send(s)"
                                          + ("; retry now: aifinops alerts send" if failing else ""))


@app.command("deliveries")
@friendly
def deliveries_cmd(
    key: Annotated[str | None, typer.Option(help="Only alerts whose key starts with this.")] = None,
    limit: Annotated[int, typer.Option(help="The most recent attempts shown.")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Every delivery attempt: when, where, the event, what the channel answered, the error, how long it took."""
    check_format(fmt)
    with open_store(read_only=True) as store:
        rows = deliveries(store.con, key, limit)
    out = [{"key": r["key"], "channel": r["channel"], "event": r["event"], "attempt": r["attempt"],
            "attemptedAt": r["attempted_at"], "ok": r["ok"], "status": r["status"], "error": r["error"],
            "seconds": round(r["seconds"], 3) if r["seconds"] is not None else None} for r in rows]
    render(out, fmt, title="alert deliveries",
           caption=f"{len(out)} attempt(s), {sum(not r['ok'] for r in out)} failed")


@app.command("test")
@friendly
def test_cmd(channel: Annotated[str, typer.Argument(help="A channel name from alerts.channels.")]) -> None:
    """Send a test alert to one configured channel and show what it answered (nothing is recorded)."""
    settings = state.settings.alerts
    if channel not in settings.channels:
        raise KeyError(f"no channel {channel!r} in alerts.channels (defined: "
                       f"{', '.join(settings.channels) or 'none'})")
    try:
        ch, status, seconds = try_channel(channel, settings, _now())
    except ChannelError as exc:
        err_console.print(f"[bold red]failed:[/] {exc}" + (f" (status {exc.status})" if exc.status else ""),
                          highlight=False)
        raise typer.Exit(1) from None
    console.print(f"[green]ok[/]: {channel} ({ch.type}, {ch.target}) answered {status} in {seconds:.2f}s",
                  highlight=False)


@app.command("send")
@friendly
def send_cmd(fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """Deliver what is due: alerts never sent, grown ones (updates) and failed sends whose retry time has come.
    Exits 1 when a send failed (it stays due for the next run)."""
    with open_store() as store:
        report = deliver(store.con, state.settings.alerts, _now())
    if fmt == "json":
        sys.stdout.write(json.dumps(asdict(report)) + "\n")
    else:
        console.print(f"sent {report.sent}, updated {report.updated}, failed {report.failed}, "
                      f"not due {report.skipped}", highlight=False)
        for e in report.errors:
            err_console.print(f"  [yellow]failed[/]: {e}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add ``alerts`` to the root app (app.py calls this once)."""
    root.add_typer(app, name="alerts")
