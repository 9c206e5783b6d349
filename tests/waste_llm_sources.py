"""Real-format LLM inputs for the LLM waste rules' tests: OTLP spans written by the OpenTelemetry SDK (with the
fixtures' own recipe, tests/fixtures/otel/make_fixtures.py) and LiteLLM spend-log rows made from the fixture's first
row (tests/fixtures/litellm/spend_logs.json), ingested by their sources so that a rule sees what the sources load.

Times are naive UTC ``datetime``s; each builder writes a file and ingests it into the store.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aifinops.sources.litellm_spend import LiteLLMSpendSource
from aifinops.sources.otel_genai import OtelSource
from aifinops.store.connection import Store
from aifinops.store.ingest import BatchResult, ingest

FIXTURES = Path(__file__).parent / "fixtures"


def _make_fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "otel" / "make_fixtures.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ns(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp() * 1_000_000) * 1000


def otel_spans(store: Store, path: Path, spans: list[dict[str, Any]], service: str = "app") -> BatchResult:
    """One chat span per dict (``ts``, ``model``, ``provider``, ``input_tokens``, ``output_tokens``, optional
    ``ms`` duration and ``attributes``: any other span attribute, e.g. ``gen_ai.input.messages`` or ``feature``),
    recorded by the SDK's TracerProvider, encoded by its OTLP encoder and written as the collector's file exporter
    writes OTLP/JSON; then ingested by the otel source."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    mf = _make_fixtures()
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service}), id_generator=mf.CountingIds(0x500))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0")
    for s in spans:
        attrs = {"gen_ai.provider.name": s.get("provider", "openai"), "gen_ai.operation.name": "chat",
                 "gen_ai.request.model": s["model"], "gen_ai.usage.input_tokens": s["input_tokens"],
                 "gen_ai.usage.output_tokens": s["output_tokens"], **s.get("attributes", {})}
        start = _ns(s["ts"])
        span = tracer.start_span(f"chat {s['model']}", kind=SpanKind.CLIENT, attributes=attrs, start_time=start)
        span.end(end_time=start + int(s.get("ms", 800)) * 1_000_000)
    provider.shutdown()
    path.write_text(mf._otlp_json(encode_spans(memory.get_finished_spans())) + "\n")
    return ingest(store, OtelSource(), [path])


def litellm_rows(store: Store, path: Path, rows: list[dict[str, Any]]) -> BatchResult:
    """Spend-log rows as ``GET /spend/logs`` answers, each the fixture's first row (an OpenAI chat call logged
    by LiteLLM) with: ``ts``, ``model`` (the deployment model), ``prompt_tokens``, ``completion_tokens``, optional
    ``provider`` (custom_llm_provider), ``tags`` (request tags, ``feature:x``), ``key_alias``, ``messages`` (logged
    with store_prompts_in_spend_logs), ``spend``; no cache reads. Then ingested by the litellm source."""
    template = json.loads((FIXTURES / "litellm" / "spend_logs.json").read_text())[0]
    out = []
    for i, r in enumerate(rows):
        row = copy.deepcopy(template)
        start: datetime = r["ts"]
        usage = row["metadata"]["usage_object"]
        usage.update(prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
                     total_tokens=r["prompt_tokens"] + r["completion_tokens"])
        usage["prompt_tokens_details"]["cached_tokens"] = 0
        row["metadata"]["additional_usage_values"]["prompt_tokens_details"]["cached_tokens"] = 0
        row["metadata"]["user_api_key_alias"] = r.get("key_alias", "app-prod")
        row.update(request_id=f"chatcmpl-{i:06d}", startTime=start.isoformat(),
                   endTime=(start + timedelta(seconds=2)).isoformat(), completionStartTime=start.isoformat(),
                   model=r["model"], model_group=r.get("model_group", r["model"]),
                   custom_llm_provider=r.get("provider", "openai"), prompt_tokens=r["prompt_tokens"],
                   completion_tokens=r["completion_tokens"],
                   total_tokens=r["prompt_tokens"] + r["completion_tokens"], spend=r.get("spend", 0.001),
                   request_tags=r.get("tags", []), messages=r.get("messages", {}), session_id=None)
        out.append(row)
    path.write_text(json.dumps(out))
    return ingest(store, LiteLLMSpendSource(), [path])
