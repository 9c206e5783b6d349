"""``aifinops receive otlp``: the real receiver in a subprocess on a free loopback port, fed by the OpenTelemetry
SDK's own ``OTLPSpanExporter`` (and raw httpx for OTLP/JSON and bad input).

What is checked: rows land with their columns; an acknowledged export survives SIGTERM and SIGKILL; the SDK's
retries and repeated deliveries count once; the store is free between flushes (and a busy store only delays a
flush); bad requests get 400/405/413/415 and the receiver keeps serving; a spooled file that cannot be ingested is
set aside, not retried forever."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aifinops.store.connection import Store, StoreError

FIX = Path(__file__).parent / "fixtures" / "otel"
pytestmark = pytest.mark.slow


class Receiver:
    """``aifinops receive otlp`` as a child process; its stderr is collected line by line."""

    def __init__(self, tmp_path: Path, *args: str, flush: str = "0.2s") -> None:
        self.db, self.spool = tmp_path / "s.duckdb", tmp_path / "spool"
        self.cwd, self.args, self.flush = tmp_path, args, flush
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIFINOPS_")}
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aifinops.interfaces.cli.app", "--db", str(self.db), "receive", "otlp", "--port",
             "0", "--spool", str(self.spool), "--flush-every", self.flush, *self.args],
            cwd=self.cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_for("listening on http://127.0.0.1:")
        self.url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        return self

    def _read(self) -> None:
        assert self.proc and self.proc.stderr
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, count: int = 1, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [line for line in self.lines if text in line]
            if len(hits) >= count:
                return hits[count - 1]
            assert self.proc and (self.proc.poll() is None or self._reader.is_alive()), self.log()
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not seen in:\n{self.log()}")

    def wait_spool_empty(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not spooled(self.spool):
                return
            time.sleep(0.02)
        raise AssertionError(f"spool not flushed:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self._reader.join(10)
        return code

    def log(self) -> str:
        return "\n".join(self.lines)


def spooled(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")] if folder.exists() else []


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path)
    yield r
    if r.proc and r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)


def sdk_spans(n: int, first: int = 0, edit: Callable[[int, dict[str, Any]], None] | None = None) -> list[ReadableSpan]:
    """``n`` chat spans from the SDK, as an instrumented application records them (tokens 100 + i, 10 + i);
    ``edit(i, attributes)`` changes a span's attributes before it starts."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "chat-api", "deployment.environment.name": "prod",
                                                 "team": "assistants"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0")
    for i in range(first, first + n):
        attributes: dict[str, Any] = {
            "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 100 + i,
            "gen_ai.usage.output_tokens": 10 + i, "gen_ai.conversation.id": f"conv-{i % 3}", "user.id": f"user-{i % 2}"}
        if edit:
            edit(i, attributes)
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attributes):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def export(url: str, spans: list[ReadableSpan], **kwargs: Any) -> SpanExportResult:
    exporter = OTLPSpanExporter(endpoint=url, timeout=10, **kwargs)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def live(db: Path) -> list[dict[str, Any]]:
    """The store's live requests, read while the receiver idles (retrying while a flush holds the store)."""
    for _ in range(200):
        try:
            with Store(db, read_only=True) as s:
                return s.rows("SELECT * FROM llm_requests WHERE NOT _superseded ORDER BY ts, request_id")
        except StoreError:
            time.sleep(0.05)
    raise AssertionError("the store stayed locked")


def test_sdk_spans_land_with_their_columns_and_the_store_is_free_between_flushes(receiver: Receiver) -> None:
    r = receiver.start()
    spans = sdk_spans(3)
    assert export(r.url, spans) == SpanExportResult.SUCCESS
    r.wait_for("flushed 1 file(s)")
    r.wait_spool_empty()
    got = live(r.db)
    assert len(got) == 3
    row, span = got[0], spans[0]
    assert row["request_id"] == f"{span.context.span_id:016x}" and row["trace_id"] == f"{span.context.trace_id:032x}"
    assert {k: row[k] for k in ("source", "provider", "operation", "request_model", "response_model", "input_tokens",
                                "output_tokens", "service", "environment", "team", "user_id", "conversation_id",
                                "status", "requests")} == {
        "source": "otel", "provider": "openai", "operation": "chat", "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 100, "output_tokens": 10, "service": "chat-api",
        "environment": "prod", "team": "assistants", "user_id": "user-0", "conversation_id": "conv-0",
        "status": "ok", "requests": 1}
    assert row["ts"].timestamp() == pytest.approx(span.start_time / 1e9, abs=1e-6)
    assert row["attributes"]["otel.scope.name"] == "opentelemetry.instrumentation.openai_v2"
    # idle: another command may open the store for writing, and the receiver still flushes afterwards
    with Store(r.db) as s:
        s.con.execute("CHECKPOINT")
    assert export(r.url, sdk_spans(2, first=3), compression=Compression.Gzip) == SpanExportResult.SUCCESS
    r.wait_for("flushed 1 file(s)", count=2)
    assert export(r.url, sdk_spans(1, first=5), compression=Compression.Deflate) == SpanExportResult.SUCCESS
    r.wait_for("flushed 1 file(s)", count=3)
    r.wait_spool_empty()
    assert [x["input_tokens"] for x in live(r.db)] == [100, 101, 102, 103, 104, 105]
    assert r.stop() == 0
    assert "6 span(s) (6 GenAI) accepted, 0 refused; everything is in the store" in r.log()


