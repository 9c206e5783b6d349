"""Helix AI's LLM traffic and what it bought, in the formats the product's request sources read.

Derived from the same :class:`~aifinops.demo.fleet.Scenario` as the bill: each API model's tokens of a day are
exactly the tokens the bill charges for that model that day (``synthetic.api_token_volumes``), and ``LINES``
says which feature calls it (the bill's untagged lines too: the usage knows who called). The self-hosted
``llama-3-70b-ft`` is served by the vLLM pods of ``llm-serve-p4d`` (``gpu_fleet``): its tokens follow the same
US-daytime load as their GPU activity, at most ``LLAMA_PEAK_TOKENS_PER_S`` over the fleet, while its nodes
run. Files, for the scenario's last ``days`` (default 30, the demo's unit-cost window):

- ``otel/copilot-traces.jsonl`` (``ingest otel``): the support copilot's GenAI spans as the collector's file
  exporter writes them (one OTLP/JSON request per line; a filter processor keeps GenAI spans). A conversation is
  a triage call on the self-hosted llama (provider ``vllm``), a router call on gpt-4.1-mini, a gpt-4.1 answer per
  turn with the conversation's prefix as cache reads and, for some, an ``invoke_agent`` escalation whose Claude
  Sonnet 4.5 steps think (reasoning tokens). Team on the resource; feature, ``user.id``, ``tenant.id`` and
  ``gen_ai.conversation.id`` on the spans (the otel source's default keys); ``service.version`` 2.0 from the v2
  launch on. A legacy worker names the Bedrock application inference profile ARN as its model, which no catalog
  prices;
- ``litellm/spend_logs.csv`` (``ingest litellm``): the gateway's ``LiteLLM_SpendLogs`` as ``\\copy ... CSV
  HEADER`` exports it: the doc-summarizer's customers (Sonnet through the US cross-region profile, tenant tags)
  and the analytics assistant's employees (Gemini 2.5 Pro, thinking), with LiteLLM's own ``spend`` at the
  gateway's configured prices (the list rates the bill charges, no cache discount), so the drift from aifinops'
  price shows; a few throttled requests fail with no usage;
- ``usage/usage_hourly.csv`` (``ingest llm-usage`` with ``ROLLUP_MAPPING``): the platform's hourly usage rollup
  of service traffic, one row per hour and line standing for its ``requests``: all embeddings, search answers,
  recsys explanations (with a nightly Vertex batch job at the batch tier), the llama's pipeline triage, and the
  rest of each line the per-request files do not carry (the copilot's ticket pipeline, bulk summaries,
  scheduled analytics reports);
- ``outcomes.csv`` (``ingest outcomes``): per day, tickets resolved (per tenant), searches with a click, and
  documents summarized with their revenue in USD (per tenant: the summarizer is sold per document).

Volumes: the bill's API lines carry ~2.5B tokens and millions of requests a day. The slower JSON readers get only
interactive requests at realistic sizes (30 days: ~33k spans, ~10k spend-log rows: ~1 s of OTel and ~1 s of
LiteLLM ingest); the hourly rollup (~7k rows) carries the rest, so every line still sums to the bill. Written
in ~1 s. Seeded and deterministic: sizes, times and ids are drawn with numpy for all requests at once; the only
per-request Python formats the text of those few tens of thousands of JSON and CSV rows.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from aifinops.demo import catalog as cat
from aifinops.demo.fleet import Scenario
from aifinops.demo.synthetic import api_daily_factor, api_token_volumes

__all__ = ["LINES", "LLM_DAYS", "ROLLUP_MAPPING", "SELF_HOSTED", "LlmFiles", "bill_models", "write_llm_usage"]

LLM_DAYS = 30
LLAMA_PEAK_TOKENS_PER_S = 12_000  # 4 vLLM replicas (TP 4 on A100-40GB) at the endpoint's peak activity, prefill-heavy
DAY_S = 86_400


@dataclass(frozen=True)
class Line:
    """Who calls one model and as what: a bill line (an API model of the bill) or the self-hosted model."""

    feature: str
    team: str
    provider: str  # gen_ai.provider.name
    model: str  # the model id callers send
    response_model: str | None  # the dated version the API answers with (OTel's gen_ai.response.model)
    operation: str  # chat | embeddings
    cache: float  # share of the rollup's input tokens that are prompt-cache reads
    per_request: int  # input tokens a rollup request carries on average
    service: str  # the rollup's calling service


#: bill line (ServiceName, model, project tag) -> its callers; the untagged lines are attributed by usage alone
LINES: dict[tuple[str, str, str | None], Line] = {
    ("Amazon Bedrock", "Claude Sonnet 4.5", "support-copilot"): Line(
        "support-copilot", "genai-apps", "aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", None, "chat",
        .30, 12_000, "copilot-ticket-pipeline"),
    ("Amazon Bedrock", "Claude Sonnet 4.5", None): Line(
        "doc-summarizer", "genai-apps", "aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", None, "chat",
        .08, 22_000, "doc-summarizer-batch"),
    ("Amazon Bedrock", "Claude Haiku 4.5", None): Line(
        "semantic-search", "search", "aws.bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0", None, "chat", .20,
        3_000, "search-answers"),
    ("Amazon Bedrock", "Titan Text Embeddings V2", "semantic-search"): Line(
        "semantic-search", "search", "aws.bedrock", "amazon.titan-embed-text-v2:0", None, "embeddings", 0, 600,
        "search-indexer"),
    ("Azure OpenAI Service", "gpt-4.1", "support-copilot"): Line(
        "support-copilot", "genai-apps", "azure.ai.openai", "gpt-4.1", "gpt-4.1-2025-04-14", "chat", .25, 7_500,
        "copilot-ticket-pipeline"),
    ("Azure OpenAI Service", "gpt-4.1-mini", "support-copilot"): Line(
        "support-copilot", "genai-apps", "azure.ai.openai", "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "chat", .35,
        1_200, "copilot-ticket-pipeline"),
    ("Azure OpenAI Service", "text-embedding-3-small", "support-copilot"): Line(
        "support-copilot", "genai-apps", "azure.ai.openai", "text-embedding-3-small", None, "embeddings", 0, 2_500,
        "copilot-retrieval"),
    ("Vertex AI", "Gemini 2.5 Flash", "catalog-enrichment"): Line(
        "recsys-explanations", "recsys", "gcp.vertex_ai", "gemini-2.5-flash", None, "chat", .05, 2_200,
        "catalog-enrichment"),
    ("Vertex AI", "Gemini 2.5 Pro", None): Line(
        "analytics-assistant", "data-eng", "gcp.vertex_ai", "gemini-2.5-pro", None, "chat", .20, 30_000,
        "analytics-reports"),
}
SELF_HOSTED = Line("support-copilot", "genai-apps", "vllm", "llama-3-70b-ft", None, "chat", 0, 1_800,
                   "copilot-ticket-pipeline")
SONNET_COPILOT, SONNET, HAIKU, TITAN, GPT41, MINI, EMBED, FLASH, PRO = range(9)  # positions in LINES
LLAMA = len(LINES)
LINES_BY_INDEX = {**dict(enumerate(LINES.values())), LLAMA: SELF_HOSTED}

#: llm-usage options for ``usage_hourly.csv`` (the CLI takes the same as ``--option`` / aifinops.yaml)
ROLLUP_MAPPING: dict[str, object] = {
    "source_name": "usage-rollup", "time_unit": "iso", "attributes": ["account"],
    "columns": {"request_id": "concat_ws('/', hour_utc, service, model, tier)", "ts": "hour_utc",
                "requests": "requests", "provider": "provider", "operation": "operation", "request_model": "model",
                "input_tokens": "input_tokens", "cache_read_tokens": "cached_input_tokens",
                "output_tokens": "output_tokens", "tier": "tier", "feature": "feature", "team": "team",
                "service": "service", "environment": "'prod'"},
}
TENANTS = ("northwind", "contoso", "fabrikam", "initech", "globex", "umbrella", "hooli", "tyrell", "cyberdyne",
           "vandelay", "wonka", "soylent", "oscorp", "aperture", "monarch", "prestige", "dunder-mifflin",
           "pied-piper", "massive-dynamic", "black-mesa", "wayne", "stark", "gringotts", "acme")
COPILOT_CONVERSATIONS = 90  # per day before the bill's trend, weekends and launch
SUMMARIES, ANALYTICS_QUERIES = 150, 150  # interactive requests per day at a bill factor of 1
BATCH_SHARE = .06  # of the recsys explanations' Gemini 2.5 Flash tokens: the nightly batch job
DOC_PRICE = {"enterprise": 0.30, "standard": 0.40}  # USD per summarized document


@dataclass(frozen=True)
class LlmFiles:
    """What ``write_llm_usage`` wrote, by the source that reads it."""

    otel: Path
    litellm: Path
    rollup: Path
    outcomes: Path


def bill_models(sc: Scenario) -> dict[str, str]:
    """Model id a request names -> the bill's model (SkuMeter prefix) whose tokens it is part of."""
    out = {}
    for m in sc.api_models:
        line = LINES[(m.service, m.model, m.project)]
        out |= {line.model: m.model, **({line.response_model: m.model} if line.response_model else {})}
    out[_profile_arn(sc)] = "Claude Sonnet 4.5"
    return out


