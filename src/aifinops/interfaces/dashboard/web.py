"""Serving a dashboard request: who asks (the ``/login`` cookie, or a bearer token), the filters, the data
version, the cached page, and the HTML (Jinja) or CSV answer.

A request without a valid token gets a sign-in page (401) rather than JSON; a bad filter or window a page saying
why (400); an unknown finding or anomaly 404. The first dashboard request of a data version starts a warm-up
thread that builds every page's default view, so the pages a person clicks to next are already there.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader

from ...analysis.windows import WindowError, parse_window
from ...store.tokens import Principal
from ..api.app import BAD_REQUEST
from ..api.auth import principal
from . import records
from .blocks import Chart, Kpi, Page, Table
from .cache import Cache, data_version
from .context import Ctx, FilterError, Filters, Missing

log = logging.getLogger(__name__)
VERSION_SECONDS = 1.0  # a change to the store shows on the dashboard within this


@dataclass(frozen=True)
class PageSpec:
    """A page: where it is, its title in the navigation, what builds it and its own query parameters."""

    name: str
    title: str
    path: str
    build: Callable[[Ctx], Page]
    params: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        """Where its tables live: ``<base>/tables/<id>``."""
        return self.path if self.path != "/" else "/overview"


ENV = Environment(loader=PackageLoader("aifinops.interfaces"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
ENV.tests.update(table=lambda b: isinstance(b, Table), chart=lambda b: isinstance(b, Chart),
                 kpi=lambda b: isinstance(b, Kpi))


# -- per-application state: the cache and the warm-up --------------------------------------------------------

@dataclass
class Dashboard:
    pages: list[PageSpec]
    cache: Cache = field(default_factory=Cache)
    warmed: str | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _version: tuple[str, float] = ("", 0.0)

    def version(self, con: Any) -> str:
        """The data version, read at most once per VERSION_SECONDS (a 15 ms query: most requests skip it)."""
        text, at = self._version
        now = time.monotonic()
        if now - at > VERSION_SECONDS:
            text = data_version(con)
            self._version = (text, now)
        return text

    def warm(self, app: FastAPI, version: str) -> None:
        """Build every page's default view of ``version`` in the background (once per version)."""
        with self.lock:
            if self.warmed == version or self.stopping.is_set():
                return
            self.warmed = version
            self.threads = [t for t in self.threads if t.is_alive()]
            thread = threading.Thread(target=self._warm, args=(app, version), name="dashboard-warm-up", daemon=True)
            self.threads.append(thread)
        thread.start()

    def _warm(self, app: FastAPI, version: str) -> None:
        db = app.state.db
        who = Principal("warm-up", "viewer", None)
        started = time.perf_counter()
        for spec in self.pages:
            if self.stopping.is_set() or self.warmed != version:
                return
            try:
                page_of(Ctx(who, db.settings, db.cursor(), Filters(), version, self.cache, spec.path), spec)
            except (*BAD_REQUEST, WindowError, FilterError):  # no data for the default view: the page says so
                continue
            except Exception:  # the page shows the same error to whoever opens it
                log.exception("dashboard warm-up: page %s", spec.name)
        self.cache.drop_other_versions(version)
        log.info("dashboard warm-up of %s took %.1fs", version, time.perf_counter() - started)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(30)


def state(app: FastAPI) -> Dashboard:
    dash = getattr(app.state, "dashboard", None)
    if dash is None:
        raise RuntimeError("the dashboard router is mounted without its lifespan")
    return dash  # type: ignore[no-any-return]


def page_of(ctx: Ctx, spec: PageSpec) -> Page:
    key: Hashable = (ctx.version, "page", spec.name, ctx.filters.key(), ctx.who.team, tuple(sorted(ctx.extra.items())))
    return ctx.cache.get(key, lambda: spec.build(ctx))


# -- rendering -------------------------------------------------------------------------------------------------

def html(request: Request, template: str, ctx: Ctx | None, who: Principal | None, title: str, status: int = 200,
         **kw: Any) -> HTMLResponse:
    dash = state(request.app)
    here = ctx.path if ctx else request.url.path
    nav = [{"title": p.title, "href": ctx.url(p.path) if ctx else p.path,
            "here": here == p.path or here.startswith(p.base + "/") or (p.path == "/" and here == "/overview")}
           for p in dash.pages]
    body = ENV.get_template(f"dashboard/{template}").render(
        title=title, who=who, nav=nav, filters=ctx.filters if ctx else None,
        choices=records.choices(ctx) if ctx else {}, form_action=here,
        hidden={k: v for k, v in (ctx.extra if ctx else {}).items() if k != "offset"},
        clear=ctx.url(here, ctx.extra, keep=False) if ctx else here, **kw)
    return HTMLResponse(body, status_code=status)


