"""OpenTelemetry GenAI spans: rows/s of ``aifinops ingest otel`` and spans/s through ``aifinops receive otlp``.

    .venv/bin/python bench/otel.py [--spans 100000] [--batch 512] [--out bench/out/otel]

Spans are recorded by the OpenTelemetry SDK (chat spans with the usual ~20 attributes) and encoded by its OTLP
encoder in requests of ``--batch`` spans, as ``BatchSpanProcessor`` sends them. The file source is timed on the
collector's JSON lines and length-prefixed protobuf; the receiver is timed end to end (the SDK's
``OTLPSpanExporter`` posting every request, one client thread, until the last span is in the store).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aifinops.sources.otel_genai import OtelSource
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "o3-mini")


def record(n: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "chat-api", "deployment.environment.name": "prod",
                                                 "service.version": "1.4.2", "host.name": "web-7"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0")
    for i in range(n):
        model = MODELS[i % len(MODELS)]
        with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes={
                "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                "gen_ai.response.model": model, "gen_ai.usage.input_tokens": 500 + i % 3000,
                "gen_ai.usage.output_tokens": 50 + i % 700, "gen_ai.usage.cache_read.input_tokens": i % 400,
                "gen_ai.conversation.id": f"conv-{i // 7}", "gen_ai.response.id": f"chatcmpl-{i}",
                "gen_ai.response.finish_reasons": ("stop",), "gen_ai.request.temperature": 0.7,
                "gen_ai.request.max_tokens": 1024, "server.address": "api.openai.com", "server.port": 443,
                "openai.response.service_tier": "default", "user.id": f"user-{i % 997}", "tenant.id": f"t-{i % 31}",
                "feature": ("search", "chat", "summarise")[i % 3], "team": "assistants"}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def otlp_json(msg: object) -> str:
    doc = MessageToDict(msg, use_integers_for_enums=True)  # type: ignore[arg-type]
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = base64.b64decode(sp[k]).hex()
    return json.dumps(doc, separators=(",", ":"))


def timed_ingest(db: Path, path: Path) -> tuple[float, int]:
    db.unlink(missing_ok=True)
    with Store(db) as store:
        t = time.perf_counter()
        res = ingest(store, OtelSource(), [path])
        return time.perf_counter() - t, res.rows_loaded


def receiver(out: Path, send: Callable[[str], None], total: int) -> tuple[float, float]:
    """Seconds until the last request was acknowledged, and until the last span was in the store."""
    db, spool = out / "receiver.duckdb", out / "spool"
    db.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "aifinops.interfaces.cli.app", "--db", str(db), "receive", "otlp",
                             "--port", "0", "--spool", str(spool), "--flush-every", "1s"],
                            stderr=subprocess.PIPE, text=True, cwd=out)
    assert proc.stderr
    url = ""
    while not url:
        line = proc.stderr.readline()
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split(" ", 1)[0]
    t = time.perf_counter()
    send(url)
    acked = time.perf_counter() - t
    proc.send_signal(signal.SIGTERM)  # the last flush runs on the way out
    proc.communicate(timeout=600)
    stored = time.perf_counter() - t
    with Store(db, read_only=True) as s:
        assert s.rows("SELECT count(*) AS n FROM llm_requests")[0]["n"] == total
    return acked, stored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "otel")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    spans = record(args.spans)
    batches = [spans[i:i + args.batch] for i in range(0, len(spans), args.batch)]
    messages = [encode_spans(b) for b in batches]
    (out / "spans.jsonl").write_text("".join(otlp_json(m) + "\n" for m in messages))
    (out / "spans.pb").write_bytes(b"".join(len(b).to_bytes(4, "big") + b
                                            for b in (m.SerializeToString() for m in messages)))
    print(f"recorded and encoded {len(spans):,} spans in {len(batches)} requests in {time.perf_counter() - t:.1f}s")
    for name in ("spans.jsonl", "spans.pb"):
        seconds, rows = timed_ingest(out / "ingest.duckdb", out / name)
        size = os.path.getsize(out / name) / 1e6
        print(f"ingest otel {name} ({size:,.1f} MB): {rows:,} rows in {seconds:.2f}s = {rows / seconds:,.0f} rows/s")

    def sdk(url: str) -> None:  # what an application sees: the SDK encodes each batch, then posts it
        exporter = OTLPSpanExporter(endpoint=url, timeout=30)
        for b in batches:
            assert exporter.export(b) == SpanExportResult.SUCCESS
        exporter.shutdown()

    bodies = [m.SerializeToString() for m in messages]

    def raw(url: str) -> None:  # the receiver alone: bodies encoded beforehand, posted by one client
        with httpx.Client() as client:
            for body in bodies:
                res = client.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
                assert res.status_code == 200, res.text

    for label, send in (("OTLPSpanExporter", sdk), ("pre-encoded bodies, httpx", raw)):
        acked, stored = receiver(out, send, len(spans))
        print(f"receive otlp ({label}): {len(spans):,} spans acknowledged in {acked:.2f}s = "
              f"{len(spans) / acked:,.0f} spans/s; all in the store after {stored:.2f}s = "
              f"{len(spans) / stored:,.0f} spans/s")


if __name__ == "__main__":
    main()
