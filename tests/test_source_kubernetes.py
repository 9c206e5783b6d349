"""The Kubernetes source: recorded ``kubectl get pods -A -o json`` output, bad pods to quarantine, a newer
snapshot replacing older rows, and live listing through the official client against a loopback server."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from aifinops.sources.base import Source, SourceError
from aifinops.sources.kubernetes import LIVE, KubernetesSource, parse_quantity
from aifinops.store.connection import Store
from aifinops.store.ingest import BatchResult, IngestError, ingest

PODS = Path(__file__).parent / "fixtures" / "kubernetes" / "pods.json"
COLS = ("name", "namespace", "owner_kind", "owner_name", "node", "start_ts", "end_ts", "phase", "gpu_resource",
        "gpu_count", "gpu_share", "cpu_request", "memory_request_mib", "exit_code")


def load(store: Store, source: Source, paths: list[Any]) -> BatchResult:
    """Ingest as the CLI does: the engine asks the source which files the paths name (``Source.files``)."""
    return ingest(store, source, paths)


def rows(store: Store) -> list[tuple[Any, ...]]:
    cols = ", ".join(COLS)
    return store.con.execute(f"SELECT {cols} FROM workloads ORDER BY _batch_id, _row").fetchall()


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def pods() -> dict[str, Any]:
    return json.loads(PODS.read_text())


EXPECTED = [
    ("train-llama-8b-0-x7k2p", "ml-training", "Job", "train-llama-8b", "gpu-node-01", datetime(2026, 11, 20, 8),
     datetime(2026, 11, 20, 14, 30, 7), "Succeeded", "nvidia.com/gpu", 8.0, 8.0, 48.1, 480 * 1024 + 128.0, 0),
    ("vllm-llama-7d9f8b6c5d-q2w4e", "inference", "ReplicaSet", "vllm-llama-7d9f8b6c5d", "gpu-node-02",
     datetime(2026, 11, 21, 9), None, "Running", "nvidia.com/gpu", 1.0, 1.0, 8.0, 65536.0, None),
    ("jupyter-alice", "notebooks", None, None, "gpu-node-03", datetime(2026, 11, 21, 10, 15), None, "Running",
     "nvidia.com/mig-1g.10gb", 1.0, 1 / 7, 0.5, 4096.0, None),
    ("embed-worker-6c5b4a3f2e-r5t6y", "inference", "ReplicaSet", "embed-worker-6c5b4a3f2e", "gpu-node-04",
     datetime(2026, 11, 21, 7, 30), None, "Running", "nvidia.com/gpu.shared", 1.0, 0.25, 2.0, 512e6 / 2**20, None),
    ("etl-nightly-29876543-abcde", "data", "Job", "etl-nightly-29876543", "cpu-node-07", datetime(2026, 11, 21, 2),
     None, "Running", None, 0.0, 0.0, 0.25, 256.0, None),
    ("finetune-mistral-0-p9o8i", "ml-training", "Job", "finetune-mistral", "gpu-node-02", datetime(2026, 11, 21, 3),
     datetime(2026, 11, 21, 5, 42, 17), "Failed", "nvidia.com/gpu", 2.0, 2.0, 16.0, 131072.0, 137),
    ("train-vit-0-zz9yx", "ml-training", "Job", "train-vit", None, None, None, "Pending", "nvidia.com/gpu", 4.0, 4.0,
     32.0, 262144.0, None),
    ("rag-eval-5f4e3d2c1b-m3n4b", "eval", "ReplicaSet", "rag-eval-5f4e3d2c1b", "gpu-node-05",
     datetime(2026, 11, 21, 6), None, "Running", "gpu-fraction", 1.0, 0.5, 4.0, 16384.0, None),
]


def test_recorded_pods_parse_exactly(store):
    result = load(store, KubernetesSource(), [PODS])
    assert (result.status, result.rows_read, result.rows_loaded, result.rows_quarantined) == ("loaded", 8, 8, 0)
    assert rows(store) == EXPECTED
    ids, kinds, team, hub = zip(*store.con.execute(
        "SELECT workload_id, source || '/' || kind, labels['team'], annotations['hub.jupyter.org/username'] "
        "FROM workloads ORDER BY _row").fetchall(), strict=True)
    assert ids[0] == "5f0c2a1e-8b1d-4c7e-9a3f-1d2e3f4a5b01"
    assert set(kinds) == {"kubernetes/pod"}
    assert team == ("research", "search", None, "search", "data", "research", "vision", "search")
    assert hub[2] == "alice"


def test_options_change_the_sharing_rule(store, tmp_path):
    doc = pods()
    del doc["items"][2]["spec"]["nodeSelector"]  # MIG pod without its GPU model: the node tells it
    source = KubernetesSource(timeslice_replicas=8, gpu_models={"gpu-node-03": "NVIDIA A30"},
                              fraction_annotations=[])
    load(store, source, [write(tmp_path / "p.json", doc)])
    shares = [r[COLS.index("gpu_share")] for r in rows(store)]
    assert shares[2:4] == [1 / 4, 1 / 8]  # A30: 4 slices; 8 replicas per shared GPU
    assert rows(store)[7][COLS.index("gpu_resource")] is None  # the fraction annotation is not read


def test_bad_pods_are_quarantined_with_row_and_reason(store, tmp_path):
    doc = pods()
    items = doc["items"]
    del items[1]["metadata"]["uid"]
    items[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = "2026-11-20T07:00:00Z"
    items[0]["status"]["containerStatuses"][1]["state"]["terminated"]["finishedAt"] = "2026-11-20T07:00:00Z"
    items[5]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "-1"
    items[5]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "-1"
    items[4]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    items[3]["status"]["startTime"] = "yesterday"
    items[7]["metadata"]["annotations"]["gpu-fraction"] = "1.5"
    result = load(store, KubernetesSource(), [write(tmp_path / "bad.json", doc)])
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (8, 2, 6)
    got = store.con.execute(
        "SELECT row_number, list_transform(errors, lambda e: e.\"column\" || ': ' || e.reason) FROM quarantine "
        "ORDER BY row_number").fetchall()
    assert got == [
        (1, ["end_ts: ends 2026-11-20T07:00:00Z before it starts 2026-11-20T08:00:00Z"]),
        (2, ["workload_id: a pod without metadata.uid cannot be identified"]),
        (4, ["start_ts: not an RFC 3339 time: yesterday"]),
        (5, ["resources: cpu of container 'etl': not a Kubernetes quantity: 'lots'"]),
        (6, ["resources: nvidia.com/gpu of container 'trainer' is negative: '-1'"]),
        (8, ["resources: annotation gpu-fraction is not a GPU fraction in (0, 1]: '1.5'"]),
    ]
    raw = store.con.execute("SELECT raw['name'] FROM quarantine WHERE row_number = 2").fetchone()
    assert raw == ("vllm-llama-7d9f8b6c5d-q2w4e",)


def test_a_newer_snapshot_replaces_the_pods_it_holds(store, tmp_path):
    source = KubernetesSource()
    load(store, source, [PODS])
    later = pods()
    vit, vllm = copy.deepcopy(later["items"][6]), copy.deepcopy(later["items"][1])
    vit["spec"]["nodeName"] = "gpu-node-06"
    vit["status"].update(phase="Running", startTime="2026-11-21T12:10:00Z")
    vllm["status"]["phase"] = "Succeeded"
    vllm["status"]["containerStatuses"][0]["state"] = {"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": "2026-11-21T09:00:41Z",
        "finishedAt": "2026-11-21T13:00:00Z"}}
    second = load(store, source, [write(tmp_path / "t2.json", {**later, "items": [vit, vllm]})])
    assert (second.rows_loaded, second.rows_replaced, second.replaced_batches) == (2, 2, [1])
    statuses = store.con.execute("SELECT batch_id, status FROM batches ORDER BY 1").fetchall()
    assert statuses == [(1, "partly replaced"), (2, "loaded")]
    by_name = {r[0]: r for r in rows(store)}
    assert len(by_name) == 8 and store.con.execute("SELECT count(*) FROM workloads").fetchone() == (8,)
    assert by_name["train-vit-0-zz9yx"][4:8] == ("gpu-node-06", datetime(2026, 11, 21, 12, 10), None, "Running")
    assert by_name["vllm-llama-7d9f8b6c5d-q2w4e"][6:8] == (datetime(2026, 11, 21, 13), "Succeeded")

    third = load(store, source, [write(tmp_path / "t3.json", {**later, "items": later["items"]})])
    assert (third.rows_replaced, third.replaced_batches) == (8, [1, 2])
    statuses = store.con.execute("SELECT batch_id, status FROM batches ORDER BY 1").fetchall()
    assert statuses == [(1, "replaced"), (2, "replaced"), (3, "loaded")]
    assert rows(store) == EXPECTED


def test_not_a_pod_list_is_refused(store, tmp_path):
    with pytest.raises(IngestError, match="not the output of kubectl get pods"):
        load(store, KubernetesSource(), [write(tmp_path / "x.json", {"kind": "NodeList", "items": []})])
    (tmp_path / "broken.json").write_text('{"kind": "List", "items": [')
    with pytest.raises(IngestError, match="not a JSON file"):
        load(store, KubernetesSource(), [tmp_path / "broken.json"])
    assert store.con.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def test_quantities():
    assert [float(parse_quantity(q)) for q in ("500m", "2", "1.5", "16Gi", "512M", "1e3", "128974848", "100k")] == [
        0.5, 2.0, 1.5, 16 * 2**30, 512e6, 1000.0, 128974848.0, 1e5]
    with pytest.raises(ValueError):
        parse_quantity("12 cores")


# -- live mode: the official client against a loopback API server ---------------------------------

class _Api(BaseHTTPRequestHandler):
    pages: ClassVar[list[dict[str, Any]]] = []  # set per test by the fixture's subclass
    seen: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        type(self).seen.append({"path": [url.path], **query})
        token = query.get("continue", [""])[0]
        page = int(token.removeprefix("page-") or 0) if url.path == "/api/v1/pods" else -1
        if not 0 <= page < len(self.pages):
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(self.pages[page]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[tuple[str, type[_Api]]]:
    items = pods()["items"]
    handler = type("Api", (_Api,), {"seen": [], "pages": [
        {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5001", "continue": "page-1",
                                                             "remainingItemCount": 3}, "items": items[:5]},
        {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5001"}, "items": items[5:]},
    ]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({  # JSON is YAML
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "lab", "cluster": {"server": server}},
                     {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "reader", "user": {"token": "test-token"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "reader"}},
                     {"name": "other", "context": {"cluster": "nowhere", "user": "reader"}}],
    }))
    return path


def test_live_listing_pages_through_the_official_client(store, tmp_path, api_server):
    pytest.importorskip("kubernetes")
    server, handler = api_server
    source = KubernetesSource(kubeconfig=str(kubeconfig(tmp_path / "config", server)), context="lab")
    result = load(store, source, [LIVE])
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("loaded", 8, 0)
    assert [q["path"] + q.get("continue", []) for q in handler.seen] == [["/api/v1/pods"], ["/api/v1/pods", "page-1"]]
    assert all(q["limit"] == ["500"] for q in handler.seen)
    assert rows(store) == EXPECTED  # one parser for files and the API: the same rows
    assert store.con.execute("SELECT path FROM batch_files").fetchall() == [("live:lab",)]


def test_live_mode_errors(store, tmp_path, api_server):
    pytest.importorskip("kubernetes")
    with pytest.raises(IngestError, match="needs the kubeconfig option"):
        load(store, KubernetesSource(), [LIVE])
    with pytest.raises(IngestError, match="cannot load the kubeconfig"):
        load(store, KubernetesSource(kubeconfig=str(tmp_path / "missing")), [LIVE])
    server, _ = api_server
    config = kubeconfig(tmp_path / "config", server + "/no-such-prefix")
    with pytest.raises(IngestError, match="listing pods with"):
        load(store, KubernetesSource(kubeconfig=str(config), context="lab"), [LIVE])
    with pytest.raises(SourceError, match="timeslice_replicas"):
        KubernetesSource(timeslice_replicas=0)


def test_options_as_the_cli_passes_them():
    """``--option KEY=VALUE`` gives text; lists and maps are spelled with commas."""
    opts = KubernetesSource(timeslice_replicas="8", fraction_annotations="gpu-fraction, example.com/frac",
                            gpu_models="gpu-node-03=NVIDIA A30,gpu-node-04=NVIDIA-H100-80GB-HBM3").options
    assert opts.timeslice_replicas == 8
    assert opts.fraction_annotations == ["gpu-fraction", "example.com/frac"]
    assert opts.gpu_models == {"gpu-node-03": "NVIDIA A30", "gpu-node-04": "NVIDIA-H100-80GB-HBM3"}
    with pytest.raises(SourceError, match="gpu_models"):
        KubernetesSource(gpu_models="just-a-node")
