"""Who is asking: a bearer token (``Authorization: Bearer afo_...``), or the dashboard's cookie set by
``/login?token=...``. Every route depends on ``viewer``, ``analyst`` or ``admin``."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request

from ...store.tokens import Principal

COOKIE = "aifinops_token"


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def principal(request: Request) -> Principal:
    token = _token(request)
    if not token:
        raise HTTPException(401, "an API token is needed: Authorization: Bearer <token> (aifinops tokens create)",
                            headers={"WWW-Authenticate": "Bearer"})
    who = request.app.state.db.principal(token)
    if who is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return who


def role(needed: str) -> Callable[..., Principal]:
    def check(who: Principal = Depends(principal)) -> Principal:  # noqa: B008 (FastAPI's dependency idiom)
        if not who.can(needed):
            raise HTTPException(403, f"this needs the {needed} role; the token has {who.role}")
        return who

    check.__name__ = f"require_{needed}"
    return check


viewer = role("viewer")
analyst = role("analyst")
admin = role("admin")
