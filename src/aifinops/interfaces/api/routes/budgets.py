"""``GET /api/v1/budgets``: every configured budget's status (``governance.budgets.status``): spent, the
forecast at period end with 80/95% bounds, the projected exhaustion day and the thresholds.

A budget's scope is a slice of the ledger. A team-scoped token sees the budgets whose scope lies inside its
team's slice (the scope names its team label with its team alone); a budget over anything wider (another
team, all spend, a layer) is the others' money, and the token gets only how many such budgets there are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ....analysis.windows import WindowError
from ....config import BudgetSettings, Settings
from ....governance import budgets as budgets_mod
from ....store.tokens import Principal
from ..auth import viewer
from ..limits import heavy
from ..paging import Page, jsonable, page
from ..scope import team_key

router = APIRouter(tags=["budgets"])

#: how far past the data's end (or now) a status may be asked for
MAX_AHEAD = timedelta(days=366)


class BudgetsPage(Page):
    """A page of budget statuses; ``hidden``: for a scoped token, how many budgets cover others' money."""

    hidden: int = 0


def is_teams(b: BudgetSettings, team: str, settings: Settings) -> bool:
    values = b.scope.get(f"tag:{team_key(settings)}")
    values = values if isinstance(values, list) else [values] if values is not None else []
    return values == [team]


def shape(s: budgets_mod.BudgetStatus) -> dict[str, Any]:
    return jsonable({
        "name": s.name, "period": s.label, "periodStart": s.period.start, "periodEnd": s.period.end,
        "scope": budgets_mod.scope_text(s.budget), "owner": s.budget.owner, "amount": s.amount, "spent": s.spent,
        "percent": round(s.percent, 4), "asOf": s.at, "forecast": {k: round(v, 6) for k, v in s.forecast.items()},
        "exhaustion": s.exhaustion, "model": s.model, "historyDays": s.history_days, "over": s.over,
        "thresholds": [{"basis": t.basis, "pct": t.pct, "amount": t.amount, "state": t.state, "on": t.on}
                       for t in s.thresholds]})


@router.get("/budgets", summary="Budget status: spent, forecast at period end, exhaustion, thresholds",
            response_model=BudgetsPage)
def budgets(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    at: Annotated[datetime | None, Query(description="Status as of this instant (default: where the ledger ends)")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> BudgetsPage:
    db = request.app.state.db
    settings: Settings = db.settings
    shown = settings.budgets if who.team is None else [b for b in settings.budgets if is_teams(b, who.team, settings)]
    with db.read() as con, heavy(request):
        if at is not None:  # a status a year past the data at most: the forecast runs from the data's end to it
            at = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
            end = budgets_mod.data_end(con) or datetime.now(UTC).replace(tzinfo=None)
            if not datetime(1970, 1, 1) <= at <= max(end, datetime.now(UTC).replace(tzinfo=None)) + MAX_AHEAD:
                raise WindowError(f"at {at.isoformat()}: give a time from 1970 to a year past the data's end "
                                  f"({end:%Y-%m-%d})")
        statuses = budgets_mod.status(con, settings.model_copy(update={"budgets": shown}), at)
    p = page([shape(s) for s in statuses], limit, offset, {"at": at, "scope": who.team})
    return BudgetsPage(**p.model_dump(), hidden=len(settings.budgets) - len(shown))
