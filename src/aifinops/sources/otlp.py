"""OTLP trace data, decoded into flat spans: the two encodings and the framings users keep spans in.

- **OTLP/JSON** (what the collector's ``file`` exporter writes by default, and ``POST /v1/traces`` with
  ``application/json``): one ``ExportTraceServiceRequest`` object per line, or one document (pretty-printed,
  or a JSON array of requests). The OTLP/JSON rules differ from protobuf's standard JSON mapping, and both
  are read: trace and span ids are hex (base64, which a generic protobuf JSON printer writes, is recognised
  by its length), keys lowerCamelCase (the proto field names also accepted), 64-bit integers as strings or
  numbers, enums as integers or names, values wrapped as ``AnyValue`` (``stringValue``, ``intValue``, ...).
- **OTLP protobuf**: a serialized ``ExportTraceServiceRequest`` (an OTLP/HTTP body), or the collector file
  exporter's ``format: proto`` file, where each message is preceded by its length as a 4-byte big-endian
  unsigned integer. Decoded by ``opentelemetry-proto``.

A file that is not OTLP traces raises ``OtlpError`` naming the line (JSON) or message (proto) and the
problem. A span whose own fields are wrong (an id of the wrong length, a start time that is not an integer,
an attribute without a key) is not a file error: it is decoded with ``Span.problem`` set, so that the ingest
quarantines that span alone and loads the others.

Attribute values become text: strings as they are, integers in decimal, doubles as Python prints them, booleans
``true``/``false``, arrays and key-value lists as JSON, bytes as base64. Only spans carrying a ``gen_ai.``
attribute have their values converted (``genai_only``): the rest are counted, which keeps an application
that exports all of its traces here cheap to read.
"""

from __future__ import annotations

import base64
import binascii
import gc
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpError(ValueError):
    """Not OTLP trace data; the message says where (line or message number) and what is wrong."""


@dataclass(slots=True)
class Span:
    """One span, flattened: resource and span attributes merged (the span's win), ids as lower-case hex."""

    where: int  # 1-based line (JSON) or message (protobuf) of the file the span came from
    trace_id: str | None
    span_id: str | None
    name: str
    start: str | None  # startTimeUnixNano as text: checked, not trusted
    end: str | None
    status_code: int | None  # 0 unset, 1 ok, 2 error; None when the file's value is not a status code
    status_message: str | None
    scope: tuple[str | None, str | None]  # instrumentation scope name and version
    attributes: dict[str, str | None]
    problem: str | None = None


@dataclass
class Counts:
    """What a decode saw besides the GenAI spans it yields."""

    spans: int = 0
    other_spans: int = 0  # spans without any gen_ai.* attribute
    genai_spans: int = 0


_HEX = re.compile(r"[0-9a-fA-F]*")
_INT = re.compile(r"-?[0-9]+")
_STATUS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
# AnyValue keys in OTLP/JSON (lowerCamelCase) and as proto field names.
_VALUE_KEYS = {"stringValue": "s", "string_value": "s", "intValue": "i", "int_value": "i", "doubleValue": "d",
               "double_value": "d", "boolValue": "b", "bool_value": "b", "arrayValue": "a", "array_value": "a",
               "kvlistValue": "k", "kvlist_value": "k", "bytesValue": "y", "bytes_value": "y"}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


# -- OTLP/JSON --------------------------------------------------------------------------------------

class _BadSpan(Exception):
    """A problem local to one span: the span is kept, marked, and quarantined at ingest."""


