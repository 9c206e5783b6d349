"""The mlflow source and ``aifinops collect mlflow``.

Three ways in: the recorded answers of a real tracking server (tests/fixtures/mlflow, see SOURCE.txt) read by
``ingest mlflow``; the collector against a loopback HTTP server that replays those answers (retries, paging,
what it writes); and the collector against a real ``mlflow server`` started on loopback, with runs logged by the
MLflow client (the server starts in ~10 s; the module shares one).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from helpers import JsonHandler, serve_handler
from typer.testing import CliRunner

from aifinops.interfaces.cli import collect as collect_mod
from aifinops.interfaces.cli import collect_mlflow
from aifinops.interfaces.cli.app import app
from aifinops.interfaces.cli.collect import CollectError
from aifinops.sources.mlflow import MlflowSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIX = Path(__file__).parent / "fixtures" / "mlflow"
PAGES = [FIX / "runs_search_page_1.json", FIX / "runs_search_page_2.json"]
WEEKLY = {"weekly-1": "f09df4646839433b9d010f621a8b05f2", "weekly-2": "b00cdf06f6ca49cda9661dd70c4a0d0a",
          "weekly-3": "490f450923714653ac58747c6d1b0f2f", "weekly-4": "199e1403022e4269bfd61f785343a243"}
CHURN_A = "3498ba9c9082480da1b2a40c12789f51"
COLUMNS = "run_id, experiment, run_name, model, workload_run, status, start_ts, end_ts, metric, value, step, ts"


def live(store: Store, columns: str = COLUMNS) -> list[tuple]:
    return store.con.execute(f"SELECT {columns} FROM run_metrics WHERE NOT _superseded "
                             "ORDER BY start_ts, run_id, metric, step").fetchall()


def reasons(store: Store) -> list[tuple]:
    return store.con.execute('SELECT row_number, "column", reason FROM quarantine_errors ORDER BY 1, 2').fetchall()


def page(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIX / name).read_text())


# -- recorded answers ---------------------------------------------------------------------------------------


def test_recorded_pages_load_one_row_per_metric_point(store: Store) -> None:
    res = ingest(store, MlflowSource(), PAGES)
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 9, 9, 0)
    assert res.notes == ["runs_search_page_1.json: 1 of 4 run(s) logged no metric: nothing to load for them"]
    assert [(w["rule"], w["column"], w["rows"]) for w in res.warnings] == [("finite", "value", 2)]  # weekly-4's NaN
    rows = live(store)
    w1 = WEEKLY["weekly-1"]
    # without the experiments' names (a bare runs/search answer) the experiment is its id
    assert rows[:2] == [
        (w1, "1", "weekly-1", "fraud-detector", "fraud-retrain-1", "FINISHED", datetime(2026, 10, 1),
         datetime(2026, 10, 1, 4), "train_loss", 0.315, 2, datetime(2026, 10, 1, 3)),
        (w1, "1", "weekly-1", "fraud-detector", "fraud-retrain-1", "FINISHED", datetime(2026, 10, 1),
         datetime(2026, 10, 1, 4), "val_loss", 0.35, 2, datetime(2026, 10, 1, 3))]
    # churn-a has no model tag: its experiment names the model; no run tag: the run id is its run label
    assert rows[2] == (CHURN_A, "2", "churn-a", "2", CHURN_A, "FINISHED", datetime(2026, 10, 3),
                       datetime(2026, 10, 3, 2), "accuracy", 0.81, 0, datetime(2026, 10, 3, 1))
    assert [r[9] for r in rows if r[2] == "weekly-3" and r[8] == "val_loss"] == [0.345]
    nan = [r for r in rows if r[2] == "weekly-4"]
    assert [(r[5], r[10]) for r in nan] == [("FAILED", 1), ("FAILED", 1)] and all(r[9] != r[9] for r in nan)
    attrs = store.con.execute("SELECT attributes FROM run_metrics WHERE run_name = 'weekly-2' LIMIT 1").fetchone()[0]
    assert attrs == {"params.lr": "0.001", "params.epochs": "3", "tags.model": "fraud-detector",
                     "tags.run": "fraud-retrain-2", "tags.team": "risk", "tags.mlflow.runName": "weekly-2",
                     "user_id": "unknown", "lifecycle_stage": "active"}


def test_experiment_names_from_the_collectors_pages(store: Store, tmp_path: Path) -> None:
    doc = {**recorded("runs_search_page_1.json"), "experiments": recorded("experiments_search.json")["experiments"]}
    ingest(store, MlflowSource(), [page(tmp_path, "p1.json", doc)])
    got = {(r[0], r[1]) for r in live(store, "run_name, experiment, model")}
    assert got == {("weekly-1", "fraud-detector-retrain"), ("weekly-2", "fraud-detector-retrain")} | \
        {("churn-a", "churn-model")}
    assert {r[2] for r in live(store, "run_name, experiment, model") if r[0] == "churn-a"} == {"churn-model"}


def test_model_and_run_label_tags_are_options(store: Store) -> None:
    ingest(store, MlflowSource(model_tags="team,model", run_tag="nope"), [PAGES[0]])
    got = {(r[0], r[1], r[2]) for r in live(store, "run_name, model, workload_run")}
    assert got == {("weekly-1", "risk", WEEKLY["weekly-1"]), ("weekly-2", "risk", WEEKLY["weekly-2"]),
                   ("churn-a", "2", CHURN_A)}


def test_reingest_is_a_no_op_and_a_point_seen_again_supersedes(store: Store, tmp_path: Path) -> None:
    ingest(store, MlflowSource(), PAGES)
    again = ingest(store, MlflowSource(), [page(tmp_path, f"copy-{p.name}", p.read_text()) for p in PAGES])
    assert (again.status, again.duplicate_of) == ("unchanged", 1)
    # the next sync: weekly-3's val_loss history (get-history, recorded) in place of its latest point
    doc = recorded("runs_search_page_2.json")
    doc["runs"][0]["data"]["metrics"] = recorded("metrics_get_history_weekly-3_val_loss.json")["metrics"]
    res = ingest(store, MlflowSource(), [page(tmp_path, "history.json", doc)])
    assert (res.rows_loaded, res.rows_quarantined) == (5, 0)  # 3 val_loss steps + weekly-4's 2 points
    assert "3 row(s) of earlier batches observed again: superseded by this batch" in res.notes
    w3 = [(r[8], r[10], r[9]) for r in live(store) if r[2] == "weekly-3" and r[8] == "val_loss"]
    assert w3 == [("val_loss", 0, 0.49), ("val_loss", 1, 0.37), ("val_loss", 2, 0.345)]
    assert store.con.execute("SELECT count(*) FROM run_metrics WHERE _superseded").fetchone() == (3,)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ('{"runs": [{"info": {"run_id": "a"}', "not valid JSON (a truncated download?)"),
    ("[{}]", "not an MLflow runs/search answer: it starts with '[', not { (one answer per file)"),
    ('{"runs": {"info": {}}}', "runs is object, not an array"),
    ((FIX / "metrics_get_history_weekly-3_val_loss.json").read_text(), "no runs, keys metrics"),
    ((FIX / "runs_search_bad_filter.json").read_text(), "no runs, keys error_class, error_code, message, sqlstate"),
])
def test_files_that_are_not_runs_search_answers_are_refused(store: Store, tmp_path: Path, text: str,
                                                            message: str) -> None:
    with pytest.raises(IngestError) as err:
        ingest(store, MlflowSource(), [page(tmp_path, "bad.json", text)])
    assert message in str(err.value) and "bad.json" in str(err.value)
    assert store.con.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def test_an_empty_answer_is_an_empty_batch(store: Store, tmp_path: Path) -> None:
    """MLflow answers {} when no run matches (proto3 leaves out an empty list)."""
    res = ingest(store, MlflowSource(), [page(tmp_path, "none.json", "{}")])
    assert (res.status, res.rows_read) == ("empty", 0)


def test_bad_runs_and_points_are_quarantined_with_their_place(store: Store, tmp_path: Path) -> None:
    doc = recorded("runs_search_page_2.json")
    good, failed = doc["runs"]
    no_id = json.loads(json.dumps(good))
    del no_id["info"]["run_id"], no_id["info"]["run_uuid"]
    bad_points = json.loads(json.dumps(good))
    bad_points["info"]["run_id"] = "bad-points"
    bad_points["info"]["start_time"] = "yesterday"
    bad_points["data"]["metrics"] = [{"key": "val_loss", "value": "abc", "step": 0, "timestamp": 1},
                                     {"key": "val_loss", "value": 0.4, "step": 1.5},
                                     {"value": 0.3, "step": 2}, {"key": "val_loss", "step": 3}, 7]
    doc["runs"] = [good, "not a run", no_id, bad_points, failed]
    res = ingest(store, MlflowSource(), [page(tmp_path, "mixed.json", doc)])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (12, 4, 8)
    at = "runs[3].data.metrics"
    assert reasons(store) == [
        (3, "_line", "runs[1] is not a JSON object: \"not a run\""),
        (4, "run_id", "no run_id (runs[2].info.run_id)"),
        (5, "run_id", "no run_id (runs[2].info.run_id)"),
        (6, "start_ts", "not a time in milliseconds since the epoch: 'yesterday' (runs[3])"),
        (6, "value", f"not a number: 'abc' ({at}[0].value)"),
        (7, "start_ts", "not a time in milliseconds since the epoch: 'yesterday' (runs[3])"),
        (7, "step", f"step is not an integer: '1.5' ({at}[1].step)"),
        (8, "metric", f"no metric key ({at}[2].key)"),
        (8, "start_ts", "not a time in milliseconds since the epoch: 'yesterday' (runs[3])"),
        (9, "start_ts", "not a time in milliseconds since the epoch: 'yesterday' (runs[3])"),
        (9, "value", f"no value ({at}[3].value)"),
        (10, "metric", f"{at}[4] is not a JSON object: 7"),
        (10, "start_ts", "not a time in milliseconds since the epoch: 'yesterday' (runs[3])"),
    ]
    assert {r[0] for r in live(store, "run_name")} == {"weekly-3", "weekly-4"}


def test_options_are_checked() -> None:
    with pytest.raises(Exception, match="model_tags"):
        MlflowSource(model_tags={"a": 1})
    with pytest.raises(Exception, match="unknown"):
        MlflowSource(unknown=1)


# -- the collector against a loopback server replaying the recorded answers ------------------------------------


class Replay:
    """What the fake tracking server saw, and what it should do next."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_first = 1  # answer this many requests with 503 first
        self.repeat_token = False
        self.lock = threading.Lock()