def test_otlp_json_by_raw_http(receiver: Receiver) -> None:
    r = receiver.start()
    line = (FIX / "genai.jsonl").read_text().splitlines()[1]
    pretty = json.dumps(json.loads(line), indent=2)  # newlines in the body: the flush's merge must keep it whole
    res = httpx.post(r.url, content=pretty, headers={"Content-Type": "application/json"})
    assert (res.status_code, res.headers["content-type"], res.json()) == (200, "application/json", {})
    body = gzip.compress((FIX / "genai.jsonl").read_text().splitlines()[0].encode())
    res = httpx.post(r.url, content=body, headers={"Content-Type": "application/json; charset=utf-8",
                                                   "Content-Encoding": "gzip"})
    assert res.status_code == 200
    r.wait_spool_empty()
    got = live(r.db)
    assert [(x["request_model"], x["service"], x["input_tokens"]) for x in got] == [
        ("gpt-4o", "support-bot", 1200), ("o3-mini", "support-bot", 500), ("gpt-4o", "support-bot", None),
        ("claude-3-5-sonnet-20241022", "search-api", 3000), ("amazon.titan-embed-text-v2:0", "search-api", 64)]
    assert r.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_right_after_200_loses_nothing(tmp_path: Path, sig: int) -> None:
    r = Receiver(tmp_path, flush="1h").start()  # only the last flush, on the way out, can store them
    try:
        for first in (0, 100):
            assert export(r.url, sdk_spans(100, first)) == SpanExportResult.SUCCESS
        assert r.stop(sig) == 0
    finally:
        if r.proc and r.proc.poll() is None:
            r.proc.kill()
    assert len(live(r.db)) == 200 and not spooled(r.spool)
    assert "everything is in the store" in r.log()


def test_sigkill_after_200_loses_nothing(tmp_path: Path) -> None:
    r = Receiver(tmp_path, flush="1h").start()
    try:
        assert export(r.url, sdk_spans(50)) == SpanExportResult.SUCCESS
        r.stop(signal.SIGKILL)
        assert len(spooled(r.spool)) == 1  # acknowledged = on disk
        r.start()  # crash recovery: the leftover spool is ingested at once
        r.wait_for("1 spooled file(s) from an earlier run")
        r.wait_for("flushed 1 file(s)")
        assert r.stop() == 0
    finally:
        if r.proc and r.proc.poll() is None:
            r.proc.kill()
    assert len(live(r.db)) == 50 and sum(x["input_tokens"] for x in live(r.db)) == sum(range(100, 150))


def test_repeated_deliveries_count_once(tmp_path: Path) -> None:
    """An SDK retry sends the same bytes again: in one flush (superseded within the batch), in a later flush
    (superseded across batches) and alone again (the same content: a no-op)."""
    spans = sdk_spans(20)
    r = Receiver(tmp_path, flush="1h").start()
    try:
        assert export(r.url, spans) == export(r.url, spans) == SpanExportResult.SUCCESS
        assert r.stop() == 0
        assert "20 row(s) repeat an observation" in r.log()
        r.flush = "0.2s"
        r.start()
        assert export(r.url, spans) == SpanExportResult.SUCCESS
        r.wait_for("20 row(s) of earlier batches observed again")
        r.wait_spool_empty()
        assert export(r.url, spans) == SpanExportResult.SUCCESS
        r.wait_for("unchanged")
        r.wait_spool_empty()
        assert r.stop() == 0
    finally:
        if r.proc and r.proc.poll() is None:
            r.proc.kill()
    assert len(live(r.db)) == 20
    with Store(r.db, read_only=True) as s:
        assert s.rows("SELECT count(*) AS n FROM llm_requests")[0]["n"] == 60  # 40 superseded copies kept