def _json_id(value: Any, size: int, what: str) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lower-case hex; base64 (protobuf's JSON mapping) converted."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadSpan(f"{what} is not a string: {str(value)[:40]!r}")
    if len(value) == 2 * size and _HEX.fullmatch(value):
        return value.lower()
    if len(value) == 4 * ((size + 2) // 3):  # base64 of `size` bytes
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == size:
            return raw.hex()
    return value  # wrong length: the ingest's span id rule names it


def _json_time(value: Any) -> str | None:
    if value is None:
        return None
    return str(value) if not isinstance(value, float) else repr(value)


def _plain(v: Any) -> Any:
    """A JSON AnyValue -> a plain Python value (for arrays and key-value lists, written as JSON text)."""
    if not isinstance(v, dict) or not v:
        return None
    key, x = next(iter(v.items()))
    kind = _VALUE_KEYS.get(key)
    if kind in ("a", "k"):
        values = x.get("values") if isinstance(x, dict) else None
        if not isinstance(values, list):
            return None
        if kind == "a":
            return [_plain(e) for e in values]
        return {str(e.get("key")): _plain(e.get("value")) for e in values if isinstance(e, dict)}
    if kind == "i" and isinstance(x, str) and _INT.fullmatch(x):
        return int(x)
    return x


def _json_text(v: Any, key: str) -> str | None:
    """A JSON AnyValue -> text (see the module docstring)."""
    if not isinstance(v, dict):
        raise _BadSpan(f"attribute {key!r}: the value is not an AnyValue object")
    if not v:
        return None
    k, x = next(iter(v.items()))
    kind = _VALUE_KEYS.get(k)
    if kind is None:
        raise _BadSpan(f"attribute {key!r}: unknown value type {k!r}")
    if kind == "s" or kind == "y":
        return x if isinstance(x, str) else json.dumps(x)
    if kind == "i":
        return x if isinstance(x, str) else (str(x) if isinstance(x, int) and not isinstance(x, bool) else repr(x))
    if kind == "d":
        return repr(float(x)) if isinstance(x, int | float) and not isinstance(x, bool) else str(x)
    if kind == "b":
        return "true" if x is True else "false" if x is False else str(x)
    return json.dumps(_plain(v), separators=(",", ":"), ensure_ascii=False)


def _json_attrs(items: Any, into: dict[str, str | None]) -> None:
    if items is None:
        return
    if items.__class__ is not list:
        raise _BadSpan("attributes is not a list")
    for i, kv in enumerate(items):
        # the common case inline (a string, or an int64 that OTLP/JSON writes as a string): one call per
        # attribute instead of three is most of the decoding time of a large file
        try:
            key, v = kv["key"], kv["value"]
            x = v.get("stringValue")
            if x is None:
                x = v.get("intValue")
        except (TypeError, KeyError, AttributeError):  # not an object, no value, a value that is not an object
            ok = isinstance(kv, dict)
            key, v, x = kv.get("key") if ok else None, kv.get("value", {}) if ok else {}, None
        if key.__class__ is not str or not key:
            raise _BadSpan(f"attribute #{i + 1} has no key")
        into[key] = x if x.__class__ is str else _json_text(v, key)


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(f"{what} is not a list")
    return value


def json_spans(doc: Any, where: int, counts: Counts, genai_only: bool = True, build: bool = True) -> Iterator[Span]:
    """The spans of one OTLP/JSON ``ExportTraceServiceRequest`` (a parsed JSON object). ``build=False`` only
    checks the structure and counts (what the receiver needs before it answers)."""
    if not isinstance(doc, dict):
        raise OtlpError("not an OTLP ExportTraceServiceRequest (not a JSON object)")
    rs_list = _get(doc, "resourceSpans", "resource_spans")
    if rs_list is None:
        for other, signal in (("resourceMetrics", "metrics"), ("resourceLogs", "logs"), ("resource_metrics", "metrics"),
                              ("resource_logs", "logs")):
            if other in doc:
                raise OtlpError(f"OTLP {signal}, not traces")
        if doc:
            keys = ", ".join(list(doc)[:5])
            raise OtlpError(f"not an OTLP ExportTraceServiceRequest (no resourceSpans; keys: {keys})")
        return
    for rs in _list(rs_list, "resourceSpans"):
        if not isinstance(rs, dict):
            raise OtlpError("a resourceSpans entry is not an object")
        resource: dict[str, str | None] = {}
        res = rs.get("resource") or {}
        if not isinstance(res, dict):
            raise OtlpError("resource is not an object")
        try:
            _json_attrs(res.get("attributes"), resource)
        except _BadSpan as exc:
            raise OtlpError(f"resource: {exc}") from None
        scopes = _get(rs, "scopeSpans", "scope_spans")
        if scopes is None:
            scopes = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")  # OTLP < 0.15
        for ss in _list(scopes, "scopeSpans"):
            if not isinstance(ss, dict):
                raise OtlpError("a scopeSpans entry is not an object")
            sc = ss.get("scope") or ss.get("instrumentationLibrary") or {}
            scope = (_text(sc.get("name")), _text(sc.get("version"))) if isinstance(sc, dict) else (None, None)
            for sp in _list(ss.get("spans"), "spans"):
                if not isinstance(sp, dict):
                    raise OtlpError("a span is not an object")
                counts.spans += 1
                raw_attrs = sp.get("attributes")
                if genai_only and not (isinstance(raw_attrs, list) and any(
                        isinstance(kv, dict) and str(kv.get("key", "")).startswith("gen_ai.") for kv in raw_attrs)):
                    counts.other_spans += 1
                    continue
                counts.genai_spans += 1
                if build:  # a shape no rule foresaw makes this span malformed, never the file unreadable
                    try:
                        span = _json_span(sp, where, resource, scope)
                    except (TypeError, AttributeError, ValueError, RecursionError) as exc:
                        span = Span(where, None, None, "", None, None, None, None, scope, dict(resource),
                                    f"malformed span: {type(exc).__name__}: {exc}")
                    yield span


def _text(value: Any) -> str | None:
    """A free-text field (scope name, status message) as text, whatever JSON type the file gave it."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _json_span(sp: dict[str, Any], where: int, resource: dict[str, str | None],
               scope: tuple[str | None, str | None]) -> Span:
    attrs = dict(resource)
    problem = None
    trace_id = span_id = None
    try:
        trace_id = _json_id(_get(sp, "traceId", "trace_id"), 16, "traceId")
        span_id = _json_id(_get(sp, "spanId", "span_id"), 8, "spanId")
        _json_attrs(sp.get("attributes"), attrs)
    except _BadSpan as exc:
        problem = f"malformed span: {exc}"
    status = sp.get("status") or {}
    code: Any = status.get("code", 0) if isinstance(status, dict) else None
    code = _STATUS.get(code, code) if isinstance(code, str) else code
    if not isinstance(code, int) or isinstance(code, bool) or code not in (0, 1, 2):
        problem = problem or f"malformed span: status code {code!r} is not 0, 1 or 2"
        code = None
    message = _text(status.get("message")) if isinstance(status, dict) else None
    name = sp.get("name")
    return Span(where, trace_id, span_id, name if isinstance(name, str) else "",
                _json_time(_get(sp, "startTimeUnixNano", "start_time_unix_nano")),
                _json_time(_get(sp, "endTimeUnixNano", "end_time_unix_nano")),
                code, message, scope, attrs, problem)


# -- protobuf ---------------------------------------------------------------------------------------

def _pb_plain(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_pb_plain(e) for e in v.array_value.values]
    if kind == "kvlist_value":
        return {e.key: _pb_plain(e.value) for e in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None if kind is None else getattr(v, kind)


def _pb_text(v: Any) -> str | None:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return repr(v.double_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind is None:
        return None
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return json.dumps(_pb_plain(v), separators=(",", ":"), ensure_ascii=False)


def proto_spans(msg: ExportTraceServiceRequest, where: int, counts: Counts, genai_only: bool = True,
                build: bool = True) -> Iterator[Span]:
    """The spans of one decoded ``ExportTraceServiceRequest`` (``build=False``: only counted)."""
    for rs in msg.resource_spans:
        resource = {kv.key: _pb_text(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            scope = (ss.scope.name or None, ss.scope.version or None)
            for sp in ss.spans:
                counts.spans += 1
                kvs = sp.attributes
                if genai_only and not any(kv.key.startswith("gen_ai.") for kv in kvs):
                    counts.other_spans += 1
                    continue
                counts.genai_spans += 1
                if not build:
                    continue
                attrs = dict(resource)
                problem = None
                for i, kv in enumerate(kvs):
                    if not kv.key:
                        problem = f"malformed span: attribute #{i + 1} has no key"
                        continue
                    attrs[kv.key] = _pb_text(kv.value)
                code = sp.status.code
                if code not in (0, 1, 2):
                    problem, code = problem or f"malformed span: status code {code} is not 0, 1 or 2", None
                yield Span(where, sp.trace_id.hex() or None, sp.span_id.hex() or None, sp.name,
                           str(sp.start_time_unix_nano) if sp.start_time_unix_nano else None,
                           str(sp.end_time_unix_nano) if sp.end_time_unix_nano else None,
                           code, sp.status.message or None, scope, attrs, problem)


def parse_proto(data: bytes) -> ExportTraceServiceRequest:
    """One serialized ``ExportTraceServiceRequest``; ``OtlpError`` when the bytes are not one."""
    try:
        return ExportTraceServiceRequest.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OtlpError(f"not a protobuf ExportTraceServiceRequest ({exc or type(exc).__name__})") from None


def proto_frames(data: bytes) -> list[bytes]:
    """The messages of a protobuf file: the collector file exporter's length-prefixed frames when the 4-byte
    big-endian lengths tile the file exactly, else the whole file as one message (an OTLP/HTTP body)."""
    frames, i = [], 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        if i + 4 + n > len(data):
            break
        frames.append(data[i + 4:i + 4 + n])
        i += 4 + n
    if frames and i == len(data):
        if any(f.startswith(_ZSTD_MAGIC) for f in frames):
            raise OtlpError("zstd-compressed messages (file exporter `compression: zstd`) are not supported; "
                            "export without compression")
        return frames
    return [data]


@contextmanager
def no_gc() -> Iterator[None]:
    """Decoding creates millions of small dicts and lists that live until the rows are built; the cyclic
    garbage collector would walk them again and again (5x the decoding time on a 150 MB file). None of them
    form cycles, so collection waits until the end."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- files ------------------------------------------------------------------------------------------

def file_format(path: Path) -> str | None:
    """``json`` or ``proto`` by the file name's ending; None: not an OTLP file name."""
    name = path.name.lower()
    if name.startswith("."):
        return None  # hidden files, e.g. the receiver's spool files still being written
    if name.endswith((".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")):
        return "json"
    if name.endswith((".pb", ".binpb", ".pb.gz", ".binpb.gz")):
        return "proto"
    return None


def sniff(path: Path) -> str:
    """The encoding of a file whose name says nothing (the file exporter's example path is ``./file``)."""
    with _open(path) as fh:
        head = fh.read(64).lstrip()
    return "json" if head[:1] in (b"{", b"[") else "proto"


def _open(path: Path) -> Any:
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else path.open("rb")


def _read(path: Path) -> bytes:
    try:
        with _open(path) as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise OtlpError(f"cannot decompress ({exc}); the gzip file is corrupt or truncated") from None


def _json_docs(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, parsed JSON) per non-blank line, read as a stream (a file of many requests is never held whole);
    a file whose first line is not JSON by itself is read as one document (pretty-printed), and a top-level
    array as one request per element."""
    whole = False
    try:
        with _open(path) as fh:
            seen = False
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc = _loads(line.rstrip(b"\r\n"), n)
                except OtlpError:
                    if seen:
                        raise
                    whole = True
                    break
                seen = True
                yield from ((n, d) for d in (doc if isinstance(doc, list) else [doc]))
            if not seen and not whole:
                raise OtlpError("the file is empty (no spans)")
    except (OSError, EOFError, zlib.error) as exc:
        raise OtlpError(f"cannot decompress ({exc}); the gzip file is corrupt or truncated") from None
    if whole:
        data = _read(path)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise OtlpError(f"not UTF-8 (byte {exc.start}); not an OTLP/JSON file") from None
        first = next(i for i, line in enumerate(text.split("\n"), 1) if line.strip())
        doc = _loads(text)
        yield from ((first, d) for d in (doc if isinstance(doc, list) else [doc]))


def _loads(text: str | bytes, line: int | None = None) -> Any:
    """``json.loads``; ``OtlpError`` for what is not JSON, nested too deeply or holds an integer too long to read."""
    where = f"line {line}: " if line else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}" if not line and exc.lineno > 1 else f"column {exc.colno}"
        raise OtlpError(f"{where}not JSON ({exc.msg} at {at})") from None
    except UnicodeDecodeError as exc:
        raise OtlpError(f"{where}not UTF-8 (byte {exc.start}); not OTLP/JSON") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to read, nesting too deep
        raise OtlpError(f"{where}not JSON that can be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def file_spans(path: Path, fmt: str, counts: Counts, genai_only: bool = True) -> Iterator[Span]:
    """Every (GenAI) span of an OTLP file; ``OtlpError`` names the line or message that is not OTLP traces."""
    if fmt == "json":
        for line, doc in _json_docs(path):
            try:
                yield from json_spans(doc, line, counts, genai_only)
            except OtlpError as exc:
                raise OtlpError(f"line {line}: {exc}") from None
        return
    data = _read(path)
    if not data:
        raise OtlpError("the file is empty (no spans)")
    frames = proto_frames(data)
    for n, frame in enumerate(frames, 1):
        try:
            msg = parse_proto(frame)
        except OtlpError as exc:
            raise OtlpError(f"message {n}: {exc}" if len(frames) > 1 else str(exc)) from None
        yield from proto_spans(msg, n, counts, genai_only)


def check_body(body: bytes, encoding: str) -> Counts:
    """Spans of one OTLP/HTTP request body (``json`` or ``proto``), counted; ``OtlpError`` when it is not OTLP
    traces. The receiver decodes a body in full before it acknowledges it, so that what it accepts the ``otel``
    source reads: everything that can make a file unreadable is checked here; what is wrong with one span only
    is quarantined at ingest."""
    counts = Counts()
    with no_gc():
        if encoding == "proto":
            spans = proto_spans(parse_proto(body), 1, counts, build=False)
        else:
            spans = json_spans(_loads(body), 1, counts, build=False)
        for _ in spans:
            pass
    return counts
