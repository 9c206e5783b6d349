"""Ingest over HTTP: uploads of any registered source as one batch (admin only), the same content again is
unchanged, bad files answer 400 naming the upload; an OpenTelemetry SDK exporting to the server's
``/v1/traces`` (with an admin token) lands in the store through the receiver's flusher; cached answers do not
outlive a batch; ``/metrics`` parses as Prometheus text.

Uploads: the bundled FOCUS 1.0 sample (1,000 rows, EffectiveCost $14.976514185860), a dcgm-exporter scrape
(4 GPU rows), the SDK-written OTLP JSON lines (5 LLM requests).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import build, settings
from api_server import serve
from prometheus_client.parser import text_string_to_metric_families
from test_receiver_otlp import export, sdk_spans

from aifinops.demo import bundled_sample

FIX = Path(__file__).parent / "fixtures"


class Api:
    def __init__(self, url: str, client: httpx.Client, keys: dict[str, str]) -> None:
        self.url, self.client, self.keys = url, client, keys

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def upload(self, kind: str, *files: tuple[str, bytes], who: str = "admin", **params: Any) -> httpx.Response:
        return self.client.post(f"/api/v1/ingest/{kind}", params=params, headers=self.auth(who),
                                files=[("file", (name, body)) for name, body in files])

    def get(self, path: str, who: str = "admin", **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.auth(who))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    db = tmp_path_factory.mktemp("ingest") / "s.duckdb"
    keys = build(db)
    with serve(db, settings(db)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Api(url, client, keys)


def total_cost(api: Api) -> tuple[float, str]:
    res = api.get("/api/v1/costs", window="all", by="ProviderName")
    return sum(r["cost"] for r in res.json()["rows"]), res.headers["x-cache"]


def test_a_focus_upload_is_one_batch_and_cached_answers_follow_it(api: Api) -> None:
    before, _ = total_cost(api)
    assert before == 315.0 and total_cost(api) == (315.0, "hit")
    sample = bundled_sample()
    res = api.upload("focus", (sample.name, sample.read_bytes()))
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["status"], body["rows_read"], body["rows_loaded"], body["rows_quarantined"]) == (
        "loaded", 1000, 1000, 0)
    assert body["money"]["EffectiveCost"] == {"read": 14.976514, "loaded": 14.976514, "quarantined": 0.0}
    assert body["files"][0]["name"] == "focus_sample.csv.gz"
    after, cache = total_cost(api)
    assert cache == "miss" and after == pytest.approx(315 + 14.976514, abs=1e-5)
    again = api.upload("focus", ("renamed.csv.gz", sample.read_bytes())).json()
    assert (again["status"], again["duplicate_of"]) == ("unchanged", body["batch_id"])
    batches = api.get("/api/v1/batches", source_kind="focus").json()["rows"]
    assert batches[0]["batch_id"] == body["batch_id"] and batches[0]["rows_loaded"] == 1000


def test_other_sources_upload_with_their_options(api: Api) -> None:
    scrape = (FIX / "dcgm" / "scrape" / "node-a.prom").read_bytes()
    res = api.upload("dcgm", ("node-a.prom", scrape), option=["scrape_time=2026-11-20T10:00:00"]).json()
    assert (res["status"], res["rows_loaded"]) == ("loaded", 4)
    assert any("stamped 2026-11-20T10:00:00Z" in n for n in res["notes"])
    res = api.upload("otel", ("genai.jsonl", (FIX / "otel" / "genai.jsonl").read_bytes())).json()
    assert (res["status"], res["rows_loaded"]) == ("loaded", 5)


@pytest.mark.parametrize(("kind", "files", "who", "params", "status", "says"), [
    ("focus", [("bill.csv", b"not,a\nfocus,file\n")], "admin", {}, 400, "bill.csv: "),
    ("focus", [("bill.txt", b"x")], "admin", {}, 400, "not a .csv, .csv.gz or .parquet file"),
    ("colour", [("x.csv", b"a\n1\n")], "admin", {}, 422, "focus"),
    ("focus", [("x.csv", b"a\n1\n")], "all", {}, 403, "admin role"),
    ("focus", [("x.csv", b"a\n1\n")], "alpha", {}, 403, "admin role"),
    ("dcgm", [("x.prom", b"")], "admin", {"option": "scrape_time"}, 400, "expected KEY=VALUE"),
    ("dcgm", [("x.prom", b"")], "admin", {"option": "colour=red"}, 400, "colour"),
])
def test_bad_uploads_say_why(api: Api, kind: str, files: list[tuple[str, bytes]], who: str,
                             params: dict[str, str], status: int, says: str) -> None:
    res = api.upload(kind, *files, who=who, **params)
    assert res.status_code == status, res.text
    assert says in str(res.json()["detail"]) and "aifinops-upload" not in str(res.json()["detail"])


def test_an_otel_sdk_exports_to_the_server(api: Api) -> None:
    traces = f"{api.url}/v1/traces"
    assert export(traces, sdk_spans(2)).name == "FAILURE"  # no token
    assert export(traces, sdk_spans(2), headers=api.auth("all")).name == "FAILURE"  # a viewer may not ingest
    assert httpx.post(traces, content=b"{}", headers={**api.auth("admin"), "content-type": "text/plain"}
                      ).status_code == 415
    before = {b["batch_id"] for b in api.get("/api/v1/batches", source_kind="otel").json()["rows"]}
    assert export(traces, sdk_spans(3, first=100), headers=api.auth("admin")).name == "SUCCESS"
    deadline = time.monotonic() + 20  # the flusher runs every 5 s
    new: list[dict[str, Any]] = []
    while not new and time.monotonic() < deadline:
        time.sleep(0.25)
        new = [b for b in api.get("/api/v1/batches", source_kind="otel").json()["rows"]
               if b["batch_id"] not in before]
    assert new and (new[0]["rows_read"], new[0]["rows_loaded"]) == (3, 3)
    units = api.get("/api/v1/unit-costs", window="all", by="service")
    assert units.headers["x-cache"] == "miss"  # the flush moved the data version
    assert {r["service"]: r["requests"] for r in units.json()["rows"]}.get("chat-api") == 3


def test_metrics_parse_as_prometheus_text(api: Api) -> None:
    res = httpx.get(f"{api.url}/metrics", timeout=60)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(res.text)}
    assert "aifinops_cost_usd" in names
    assert httpx.get(f"{api.url}/metrics", headers={"Authorization": "Bearer afo_x_y"}).status_code == 401
