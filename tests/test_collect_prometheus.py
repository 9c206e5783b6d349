"""``aifinops collect prometheus`` against a real HTTP server on loopback serving recorded query_range answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from helpers import JsonHandler, serve_handler
from typer.testing import CliRunner

from aifinops.interfaces.cli import collect as collect_mod
from aifinops.interfaces.cli.app import app
from aifinops.sources.dcgm import METRICS
from aifinops.store.connection import Store

FIX = Path(__file__).parent / "fixtures" / "prometheus"
T = 1795168800  # 2026-11-20T10:00:00Z
#: (metric, chunk start) -> recorded answer; any other query gets the recorded empty result
ANSWERS = {("DCGM_FI_DEV_GPU_UTIL", T): 1, ("DCGM_FI_DEV_GPU_UTIL", T + 30): 2, ("DCGM_FI_DEV_GPU_UTIL", T + 60): 3,
           ("DCGM_FI_DEV_POWER_USAGE", T): 4}


class Prometheus:
    """What the fake server saw, and what it should do next."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.fail_first = 1  # answer this many requests with 503 first
        self.lock = threading.Lock()


@pytest.fixture
def prom() -> Iterator[tuple[str, Prometheus]]:
    seen = Prometheus()

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            with seen.lock:
                seen.requests.append((url.path, params))
                fail = seen.fail_first > 0
                seen.fail_first -= 1
            if fail:
                self._send(503, b"Service Unavailable\n", "text/plain")
                return
            query = params.get("query", "")
            if "bad" in query:
                self._send(400, (FIX / "prometheus.query_range_bad_data.json").read_bytes())
                return
            metric = query.split("{", 1)[0]
            n = ANSWERS.get((metric, int(float(params["start"]))))
            name = f"prometheus.query_range_{n}.json" if n else "prometheus.query_range_empty.json"
            self._send(200, (FIX / name).read_bytes())

    with serve_handler(Handler) as server:
        yield f"http://127.0.0.1:{server.server_port}", seen


@pytest.fixture(autouse=True)
def _fast_and_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_mod, "BACKOFF", 0.01)
    collect_mod.register(app)


def run(db: Path, *args: str):
    return CliRunner().invoke(app, ["--db", str(db), "collect", "prometheus", *args])


ARGS = ("--end", "2026-11-20T10:01:00Z", "--window", "1m", "--step", "15s", "--chunk", "30s")


def test_chunks_retry_and_load(prom: tuple[str, Prometheus], tmp_path: Path) -> None:
    url, seen = prom
    out = tmp_path / "responses"
    res = run(tmp_path / "s.duckdb", "--url", url, *ARGS, "--out", str(out), "--match", 'Hostname=~"node-.*"')
    assert res.exit_code == 0, res.output
    assert "batch 1 (dcgm): 3 file(s), 5 rows read, 5 loaded, 0 quarantined" in res.output
    chunks = [(T, T + 15), (T + 30, T + 45), (T + 60, T + 60)]
    expected = [("/api/v1/query_range", {"query": f'{m}{{Hostname=~"node-.*"}}', "start": f"{s}.000",
                                         "end": f"{e}.000", "step": "15s"})
                for s, e in chunks for m in METRICS]
    assert seen.requests == [expected[0], *expected]  # the first answer was a 503, retried
    assert sorted(p.name for p in out.iterdir()) == [
        "dcgm-20261120T100000Z-30s.json", "dcgm-20261120T100030Z-30s.json", "dcgm-20261120T100100Z-15s.json"]
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        rows = store.rows("SELECT ts, gpu_util, power_w, pod, namespace, _row FROM gpu_samples ORDER BY ts")
    assert [tuple(r.values()) for r in rows] == [
        (datetime(2026, 11, 20, 10, 0, 0), 0.87, 612.5, "train-llm-0", "ml-train", 1),
        (datetime(2026, 11, 20, 10, 0, 15), 0.91, 640.25, "train-llm-0", "ml-train", 2),
        (datetime(2026, 11, 20, 10, 0, 30), 0.79, None, "train-llm-0", "ml-train", 1),
        (datetime(2026, 11, 20, 10, 0, 45), 0.85, None, "train-llm-0", "ml-train", 2),
        (datetime(2026, 11, 20, 10, 1, 0), 0.88, None, "train-llm-0", "ml-train", 1)]
    saved = json.loads((out / "dcgm-20261120T100000Z-30s.json").read_text())
    assert [r["metric"]["__name__"] for r in saved["data"]["result"]] == ["DCGM_FI_DEV_GPU_UTIL",
                                                                          "DCGM_FI_DEV_POWER_USAGE"]


def test_bad_query_stops_with_prometheus_message(prom: tuple[str, Prometheus], tmp_path: Path) -> None:
    url, seen = prom
    seen.fail_first = 0
    res = run(tmp_path / "s.duckdb", "--url", url, *ARGS, "--match", "bad")
    assert res.exit_code == 1
    assert "refused 'DCGM_FI_PROF_SM_ACTIVE{bad}' (HTTP 400): bad_data: invalid parameter" in res.output
    assert len(seen.requests) == 1  # a 4xx is not retried
    assert not (tmp_path / "s.duckdb").exists()  # refused before the store is opened


def test_persistent_5xx_gives_up_after_the_retries(prom: tuple[str, Prometheus], tmp_path: Path) -> None:
    url, seen = prom
    seen.fail_first = 100
    res = run(tmp_path / "s.duckdb", "--url", url, *ARGS, "--retries", "2")
    assert res.exit_code == 1
    assert "no answer after 3 attempt(s) for 'DCGM_FI_PROF_SM_ACTIVE': HTTP 503 Service Unavailable" in res.output
    assert len(seen.requests) == 3


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run(tmp_path / "s.duckdb", "--url", f"http://127.0.0.1:{port}", *ARGS, "--retries", "1", "--timeout", "2")
    assert res.exit_code == 1
    assert "no answer after 2 attempt(s)" in res.output and "ConnectError" in res.output


def test_chunking_rules() -> None:
    assert list(collect_mod.chunks(0, 3600, 15, 1800)) == [(0, 1785), (1800, 3585), (3600, 3600)]
    assert list(collect_mod.chunks(0, 60, 15, 3600)) == [(0, 60)]
    assert collect_mod.parse_duration("1h30m") == 5400
    assert collect_mod.parse_duration("7d") == 604800
    with pytest.raises(collect_mod.CollectError, match="11,000"):
        list(collect_mod.chunks(0, 604800, 15, 604800))
    with pytest.raises(collect_mod.CollectError, match="not a duration"):
        collect_mod.parse_duration("7 days")
    assert collect_mod.selector("M", '{Hostname="a"}') == 'M{Hostname="a"}'
    assert collect_mod.selector("M", None) == "M"
