"""``GET /api/v1/forecasts``: each series' actual so far in the period and the forecast of the rest, with 80/95%
bounds and the seasonal naive baseline beside it (``analysis.projection.project``, as ``aifinops forecast``).

Team scoping splits on the metric's team dimension (the ledger's ``tag:<team label>``, the GPU and LLM metrics'
``team``): a scoped token's series are forecast on its team's data only (``by`` within its team), and the rest
is one ``(other teams)`` series, the sum of the other teams' series (means and bounds added, as a total over
series is everywhere: interval half-widths add).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request

from ....analysis.forecast import MODELS, ForecastError
from ....analysis.layers import load_rules
from ....analysis.projection import Projection, describe, project
from ....analysis.series import Metric, metric, metrics
from ....analysis.windows import WindowError
from ....config import Settings
from ....store.tokens import Principal
from ..auth import viewer
from ..limits import heavy
from ..paging import Page, jsonable, page
from ..scope import OTHERS, team_key

router = APIRouter(tags=["forecasts"])

#: how much history a request may ask the model to read (per grain), so one request stays a few seconds
MAX_HISTORY = {"h": 24 * 90, "d": 730, "w": 104}
#: how far past the data's end ``to`` may reach
MAX_AHEAD = timedelta(days=366)


class ForecastPage(Page):
    """A page of series (``total`` counts them); ``forecast``: the period, the history and the model."""

    forecast: dict[str, Any]


def team_dimension(m: Metric, settings: Settings) -> str:
    return f"tag:{team_key(settings)}" if m.name == "cost" else "team"


def series_row(p: Projection, name: str, rows: np.ndarray, t: dict[str, np.ndarray]) -> dict[str, Any]:
    s = {k: float(v[rows].sum()) for k, v in t.items()}
    return {"series": name, "unit": p.unit, "actual": s["actual"],
            "rest": {k: s[f"rest_{k}"] for k in ("mean", "lo80", "hi80", "lo95", "hi95")},
            "total": {k: s[f"total_{k}"] for k in ("mean", "lo80", "hi80", "lo95", "hi95")},
            "naive": s["naive"],
            "model": "seasonal naive" if all(int(i) in p.fallback for i in rows) else p.model}


def _rows(p: Projection) -> list[dict[str, Any]]:
    t = p.totals()
    order = np.argsort(-t["total_mean"], kind="stable")
    return [series_row(p, p.keys[int(i)], np.array([i]), t) for i in order]


@router.get("/forecasts", summary="Actual so far and forecast to the period's end per series, 80/95% bounds",
            response_model=ForecastPage)
def forecasts(
    request: Request,
    who: Annotated[Principal, Depends(viewer)],
    metric_name: Annotated[str, Query(alias="metric", description=f"{', '.join(metrics.names())}")] = "cost",
    by: Annotated[str, Query(description="A dimension of the metric (ServiceName, tag:team, model, ...); empty: "
                                         "the total")] = "ServiceName",
    to: Annotated[str, Query(description="month, quarter (holding the data's end) or a date YYYY-MM-DD")] = "month",
    history: Annotated[str, Query(pattern=r"^\s*\d{1,5}[hdw]\s*$", description="History the model reads, ending "
                                                                            "where the data ends (120d, 16w)")]
    = "120d",
    grain: Annotated[Literal["day", "hour"], Query(description="day (weekly season) or hour")] = "day",
    model: Annotated[Literal[tuple(MODELS)], Query(description="auto = MSTL, seasonal naive where it cannot fit")]  # type: ignore[valid-type]
    = "auto",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ForecastPage:
    db = request.app.state.db
    settings: Settings = db.settings
    span = history.strip()
    if int(span[:-1]) > MAX_HISTORY[span[-1]]:
        raise ForecastError(f"history {history!r}: at most {MAX_HISTORY[span[-1]]}{span[-1]}")
    if grain == "hour" and not span.endswith("h") and int(span[:-1]) * (7 if span.endswith("w") else 1) > 90:
        raise ForecastError(f"history {history!r} at an hourly grain: at most 90 days (2160h)")
    with db.read() as con, heavy(request):
        m = metric(con, metric_name, settings, load_rules(settings.layers_file))
        if to not in ("month", "quarter"):  # a date: at most a year past the data (the horizon is that long)
            end = m.end() or datetime.now(UTC).replace(tzinfo=None)
            try:
                day = datetime.strptime(to, "%Y-%m-%d")
            except ValueError:
                raise WindowError(f"to {to!r}: use month, quarter or a date YYYY-MM-DD") from None
            if day > end + MAX_AHEAD:
                raise ForecastError(f"to {to}: at most a year past the data's end ({end:%Y-%m-%d})")
        if who.team is None:
            p = project(m, by, to, history, grain, model)
            rows = _rows(p)
        else:
            team = team_dimension(m, settings)
            split = project(m, team, to, history, grain, model)  # every team's series: the others' sum
            try:
                p = project(m, by, to, history, grain, model, where={team: [who.team]}, data_end=split.data_end)
                rows = _rows(p)
            except ForecastError:  # the team has no data of this metric: only the others' total
                p, rows = split, []
            rest = np.array([i for i, k in enumerate(split.keys) if k != who.team])
            if rest.size:
                rows.append(series_row(split, OTHERS, rest, split.totals()))
    info = describe(p)
    body = page(rows, limit, offset, {"metric": metric_name, "by": by, "to": to, "history": history, "grain": grain,
                                      "model": model, "scope": who.team})
    return ForecastPage(**body.model_dump(), forecast=jsonable({
        "metric": p.metric, "unit": p.unit, "period": {"start": p.period.start, "end": p.period.end},
        "dataEnd": p.data_end, "history": {"start": p.history.start, "end": p.history.end},
        "historyPeriods": info["historyPeriods"], "model": p.model, "modelText": info["modelText"],
        "fallbackCount": info["fallbackCount"], "fallbackReasons": info["fallbackReasons"]}))
