"""``/api/v1/tokens``: who may use the API (admin only): list them, revoke one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ....store import tokens as tokens_store
from ....store.tokens import Principal
from ..auth import admin
from ..paging import jsonable

router = APIRouter(tags=["tokens"])


@router.get("/tokens", summary="Every token (never its secret)")
def list_tokens(request: Request, who: Annotated[Principal, Depends(admin)]) -> list[dict[str, Any]]:
    with request.app.state.db.read() as con:
        return [jsonable(r) for r in tokens_store.listing(con)]


@router.delete("/tokens/{token_id}", summary="Revoke a token")
def revoke(token_id: str, request: Request, who: Annotated[Principal, Depends(admin)]) -> dict[str, str]:
    db = request.app.state.db
    with db.write() as con:
        tokens_store.revoke(con, token_id, datetime.now(UTC).replace(tzinfo=None))
    db.forget_tokens()
    return {"revoked": token_id}
