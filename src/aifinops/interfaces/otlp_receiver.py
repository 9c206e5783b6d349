"""An OTLP/HTTP trace receiver: spans acknowledged with 200 are on disk, and reach the store in batches.

Durability protocol (why a 200 is never lost):

1. ``POST /v1/traces`` reads the body (at most ``max_body`` bytes, compressed and decompressed), decodes it in
   full as an ``ExportTraceServiceRequest`` (protobuf or OTLP/JSON: what is accepted, the ``otel`` source can
   read) and writes it to the spool folder: a temporary dot-name, ``fsync``, rename to its final name,
   ``fsync`` of the folder. Only then does it answer 200. A crash before that leaves no final file and no 200:
   the SDK retries. A body without any GenAI span is answered 200 and not spooled (nothing to keep).
2. The ``Flusher`` ingests the spooled files through the ``otel`` source as one batch (``store.ingest``: one
   transaction; the bodies merged into one file per encoding first, see ``Spool.merge``), opening the store only
   for that and closing it right after, and deletes the files only after the batch committed. A crash between
   the commit and the deletes re-ingests them at the next start: the same content is a no-op (batch
   fingerprint) or supersedes its own rows (``source``, ``request_id``), so nothing counts twice. The same holds
   for the SDK's retries of a request already acknowledged.
3. A spooled file that cannot be ingested (a file edited by hand, a disk error) would block every later batch:
   when a batch fails, each of its files is read by the source again, and one it cannot read moves to
   ``failed/`` with its error beside it, kept for ``aifinops ingest otel``. When every file reads, the cause is
   not the files (a full disk, a bug): they stay in the spool for the next flush, and the error is logged once.
   A store another command holds only delays the flush.

The HTTP side is a plain ASGI app (``TracesEndpoint``), so an API server can mount the same object at
``/v1/traces``; ``make_app`` serves it alone. Bad input is answered, never raised: 413 for a body over the
limit, 415 for another content type or encoding, 400 with the decoder's message for a body that is not
OTLP traces, 503 (retryable) when the spool cannot be written. Error bodies are ``google.rpc.Status`` in the
request's encoding, as the OTLP specification asks.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..sources.base import Source, SourceError
from ..sources.otlp import OtlpError, check_body
from ..store.connection import Store, StoreError
from ..store.ingest import BatchResult, IngestError, ingest

PROTOBUF, JSON = "application/x-protobuf", "application/json"
_TYPES = {"application/x-protobuf": "proto", "application/protobuf": "proto", "application/json": "json"}
_SUFFIX = {"proto": ".binpb", "json": ".json"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*$", re.IGNORECASE)


class _Reject(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _rpc_status(code: int, message: str, encoding: str) -> bytes:
    """A ``google.rpc.Status`` (field 1: code, field 2: message): two fields, encoded here rather than
    depending on googleapis-common-protos for them."""
    if encoding == "json":
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


# -- the spool ---------------------------------------------------------------------------------------

class Spool:
    """A folder of accepted request bodies, named so that sorting them is their order of arrival."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.failed = folder / "failed"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        for stale in folder.glob(".*.tmp"):  # written but never acknowledged: the sender retried or gave up
            stale.unlink(missing_ok=True)
        for stale in (folder / ".batch").glob("*"):  # a flush that did not finish: its originals are still here
            stale.unlink(missing_ok=True)

    def write(self, body: bytes, encoding: str) -> Path:
        """Durably: temp name, fsync, rename, fsync the folder. Raises OSError (answered 503)."""
        with self._lock:
            n = next(self._seq)
        name = f"{time.time_ns():020d}-{os.getpid()}-{n:08d}{_SUFFIX[encoding]}"
        tmp, final = self.folder / f".{name}.tmp", self.folder / name
        try:
            with tmp.open("wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(final)
            _fsync_dir(self.folder)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: nothing half-written is left to look like a request
            raise
        return final

    def ready(self) -> list[Path]:
        """Spooled files in order of arrival (never one still being written: those have dot-names)."""
        return sorted((p for p in self.folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                      key=lambda p: p.name)

    def remove(self, files: list[Path]) -> None:
        for f in files:
            f.unlink(missing_ok=True)
        _fsync_dir(self.folder)

    def merge(self, files: list[Path]) -> list[Path]:
        """The bodies of ``files`` as at most two files in ``.batch/``: protobuf bodies length-prefixed (the
        collector file exporter's framing), JSON bodies one per line (a newline in JSON can only be whitespace, so
        each body becomes one line). The ingest engine costs about 40 ms per file whatever its size; one file per
        encoding makes a flush of 200 requests 3x faster. The originals stay until the batch commits."""
        stage = self.folder / ".batch"
        stage.mkdir(exist_ok=True)
        merged: list[Path] = []
        for suffix, out_suffix in ((".binpb", ".pb"), (".json", ".jsonl")):
            group = [f for f in files if f.suffix == suffix]
            if not group:
                continue
            target = stage / f"{group[0].stem}+{len(group) - 1}{out_suffix}"
            with target.open("wb") as out:
                for f in group:
                    body = f.read_bytes()
                    if suffix == ".binpb":
                        out.write(len(body).to_bytes(4, "big") + body)
                    else:
                        out.write(body.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n")
            merged.append(target)
        return merged + [f for f in files if f.suffix not in (".binpb", ".json")]

    def set_aside(self, file: Path, error: str) -> Path:
        self.failed.mkdir(exist_ok=True)
        target = self.failed / file.name
        file.replace(target)
        target.with_name(target.name + ".error.txt").write_text(error + "\n")
        _fsync_dir(self.folder)
        return target


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the HTTP endpoint -------------------------------------------------------------------------------

@dataclass
class Stats:
    requests: int = 0
    spans: int = 0
    genai_spans: int = 0
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TracesEndpoint:
    """ASGI app answering OTLP/HTTP ``POST`` of traces at whatever path it is mounted on."""

    def __init__(self, spool: Spool, max_body: int, log: Callable[[str], None] | None = None) -> None:
        self.spool, self.max_body = spool, max_body
        self.log = log or (lambda _msg: None)
        self.stats = Stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        encoding = _TYPES.get(request.headers.get("content-type", "").split(";")[0].strip().lower(), "json")
        try:
            if request.method != "POST":
                raise _Reject(405, "only POST is accepted here", {"Allow": "POST"})
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in _TYPES:
                raise _Reject(415, f"Content-Type {ctype or '(none)'!r} is not supported: send application/x-protobuf"
                                   " or application/json")
            body = await self._body(request)
            response = await run_in_threadpool(self._accept, body, encoding,
                                               request.headers.get("content-encoding", "").strip().lower())
        except ClientDisconnect:  # the sender gave up mid-body: nothing was acknowledged, nothing is kept
            return
        except _Reject as rej:
            with self.stats.lock:
                self.stats.rejected += 1
            if rej.status >= 500:
                self.log(f"[red]answered {rej.status}[/]: {rej.message}")
            grpc_code = 14 if rej.status >= 500 else 3  # UNAVAILABLE (retryable) | INVALID_ARGUMENT
            response = Response(_rpc_status(grpc_code, rej.message, encoding), rej.status,
                                headers=rej.headers, media_type=PROTOBUF if encoding == "proto" else JSON)
        await response(scope, receive, send)

    async def _body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to be larger than ``max_body``."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise _Reject(413, f"body of {int(declared):,} bytes is over the limit of {self.max_body:,} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _Reject(413, f"body is over the limit of {self.max_body:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _accept(self, body: bytes, encoding: str, content_encoding: str) -> Response:
        """Decompress, decode in full, spool durably; runs in a worker thread (fsync blocks)."""
        if content_encoding in ("gzip", "x-gzip", "deflate"):
            body = self._inflate(body, content_encoding)
        elif content_encoding not in ("", "identity"):
            raise _Reject(415, f"Content-Encoding {content_encoding!r} is not supported: send gzip, deflate or none")
        try:
            counts = check_body(body, encoding)
        except OtlpError as exc:
            raise _Reject(400, f"not OTLP traces: {exc}") from None
        if counts.genai_spans:
            try:
                self.spool.write(body, encoding)
            except OSError as exc:
                raise _Reject(503, f"cannot write the spool ({exc}); retry later", {"Retry-After": "5"}) from None
        with self.stats.lock:
            self.stats.requests += 1
            self.stats.spans += counts.spans
            self.stats.genai_spans += counts.genai_spans
        if encoding == "proto":  # an empty ExportTraceServiceResponse: everything was accepted
            return Response(b"", 200, media_type=PROTOBUF)
        return Response(b"{}", 200, media_type=JSON)

    def _inflate(self, body: bytes, content_encoding: str) -> bytes:
        """gzip (every member of it) or deflate (zlib-wrapped, or raw as some clients send it), never more than
        ``max_body`` bytes out: a small bomb is refused with 413 before it is expanded."""
        wbits = 16 + zlib.MAX_WBITS if content_encoding != "deflate" else \
            (zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
        out, data = bytearray(), body
        while data:
            d = zlib.decompressobj(wbits)
            try:
                out += d.decompress(data, self.max_body + 1 - len(out))
            except zlib.error as exc:
                raise _Reject(400, f"Content-Encoding {content_encoding}: the body is not valid ({exc})") from None
            if len(out) > self.max_body or d.unconsumed_tail:
                raise _Reject(413, f"decompressed body is over the limit of {self.max_body:,} bytes")
            if not d.eof:
                raise _Reject(400, f"Content-Encoding {content_encoding}: the body is truncated")
            data = d.unused_data if wbits > 16 else b""  # gzip may hold several members
        return bytes(out)


def make_app(endpoint: TracesEndpoint) -> Starlette:
    """The endpoint served alone, at the OTLP/HTTP default path."""
    return Starlette(routes=[Route("/v1/traces", endpoint)])


# -- the flusher -------------------------------------------------------------------------------------

@dataclass
class Flush:
    files: int = 0
    result: BatchResult | None = None
    set_aside: list[Path] = field(default_factory=list)
    error: str | None = None


class Flusher:
    """Moves spooled files into the store every ``every`` seconds, on a thread of its own; first at once (what a
    crash left behind), last when stopped. The store is open only while a batch is written."""

    def __init__(self, spool: Spool, open_store: Callable[[], Store], make_source: Callable[[], Source],
                 every: float, strict: bool = False, log: Callable[[str], None] | None = None,
                 max_bytes: int = 64 << 20) -> None:
        self.spool, self.open_store, self.make_source = spool, open_store, make_source
        self.every, self.strict, self.max_bytes = every, strict, max_bytes
        self.log = log or (lambda _msg: None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-flusher", daemon=True)
        self._busy = threading.Lock()
        self._last_warning: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop the loop, flush what is left; returns the number of files still spooled (0 unless the store
        could not be written: they are ingested at the next start)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            while self.spool.ready() and self.flush().files:
                pass
        except Exception as exc:  # the files stay spooled: the next start ingests them
            self.log(f"[red]flush failed[/]: {type(exc).__name__}: {exc}")
        return len(self.spool.ready())

    def _run(self) -> None:
        while True:
            try:
                while self.flush().files and self.spool.ready() and not self._stop.is_set():
                    pass  # a backlog: keep going
            except Exception as exc:  # never let the loop die: the spool keeps the spans, the next tick retries
                self.log(f"[red]flush failed[/]: {type(exc).__name__}: {exc}")
            if self._stop.wait(self.every):
                return

    def flush(self) -> Flush:
        """One batch of spooled files, deleted once committed: the oldest, up to ``max_bytes`` of them (a source
        builds each file's rows before the batch loads, so a backlog is taken in bounded steps)."""
        with self._busy:
            files, size = [], 0
            for f in self.spool.ready():
                size += f.stat().st_size
                if files and size > self.max_bytes:
                    break
                files.append(f)
            report = Flush(len(files))
            if not files:
                return report
            try:
                report.result = self._ingest(files)
            except StoreError as exc:
                report.error = str(exc)
                self._warn(f"[yellow]store unavailable[/]: {exc}; spooled files wait for the next flush")
                report.files = 0
                return report
            except IngestError as exc:
                report.error = str(exc)
                report.files = self._one_by_one(files, report)
                return report
            self.spool.remove(files)
            self._last_warning = None
            self._log(report)
            return report

    def _ingest(self, files: list[Path]) -> BatchResult:
        merged = self.spool.merge(files)
        try:
            with self.open_store() as store:
                return ingest(store, self.make_source(), merged, strict=self.strict)
        finally:
            for m in merged:
                if m not in files:
                    m.unlink(missing_ok=True)

    def _one_by_one(self, files: list[Path], report: Flush) -> int:
        """A batch failed: a file the source cannot read is to blame, and is set aside (moved to ``failed/`` with
        its error); the others wait for the next flush. When the source reads every file, the cause is not the
        files (a full disk, a bug): they all stay. Returns how many files left the spool."""
        source = self.make_source()
        blamed: list[tuple[Path, str]] = []
        for f in files:
            try:
                source.read(source.files([f])[0])
            except SourceError as exc:
                blamed.append((f, str(exc)))
        if not blamed:
            self._warn(f"[red]flush failed[/]: {report.error}; {len(files)} spooled file(s) kept for the next flush")
            return 0
        for f, error in blamed:
            report.set_aside.append(self.spool.set_aside(f, error))
            self.log(f"[red]set aside[/] {f.name} (moved to {self.spool.failed}): {error}")
        return len(blamed)

    def _warn(self, msg: str) -> None:
        """Log a problem once while it lasts (a store held for minutes would otherwise log every flush)."""
        if msg != self._last_warning:
            self.log(msg)
        self._last_warning = msg

    def _log(self, report: Flush) -> None:
        res = report.result
        if res is None:
            return
        if res.status == "loaded":
            self.log(f"[green]flushed[/] {report.files} file(s): batch {res.batch_id}, {res.rows_read:,} request(s), "
                     f"{res.rows_loaded:,} loaded, {res.rows_quarantined:,} quarantined in {res.seconds:.2f}s"
                     + (f" (see them: aifinops quarantine --batch {res.batch_id})" if res.rows_quarantined else ""))
            for note in res.notes:
                if "superseded" in note or "repeat" in note:
                    self.log(f"  note: {note}")
        else:
            self.log(f"flushed {report.files} file(s): {res.status} ({'; '.join(res.notes)})")


def parse_size(text: str) -> int:
    """``16MB``, ``512KB``, ``1GiB``, ``2M`` or bare bytes -> bytes (> 0); units are powers of 1024."""
    m = _SIZE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r}: expected a size such as 16MB, 512KB")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()])
