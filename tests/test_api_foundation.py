"""The API's foundation over a real server: tokens (hashed, roles, revocation), team scoping of costs (a scoped
token sees its team's rows and one total for the others, whatever it groups or filters by), 400s for bad
requests, paging.

The ledger: team a spends $100 on EC2 (r1) and $50 on S3 (r2); team b $70 on EC2 (r3); $5 untagged EC2 (r4).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest
from api_server import serve
from waste_fixtures import add_charge

from aifinops.store import tokens
from aifinops.store.connection import Store

T0, T1 = datetime(2026, 10, 1), datetime(2026, 10, 2)
NOW = datetime(2026, 10, 3)


@pytest.fixture
def server(tmp_path: Path):
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        for rid, svc, team, cost in (("r1", "EC2", "a", "100"), ("r2", "S3", "a", "50"), ("r3", "EC2", "b", "70"),
                                     ("r4", "EC2", None, "5")):
            add_charge(store.con, T0, T1, cost, ResourceId=rid, ServiceName=svc, Tags={"team": team} if team else {})
        keys = {name: tokens.create(store.con, role, team, name, NOW)[1]
                for name, role, team in (("all", "viewer", None), ("a", "viewer", "a"), ("admin", "admin", None))}
    with serve(db) as url:
        yield url, keys, db


def _get(url: str, token: str | None, path: str, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + path, params=params, headers=headers, timeout=10)


def test_no_token_or_a_wrong_one_is_refused(server) -> None:
    url, keys, _ = server
    assert _get(url, None, "/api/v1/costs").status_code == 401
    assert _get(url, "afo_nope_nope", "/api/v1/costs").status_code == 401
    assert _get(url, keys["all"][:-1] + "x", "/api/v1/costs").status_code == 401  # right id, wrong secret


def test_tokens_are_kept_hashed_roles_hold_and_revocation_is_immediate(server) -> None:
    url, keys, _ = server
    token_id = keys["all"].split("_")[1]
    assert _get(url, keys["all"], "/api/v1/costs", window="all").status_code == 200
    assert _get(url, keys["all"], "/api/v1/tokens").status_code == 403  # a viewer is not an admin
    listed = _get(url, keys["admin"], "/api/v1/tokens").json()
    assert {t["token_id"] for t in listed} == {k.split("_")[1] for k in keys.values()}
    assert not any(k.split("_", 2)[2] in str(listed) for k in keys.values())  # never a secret
    res = httpx.delete(f"{url}/api/v1/tokens/{token_id}", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert res.status_code == 200
    assert _get(url, keys["all"], "/api/v1/costs", window="all").status_code == 401


def test_an_unscoped_token_sees_every_team(server) -> None:
    url, keys, _ = server
    rows = _get(url, keys["all"], "/api/v1/costs", window="all", by="tag:team").json()["rows"]
    assert {r["tag:team"]: r["cost"] for r in rows} == {"a": 150.0, "b": 70.0, "(untagged)": 5.0}


@pytest.mark.parametrize("by", ["tag:team", "ServiceName", "ResourceId", "ServiceName,tag:team", "day"])
def test_a_scoped_token_sees_its_detail_and_only_a_total_of_the_others(server, by: str) -> None:
    url, keys, _ = server
    body = _get(url, keys["a"], "/api/v1/costs", window="all", by=by).json()
    rows = body["rows"]
    others = [r for r in rows if all(r[c] == "(other teams)" for c in body["query"]["by"])]
    assert len(others) == 1 and others[0]["cost"] == 75.0  # b's 70 and the untagged 5, as one total
    mine = [r for r in rows if r not in others]
    assert sum(r["cost"] for r in mine) == 150.0
    text = str(mine)
    assert "r3" not in text and "r4" not in text and "'b'" not in text


def test_bad_requests_answer_400_with_the_reason(server) -> None:
    url, keys, _ = server
    res = _get(url, keys["all"], "/api/v1/costs", by="colour")
    assert res.status_code == 400 and "unknown dimension 'colour'" in res.json()["detail"]
    res = _get(url, keys["all"], "/api/v1/costs", window="last tuesday")
    assert res.status_code == 400 and "unknown window" in res.json()["detail"]
    assert _get(url, keys["all"], "/api/v1/costs", limit="0").status_code == 422


def test_large_answers_page(server) -> None:
    url, keys, _ = server
    first = _get(url, keys["all"], "/api/v1/costs", window="all", by="ResourceId", limit="3").json()
    assert (first["total"], len(first["rows"]), first["next_offset"]) == (4, 3, 3)
    rest = _get(url, keys["all"], "/api/v1/costs", window="all", by="ResourceId", limit="3", offset="3").json()
    assert len(rest["rows"]) == 1 and rest["next_offset"] is None
    assert {r["ResourceId"] for r in first["rows"] + rest["rows"]} == {"r1", "r2", "r3", "r4"}