@pytest.fixture
def replay() -> Iterator[tuple[str, Replay]]:
    seen = Replay()

    class Handler(JsonHandler):
        def _answer(self, method: str, body: dict[str, Any]) -> None:
            path = urlparse(self.path).path.removeprefix("/api/2.0/mlflow/")
            with seen.lock:
                seen.requests.append((method, path, body))
                fail = seen.fail_first > 0
                seen.fail_first -= 1
            if fail:
                return self._send(503, b"Service Unavailable\n", "text/plain")
            if path == "experiments/search":
                return self._send(200, (FIX / "experiments_search.json").read_bytes())
            if path == "runs/search":
                if body.get("filter"):
                    return self._send(400, (FIX / "runs_search_bad_filter.json").read_bytes())
                second = body.get("page_token") and not seen.repeat_token
                return self._send(200, PAGES[1 if second else 0].read_bytes())
            if path == "metrics/get-history" and body.get("run_id") == WEEKLY["weekly-3"]:
                if body.get("metric_key") == "val_loss":
                    return self._send(200, (FIX / "metrics_get_history_weekly-3_val_loss.json").read_bytes())
                return self._send(200, b"{}")  # not recorded: as MLflow answers for a metric without points
            return self._send(404, b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "No such endpoint"}')

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            self._answer("POST", json.loads(self.rfile.read(n) or b"{}"))

        def do_GET(self) -> None:
            self._answer("GET", {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()})

    with serve_handler(Handler) as server:
        yield f"http://127.0.0.1:{server.server_port}", seen


