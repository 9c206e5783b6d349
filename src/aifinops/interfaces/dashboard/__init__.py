"""The web dashboard: server-rendered pages (Jinja) with Plotly charts, mounted on the API's application
(``app.include_router(dashboard.router)``) and signed in through ``/login?token=...``.

Pages (each a module with a ``build(ctx) -> Page``): ``/`` overview, ``/gpu``, ``/models``, ``/training``,
``/teams``, ``/recommendations`` (``/recommendations/<id>`` explains one), ``/anomalies`` (``/anomalies/<id>``),
and the persona views ``/engineering``, ``/product``, ``/finance``. Every table is also its own route,
``<page>/tables/<id>`` (all rows, paged; ``?format=csv`` downloads it), and every number links to
``/rows/charges|workloads|requests`` listing what is behind it. ``/static/plotly.min.js`` is the installed plotly
package's copy, so the pages work offline.

The pages call the analyses directly with the request's read cursor, not the REST API over HTTP; answers are kept
per data version (``cache.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from . import anomalies, findings, gpu, models, overview, personas, teams, training
from .blocks import Page
from .cache import data_version
from .context import Ctx, Missing, dims
from .rows import BUILDERS
from .web import Dashboard, PageSpec, handle, html, page_response, paging, plotly_response, table_response
from .web import csv_response as _csv

PAGES = [
    PageSpec("overview", "Overview", "/", overview.build),
    PageSpec("gpu", "GPU fleet", "/gpu", gpu.build),
    PageSpec("models", "Models & inference", "/models", models.build),
    PageSpec("training", "Training", "/training", training.build),
    PageSpec("teams", "Teams", "/teams", teams.build),
    PageSpec("recommendations", "Recommendations", "/recommendations", findings.build, ("status",)),
    PageSpec("anomalies", "Anomalies", "/anomalies", anomalies.build, ("all",)),
    PageSpec("engineering", "Engineering", "/engineering", personas.engineering),
    PageSpec("product", "Product", "/product", personas.product),
    PageSpec("finance", "Finance", "/finance", personas.finance, ("centre",)),
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the application's own lifespan (its database is open): the cache lives as long as the app,
    and the warm-up stops before the database closes. ``app.state.dashboard_warm_on_start = True`` (set after
    ``create_app``, e.g. by ``aifinops serve``) builds the default pages at start instead of at the first visit."""
    app.state.dashboard = Dashboard(PAGES)
    if getattr(app.state, "dashboard_warm_on_start", False):
        app.state.dashboard.warm(app, data_version(app.state.db.cursor()))
    try:
        yield
    finally:
        app.state.dashboard.stop()


router = APIRouter(include_in_schema=False, lifespan=lifespan)


def _page_route(spec: PageSpec) -> tuple[Callable[[Request], Response], Callable[[Request, str], Response]]:
    def page(request: Request) -> Response:
        return handle(request, spec.params, lambda ctx: page_response(request, ctx, spec))

    def table(request: Request, table_id: str) -> Response:
        return handle(request, (*spec.params, "offset", "limit"),
                      lambda ctx: table_response(request, ctx, spec, table_id))

    page.__name__, table.__name__ = f"dashboard_{spec.name}", f"dashboard_{spec.name}_table"
    return page, table


for _spec in PAGES:
    _page, _table = _page_route(_spec)
    router.add_api_route(_spec.path, _page, methods=["GET"])
    if _spec.path == "/":
        router.add_api_route("/overview", _page, methods=["GET"])
    router.add_api_route(f"{_spec.base}/tables/{{table_id}}", _table, methods=["GET"])


@router.get("/static/plotly.min.js")
def plotly(request: Request) -> Response:
    return plotly_response(request)


@router.get("/rows/{kind}")
def rows_page(request: Request, kind: str) -> Response:
    """The rows behind a number (see ``rows.py``), paged; ``?format=csv`` downloads them (up to 100,000)."""
    def respond(ctx: Ctx) -> Response:
        build = BUILDERS.get(kind)
        if build is None:
            raise Missing(f"no rows of {kind!r}: use {', '.join(BUILDERS)}")
        where = dims(request.query_params)
        if request.query_params.get("format") == "csv":
            return _csv(build(ctx, where, 0, 100_000).table.csv(), f"rows-{kind}")
        offset, limit = paging(ctx, request)
        r = build(ctx, where, offset, limit)
        here = {**{f"d.{k}": v for k, v in where.items()}, **ctx.extra}
        return html(request, "table.html.j2", ctx, ctx.who, r.table.title, table=r.table,
                    rows=r.table.render_rows(), facts=r.facts, kpis=r.kpis, back=None, back_title="",
                    csv=ctx.url(request.url.path, {**here, "format": "csv"}), offset=offset, limit=limit,
                    total=r.total, prev=ctx.url(request.url.path, {**here, "offset": max(offset - limit, 0)})
                    if offset else None,
                    next=ctx.url(request.url.path, {**here, "offset": offset + limit})
                    if offset + limit < r.total else None)

    return handle(request, ("frequency", "offset", "limit"), respond)


def _detail(name: str, path: str, build: Callable[[Ctx], Page]) -> PageSpec:
    return PageSpec(name, name, path, build)


def _finding(finding_id: str) -> PageSpec:
    return _detail(f"finding:{finding_id}", f"/recommendations/{finding_id}",
                   lambda ctx: findings.explain(ctx, finding_id))


def _anomaly(anomaly_id: str) -> PageSpec:
    return _detail(f"anomaly:{anomaly_id}", f"/anomalies/{anomaly_id}", lambda ctx: anomalies.detail(ctx, anomaly_id))


@router.get("/recommendations/{finding_id}")
def finding_page(request: Request, finding_id: str) -> Response:
    spec = _finding(finding_id)
    return handle(request, (), lambda ctx: page_response(request, ctx, spec))


@router.get("/recommendations/{finding_id}/tables/{table_id}")
def finding_table(request: Request, finding_id: str, table_id: str) -> Response:
    spec = _finding(finding_id)
    return handle(request, ("offset", "limit"), lambda ctx: table_response(request, ctx, spec, table_id))


@router.get("/anomalies/{anomaly_id}")
def anomaly_page(request: Request, anomaly_id: str) -> Response:
    spec = _anomaly(anomaly_id)
    return handle(request, (), lambda ctx: page_response(request, ctx, spec))


@router.get("/anomalies/{anomaly_id}/tables/{table_id}")
def anomaly_table(request: Request, anomaly_id: str, table_id: str) -> Response:
    spec = _anomaly(anomaly_id)
    return handle(request, ("offset", "limit"), lambda ctx: table_response(request, ctx, spec, table_id))
