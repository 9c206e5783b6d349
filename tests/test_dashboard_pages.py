"""The dashboard over a real server (uvicorn on 127.0.0.1) and a store small enough to compute by hand; httpx, no
browser (tests/test_dashboard.py drives Chromium).

The store (October 2026; teams alpha and bravo):

    ledger         r-alpha-gpu  alpha  prod  compute-gpu  Oct 1   $100
                   r-alpha-s3   alpha  dev   storage      Oct 2   $50
                   r-bravo-gpu  bravo  prod  compute-gpu  Oct 1   $70
                   r-untagged   -      -     other        Oct 2   $5       total $225
    GPU node n1    2 GPUs at $10/h (pool-a, owned by alpha); GPU data spans Oct 1 00:00..10:00 (window=all)
                   w-alpha  1 GPU x 10 h, SM 50%  -> $50     w-bravo  1 GPU x 5 h, SM 20%  -> $25
                   __idle__ 20 GPU-h - 15 held = 5 GPU-h -> $25                                 fleet  $100
    LLM (m1 at $1 / $2 per 1M input / output tokens)
                   f-alpha  alpha  prod  2 requests x (1M in + 0.5M out) = $4, 4 tickets -> $1 per ticket
                   f-bravo  bravo  -     1 request  x  1M in             = $1
    findings       alpha's $300/month, bravo's $200/month; anomalies: alpha $40, bravo $60 impact
    budgets        alpha-budget tag:team=alpha $300 (spent $150); bravo-budget $100 (spent $70)
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from api_server import serve
from waste_fixtures import add_activity, add_charge, add_node, add_requests, add_workload

from aifinops.config import BudgetSettings, LlmPrice, LlmSettings, Settings
from aifinops.store import findings as findings_store
from aifinops.store import tokens
from aifinops.store.connection import Store

T0, T1, T2 = datetime(2026, 10, 1), datetime(2026, 10, 2), datetime(2026, 10, 3)
PAGES = ("/", "/gpu", "/models", "/training", "/teams", "/recommendations", "/anomalies", "/engineering", "/product",
         "/finance")


def _store(db: Path) -> None:
    with Store(db) as store:
        con = store.con
        gpu = {"ChargeDescription": "p5.48xlarge on-demand", "ServiceName": "Amazon EC2"}
        add_charge(con, T0, T1, "100", ResourceId="r-alpha-gpu", Tags={"team": "alpha", "env": "prod"}, **gpu)
        add_charge(con, T1, T2, "50", ResourceId="r-alpha-s3", ServiceName="Amazon S3",
                   Tags={"team": "alpha", "env": "dev"})
        add_charge(con, T0, T1, "70", ResourceId="r-bravo-gpu", Tags={"team": "bravo", "env": "prod"}, **gpu)
        add_charge(con, T1, T2, "5", ResourceId="r-untagged", ServiceName="Amazon EC2")
        add_node(con, "n1", 2, "10", node_pool="pool-a", owner="alpha")
        add_workload(con, "w-alpha", "n1", 1, T0, datetime(2026, 10, 1, 10), {"team": "alpha", "model": "m1",
                                                                                "env": "prod", "run": "run-alpha",
                                                                                "experiment": "exp-alpha"},
                     phase="Failed")
        add_workload(con, "w-bravo", "n1", 1, T0, datetime(2026, 10, 1, 5), {"team": "bravo", "run": "run-bravo",
                                                                                 "experiment": "exp-bravo"},
                     phase="Succeeded")
        add_activity(con, "n1", 0, T0, 10, 0.5, pod="w-alpha")
        add_activity(con, "n1", 1, T0, 5, 0.2, pod="w-bravo")
        common = {"provider": "openai", "request_model": "m1", "ts": datetime(2026, 10, 1, 12)}
        add_requests(con, [
            {**common, "input_tokens": 1_000_000, "output_tokens": 500_000, "team": "alpha", "feature": "f-alpha",
             "environment": "prod", "user_id": "u1"},
            {**common, "input_tokens": 1_000_000, "output_tokens": 500_000, "team": "alpha", "feature": "f-alpha",
             "environment": "prod", "user_id": "u2"},
            {**common, "input_tokens": 1_000_000, "output_tokens": 0, "team": "bravo", "feature": "f-bravo"}])
        con.execute("INSERT INTO outcomes (ts, metric, value, unit, feature, team, _batch_id, _file, _row) "
                    "VALUES (?, 'tickets', 4, 'count', 'f-alpha', 'alpha', 1, 't', 0)", [datetime(2026, 10, 1, 13)])
        con.execute("INSERT INTO run_metrics (run_id, source, experiment, workload_run, status, metric, value, step, "
                    "_batch_id, _file, _row) VALUES ('m-1', 'mlflow', 'exp-alpha', 'run-alpha', 'FAILED', 'val_loss', "
                    "0.42, 3, 1, 't', 0)")
        base = {"scope_kind": "workload", "window_start": T0, "window_end": T2, "monthly_cost": Decimal(500),
                "monthly_waste": Decimal(400), "confidence": "high", "detail": {
                    "evidence": {"gpu_hours": 10}, "assumptions": ["the pattern continues"],
                    "saving_formula": "by hand"}}
        findings_store.record(con, [
            {**base, "finding_id": "f0a1", "rule": "underused-gpu", "scope": "alpha-endpoint", "owner": "alpha",
             "monthly_saving": Decimal(300), "achievable_saving": Decimal(300), "recommendation": "Request 1 GPU"},
            {**base, "finding_id": "f0b2", "rule": "idle-gpu", "scope": "bravo-endpoint", "owner": "bravo",
             "monthly_saving": Decimal(200), "achievable_saving": Decimal(200), "recommendation": "Stop bravo"}],
            ["underused-gpu", "idle-gpu"], T2)
        cause = {"dimension": "ServiceName", "value": "Amazon EC2", "actual": 100, "expected": 60, "contribution": 1}
        for aid, team, impact in (("a0a1", "alpha", 40.0), ("a0b2", "bravo", 60.0)):
            con.execute("INSERT INTO anomalies (anomaly_id, metric, dimension, series, grain, period_start, "
                        "period_end, periods, actual, expected, lower, upper, impact, impact_cost, direction, "
                        "severity, root_causes, first_seen, last_seen) VALUES (?, 'cost', 'tag:team', ?, 'day', ?, "
                        "?, 1, 100, 60, 50, 70, ?, ?, 'up', 'high', ?, ?, ?)",
                        [aid, team, T0, T1, impact, impact, json.dumps([{**cause, "impact": impact}]), T2, T2])


def _settings(db: Path) -> Settings:
    return Settings(db=db, llm=LlmSettings(prices=[LlmPrice(model="m1", kind="override", input_per_mtok=Decimal(1),
                                                           output_per_mtok=Decimal(2))]),
                    budgets=[BudgetSettings(name="alpha-budget", scope={"tag:team": "alpha"}, amount=Decimal(300)),
                             BudgetSettings(name="bravo-budget", scope={"tag:team": "bravo"}, amount=Decimal(100))])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("dash") / "d.duckdb"
    _store(db)
    with Store(db) as store:
        keys = {name: tokens.create(store.con, "viewer", team, name, T2)[1]
                for name, team in (("all", None), ("alpha", "alpha"))}
    with serve(db, _settings(db)) as url:
        yield url, keys


def client(server: tuple[str, dict[str, str]], who: str = "all") -> httpx.Client:
    url, keys = server
    c = httpx.Client(base_url=url, timeout=30)
    assert c.get("/login", params={"token": keys[who]}).status_code == 303  # the cookie is kept by the client
    return c


class Parsed(HTMLParser):
    """Tables (``data-table``: rows of {column: data-value}), their links, key figures and every href."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.cell_links: dict[str, list[dict[str, str]]] = {}
        self.kpis: dict[str, str] = {}
        self.hrefs: list[str] = []
        self._table: str | None = None
        self._col: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table], self.cell_links[self._table] = [], []
        elif tag == "tr" and self._table and self._col is None:
            self.tables[self._table].append({})
            self.cell_links[self._table].append({})
        elif tag == "td" and self._table:
            self._col = a["data-col"]
            self.tables[self._table][-1][self._col] = a["data-value"]
        elif tag == "div" and "data-kpi" in a:
            self.kpis[a["data-kpi"]] = a["data-value"]
        elif tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
            if self._table and self._col:
                self.cell_links[self._table][-1][self._col] = a["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "td":
            self._col = None

    def rows(self, table: str) -> list[dict[str, str]]:
        return [r for r in self.tables.get(table, []) if r]  # an empty table renders as "nothing to show"

    def by(self, table: str, key: str, value: str) -> dict[str, str]:
        return {r[key]: r[value] for r in self.rows(table)}


def page(c: httpx.Client, path: str, **params: str) -> Parsed:
    res = c.get(path, params=params) if params else c.get(path)  # params={} would drop the path's own query
    assert res.status_code == 200, res.text[:500]
    return Parsed(res.text)


def money(v: str) -> Decimal:
    return Decimal(v).quantize(Decimal("0.01"))


def test_every_page_answers_with_its_tables_in_under_a_second_once_computed(server) -> None:
    c = client(server)
    timings: dict[str, tuple[float, float]] = {}
    for path in PAGES:
        t0 = time.perf_counter()
        res = c.get(path, params={"window": "all"})
        cold = time.perf_counter() - t0
        assert res.status_code == 200, (path, res.text[:300])
        assert 'data-table="' in res.text and 'class="chart"' in res.text, path
        t0 = time.perf_counter()
        assert c.get(path, params={"window": "all"}).status_code == 200
        timings[path] = (cold, time.perf_counter() - t0)
    print("dashboard page timings (cold, cached) s:", {p: (round(a, 3), round(b, 3)) for p, (a, b) in timings.items()})
    assert all(cold < 5 for cold, _ in timings.values()), timings
    assert all(warm < 1 for _, warm in timings.values()), timings


def test_numbers_are_the_hand_computed_ones(server) -> None:
    c = client(server)
    o = page(c, "/", window="all")
    assert o.kpis["spend in the window"] == "225"
    assert {k: money(v) for k, v in o.by("by-layer", "layer", "cost").items()} == {
        "compute-gpu": Decimal("170.00"), "storage": Decimal("50.00"), "other": Decimal("5.00")}
    assert {k: money(v) for k, v in o.by("budgets", "budget", "spent").items()} == {
        "alpha-budget": Decimal("150.00"), "bravo-budget": Decimal("70.00")}
    g = page(c, "/gpu", window="all")
    assert {k: money(v) for k, v in g.by("teams", "label:team", "totalCost").items()} == {
        "alpha": Decimal("50.00"), "bravo": Decimal("25.00"), "__idle__": Decimal("25.00")}
    assert {k: round(float(v), 9) for k, v in g.by("teams", "label:team", "gpuEfficiency").items() if v} == {
        "alpha": 0.5, "bravo": 0.2}
    m = page(c, "/models", window="all")
    [row] = m.rows("models")
    assert (money(row["cost"]), Decimal(row["costPer1kTokens"])) == (Decimal("5.00"), Decimal("0.00125"))
    p = page(c, "/product", window="all")
    f = {r["feature"]: r for r in p.rows("product-features")}
    assert (money(f["f-alpha"]["cost"]), money(f["f-alpha"]["costPerOutcome"])) == (Decimal("4.00"), Decimal("1.00"))
    t = page(c, "/teams", window="all")
    att = {r["team"]: r for r in t.rows("attribution")}
    assert [money(att["alpha"][k]) for k in ("ledgerCost", "gpuCost", "llmCost")] == [Decimal(150), Decimal(50),
                                                                                       Decimal(4)]
    assert [money(att["bravo"][k]) for k in ("ledgerCost", "gpuCost", "llmCost")] == [Decimal(70), Decimal(25),
                                                                                       Decimal(1)]
    r = page(c, "/recommendations")
    assert r.kpis["achievable saving / month"] == "500"
    assert [x["finding_id"] for x in r.rows("findings")] == ["f0a1", "f0b2"]
    tr = page(c, "/training", window="all")
    runs = {x["run"]: x for x in tr.rows("runs")}
    assert (money(runs["run-alpha"]["failedCost"]), money(runs["run-bravo"]["succeededCost"])) == (Decimal(50),
                                                                                                   Decimal(25))


def test_csv_downloads_parse_and_match_the_page(server) -> None:
    c = client(server)
    for path, table in (("/", "by-layer"), ("/", "budgets"), ("/gpu", "teams"), ("/models", "models"),
                        ("/teams", "attribution"), ("/recommendations", "findings"), ("/finance", "centres")):
        shown = page(c, path, window="all").rows(table)
        base = "/overview" if path == "/" else path
        res = c.get(f"{base}/tables/{table}", params={"window": "all", "format": "csv"})
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv"), (path, table)
        assert "attachment" in res.headers["content-disposition"]
        got = list(csv.DictReader(io.StringIO(res.text)))
        assert got and [{k: r[k] for k in s} for r, s in zip(got, shown, strict=False)] == shown, (path, table)
    res = c.get("/rows/charges", params={"window": "all", "d.layer": "compute-gpu", "format": "csv"})
    assert sorted(money(r["EffectiveCost"]) for r in csv.DictReader(io.StringIO(res.text))) == [Decimal(70),
                                                                                                Decimal(100)]


@pytest.mark.parametrize(("params", "spend"), [
    ({}, "225"), ({"team": "alpha"}, "150"), ({"env": "prod"}, "170"), ({"team": "alpha", "env": "prod"}, "100"),
    ({"window": "2026-10-01..2026-10-01"}, "170"), ({"window": "2026-10-02..2026-10-02", "team": "alpha"}, "50")])
def test_filters_change_the_numbers(server, params: dict[str, str], spend: str) -> None:
    c = client(server)
    assert page(c, "/", **{"window": "all", **params}).kpis["spend in the window"] == spend, params


def test_filters_reach_every_source(server) -> None:
    c = client(server)
    g = page(c, "/gpu", window="all", team="alpha")
    assert {k: money(v) for k, v in g.by("teams", "label:team", "totalCost").items()} == {"alpha": Decimal(50)}
    m = page(c, "/models", window="all", team="bravo")
    assert [money(r["cost"]) for r in m.rows("models")] == [Decimal(1)]
    m = page(c, "/models", window="all", env="prod")
    assert [money(r["cost"]) for r in m.rows("models")] == [Decimal(4)]
    r = page(c, "/recommendations", team="bravo")
    assert [x["finding_id"] for x in r.rows("findings")] == ["f0b2"]


def test_links_carry_the_filters(server) -> None:
    """Every link keeps the filters, except a budget's and an anomaly's (their numbers are over their own scope and
    period, not the filters': the rows behind them must add up to them), on pages that show neither."""
    c = client(server)
    want = {"window": ["all"], "team": ["alpha"], "env": ["prod"]}
    for path in ("/gpu", "/models", "/training", "/engineering", "/product"):
        p = page(c, path, **{k: v[0] for k, v in want.items()})
        inner = [h for h in p.hrefs if h.startswith("/") and not h.startswith(("/static", "/login")) and h != path]
        assert len(inner) > 10  # (the page's own path alone is "clear filters")
        for href in inner:
            q = parse_qs(urlsplit(href).query)
            if href.startswith("/teams?") and "team" in q:  # a team's name links to that team
                q.pop("team")
                assert {k: q[k] for k in ("window", "env")} == {"window": ["all"], "env": ["prod"]}, href
                continue
            assert {k: q.get(k) for k in want} == want, href


def test_every_number_links_to_the_rows_behind_it(server) -> None:
    c = client(server)
    o = page(c, "/", window="all")
    link = {r.get("layer"): lnk["cost"] for r, lnk in zip(o.tables["by-layer"], o.cell_links["by-layer"],
                                                           strict=True) if r}["compute-gpu"]
    rows = page(c, link)
    assert rows.kpis["EffectiveCost"] == "170" and rows.kpis["charges"] == "2"
    assert {r["ResourceId"] for r in rows.rows("charges")} == {"r-alpha-gpu", "r-bravo-gpu"}
    g = page(c, "/gpu", window="all")
    link = {r.get("label:team"): lnk["totalCost"] for r, lnk in zip(g.tables["teams"], g.cell_links["teams"],
                                                                    strict=True) if r}["alpha"]
    assert page(c, link).kpis["GPU cost"] == "50"
    m = page(c, "/models", window="all")
    assert page(c, m.cell_links["models"][1]["cost"]).kpis["cost"] == "5"
    first = page(c, "/rows/charges", window="all", limit="1")
    second = page(c, "/rows/charges", window="all", limit="1", offset="1")
    assert [r["ResourceId"] for r in first.rows("charges") + second.rows("charges")] == ["r-alpha-gpu", "r-bravo-gpu"]
    assert any("offset=1" in h for h in first.hrefs)
    b = page(c, "/", window="all", env="prod")  # a budget's spend is over its own scope, whatever the filters
    spent = {r.get("budget"): lnk.get("spent") for r, lnk in zip(b.tables["budgets"], b.cell_links["budgets"],
                                                                  strict=True) if r}
    assert page(c, str(spent["alpha-budget"])).kpis["EffectiveCost"] == "150"
    f = page(c, "/recommendations/f0a1")
    assert f.kpis["achievable saving / month"] == "300"
    assert f.by("evidence", "evidence", "value") == {"gpu_hours": "10"}


def test_a_scoped_token_sees_its_team_and_only_totals_of_the_others(server) -> None:
    c = client(server, "alpha")
    o = page(c, "/", window="all")
    assert {k: money(v) for k, v in o.by("by-layer", "layer", "cost").items()} == {
        "compute-gpu": Decimal(100), "storage": Decimal(50), "(other teams)": Decimal(75)}
    seen = []
    for path in PAGES:
        res = c.get(path, params={"window": "all"})
        assert res.status_code == 200, path
        p = Parsed(res.text)
        seen += [h for h in p.hrefs if "/tables/" in h or h.startswith("/rows/")]
        assert "bravo" not in res.text.lower(), path
    for href in sorted(set(seen)):
        res = c.get(href)
        assert res.status_code == 200, href
        assert "bravo" not in res.text.lower(), href
    assert c.get("/recommendations/f0b2").status_code == 404
    assert c.get("/anomalies/a0b2").status_code == 404
    for kind, dim in (("charges", "d.tag:team"), ("workloads", "d.label:team"), ("requests", "d.team")):
        res = c.get(f"/rows/{kind}", params={"window": "all", dim: "bravo"})
        assert res.status_code == 200 and Parsed(res.text).rows(kind) == [], kind  # a filter is not a way in


def test_without_a_token_the_dashboard_asks_for_one_and_bad_filters_say_why(server) -> None:
    url, _ = server
    res = httpx.get(url + "/gpu")
    assert res.status_code == 401 and 'action="/login"' in res.text and 'value="/gpu"' in res.text
    c = client(server)
    res = c.get("/", params={"window": "last tuesday"})
    assert res.status_code == 400 and "unknown window" in res.text
    assert c.get("/rows/workloads", params={"d.colour": "red"}).status_code == 400
    assert c.get("/gpu/tables/nope").status_code == 404
    js = c.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and js.headers["content-encoding"] == "gzip" and len(js.content) > 1_000_000
