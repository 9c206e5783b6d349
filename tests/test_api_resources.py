"""The REST resources over a real server on the store of ``api_fixtures`` (numbers in its docstring), with a
token that sees every team: the allocation in OpenCost's shape and parameters (and the same sums as
``gpu_allocation.aggregate``), its filter language, unit costs, utilisation, findings (explain, dismiss,
accept), anomalies (feedback), forecasts, budgets, batches, the response cache and 400s that say why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import GPU_START, build, settings
from api_server import serve
from waste_fixtures import add_node, add_workload

from aifinops.analysis import gpu_allocation
from aifinops.analysis.windows import Window, WindowError
from aifinops.interfaces.api.filters import Condition, FilterError, parse_filter
from aifinops.interfaces.api.routes.allocation import FIELDS, gpu_window
from aifinops.store.connection import Store

W10 = Window(GPU_START, datetime(2026, 10, 1, 10))
AGGREGATES = [(["namespace"], "none"), (["workload"], "weighted"), (["label:team", "node"], "even"),
              (["owner"], "owner"), (["node_pool"], "none")]


class Api:
    def __init__(self, client: httpx.Client, keys: dict[str, str], expected: dict[str, Any]) -> None:
        self.client, self.keys, self.expected = client, keys, expected

    def get(self, path: str, who: str = "all", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.keys[who]}"})

    def post(self, path: str, who: str = "admin", body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(path, json=body, headers={"Authorization": f"Bearer {self.keys[who]}"})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    db = tmp_path_factory.mktemp("resources") / "s.duckdb"
    keys = build(db)
    with Store(db, read_only=True) as store:  # what the analysis says, before the server holds the store
        expected = {(tuple(by), share): gpu_allocation.aggregate(store.con, W10, by, share_idle=share,
                                                                 settings=settings(db))
                    for by, share in AGGREGATES}
    with serve(db, settings(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Api(client, keys, expected)


def entries(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for s in body["data"] for k, v in s.items()}


# -- allocation ----------------------------------------------------------------------------------------------

def test_allocation_answers_in_opencosts_shape(api: Api) -> None:
    body = api.get("/api/v1/allocation", window="10h", aggregate="namespace").json()
    assert (body["code"], body["status"], len(body["data"])) == (200, "success", 1)
    got = entries(body)
    assert {k: v["totalCost"] for k, v in got.items()} == {"ns-alpha": 40.0, "ns-bravo": 40.0, "__idle__": 30.0,
                                                           "default": 10.0}
    bravo = got["ns-bravo"]
    assert (bravo["name"], bravo["properties"], bravo["gpuHours"], bravo["minutes"]) == (
        "ns-bravo", {"namespace": "ns-bravo"}, 40.0, 600.0)
    assert bravo["window"] == {"start": "2026-10-01T00:00:00Z", "end": "2026-10-01T10:00:00Z"}
    assert bravo["gpuEfficiency"] == pytest.approx(0.8)  # (20 x 0.9 + 20 x 0.7) / 40
    assert (bravo["gpuCostAdjustment"], bravo["externalCost"], body["others"]) == (0, 0, None)
    assert not {"k0", "_rows", "_others"} & set(bravo)  # the statement's own columns stay inside


@pytest.mark.parametrize(("by", "share"), AGGREGATES)
def test_allocation_sums_are_gpu_allocation_aggregates(api: Api, by: list[str], share: str) -> None:
    share_param = {"weighted": "true", "none": "false"}.get(share, share)
    body = api.get("/api/v1/allocation", window="10h", aggregate=",".join(by), shareIdle=share_param).json()
    got = entries(body)
    want = api.expected[(tuple(by), share)]
    assert len(got) == len(want)
    for row in want:
        name = "/".join(str(row[d]) for d in by)
        for col, value in row.items():
            if col in by:
                continue
            if isinstance(value, Decimal):
                assert got[name][col] == pytest.approx(float(value), abs=1e-6), (name, col)
            elif value is None:
                assert got[name][col] is None, (name, col)
            else:
                assert got[name][col] == pytest.approx(value, rel=1e-12), (name, col)


def test_opencost_windows_accumulate_and_idle_policies(api: Api) -> None:
    rfc = api.get("/api/v1/allocation", window="2026-10-01T00:00:00Z,2026-10-01T10:00:00Z", aggregate="node").json()
    unix = api.get("/api/v1/allocation", window="1790812800,1790848800", aggregate="node").json()
    assert entries(rfc) == entries(unix) == entries(api.get("/api/v1/allocation", window="10h").json())
    assert {k: v["totalCost"] for k, v in entries(rfc).items()} == {"gpu-1": 80.0, "gpu-bravo": 40.0}
    hourly = api.get("/api/v1/allocation", window="10h", aggregate="node", accumulate="hour").json()["data"]
    assert len(hourly) == 10 and hourly[5]["gpu-bravo"]["totalCost"] == 4.0  # bravo-serve left: idle, still $4
    assert hourly[5]["gpu-bravo"]["start"] == "2026-10-01T05:00:00Z"
    daily = api.get("/api/v1/allocation", window="10h", aggregate="node", accumulate="false").json()["data"]
    assert len(daily) == 1 and daily[0]["gpu-1"]["end"] == "2026-10-01T10:00:00Z"  # clipped to the window
    weighted = entries(api.get("/api/v1/allocation", window="10h", aggregate="workload", shareIdle="true").json())
    # per node and hour: gpu-1's idle goes to its three workloads by cost; gpu-bravo's hours 5-9 ran nothing
    assert weighted["__idle__"]["totalCost"] == 20.0 and weighted["bravo-serve"]["totalCost"] == 20.0
    assert weighted["alpha-train"]["totalCost"] == pytest.approx(40 + 10 * 40 / 70, abs=1e-6)
    assert sum(v["totalCost"] for v in weighted.values()) == pytest.approx(120.0, abs=1e-5)


def test_allocation_filters_and_pages(api: Api) -> None:
    got = entries(api.get("/api/v1/allocation", window="10h", aggregate="workload",
                          filter='namespace:"ns-alpha","default"').json())
    assert set(got) == {"alpha-train", "job-untagged"}
    got = entries(api.get("/api/v1/allocation", window="10h", aggregate="workload",
                          filter='label[team]:"bravo"+node!:"gpu-1"').json())
    assert set(got) == {"bravo-serve"}
    got = entries(api.get("/api/v1/allocation", window="10h", aggregate="node", filter='workload:"__idle__"').json())
    assert {k: v["totalCost"] for k, v in got.items()} == {"gpu-1": 10.0, "gpu-bravo": 20.0}
    first = api.get("/api/v1/allocation", window="10h", aggregate="workload", limit="2").json()
    rest = api.get("/api/v1/allocation", window="10h", aggregate="workload", limit="2", offset="2").json()
    assert (first["total"], first["next_offset"], rest["next_offset"]) == (5, 2, 4)
    assert set(entries(first)) | set(entries(rest)) <= {"alpha-train", "bravo-train", "bravo-serve", "job-untagged",
                                                        "__idle__"}
    assert not set(entries(first)) & set(entries(rest))


@pytest.mark.parametrize(("params", "status", "says"), [
    ({"filter": 'namespace~:"a"'}, 400, "'~:' is not supported"),
    ({"filter": 'namespace:"a"|node:"b"'}, 400, "| (or) is not supported"),
    ({"filter": 'cluster:"c1"'}, 400, "unknown field 'cluster'"),
    ({"filter": "namespace:a"}, 400, "quoted"),
    ({"filter": "label:\"x\""}, 400, "label needs a key"),
    ({"aggregate": "colour"}, 400, "unknown aggregate 'colour'"),
    ({"window": "last tuesday"}, 400, "unknown window"),
    ({"window": "1790848800,1790812800"}, 400, "ends before it starts"),
    ({"shareIdle": "sometimes"}, 422, None),
    ({"idleThreshold": "2"}, 422, None),
    ({"shareLabels": "novalue"}, 400, "KEY:VALUE"),
    ({"window": "2026-01-01..9999-12-31"}, 400, "out of range"),  # the day after is past year 9999
    ({"window": "99999999999999999999,1"}, 400, "not a Unix time"),
])
def test_bad_allocation_requests_say_why(api: Api, params: dict[str, str], status: int, says: str | None) -> None:
    res = api.get("/api/v1/allocation", **{"window": "10h", **params})
    assert res.status_code == status, res.text
    if says:
        assert says in res.json()["detail"]


@pytest.mark.parametrize(("text", "want"), [
    ("", []),
    ('namespace:"a","b"', [Condition("namespace", None, False, ("a", "b"))]),
    (' label[app.kubernetes.io/team] !: "x y" + node:"n\\"1"',
     [Condition("label", "app.kubernetes.io/team", True, ("x y",)), Condition("node", None, False, ('n"1',))]),
    ('owner:""', [Condition("owner", None, False, ("",))]),
])
def test_filter_parser(text: str, want: list[Condition]) -> None:
    assert parse_filter(text, FIELDS) == want


@pytest.mark.parametrize("text", ['namespace:"a"+', '(namespace:"a")', 'namespace:"a', "node[x]:\"a\"",
                                  'namespace<~:"a"', 'namespace:"a" node:"b"', "namespace"])
def test_filter_parser_refuses(text: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(text, FIELDS)


# -- the other analyses --------------------------------------------------------------------------------------

def test_unit_costs_utilization_forecasts_budgets_batches(api: Api) -> None:
    units = api.get("/api/v1/unit-costs", window="all", by="team").json()["rows"]
    assert [(r["team"], r["requests"], r["cost"], r["costPerRequest"]) for r in units] == [
        ("bravo", 2, 0.008, 0.004), ("alpha", 3, 0.006, 0.002)]
    assert api.get("/api/v1/unit-costs", by="colour").status_code == 400
    util = api.get("/api/v1/gpu/utilization", window="all", by="node", accumulate="window").json()["rows"]
    assert {r["node"]: (r["gpuHours"], r["idleGpuHours"]) for r in util} == {"gpu-1": (80.0, 10.0),
                                                                           "gpu-bravo": (40.0, 20.0)}
    fc = api.get("/api/v1/forecasts", by="tag:team").json()
    assert {r["series"]: r["total"]["mean"] for r in fc["rows"]} == {"alpha": 372.0, "bravo": 310.0,
                                                                      "(untagged)": 15.5}
    assert fc["forecast"]["period"] == {"start": "2026-10-01T00:00:00", "end": "2026-11-01T00:00:00"}
    assert api.get("/api/v1/forecasts", metric="colour").status_code == 400
    assert api.get("/api/v1/forecasts", history="99999d").status_code == 400
    budgets = {b["name"]: b for b in api.get("/api/v1/budgets").json()["rows"]}
    assert {k: b["spent"] for k, b in budgets.items()} == {"alpha": 168.0, "bravo-budget": 140.0, "all-spend": 315.0}
    # September is over at the ledger's end: the forecast is what was spent, 31.5% of $1,000, no threshold crossed
    assert (budgets["all-spend"]["percent"], budgets["all-spend"]["forecast"]["hi95"]) == (31.5, 315.0)
    assert budgets["all-spend"]["thresholds"][0] == {"basis": "actual", "pct": 50.0, "amount": 500.0, "state": "ok",
                                                     "on": None}
    # as of noon on 2026-09-20: four days of alpha's $12; a status or a forecast reaches a year past the data at most
    assert api.get("/api/v1/budgets", at="2026-09-20T12:00:00Z").json()["rows"][0]["spent"] == 48.0
    assert api.get("/api/v1/budgets", at="2336-05-14T05:23:14-02:35").status_code == 400
    to_date = api.get("/api/v1/forecasts", by="tag:team", to="2026-10-15").json()["rows"]
    assert {r["series"]: r["total"]["mean"] for r in to_date}["alpha"] == 180.0  # 15 days x $12
    assert api.get("/api/v1/forecasts", to="9999-12-31").status_code == 400
    batch = api.get("/api/v1/batches").json()["rows"][0]
    assert batch["files"] == [{"path": "bravo-bill.csv", "format": "csv", "bytes": 10, "rows_read": 70}]


# -- findings and anomalies ----------------------------------------------------------------------------------

def test_findings_list_and_explain(api: Api) -> None:
    rows = api.get("/api/v1/findings").json()["rows"]
    assert [(r["id"], r["achievableSaving"]) for r in rows] == [("a1a1a1a1a1a1", 100.0), ("b1b1b1b1b1b1", 70.0),
                                                                ("a2a2a2a2a2a2", 50.0), ("c0c0c0c0c0c0", 5.0)]
    assert [r["id"] for r in api.get("/api/v1/findings", min_saving="60").json()["rows"]] == [
        "a1a1a1a1a1a1", "b1b1b1b1b1b1"]
    assert [r["id"] for r in api.get("/api/v1/findings", team="alpha").json()["rows"]] == [
        "a1a1a1a1a1a1", "a2a2a2a2a2a2"]
    assert api.get("/api/v1/findings", rule="spot-candidate").json()["total"] == 0
    f = api.get("/api/v1/findings/b1b1").json()
    assert (f["id"], f["savingFormula"], f["assumptions"], f["evidence"], f["pool"]) == (
        "b1b1b1b1b1b1", "70 = waste", ["a month is 730 hours"], {"workload": "ns-bravo/bravo-train"},
        "workload:ns-bravo/bravo-train")
    assert api.get("/api/v1/findings/ffff").status_code == 404
    assert api.get("/api/v1/findings/zz-not-hex").status_code == 422


def test_anomalies_list_and_one(api: Api) -> None:
    rows = api.get("/api/v1/anomalies").json()["rows"]
    assert [r["anomaly_id"] for r in rows] == ["bbbb00000001", "aaaa00000001", "bbbb00000002", "cccc00000001"]
    assert [r["anomaly_id"] for r in api.get("/api/v1/anomalies", dimension="tag:team").json()["rows"]] == [
        "bbbb00000001"]
    one = api.get("/api/v1/anomalies/aaaa").json()
    assert [c["value"] for c in one["root_causes"]] == ["alpha", "bravo"]  # an unscoped token sees every cause


def test_decisions_need_their_role_and_a_reason(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    keys = build(db)
    with serve(db, settings(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        api = Api(client, keys, {})
        assert api.post("/api/v1/findings/a1a1a1a1a1a1/dismiss", "all", {"reason": "x"}).status_code == 403
        assert api.post("/api/v1/findings/a1a1a1a1a1a1/dismiss", body={}).status_code == 422
        res = api.post("/api/v1/findings/a1a1a1a1a1a1/dismiss", body={"reason": "   "})
        assert res.status_code == 400 and "needs --reason" in res.json()["detail"]
        res = api.post("/api/v1/findings/a1a1a1a1a1a1/dismiss", body={"reason": "a planned migration"})
        assert (res.json()["status"], res.json()["statusReason"]) == ("dismissed", "a planned migration")
        assert "a1a1a1a1a1a1" not in [r["id"] for r in api.get("/api/v1/findings").json()["rows"]]
        assert [r["id"] for r in api.get("/api/v1/findings", status="dismissed").json()["rows"]] == ["a1a1a1a1a1a1"]
        assert api.post("/api/v1/findings/a2a2/accept").json()["status"] == "accepted"
        # anomalies: analyst and up; an anomaly still going on needs `until` to be planned
        assert api.post("/api/v1/anomalies/aaaa/feedback", "all", {"kind": "wrong"}).status_code == 403
        res = api.post("/api/v1/anomalies/aaaa/feedback", "analyst", {"kind": "planned"})
        assert res.status_code == 400 and "--until" in res.json()["detail"]
        res = api.post("/api/v1/anomalies/aaaa/feedback", "analyst",
                       {"kind": "planned", "reason": "launch", "until": "2026-10-03"})
        assert (res.json()["status"], res.json()["status_reason"]) == ("planned", "launch")
        assert api.post("/api/v1/anomalies/cccc/feedback", "analyst", {"kind": "maybe"}).status_code == 422
        assert [r["anomaly_id"] for r in api.get("/api/v1/anomalies").json()["rows"]] == [
            "bbbb00000001", "bbbb00000002", "cccc00000001"]


def test_allocation_windows_are_clipped_to_the_gpu_data_and_bounded(tmp_path: Path) -> None:
    """A workload from 2026-01-01 to 2026-10-01 (273 days of GPU data): ``all`` is refused (over 100 days),
    ``30d`` ends where the data ends, a window around the data is clipped to it."""
    with Store(tmp_path / "w.duckdb") as store:
        add_node(store.con, "n1", 1, "1")
        add_workload(store.con, "w1", "n1", 1, datetime(2026, 1, 1, 0, 30), datetime(2026, 10, 1))
        with pytest.raises(WindowError, match="at most 100 days"):
            gpu_window(store.con, "all")
        assert gpu_window(store.con, "30d") == Window(datetime(2026, 9, 1), datetime(2026, 10, 1))
        assert gpu_window(store.con, "2025-12-01..2026-01-02") == Window(datetime(2026, 1, 1), datetime(2026, 1, 3))
        assert gpu_window(store.con, "2027-01") == Window(datetime(2027, 1, 1), datetime(2027, 1, 1))  # empty


def test_a_store_out_of_memory_is_busy_not_broken(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    keys = build(db)
    with serve(db, settings(db).model_copy(update={"memory_limit": "4MB"})) as url:
        headers = {"Authorization": f"Bearer {keys['all']}"}
        res = httpx.get(f"{url}/api/v1/allocation", params={"window": "10h"}, headers=headers, timeout=60)
        assert res.status_code == 503 and res.headers["retry-after"] == "2"
        assert "out of memory" in res.json()["detail"] and "\n" not in res.json()["detail"]
        # the server goes on: a small query answers (or, if 4 MB is too little for it too on a loaded machine, is
        # busy again: never a 500)
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/api/v1/costs", params={"window": "all"}, headers=headers).status_code in (200, 503)


# -- the response cache ----------------------------------------------------------------------------------------

def test_the_cache_keeps_answers_until_a_write_and_checks_the_token(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    keys = build(db)
    with serve(db, settings(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        api = Api(client, keys, {})
        a = api.get("/api/v1/costs", window="all", by="tag:team")
        b = api.get("/api/v1/costs", by="tag:team", window="all")  # same parameters, another order
        assert (a.headers["x-cache"], b.headers["x-cache"], a.content) == ("miss", "hit", b.content)
        assert api.get("/api/v1/findings").headers.get("x-cache") is None  # not a cached resource
        token_id = keys["all"].split("_")[1]
        assert client.delete(f"/api/v1/tokens/{token_id}",
                             headers={"Authorization": f"Bearer {keys['admin']}"}).status_code == 200
        assert api.get("/api/v1/costs", window="all", by="tag:team").status_code == 401  # revoked: no hit
        c = api.get("/api/v1/costs", "admin", window="all", by="tag:team")  # the DELETE was a write
        assert c.headers["x-cache"] == "miss" and c.json() == a.json()
        assert api.get("/api/v1/costs", "admin", window="all", by="tag:team").headers["x-cache"] == "hit"
