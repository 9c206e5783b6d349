"""A team-scoped token cannot read another team's rows through any endpoint, filter or grouping: over the store
of ``api_fixtures`` (teams alpha and bravo in every table; every bravo identifier contains "bravo"), alpha's
token gets alpha's detail and one total of everyone else, and nothing that names bravo, whatever it asks.

The others' totals are the fixture's hand-computed numbers: ledger $147 (bravo $140 + untagged $7); GPU $80 of
$120 (80 of 120 GPU-hours; activity (20 x 0.9 + 10 x 0.2 + 20 x 0.7) / 50 = 0.68 over the telemetry hours);
LLM 2 requests, $0.008; findings 2 open ($70 + $5); anomalies 3 ($40 + $9 + $3); the October forecast of the
others' spend (constant history: seasonal naive) 31 x $10.50 = $325.50.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import build, settings
from api_server import serve

OTHERS = "(other teams)"


Server = tuple[httpx.Client, dict[str, str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("scoping") / "s.duckdb"
    keys = build(db)
    with serve(db, settings(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, keys


def get(server: Server, who: str | None, path: str, **params: Any) -> httpx.Response:
    client, keys = server
    return client.get(path, params=params, headers={"Authorization": f"Bearer {keys[who]}"} if who else {})


def post(server: Server, who: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    client, keys = server
    return client.post(path, json=body, headers={"Authorization": f"Bearer {keys[who]}"})


def answer(body: dict[str, Any]) -> str:
    """The response without the request's own parameters echoed back (``query``), as text."""
    return json.dumps({k: v for k, v in body.items() if k != "query"}).lower()


W = {"window": "10h"}  # the GPU hours of the fixture
REQUESTS = [
    *[("/api/v1/costs", {"window": "all", "by": by}) for by in
      ("tag:team", "ServiceName", "ResourceId", "ServiceName,tag:team", "day", "tag:team,ResourceId")],
    *[("/api/v1/allocation", {**W, "aggregate": agg}) for agg in
      ("node", "namespace", "workload", "node_pool", "owner", "label:team", "namespace,label:team", "node,workload")],
    *[("/api/v1/allocation", {**W, "aggregate": "workload", "accumulate": acc, "shareIdle": share}) for acc, share in
      (("false", "false"), ("hour", "true"), ("true", "even"), ("true", "owner"), ("day", "owner"))],
    *[("/api/v1/allocation", {**W, "aggregate": "workload", "filter": f}) for f in
      ('namespace:"ns-bravo"', 'label[team]:"bravo"', 'node:"gpu-bravo"', 'workload!:"alpha-train"',
       'owner:"bravo"', 'node_pool:"pool-bravo"+namespace!:"ns-alpha"', 'workload:"__idle__"')],
    ("/api/v1/allocation", {**W, "aggregate": "workload", "shareNamespaces": "ns-bravo"}),
    *[("/api/v1/unit-costs", {"window": "all", "by": by}) for by in
      ("team", "feature", "user", "model", "feature,team", "provider,user")],
    ("/api/v1/unit-costs", {"window": "all", "by": "feature", "accumulate": "day"}),
    *[("/api/v1/gpu/utilization", {"window": "all", "accumulate": acc}) for acc in ("hour", "day", "window")],
    ("/api/v1/findings", {}), ("/api/v1/findings", {"team": "bravo"}), ("/api/v1/findings", {"status": "all"}),
    ("/api/v1/findings", {"include_inactive": "true", "rule": "underused-gpu"}),
    ("/api/v1/anomalies", {}), ("/api/v1/anomalies", {"dimension": "tag:team"}),
    ("/api/v1/anomalies", {"status": "all", "include_inactive": "true"}),
    *[("/api/v1/forecasts", {"metric": m, "by": by}) for m, by in
      (("cost", "ServiceName"), ("cost", "tag:team"), ("cost", "ResourceId"), ("cost", ""), ("gpu_cost", "team"),
       ("gpu_cost", "workload"), ("gpu_hours", "namespace"), ("tokens", "feature"), ("requests", "user"))],
    ("/api/v1/budgets", {}), ("/api/v1/batches", {}),
]


@pytest.mark.parametrize(("path", "params"), REQUESTS, ids=[f"{p[8:]}?{q}" for p, q in REQUESTS])
def test_no_endpoint_filter_or_grouping_shows_another_teams_detail(server, path: str, params: dict) -> None:
    res = get(server, "alpha", path, **params)
    assert res.status_code == 200, res.text
    assert "bravo" not in answer(res.json())


