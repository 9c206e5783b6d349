"""The FastAPI application: every module of ``routes/`` mounted under ``/api/v1`` (a new resource is one new
file), the OpenAPI document at ``/openapi.json`` (``/docs`` to read it), ``/healthz`` without a token, and
``/login`` for the dashboard's cookie. Expected failures (an unknown dimension, a bad window) answer 400 with
the same one-line message the CLI prints; nothing expected answers 500."""

from __future__ import annotations

import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from ... import __version__
from ...analysis.costs import DimensionError
from ...analysis.forecast import ForecastError
from ...analysis.layers import LayerRuleError
from ...analysis.windows import WindowError
from ...config import Settings
from ...store.anomalies import AnomalyError
from ...store.findings import FindingError
from ...store.ingest import IngestError
from ...store.tokens import TokenError
from . import routes
from .auth import COOKIE
from .db import Database
from .mounts import mount

#: errors that are the request's fault: answered 400 with their message
BAD_REQUEST: tuple[type[Exception], ...] = (DimensionError, WindowError, LayerRuleError, ForecastError, AnomalyError,
                                            FindingError, IngestError, TokenError, KeyError)


def create_app(db_path: Path, settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(db_path, settings)
        receiver.start(app.state.db, app.state.data_version)
        try:
            yield
        finally:
            receiver.stop()
            app.state.db.close()

    app = FastAPI(title="aifinops", version=__version__, lifespan=lifespan,
                  description="The economics of AI infrastructure: costs, GPU allocation, unit costs, waste "
                              "findings, anomalies, forecasts and budgets over one store. Every route needs a "
                              "token (`aifinops tokens create`): `Authorization: Bearer <token>`.")

    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return JSONResponse({"detail": msg}, status_code=400)

    for error in BAD_REQUEST:
        app.add_exception_handler(error, bad_request)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/login", include_in_schema=False)
    def login(token: str, next: str = "/") -> RedirectResponse:
        """Keep the token in an HttpOnly cookie so that dashboard links carry no secret."""
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    from .. import dashboard  # the HTML pages; imported here because the dashboard imports this module

    app.include_router(dashboard.router)
    for info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda i: i.name):
        module = import_module(f"{routes.__name__}.{info.name}")
        if hasattr(module, "router"):
            app.include_router(module.router, prefix="/api/v1")
    receiver = mount(app, settings, db_path)  # the response cache, /v1/traces and /metrics
    return app