def test_bad_requests_are_answered_and_the_receiver_keeps_serving(tmp_path: Path) -> None:
    r = Receiver(tmp_path, "--max-body", "64KB").start()
    try:
        proto = {"Content-Type": "application/x-protobuf"}
        cases = [
            (b"\x00" * 70_000, proto, 413, "over the limit of 65,536 bytes"),
            (gzip.compress(b"\x00" * 10_000_000), {**proto, "Content-Encoding": "gzip"}, 413,
             "decompressed body is over the limit"),
            (b"\x0a\xff\xff\xff\xff", proto, 400, "not OTLP traces: not a protobuf ExportTraceServiceRequest"),
            (b"not gzip", {**proto, "Content-Encoding": "gzip"}, 400, "Content-Encoding gzip: the body is not valid"),
            (gzip.compress((FIX / "genai.binpb").read_bytes())[:-20], {**proto, "Content-Encoding": "gzip"}, 400,
             "the body is truncated"),
            (b"x", {**proto, "Content-Encoding": "br"}, 415, "Content-Encoding 'br' is not supported"),
            (b"x", {"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain' is not supported"),
        ]
        for body, headers, status, message in cases:
            res = httpx.post(r.url, content=body, headers=headers)
            assert res.status_code == status, (headers, res.content)
            err = Status.FromString(res.content) if res.headers["content-type"] == "application/x-protobuf" else \
                Status(**json.loads(res.content))
            assert message in err.message and err.code == 3
        json_cases = [(b'{"resourceMetrics": []}', "not OTLP traces: OTLP metrics, not traces"),
                      (b"{", "not OTLP traces: not JSON"),
                      (b'{"resourceSpans": [{"scopeSpans": "x"}]}', "scopeSpans is not a list")]
        for body, message in json_cases:
            res = httpx.post(r.url, content=body, headers={"Content-Type": "application/json"})
            assert res.status_code == 400 and message in res.json()["message"]
        assert httpx.get(r.url).status_code == 405
        # a body with no GenAI span is accepted, and nothing is spooled for it
        other = (FIX / "genai.jsonl").read_text().splitlines()[0]
        doc = json.loads(other)
        doc["resourceSpans"][0]["scopeSpans"] = doc["resourceSpans"][0]["scopeSpans"][2:]
        assert httpx.post(r.url, json=doc).status_code == 200 and not spooled(r.spool)
        # well-formed OTLP with bad GenAI values: accepted, then quarantined row by row with the reason
        def spoil(i: int, a: dict[str, Any]) -> None:
            if i == 0:
                a["gen_ai.usage.input_tokens"] = -3
            elif i == 1:
                del a["gen_ai.request.model"], a["gen_ai.response.model"]

        assert export(r.url, sdk_spans(3, edit=spoil)) == SpanExportResult.SUCCESS
        r.wait_for("3 request(s), 1 loaded, 2 quarantined")
        assert export(r.url, sdk_spans(5)) == SpanExportResult.SUCCESS
        r.wait_spool_empty()
        assert r.proc and r.proc.poll() is None
        assert r.stop() == 0
    finally:
        if r.proc and r.proc.poll() is None:
            r.proc.kill()
    assert len(live(r.db)) == 6
    assert "11 refused" in r.log()
    with Store(r.db, read_only=True) as s:
        assert [(x["column"], x["reason"]) for x in s.rows(
            'SELECT "column", reason FROM quarantine_errors ORDER BY row_number')] == [
            ("input_tokens", "input_tokens (gen_ai.usage.input_tokens) is negative: -3"),
            ("request_model", "no model: neither gen_ai.request.model nor gen_ai.response.model is set, so the "
                              "request cannot be priced")]


def test_a_busy_store_delays_the_flush_and_loses_nothing(receiver: Receiver) -> None:
    r = receiver.start()
    holder = Store(r.db)  # another command holding the store for writing
    try:
        assert export(r.url, sdk_spans(4)) == SpanExportResult.SUCCESS
        r.wait_for("store unavailable")
        assert len(spooled(r.spool)) == 1
    finally:
        holder.close()
    r.wait_spool_empty()
    assert len(live(r.db)) == 4
    assert r.stop() == 0


def test_a_spooled_file_that_cannot_be_ingested_is_set_aside(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "00000000000000000001-1-00000000.json").write_text("{\"resourceSpans\": 5}")  # edited by hand
    (spool / "00000000000000000002-1-00000001.binpb").write_bytes((FIX / "genai.binpb").read_bytes())
    r = Receiver(tmp_path).start()
    try:
        r.wait_for("set aside 00000000000000000001-1-00000000.json")
        r.wait_spool_empty()
        assert len(live(r.db)) == 5
        assert r.stop() == 0
    finally:
        if r.proc and r.proc.poll() is None:
            r.proc.kill()
    failed = sorted(p.name for p in (spool / "failed").iterdir())
    assert failed == ["00000000000000000001-1-00000000.json", "00000000000000000001-1-00000000.json.error.txt"]
    assert "resourceSpans is not a list" in (spool / "failed" / failed[1]).read_text()


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aifinops.interfaces.cli.app import app
    from aifinops.interfaces.otlp_receiver import parse_size

    sizes = [parse_size(x) for x in ("16MB", "512KB", "1GiB", "2m", "100")]
    assert sizes == [16 << 20, 512 << 10, 1 << 30, 2 << 20, 100]
    db = str(tmp_path / "s.duckdb")
    for args, message in ((["--max-body", "lots"], "expected a size such as 16MB"),
                          (["--flush-every", "soon"], "expected a duration"),
                          (["--port", "70000"], "65535")):
        res = CliRunner().invoke(app, ["--db", db, "receive", "otlp", *args])
        assert res.exit_code == 2 and message in res.output, res.output
    (tmp_path / "aifinops.yaml").write_text("sources:\n  otel:\n    team_keys: [team]\n")  # a typo'd option
    res = CliRunner().invoke(app, ["--db", db, "--config", str(tmp_path / "aifinops.yaml"), "receive", "otlp"])
    assert res.exit_code == 1 and "team_keys" in res.output
    assert not (tmp_path / "s.duckdb.otlp-spool").exists()
