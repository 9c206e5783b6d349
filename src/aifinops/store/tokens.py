"""API tokens: created by ``aifinops tokens create``, shown once, kept as a SHA-256 of the secret.

A token reads ``afo_<token_id>_<secret>``: the id is public (listings, logs, revocation), the secret is 32
random bytes. Roles grow: a viewer reads; an analyst also answers anomalies; an admin also ingests, dismisses
findings and reads the configuration. A token with a team sees that team's detail and only totals of others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

ROLES = ("viewer", "analyst", "admin")
PREFIX = "afo_"


class TokenError(ValueError):
    """A token that cannot be created or revoked; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who a request is: the token's id, role and team (None: every team)."""

    token_id: str
    role: str
    team: str | None
    name: str | None = None

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(con: duckdb.DuckDBPyConnection, role: str, team: str | None, name: str | None,
           now: datetime) -> tuple[str, str]:
    """(token_id, the token to hand out): the token is not stored and cannot be shown again."""
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = f"{PREFIX}{token_id}_{secret}"
    con.execute("INSERT INTO api_tokens (token_id, name, role, team, secret_sha256, created_at) VALUES "
                "(?, ?, ?, ?, ?, ?)", [token_id, name, role, team, _sha(token), now])
    return token_id, token


def verify(con: duckdb.DuckDBPyConnection, token: str) -> Principal | None:
    """The principal of a token, or None when it is unknown, malformed or revoked (compared in constant time)."""
    if not token.startswith(PREFIX) or token.count("_") < 2:
        return None
    token_id = token[len(PREFIX):].split("_", 1)[0]
    row = con.execute("SELECT token_id, role, team, name, secret_sha256, revoked_at FROM api_tokens "
                      "WHERE token_id = ?", [token_id]).fetchall()
    if not row or row[0][5] is not None or not hmac.compare_digest(row[0][4], _sha(token)):
        return None
    return Principal(row[0][0], row[0][1], row[0][2], row[0][3])


def listing(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = con.execute("SELECT token_id, name, role, team, created_at, last_used_at, revoked_at FROM api_tokens "
                      "ORDER BY created_at, token_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def revoke(con: duckdb.DuckDBPyConnection, token_id: str, now: datetime) -> None:
    hit = con.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL RETURNING 1",
                      [now, token_id]).fetchall()
    if not hit:
        raise TokenError(f"no active token {token_id!r}: see `aifinops tokens list`")