@pytest.fixture(autouse=True)
def _fast_and_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_mod, "BACKOFF", 0.01)  # the retries of collect.answer, which both collectors use
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    collect_mlflow.register(app)


def cli(db: Path, *args: str):
    return CliRunner().invoke(app, ["--db", str(db), "collect", "mlflow", *args])


def test_collector_pages_retries_and_loads_one_batch(replay: tuple[str, Replay], tmp_path: Path) -> None:
    url, seen = replay
    out = tmp_path / "answers"
    res = cli(tmp_path / "s.duckdb", "--url", url, "--experiment", "fraud-detector-retrain", "--experiment",
              "churn-model", "--page-size", "4", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "batch 1 (mlflow): 2 file(s), 9 rows read, 9 loaded, 0 quarantined" in res.output
    search = {"max_results": 4, "order_by": ["attributes.start_time ASC"], "run_view_type": "ACTIVE_ONLY",
              "experiment_ids": ["1", "2"]}
    assert seen.requests == [("POST", "experiments/search", {"max_results": 4})] * 2 + [  # the 503, retried
        ("POST", "runs/search", search),
        ("POST", "runs/search", {**search, "page_token": "eyJvZmZzZXQiOiA0fQ=="})]
    assert sorted(p.name for p in out.iterdir()) == ["mlflow-runs-0001.json", "mlflow-runs-0002.json"]
    first = json.loads((out / "mlflow-runs-0001.json").read_text())
    assert first["runs"] == recorded("runs_search_page_1.json")["runs"]
    assert [e["name"] for e in first["experiments"]] == ["fraud-detector-retrain", "churn-model"]
    with Store(tmp_path / "s.duckdb", read_only=True) as store:
        assert {r[0] for r in live(store, "experiment")} == {"fraud-detector-retrain", "churn-model"}
        assert len(live(store)) == 9
    again = cli(tmp_path / "s.duckdb", "--url", url, "--experiment", "fraud-detector-retrain", "--experiment",
                "churn-model", "--page-size", "4")
    assert again.exit_code == 0 and "unchanged" in again.output  # the same answers are the same batch


def test_history_replaces_the_latest_points(replay: tuple[str, Replay]) -> None:
    url, seen = replay
    seen.fail_first = 0
    with httpx.Client() as client:
        api = collect_mlflow.Api(url, client, retries=0)
        run = recorded("runs_search_page_2.json")["runs"][0]
        points = collect_mlflow.history(api, run)
    assert [(p["step"], p["value"]) for p in points] == [(0, 0.49), (1, 0.37), (2, 0.345)]
    asked = {"run_id": WEEKLY["weekly-3"], "max_results": "25000"}
    assert seen.requests == [("GET", "metrics/get-history", {**asked, "metric_key": key})
                             for key in ("train_loss", "val_loss")]


def test_collector_errors_are_one_line(replay: tuple[str, Replay], tmp_path: Path) -> None:
    url, seen = replay
    seen.fail_first = 0
    res = cli(tmp_path / "s.duckdb", "--url", url, "--filter", "metrics.val_loss >>> 1")
    assert res.exit_code == 1
    assert "refused the request (HTTP 400): INVALID_PARAMETER_VALUE: Invalid comparator '>>>'" in res.output
    res = cli(tmp_path / "s.duckdb", "--url", url, "--experiment", "nope")
    assert res.exit_code == 1 and "no experiment named 'nope' on the server (known: Default, churn-model" in res.output
    seen.repeat_token = True
    res = cli(tmp_path / "s.duckdb", "--url", url, "--page-size", "4")
    assert res.exit_code == 1 and "the server repeated page token 'eyJvZmZzZXQiOiA0fQ=='" in res.output
    seen.fail_first = 100
    res = cli(tmp_path / "s.duckdb", "--url", url, "--retries", "2")
    assert res.exit_code == 1
    assert "experiments/search: no answer after 3 attempt(s): HTTP 503 Service Unavailable" in res.output
    assert not (tmp_path / "s.duckdb").exists()  # nothing was loaded, the store never opened
    with pytest.raises(CollectError, match="--page-size must be positive"):
        collect_mlflow.collect(url, tmp_path / "o", page_size=0)


# -- the collector against a real MLflow tracking server -----------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a free loopback port with a fresh SQLite store, for this module."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        pytest.fail("mlflow-skinny is not installed: pip install -e '.[test]'")
    home = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home}/mlflow.db", "--default-artifact-root", str(home / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