def test_the_cache_never_serves_one_teams_answer_to_another(server) -> None:
    """The unscoped token's answer is cached first; the scoped token asking the same URL gets its own."""
    first = get(server, "all", "/api/v1/allocation", window="10h", aggregate="workload", limit="7")
    again = get(server, "all", "/api/v1/allocation", limit="7", aggregate="workload", window="10h")
    assert first.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
    assert "bravo" in answer(again.json())
    scoped = get(server, "alpha", "/api/v1/allocation", window="10h", aggregate="workload", limit="7")
    assert scoped.headers["x-cache"] == "miss" and "bravo" not in answer(scoped.json())
    bravo = get(server, "bravo", "/api/v1/allocation", window="10h", aggregate="workload", limit="7")
    assert "alpha" not in answer(bravo.json()) and "bravo-train" in answer(bravo.json())


def _allocation(server, **params: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    body = get(server, "alpha", "/api/v1/allocation", window="10h", **params).json()
    entries = {k: v for s in body["data"] for k, v in s.items() if k != OTHERS}
    return entries, body["others"]


def test_allocation_others_is_one_total_that_no_filter_narrows(server) -> None:
    mine, others = _allocation(server, aggregate="namespace")
    assert {k: v["totalCost"] for k, v in mine.items()} == {"ns-alpha": 40.0}
    assert (others["totalCost"], others["gpuHours"], others["name"]) == (80.0, 80.0, OTHERS)
    for f in ('namespace:"ns-bravo"', 'label[team]:"bravo"', 'node:"gpu-bravo"'):
        mine, narrowed = _allocation(server, aggregate="workload", filter=f)
        assert mine == {} and narrowed["totalCost"] == 80.0  # the filter applies to alpha's rows only


def test_allocation_scope_follows_the_idle_policy(server) -> None:
    """owner: gpu-1's pool is alpha's, so its idle ($10, 10 GPU-h) is alpha's line; weighted: alpha's $40 takes
    40/70 of gpu-1's $10 idle."""
    mine, others = _allocation(server, aggregate="namespace", shareIdle="owner")
    assert {k: v["totalCost"] for k, v in mine.items()} == {"ns-alpha": 40.0, "alpha": 10.0}
    assert others["totalCost"] == 70.0
    mine, others = _allocation(server, aggregate="namespace", shareIdle="true")
    assert mine["ns-alpha"]["totalCost"] == pytest.approx(40 + 10 * 40 / 70, abs=1e-6)  # money: 6 decimals
    assert mine["ns-alpha"]["totalCost"] + others["totalCost"] == pytest.approx(120.0, abs=2e-6)


def test_allocation_sets_carry_others_once(server) -> None:
    body = get(server, "alpha", "/api/v1/allocation", window="10h", aggregate="workload", accumulate="hour").json()
    assert len(body["data"]) == 10 and all(OTHERS not in s for s in body["data"])  # per hour: alpha only
    assert body["others"]["totalCost"] == 80.0 and body["others"]["minutes"] == 600.0


def test_other_endpoints_give_the_others_one_hand_computed_total(server) -> None:
    costs = get(server, "alpha", "/api/v1/costs", window="all", by="ResourceId").json()["rows"]
    assert {r["ResourceId"]: r["cost"] for r in costs} == {"r-alpha-1": 140.0, "r-alpha-2": 28.0, OTHERS: 147.0}
    units = get(server, "alpha", "/api/v1/unit-costs", window="all", by="user").json()["rows"]
    assert [(r["user"], r["requests"], r["cost"]) for r in units] == [("alpha-user", 3, 0.006), (OTHERS, 2, 0.008)]
    assert units[1]["costPerRequest"] == 0.004 and units[1]["activeUsers"] is None  # distinct users do not add
    util = get(server, "alpha", "/api/v1/gpu/utilization", window="all", accumulate="window").json()["rows"]
    assert [(r["label:team"], r["gpuHours"]) for r in util] == [("alpha", 40.0), (OTHERS, 80.0)]
    assert util[0]["meanActivity"] == pytest.approx(0.5) and util[1]["meanActivity"] == pytest.approx(0.68)
    found = get(server, "alpha", "/api/v1/findings").json()
    assert [f["id"] for f in found["rows"]] == ["a1a1a1a1a1a1", "a2a2a2a2a2a2"]
    assert found["others"] == {"count": 2, "achievableSaving": 75.0, "monthlySaving": 75.0}
    assert get(server, "alpha", "/api/v1/findings", team="bravo").json()["others"]["count"] == 2  # before filters
    anomalies = get(server, "alpha", "/api/v1/anomalies").json()
    assert [a["anomaly_id"] for a in anomalies["rows"]] == ["aaaa00000001"]
    assert [c["value"] for c in anomalies["rows"][0]["root_causes"]] == ["alpha"]  # bravo's cause left out
    assert anomalies["others"] == {"count": 3, "impact_cost": 52.0}
    fc = get(server, "alpha", "/api/v1/forecasts", by="ServiceName").json()["rows"]
    assert {r["series"]: r["total"]["mean"] for r in fc} == {"EC2": 310.0, "S3": 62.0, OTHERS: 325.5}
    budgets = get(server, "alpha", "/api/v1/budgets").json()
    assert [b["name"] for b in budgets["rows"]] == ["alpha"] and budgets["hidden"] == 2
    assert budgets["rows"][0]["spent"] == 168.0
    batch = get(server, "alpha", "/api/v1/batches").json()["rows"][0]
    assert "files" not in batch and "billed_read" not in batch and batch["rows_loaded"] == 70


@pytest.mark.parametrize("fid", ["b1b1b1b1b1b1", "b1b1", "c0c0c0c0c0c0", "B1B1B1"])
def test_another_teams_finding_does_not_exist_for_the_token(server, fid: str) -> None:
    assert get(server, "alpha", f"/api/v1/findings/{fid}").status_code == 404
    for action, body in (("dismiss", {"reason": "not ours"}), ("accept", None)):
        assert post(server, "alpha-admin", f"/api/v1/findings/{fid}/{action}", body).status_code == 404
    seen = get(server, "all", "/api/v1/findings/b1b1b1b1b1b1").json()
    assert seen["status"] == "open" and seen["owner"] == "bravo"
    mine = get(server, "alpha", "/api/v1/findings/a1a1").json()
    assert mine["id"] == "a1a1a1a1a1a1" and mine["savingFormula"] == "100 = waste"


@pytest.mark.parametrize("aid", ["bbbb00000001", "bbbb00000002", "cccc00000001", "bbbb"])
def test_another_teams_anomaly_does_not_exist_for_the_token(server, aid: str) -> None:
    res = get(server, "alpha", f"/api/v1/anomalies/{aid}")
    assert res.status_code == 404 and "several" not in res.text  # a prefix never lists others' ids
    res = post(server, "alpha-analyst", f"/api/v1/anomalies/{aid}/feedback", {"kind": "wrong"})
    assert res.status_code == 404
    assert get(server, "all", "/api/v1/anomalies/bbbb00000001").json()["status"] == "open"
    own = get(server, "alpha", "/api/v1/anomalies/aaaa").json()
    assert own["anomaly_id"] == "aaaa00000001" and "bravo" not in answer(own)


def test_fleet_wide_views_refuse_a_scoped_token(server) -> None:
    res = get(server, "alpha", "/api/v1/gpu/utilization", by="node")
    assert res.status_code == 403 and "label:team" in res.json()["detail"]
    assert get(server, "alpha", "/api/v1/gpu/utilization", by="label:project").status_code == 403
    assert get(server, "alpha", "/metrics").status_code == 401  # the families hold every team
    assert get(server, "all", "/metrics").status_code == 200
    assert get(server, None, "/metrics").status_code == 200  # Prometheus scrapes without a token


def test_the_other_team_sees_the_mirror_image(server) -> None:
    rows = get(server, "bravo", "/api/v1/costs", window="all", by="ServiceName").json()["rows"]
    assert {r["ServiceName"]: r["cost"] for r in rows} == {"EC2": 98.0, "BravoOnlyService": 42.0, OTHERS: 175.0}
    entries, others = (lambda b: ({k: v for s in b["data"] for k, v in s.items() if k != OTHERS}, b["others"]))(
        get(server, "bravo", "/api/v1/allocation", window="10h", aggregate="workload").json())
    assert {k: v["totalCost"] for k, v in entries.items()} == {"bravo-train": 20.0, "bravo-serve": 20.0}
    assert others["totalCost"] == 80.0  # alpha 40, untagged 10, idle 30
    assert "alpha" not in answer(get(server, "bravo", "/api/v1/findings").json())


def test_a_scoped_admin_decides_only_on_its_own_findings(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    keys = build(db)
    with serve(db, settings(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        s = (client, keys)
        res = post(s, "alpha-admin", "/api/v1/findings/a1a1a1a1a1a1/dismiss", {"reason": "planned migration"})
        assert res.status_code == 200 and res.json()["status"] == "dismissed"
        assert [f["id"] for f in get(s, "alpha", "/api/v1/findings").json()["rows"]] == ["a2a2a2a2a2a2"]
        assert post(s, "alpha", "/api/v1/findings/a2a2a2a2a2a2/accept").status_code == 403  # a viewer
        assert post(s, "alpha-admin", "/api/v1/findings/b1b1b1b1b1b1/accept").status_code == 404