def message(request: Request, who: Principal | None, title: str, text: str, status: int,
            login: bool = False, ctx: Ctx | None = None) -> HTMLResponse:
    """A page of one message (with the navigation and filters when ``ctx`` is known, to change them)."""
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return html(request, "message.html.j2", ctx, who, title, status, message=text, login=login, next=nxt)


def csv_response(text: str, name: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


# -- one request -----------------------------------------------------------------------------------------------

def handle(request: Request, params: tuple[str, ...], respond: Callable[[Ctx], Response]) -> Response:
    """Authenticate, read the filters and the data version, and answer with ``respond`` (see the module
    docstring for the failures)."""
    started = time.perf_counter()
    try:
        who = principal(request)
    except HTTPException as exc:
        return message(request, None, "Sign in", str(exc.detail), 401, login=True)
    try:
        filters = Filters.of(request.query_params)
        parse_window(filters.window, datetime(2000, 1, 1))  # the syntax; each source anchors it at its own end
    except (FilterError, WindowError) as exc:
        return message(request, who, "Bad filter", str(exc), 400)
    db = request.app.state.db
    dash = state(request.app)
    extra = {k: v for k in params if (v := request.query_params.get(k, "").strip())}
    with db.read() as con:
        ctx = Ctx(who, db.settings, con, filters, dash.version(con), dash.cache, request.url.path, extra)
        dash.warm(request.app, ctx.version)
        try:
            resp = respond(ctx)
        except Missing as exc:
            return message(request, who, "Not found", str(exc), 404, ctx=ctx)
        except WindowError as exc:  # the syntax was checked above: this window has no data to anchor at
            return message(request, who, "Nothing to show yet", str(exc), 200, ctx=ctx)
        except (*BAD_REQUEST, FilterError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return message(request, who, "Bad request", msg, 400, ctx=ctx)
    resp.headers["Server-Timing"] = f"page;dur={(time.perf_counter() - started) * 1000:.1f}"
    return resp


def page_response(request: Request, ctx: Ctx, spec: PageSpec) -> Response:
    page = page_of(ctx, spec)

    def table_href(t: Table) -> str:
        return ctx.url(f"{spec.base}/tables/{t.id}", ctx.extra)

    def csv_href(t: Table) -> str:
        return ctx.url(f"{spec.base}/tables/{t.id}", {**ctx.extra, "format": "csv"})

    return html(request, "page.html.j2", ctx, ctx.who, page.title, page=page, table_href=table_href,
                csv_href=csv_href)


def paging(ctx: Ctx, request: Request, default: int = 100) -> tuple[int, int]:
    try:
        offset = max(int(request.query_params.get("offset", "0")), 0)
        limit = min(max(int(request.query_params.get("limit", str(default))), 1), 1000)
    except ValueError:
        raise FilterError("offset and limit are whole numbers") from None
    return offset, limit


def table_response(request: Request, ctx: Ctx, spec: PageSpec, table_id: str) -> Response:
    """A page's table on its own: every row (paged), or all of them as CSV with ``format=csv``."""
    page = page_of(ctx, spec)
    t = page.tables().get(table_id)
    if t is None:
        raise Missing(f"page {spec.title} has no table {table_id!r}: it has {', '.join(page.tables()) or 'none'}")
    if request.query_params.get("format") == "csv":
        return csv_response(t.csv(), f"{spec.name}-{t.id}")
    offset, limit = paging(ctx, request)
    base = f"{spec.base}/tables/{t.id}"
    return html(request, "table.html.j2", ctx, ctx.who, f"{page.title}: {t.title}", table=t,
                rows=t.render_rows(t.rows[offset:offset + limit]), facts=page.facts, kpis=[],
                csv=ctx.url(base, {**ctx.extra, "format": "csv"}), back=ctx.url(spec.path, ctx.extra),
                back_title=page.title, offset=offset, limit=limit, total=len(t.rows),
                prev=ctx.url(base, {**ctx.extra, "offset": max(offset - limit, 0)}) if offset else None,
                next=ctx.url(base, {**ctx.extra, "offset": offset + limit}) if offset + limit < len(t.rows) else None)


# -- plotly.js, from the installed plotly package (works offline) ----------------------------------------------

_PLOTLY: dict[str, bytes] = {}
_PLOTLY_LOCK = threading.Lock()


def plotly_js() -> tuple[bytes, bytes]:
    """(plotly.min.js, the same gzipped), read once."""
    with _PLOTLY_LOCK:
        if not _PLOTLY:
            spec = importlib.util.find_spec("plotly")
            if spec is None or not spec.submodule_search_locations:
                raise Missing("the plotly package is not installed: pip install plotly")
            raw = (Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js").read_bytes()
            _PLOTLY.update(raw=raw, gz=gzip.compress(raw, 6))
    return _PLOTLY["raw"], _PLOTLY["gz"]


def plotly_response(request: Request) -> Response:
    raw, gz = plotly_js()
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gz, media_type="application/javascript", headers={**headers, "Content-Encoding": "gzip"})
    return Response(raw, media_type="application/javascript", headers=headers)