T0_MS = 1_790_812_800_000  # 2026-10-01T00:00:00Z
HOUR_MS = 3_600_000


def log_retrains(url: str, experiment: str, losses: list[list[float]]) -> list[str]:
    """Weekly retrains of one model, as a training script logs them: tags, params, val_loss per step."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    exp = client.create_experiment(experiment)
    ids = []
    for i, values in enumerate(losses, start=1):
        start = T0_MS + (i - 1) * 7 * 24 * HOUR_MS
        run = client.create_run(exp, start_time=start, run_name=f"retrain-{i}",
                                tags={"model": "ranker", "run": f"ranker-train-{i}"})
        client.log_param(run.info.run_id, "lr", "3e-4")
        for step, v in enumerate(values):
            client.log_metric(run.info.run_id, "val_loss", v, timestamp=start + (step + 1) * HOUR_MS, step=step)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=start + (len(values) + 1) * HOUR_MS)
        ids.append(run.info.run_id)
    return ids


def test_real_server_full_history_in_pages(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    losses = [[0.6, 0.5, 0.41], [0.58, 0.45, 0.40], [0.55, 0.44, 0.405]]
    ids = log_retrains(mlflow_server, "ranker-weekly", losses)
    db, out = tmp_path / "s.duckdb", tmp_path / "answers"
    res = cli(db, "--url", mlflow_server, "--experiment", "ranker-weekly", "--page-size", "2", "--history",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "batch 1 (mlflow): 2 file(s), 9 rows read, 9 loaded, 0 quarantined" in res.output
    with Store(db, read_only=True) as store:
        rows = live(store)
    expected = [(rid, "ranker-weekly", f"retrain-{i}", "ranker", f"ranker-train-{i}", "FINISHED",
                 datetime(2026, 10, 1 + 7 * (i - 1)), datetime(2026, 10, 1 + 7 * (i - 1), 4), "val_loss", v, step,
                 datetime(2026, 10, 1 + 7 * (i - 1), step + 1))
                for i, (rid, values) in enumerate(zip(ids, losses, strict=True), start=1)
                for step, v in enumerate(values)]
    assert sorted(rows) == sorted(expected)
    # what the MLflow client itself reads back is what was loaded
    client = MlflowClient(mlflow_server)
    for rid in ids:
        mine = [(r[10], r[9]) for r in rows if r[0] == rid]
        theirs = [(m.step, m.value) for m in client.get_metric_history(rid, "val_loss")]
        assert sorted(mine) == sorted(theirs)


def test_real_server_a_new_point_supersedes_nothing_and_a_resync_is_a_no_op(mlflow_server: str,
                                                                             tmp_path: Path) -> None:
    from mlflow import MlflowClient

    [rid] = log_retrains(mlflow_server, "ranker-daily", [[0.7, 0.6]])
    db = tmp_path / "s.duckdb"
    args = ("--url", mlflow_server, "--experiment", "ranker-daily", "--history")
    assert cli(db, *args).exit_code == 0
    again = cli(db, *args)
    assert again.exit_code == 0 and "unchanged" in again.output, again.output
    # the run logs one more step; the next sync loads it and supersedes the points it saw before
    MlflowClient(mlflow_server).log_metric(rid, "val_loss", 0.55, timestamp=T0_MS + 3 * HOUR_MS, step=2)
    res = cli(db, *args)
    assert res.exit_code == 0, res.output
    assert "3 rows read, 3 loaded" in res.output
    assert "2 row(s) of earlier batches observed again: superseded by this batch" in res.output
    with Store(db, read_only=True) as store:
        assert [(r[10], r[9]) for r in live(store)] == [(0, 0.7), (1, 0.6), (2, 0.55)]
    # without --history only each metric's latest point comes back: the same observation, superseding one row
    res = cli(db, "--url", mlflow_server, "--experiment", "ranker-daily")
    assert res.exit_code == 0 and "1 row(s) of earlier batches observed again" in res.output, res.output


def test_real_server_refuses_a_bad_filter(mlflow_server: str, tmp_path: Path) -> None:
    res = cli(tmp_path / "s.duckdb", "--url", mlflow_server, "--filter", "metrics.val_loss >>> 1")
    assert res.exit_code == 1
    assert "refused the request (HTTP 400): INVALID_PARAMETER_VALUE" in res.output
