"""What a token may see. An unscoped token sees everything. A team-scoped token sees its team's rows in
detail and everything else as one total per answer: ``(other teams)``. It can never filter or group its way
into another team's detail: every query is split on the team before any filter the request adds, so the other
side only ever leaves as a sum.

Which column says "team" depends on the data: the ledger's ``tag:<key>`` (the first of ``waste.owner_labels``,
default ``team``), a GPU workload's label, an LLM request's ``team``, a finding's or an anomaly's owner.
"""

from __future__ import annotations

from typing import Any

import ibis

from ...config import Settings
from ...store.tokens import Principal

OTHERS = "(other teams)"


def team_key(settings: Settings) -> str:
    return settings.waste.owner_labels[0] if settings.waste.owner_labels else "team"


def split_ledger(t: ibis.Table, who: Principal, settings: Settings) -> tuple[ibis.Table, ibis.Table | None]:
    """(the rows the token may see in detail, the rows it may only see the total of: None when unscoped)."""
    if who.team is None:
        return t, None
    team = t.Tags.get(team_key(settings))
    mine = team.fill_null("") == who.team
    return t.filter(mine), t.filter(~mine)


def others_row(columns: list[str], totals: dict[str, Any]) -> dict[str, Any]:
    """The one row of everything a scoped token may not see in detail: every key column says so."""
    return {**{c: OTHERS for c in columns}, **totals}