def _profile_arn(sc: Scenario) -> str:
    return next(m.resource_id for m in sc.api_models if m.service == "Amazon Bedrock" and m.resource_id)


# -- when, and how busy ---------------------------------------------------------------------------

def _load(hod: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """US traffic, peak 17 UTC, weekends at 60 %: the serving pods' activity profile (``gpu_fleet._activity``)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * (hod - 5) / 24)) * np.where(weekend, .6, 1)


def _times(rng: np.random.Generator, day: np.ndarray, t0: np.datetime64) -> np.ndarray:
    """A time in each given day (0-based from ``t0``), busier in US daytime (datetime64[ms])."""
    p = 0.08 + _load(np.arange(24) + .5, np.zeros(24, bool))
    hour = rng.choice(24, len(day), p=p / p.sum())
    ms = (day * DAY_S + hour * 3600 + rng.uniform(0, 3600, len(day))) * 1000
    return t0 + ms.astype(np.int64).astype("timedelta64[ms]")


def _split(total: np.ndarray, group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Integer parts of ``total[group]`` in proportion to ``weight``, summing exactly to each group's total
    (cumulative rounding); ``group`` must be sorted."""
    w_sum = np.bincount(group, weight, len(total))
    x = total[group] * weight / np.where(w_sum[group] > 0, w_sum[group], 1)
    c = np.round(np.cumsum(x)).astype(np.int64)
    last = np.flatnonzero(np.r_[group[1:] != group[:-1], True]) if len(group) else np.array([], int)
    c[last] = np.cumsum(total)[group[last]]
    return np.maximum(np.diff(c, prepend=0), 0)


def _lognormal(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    return np.maximum(1, np.round(rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma, n))).astype(np.int64)


# -- per-request rows (OTel spans, LiteLLM spend logs) ---------------------------------------------

def _requests(**cols: np.ndarray) -> dict[str, np.ndarray]:
    n = len(cols["line"])
    zero = np.zeros(n, np.int64)
    return {"cache": zero, "reasoning": zero, "user": zero - 1, "tenant": zero - 1, "conv": zero - 1, **cols}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _copilot(sc: Scenario, rng: np.random.Generator, first: int, t0: np.datetime64) -> dict[str, np.ndarray]:
    """The copilot's interactive spans: triage (llama), router (mini), answers (gpt-4.1), escalations (Sonnet
    steps under an invoke_agent span, line -1), plus the legacy worker's calls on the profile ARN (line -2)."""
    days = sc.days - first
    gpt41 = next(m for m in sc.api_models if m.model == "gpt-4.1")
    n_conv = rng.poisson(COPILOT_CONVERSATIONS * api_daily_factor(sc, gpt41)[first:])
    day = np.repeat(np.arange(days), n_conv)
    c = len(day)
    # a conversation lasts minutes: none starts in the window's last hour, so all of it falls inside the window
    start = np.minimum(_times(rng, day, t0), t0 + np.timedelta64((days * DAY_S - 3600) * 1000, "ms"))
    w = 1 / (np.arange(len(TENANTS)) + 1.0) ** 1.1
    tenant = rng.choice(len(TENANTS), c, p=w / w.sum())
    user = tenant * 10_000 + (rng.zipf(1.3, c) - 1) % 5_000  # a few regulars, a long tail
    turns = 1 + rng.poisson(1.5, c)
    steps = np.where(rng.random(c) < .12, 2 + rng.poisson(3, c), 0)
    conv = np.arange(c)
    ms = np.timedelta64(1, "ms")

    def per_conv(idx: np.ndarray, line: int, at: np.ndarray, **cols: np.ndarray) -> dict[str, np.ndarray]:
        return _requests(line=np.full(len(idx), line), ts=start[idx] + at.astype(np.int64) * ms, conv=idx,
                         user=user[idx], tenant=tenant[idx], **cols)

    triage = per_conv(conv, LLAMA, np.full(c, 200), input=_lognormal(rng, 1_800, .35, c),
                      output=rng.integers(6, 25, c))
    router_in = _lognormal(rng, 1_300, .3, c)
    router = per_conv(conv, MINI, np.full(c, 900), input=router_in, output=_lognormal(rng, 40, .4, c),
                      cache=np.where(router_in >= 1_100, 1024, 0))
    a_conv = np.repeat(conv, turns)
    k = np.arange(len(a_conv)) - np.repeat(np.cumsum(turns) - turns, turns)
    a_in = 5_500 + 1_800 * k + _lognormal(rng, 900, .5, len(k))
    answers = per_conv(a_conv, GPT41, 2_000 + 75_000 * k + rng.integers(0, 30_000, len(k)), input=a_in,
                       output=_lognormal(rng, 420, .45, len(k)), cache=(a_in * .55 // 128 * 128).astype(np.int64))
    esc = np.flatnonzero(steps)
    s_conv = np.repeat(esc, steps[esc])
    j = np.arange(len(s_conv)) - np.repeat(np.cumsum(steps[esc]) - steps[esc], steps[esc])
    s_in = 22_000 + 9_000 * j + _lognormal(rng, 1_500, .6, len(j))
    s_out = _lognormal(rng, 1_800, .5, len(j))
    after = 2_000 + 75_000 * turns[s_conv] + 25_000 * j
    agent = per_conv(s_conv, SONNET_COPILOT, after, input=s_in, output=s_out,
                     cache=np.where(j == 0, 6_000, 22_000 + 9_000 * (j - 1)), reasoning=(s_out * .6).astype(np.int64))
    invoke = per_conv(esc, -1, 1_500 + 75_000 * turns[esc], input=np.zeros(len(esc), np.int64),
                      output=np.zeros(len(esc), np.int64))
    n_legacy = rng.poisson(3, days)  # the nightly worker on the application inference profile
    l_day = np.repeat(np.arange(days), n_legacy)
    legacy = _requests(line=np.full(len(l_day), -2), ts=t0 + ((l_day * DAY_S + rng.uniform(2, 4, len(l_day)) * 3600)
                                                             * 1000).astype(np.int64) * ms,
                       input=_lognormal(rng, 8_000, .3, len(l_day)), output=_lognormal(rng, 400, .3, len(l_day)))
    return _concat([triage, router, answers, agent, invoke, legacy])


def _gateway(sc: Scenario, rng: np.random.Generator, first: int, t0: np.datetime64) -> dict[str, np.ndarray]:
    """The gateway's interactive requests: summaries of customers' documents (per tenant) and the analytics
    assistant's questions (employees); a few are rate limited and carry no tokens."""
    days = sc.days - first
    parts = []
    for ln, per_day, mean_in, mean_out, cache, reasoning, tenants in (
            (SONNET, SUMMARIES, 22_000, 1_200, .08, 0, 12), (PRO, ANALYTICS_QUERIES, 40_000, 6_500, .20, .75, 0)):
        n = rng.poisson(per_day * api_daily_factor(sc, sc.api_models[ln])[first:])
        day = np.repeat(np.arange(days), n)
        k = len(day)
        # documents and schemas are cut below the 200k-token context tier, whose price the demo bill has no meter for
        inp, outp = np.minimum(_lognormal(rng, mean_in, .7, k), 180_000), _lognormal(rng, mean_out, .5, k)
        w = 1 / (np.arange(max(tenants, 1)) + 1.0)
        parts.append(_requests(
            line=np.full(k, ln), ts=_times(rng, day, t0), input=inp, output=outp, cache=(inp * cache).astype(np.int64),
            reasoning=(outp * reasoning).astype(np.int64), user=(rng.zipf(1.4, k) - 1) % (900 if tenants else 140),
            tenant=rng.choice(tenants, k, p=w / w.sum()) if tenants else np.full(k, -1)))
    out = _concat(parts)
    failed = rng.random(len(out["line"])) < .004  # ThrottlingException: logged with no usage
    out["status"] = failed.astype(np.int64)
    for k in ("input", "output", "cache", "reasoning"):
        out[k] = np.where(failed, 0, out[k])
    return out


def _sorted(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.argsort(r["ts"], kind="stable")
    return {k: v[order] for k, v in r.items()}


def _hex(rng: np.random.Generator, n: int) -> list[int]:
    return (rng.integers(1, 2 ** 63 - 1, n, dtype=np.int64) | (1 << 62)).tolist()  # 16 hex digits, never zero


def _otel_file(sc: Scenario, r: dict[str, np.ndarray], launch: np.datetime64, rng: np.random.Generator,
               path: Path) -> Path:
    """OTLP/JSON lines, one ExportTraceServiceRequest per service and hour (the collector's batches)."""
    lines = LINES_BY_INDEX
    n = len(r["line"])
    n_conv = int(r["conv"].max()) + 1
    span_id, conv_id, legacy_trace = _hex(rng, n), _hex(rng, n_conv), _hex(rng, n)
    trace = [f"{a:016x}{b:016x}" for a, b in zip(_hex(rng, n_conv), conv_id, strict=True)]
    # a conversation is one trace under the app's (unexported) server span; an escalation's steps are children
    # of its invoke_agent span
    agent_span = {cv: span_id[k] for k, (cv, ln) in enumerate(zip(r["conv"].tolist(), r["line"].tolist(),
                                                                   strict=True)) if ln == -1}
    start = r["ts"].astype("datetime64[ns]").astype(np.int64)
    dur = (400 + r["input"] / 25 + r["output"] * 16) * 1e6  # ns: time to first token, prefill, ~60 tokens/s
    end = (start + dur.astype(np.int64)).tolist()
    arn, after = _profile_arn(sc), (r["ts"] >= launch).tolist()

    def s(k: str, v: object) -> str:
        return f'{{"key":"{k}","value":{{"stringValue":"{v}"}}}}'

    def i(k: str, v: object) -> str:
        return f'{{"key":"{k}","value":{{"intValue":"{v}"}}}}'

    spans: dict[tuple[str, int], list[str]] = {}
    cols = zip(r["line"].tolist(), r["conv"].tolist(), r["user"].tolist(), r["tenant"].tolist(),
               r["input"].tolist(), r["output"].tolist(), r["cache"].tolist(), r["reasoning"].tolist(),
               start.tolist(), end, span_id, after, strict=True)
    for k, (ln, cv, user, tenant, inp, outp, cache, reason, t_s, t_e, sid, v2) in enumerate(cols):
        if ln == -2:  # the legacy worker, auto-instrumented: the older gen_ai.system, the profile as the model
            attrs = [s("gen_ai.system", "aws.bedrock"), s("gen_ai.operation.name", "chat"),
                     s("gen_ai.request.model", arn), i("gen_ai.usage.input_tokens", inp),
                     i("gen_ai.usage.output_tokens", outp),
                     s("server.address", "bedrock-runtime.us-east-1.amazonaws.com")]
            spans.setdefault(("worker", t_s // 3_600_000_000_000), []).append(
                f'{{"traceId":"{legacy_trace[k]:016x}{sid:016x}","spanId":"{sid:016x}",'
                f'"name":"chat {arn.rsplit("/", 1)[1]}","kind":3,'
                f'"startTimeUnixNano":"{t_s}","endTimeUnixNano":"{t_e}","attributes":[{",".join(attrs)}],"status":{{}}}}')
            continue
        tr, server = trace[cv], f"{conv_id[cv] ^ 0x5A5A:016x}"
        who = [s("feature", "support-copilot"), s("user.id", f"u-{user:06d}"), s("tenant.id", TENANTS[tenant]),
               s("gen_ai.conversation.id", f"conv_{conv_id[cv]:016x}")]
        if ln == -1:
            name, parent = "invoke_agent escalation-agent", server
            attrs = [s("gen_ai.operation.name", "invoke_agent"), s("gen_ai.agent.name", "escalation-agent"),
                     s("gen_ai.provider.name", "aws.bedrock"), s("gen_ai.request.model", lines[SONNET_COPILOT].model),
                     *who]
        else:
            line = lines[ln]
            name = f"chat {line.model}"
            parent = f"{agent_span[cv]:016x}" if ln == SONNET_COPILOT else server
            attrs = [s("gen_ai.operation.name", "chat"), s("gen_ai.provider.name", line.provider),
                     s("gen_ai.request.model", line.model), i("gen_ai.usage.input_tokens", inp),
                     i("gen_ai.usage.output_tokens", outp), *who]
            if line.response_model:
                attrs.append(s("gen_ai.response.model", line.response_model))
            if cache:
                attrs.append(i("gen_ai.usage.cache_read.input_tokens", cache))
            if reason:
                attrs.append(i("gen_ai.usage.reasoning.output_tokens", reason))
            attrs.append(s("server.address", {"vllm": "llama-70b-ft-vllm.llm-serving.svc.cluster.local",
                                              "azure.ai.openai": "helix-aoai-eus2.openai.azure.com",
                                              "aws.bedrock": "bedrock-runtime.us-east-1.amazonaws.com"}[line.provider]))
        spans.setdefault(("v2" if v2 else "v1", t_s // 3_600_000_000_000), []).append(
            f'{{"traceId":"{tr}","spanId":"{sid:016x}","parentSpanId":"{parent}","name":"{name}","kind":3,'
            f'"startTimeUnixNano":"{t_s}","endTimeUnixNano":"{t_e}","attributes":[{",".join(attrs)}],'
            f'"status":{{}},"flags":256}}')
    base = [s("team", "genai-apps"), s("deployment.environment.name", "prod"), s("k8s.cluster.name", "aks-genai-prod"),
            s("k8s.namespace.name", "support-copilot"), s("cloud.provider", "azure"), s("cloud.region", "eastus")]
    resources = {  # the worker's feature comes from OTEL_RESOURCE_ATTRIBUTES: its auto-instrumentation sets none
        "v1": ([s("service.name", "support-copilot"), s("service.version", "1.8.2"), *base],
               ("helix.copilot.tracing", "1.8.2")),
        "v2": ([s("service.name", "support-copilot"), s("service.version", "2.0.1"), *base],
               ("helix.copilot.tracing", "2.0.1")),
        "worker": ([s("service.name", "copilot-worker"), s("service.version", "1.9.4"), *base,
                    s("feature", "support-copilot")], ("opentelemetry.instrumentation.botocore", "0.52b0")),
    }
    out = []
    for (res, _), items in sorted(spans.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        attrs, (scope, version) = resources[res]
        out.append(f'{{"resourceSpans":[{{"resource":{{"attributes":[{",".join(attrs)}]}},"scopeSpans":[{{"scope":'
                   f'{{"name":"{scope}","version":"{version}"}},"spans":[{",".join(items)}]}}]}}]}}')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


def _litellm_file(sc: Scenario, r: dict[str, np.ndarray], rng: np.random.Generator, path: Path) -> Path:
    """The gateway's ``LiteLLM_SpendLogs`` as ``\\copy ... TO 'spend_logs.csv' CSV HEADER`` writes it (times as
    timestamp(3), JSON as text, NULL as an empty field); ``spend`` at the gateway's configured prices."""
    n = len(r["line"])
    ids = _hex(rng, 2 * n)
    start = r["ts"].astype("datetime64[ms]")
    dur_ms = np.round(900 + r["input"] / 20 + r["output"] * 18).astype(np.int64)
    times = np.char.replace(np.datetime_as_string(np.concatenate([start, start + dur_ms.astype("timedelta64[ms]"),
                                                                  start + (dur_ms // 3).astype("timedelta64[ms]")]),
                                                  unit="ms"), "T", " ")
    failed = r["status"] == 1
    spend = np.zeros(n)
    for ln in (SONNET, PRO):  # the deployments' input_cost_per_token / output_cost_per_token: the list rates
        m, sel = sc.api_models[ln], r["line"] == ln
        spend[sel] = (r["input"][sel] * float(m.input_price) + r["output"][sel] * float(m.output_price)) / 1000
    gw = {SONNET: ("bedrock", "claude-sonnet-4-5", "doc-summarizer-prod", "genai-apps",
                   "https://bedrock-runtime.us-east-1.amazonaws.com", "doc-summarizer"),
          PRO: ("vertex_ai", "gemini-2.5-pro", "analytics-assistant", "data-eng",
                "https://us-central1-aiplatform.googleapis.com", "analytics-assistant")}
    key = {ln: hashlib.sha256(f"sk-helix-{g[2]}".encode()).hexdigest() for ln, g in gw.items()}
    uuid = {ln: cat.hash_id("litellm-team", g[3]) for ln, g in gw.items()}
    team_id = {ln: f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}" for ln, h in uuid.items()}
    error = ('{"error_class": "RateLimitError", "error_code": "429", "error_message": "ThrottlingException: Too '
             'many tokens, please wait before trying again."}')
    cols: dict[str, list[object]] = {c: [] for c in (
        "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
        "startTime", "endTime", "request_duration_ms", "completionStartTime", "model", "model_id", "model_group",
        "custom_llm_provider", "api_base", "user", "metadata", "cache_hit", "cache_key", "request_tags", "team_id",
        "organization_id", "end_user", "requester_ip_address", "messages", "response", "session_id", "status",
        "mcp_namespaced_tool_name", "agent_id", "proxy_server_request")}
    rows = zip(r["line"].tolist(), r["input"].tolist(), r["output"].tolist(), r["cache"].tolist(),
               r["reasoning"].tolist(), r["user"].tolist(), r["tenant"].tolist(), failed.tolist(), spend.tolist(),
               dur_ms.tolist(), strict=True)
    for k, (ln, inp, outp, cache, reason, user, tenant, bad, cost, ms) in enumerate(rows):
        provider, group, alias, team, api_base, feature = gw[ln]
        owner = f"e-{1000 + user:04d}" if tenant < 0 else "svc-doc-summarizer"
        usage = "null" if bad else (
            f'{{"completion_tokens": {outp}, "prompt_tokens": {inp}, "total_tokens": {inp + outp}, '
            f'"completion_tokens_details": {{"reasoning_tokens": {reason}}}, '
            f'"prompt_tokens_details": {{"cached_tokens": {cache}}}}}')
        meta = (f'{{"user_api_key_alias": "{alias}", "user_api_key_team_alias": "{team}", "user_api_key_team_id": '
                f'"{team_id[ln]}", "user_api_key_user_id": "{owner}", "spend_logs_metadata": null, "usage_object": '
                f'{usage}, "status": "{"failure" if bad else "success"}", "error_information": '
                f'{error if bad else "null"}, "litellm_overhead_time_ms": {1 + ids[2 * k] % 30 / 10}}}')
        tags = f'["feature:{feature}"' + (f', "tenant:{TENANTS[tenant]}"]' if tenant >= 0 else "]")
        for c, v in (("request_id", f"chatcmpl-{ids[2 * k]:016x}{ids[2 * k + 1] % 2 ** 32:08x}"),
                     ("call_type", "acompletion"), ("api_key", key[ln]), ("spend", 0.0 if bad else round(cost, 10)),
                     ("total_tokens", inp + outp), ("prompt_tokens", inp), ("completion_tokens", outp),
                     ("startTime", times[k]), ("endTime", times[n + k]), ("request_duration_ms", ms),
                     ("completionStartTime", None if bad else times[2 * n + k]), ("model", LINES_BY_INDEX[ln].model),
                     ("model_id", key[ln][:10]), ("model_group", group), ("custom_llm_provider", provider),
                     ("api_base", api_base), ("user", owner), ("metadata", meta), ("cache_hit", "False"),
                     ("cache_key", "Cache OFF"), ("request_tags", tags), ("team_id", team_id[ln]),
                     ("end_user", f"{TENANTS[tenant]}-u{user:04d}" if tenant >= 0 else None),
                     ("messages", "{}"), ("response", "{}"), ("status", "failure" if bad else "success"),
                     ("proxy_server_request", "{}")):
            cols[c].append(v)
        for c in ("organization_id", "requester_ip_address", "session_id", "mcp_namespaced_tool_name", "agent_id"):
            cols[c].append(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:  # quoted only where needed, as PostgreSQL's CSV is
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(cols)
        out.writerows(zip(*(["" if v is None else v for v in vs] for vs in cols.values()), strict=True))
    return path



# -- the hourly rollup and the outcomes -------------------------------------------------------------

def _profile(line: int, hours: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Hourly weights of a line's service traffic: user-driven lines follow US daytime, indexing less so."""
    load = _load(hours % 24 + .5, weekend)
    return {TITAN: .6 + load, EMBED: .4 + load, SONNET: .3 + load, FLASH: .8 + .2 * load}.get(line, .08 + load)


def _rollup(sc: Scenario, first: int, t0: np.datetime64, remainder: dict[int, tuple[np.ndarray, np.ndarray]],
            llama: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per line, hour and tier: the line's tokens that the per-request files do not carry (columns of
    ``usage_hourly.csv``, and ``day``, the row's day in the window)."""
    days = sc.days - first
    hours = np.arange(days * 24)
    day = hours // 24
    t_hour = t0 + hours.astype("timedelta64[h]")
    weekend = (t_hour.astype("datetime64[D]").astype(np.int64) + 3) % 7 >= 5
    accounts = {a.key: a for a in sc.accounts}
    parts = []
    for ln, (r_in, r_out) in [*remainder.items(), (LLAMA, llama)]:
        line = LINES_BY_INDEX[ln]
        m = sc.api_models[ln] if ln != LLAMA else None
        acct = accounts[m.account if m else "aws-ml-prod"]
        batch = [np.round(x * BATCH_SHARE).astype(np.int64) if ln == FLASH else 0 * x for x in (r_in, r_out)]
        for tier in ("standard", "batch") if ln == FLASH else ("standard",):
            if ln == LLAMA:
                h_in, h_out = r_in, r_out
            elif tier == "batch":  # the nightly Vertex batch prediction job, submitted at 02:00 UTC
                h_in, h_out = (np.where(hours % 24 == 2, np.repeat(x, 24), 0) for x in batch)
            else:
                w = _profile(ln, hours, weekend)
                h_in, h_out = _split(r_in - batch[0], day, w), _split(r_out - batch[1], day, w)
            sel = (h_in > 0) | (h_out > 0)
            h_in, h_out = h_in[sel], h_out[sel]
            parts.append({
                "day": day[sel], "hour_utc": np.datetime_as_string(t_hour[sel], unit="s").astype(object) + "Z",
                "account": f"{acct.provider}:{acct.id}", "provider": line.provider, "model": line.model,
                "operation": line.operation, "feature": line.feature, "team": line.team, "service": line.service,
                "tier": tier, "requests": np.maximum(1, -(-h_in // line.per_request)),
                "input_tokens": h_in, "cached_input_tokens": (h_in * line.cache).astype(np.int64),
                "output_tokens": h_out})
    n = [len(p["input_tokens"]) for p in parts]
    return {k: np.concatenate([np.full(c, p[k], object) if isinstance(p[k], str) else p[k]
                               for p, c in zip(parts, n, strict=True)]) for k in parts[0]}


def _llama_target(sc: Scenario, first: int, t0: np.datetime64) -> np.ndarray:
    """Tokens per hour the serving pods process: the endpoint's load, while its nodes run."""
    hours = np.arange((sc.days - first) * 24)
    t_hour = t0 + hours.astype("timedelta64[h]")
    weekend = (t_hour.astype("datetime64[D]").astype(np.int64) + 3) % 7 >= 5
    nodes = [i for i in sc.instances if i.group == "llm-serve-p4d"]
    running = np.mean([sc.running(i)[first * 24:] for i in nodes], axis=0)
    load = .08 + .92 * _load(hours % 24 + .5, weekend)
    return np.round(LLAMA_PEAK_TOKENS_PER_S * 3600 * load * running).astype(np.int64)


def _outcomes(sc: Scenario, first: int, reqs: dict[str, np.ndarray], day: np.ndarray, rollup: dict[str, np.ndarray],
              rng: np.random.Generator) -> pa.Table:
    """Per day: tickets resolved by the copilot and documents summarized (with their revenue) per tenant,
    searches with a click."""
    days = sc.days - first
    r_day = (np.datetime64(sc.start, "D") + first + np.arange(days)).astype(str)

    def rollup_requests(line: int) -> np.ndarray:
        sel = (rollup["service"] == LINES_BY_INDEX[line].service) & (rollup["model"] == LINES_BY_INDEX[line].model)
        return np.bincount(rollup["day"][sel], rollup["requests"][sel], days).astype(np.int64)

    rows: dict[str, list[object]] = {k: [] for k in ("date", "feature", "team", "tenant", "metric", "value", "unit",
                                                      "source_system")}

    def add(d: str, feature: str, team: str, tenant: str | None, metric: str, value: object, unit: str,
            system: str) -> None:
        for k, v in zip(rows, (d, feature, team, tenant, metric, value, unit, system), strict=True):
            rows[k].append(v)

    conv = reqs["line"] == LLAMA  # one triage call per conversation
    w = 1 / (np.arange(len(TENANTS)) + 1.0) ** 1.1
    handled = np.bincount(day[conv], minlength=days) + rollup_requests(GPT41) // 3  # 3 drafts a ticket
    for d, n in enumerate(handled):
        for t, v in enumerate(rng.multinomial(rng.binomial(n, .62), w / w.sum())):
            if v:
                add(r_day[d], "support-copilot", "genai-apps", TENANTS[t], "tickets_resolved", int(v), "count",
                    "zendesk")
    answered = rollup_requests(HAIKU)  # a third of searches get an AI answer
    for d, n in enumerate(answered):
        add(r_day[d], "semantic-search", "search", None, "searches_with_click", int(rng.binomial(3 * n, .46)),
            "count", "segment")
    summ = (reqs["line"] == SONNET) & (reqs["status"] == 0)
    online = np.zeros((days, 12), np.int64)
    np.add.at(online, (day[summ], reqs["tenant"][summ]), 1)
    wt = 1 / (np.arange(12) + 1.0)
    bulk = rollup_requests(SONNET)  # one request a document
    for d in range(days):
        docs = online[d] + rng.multinomial(bulk[d], wt / wt.sum())
        for t in np.flatnonzero(docs):
            price = DOC_PRICE["enterprise" if t < 3 else "standard"]
            add(r_day[d], "doc-summarizer", "genai-apps", TENANTS[t], "documents_summarized", int(docs[t]), "count",
                "app-db")
            add(r_day[d], "doc-summarizer", "genai-apps", TENANTS[t], "revenue", f"{docs[t] * price:.2f}", "USD",
                "stripe")
    return pa.table({k: pa.array([None if v is None else str(v) for v in vs], pa.string()) for k, vs in rows.items()})


def write_llm_usage(sc: Scenario, out_dir: Path, days: int = LLM_DAYS) -> LlmFiles:
    """Write the LLM traffic of the scenario's last ``days`` (at most all of it) under ``out_dir`` (see the
    module docstring)."""
    assert [(m.service, m.model, m.project) for m in sc.api_models] == list(LINES), "LINES follow the bill's models"
    out_dir = Path(out_dir)
    first = max(0, sc.days - days)
    t0 = np.datetime64(sc.start, "ms") + np.timedelta64(first * DAY_S * 1000, "ms")
    rng = np.random.default_rng([sc.seed, 7])
    volumes = api_token_volumes(sc)
    copilot = _sorted(_copilot(sc, rng, first, t0))
    gateway = _sorted(_gateway(sc, rng, first, t0))
    both = _concat([{**copilot, "status": np.zeros(len(copilot["line"]), np.int64)}, gateway])
    day = ((both["ts"] - t0) // np.timedelta64(DAY_S, "s")).astype(np.int64)
    line = np.where(both["line"] == -2, SONNET_COPILOT, both["line"])
    n_days = sc.days - first
    remainder = {}
    for ln in range(len(LINES)):
        sel = line == ln
        r = tuple(v[first:] - np.bincount(day[sel], both[k][sel], n_days).astype(np.int64)
                  for v, k in zip(volumes[ln], ("input", "output"), strict=True))
        assert (r[0] >= 0).all() and (r[1] >= 0).all(), f"the per-request files carry more than line {ln} billed"
        remainder[ln] = r
    hour = ((both["ts"] - t0) // np.timedelta64(3600, "s")).astype(np.int64)
    target = _llama_target(sc, first, t0)
    sel = line == LLAMA
    llama = tuple(np.maximum(0, np.round(target * share).astype(np.int64)
                             - np.bincount(hour[sel], both[k][sel], len(target)).astype(np.int64))
                  for share, k in ((.988, "input"), (.012, "output")))
    rollup = _rollup(sc, first, t0, remainder, llama)
    (out_dir / "usage").mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.table({k: v for k, v in rollup.items() if k != "day"}), out_dir / "usage" / "usage_hourly.csv")
    pacsv.write_csv(_outcomes(sc, first, both, day, rollup, rng), out_dir / "outcomes.csv")
    return LlmFiles(_otel_file(sc, copilot, np.datetime64(sc.spike("copilot-launch").start, "ms"), rng,
                               out_dir / "otel" / "copilot-traces.jsonl"),
                    _litellm_file(sc, gateway, rng, out_dir / "litellm" / "spend_logs.csv"),
                    out_dir / "usage" / "usage_hourly.csv", out_dir / "outcomes.csv")
