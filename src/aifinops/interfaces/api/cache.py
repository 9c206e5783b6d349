"""A response cache for the read endpoints whose answers are analyses (costs, allocation, unit costs, GPU
utilisation, forecasts, budgets): each is a pure function of the request, the token's team and the data, so
its JSON can be kept until the data changes.

Why it is safe:

- **The key** is (path, the query parameters in a canonical order, the token's team, the data version). The
  token is verified before a hit is served (``Database.principal``, the same check and 10 s memory the routes
  use), so a revoked or unknown token never reads the cache, and a team-scoped token only ever meets answers
  computed for its own team. Roles do not enter the key: every cached route needs only a viewer.
- **The data version** counts writes. While the server runs it holds the store (DuckDB lets one process write a
  file), so every change goes through it: a request that is not a GET (ingest, dismissals, feedback, token
  changes) bumps the version when it starts and again when its answer starts; OTLP posts are only spooled, and
  the receiver's flushes bump it after their batch commits (``DataVersion.bump``). An answer is stored under
  the version its request began with, so one computed while a write was committing is never served after that
  write answered.
- **Only 200s are kept**, at most ``max_bytes`` of them, least recently used out first. Concurrent misses of one
  key compute it once: the others wait for the first and are served its answer.

A hit answers in well under a millisecond of server time; a miss is the route itself (``bench/api_load.py``
measures both). ``X-Cache: hit|miss`` says which one answered.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import COOKIE

#: the read endpoints whose answers are kept (every one needs a viewer token and nothing more)
CACHED = ("/api/v1/costs", "/api/v1/allocation", "/api/v1/unit-costs", "/api/v1/gpu/utilization",
          "/api/v1/forecasts", "/api/v1/budgets")
#: POSTs that do not write the store themselves: OTLP bodies are spooled, and the flush that stores them bumps
SPOOLED = ("/v1/traces",)
_Key = tuple[str, str, str | None, int]


class DataVersion:
    """A counter of the writes the store has seen through this server: cached answers of an older one are dead."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._n

    def bump(self) -> None:
        with self._lock:
            self._n += 1


def token_of(scope: Scope) -> str | None:
    """The bearer token or the dashboard cookie, as ``auth`` reads them."""
    cookie = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return text[7:].strip()
        elif name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE:
                    cookie = v
    return cookie


def canonical_query(raw: bytes) -> str:
    """The query parameters sorted by name (a repeated name keeps the order of its values)."""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode(sorted(pairs, key=lambda kv: kv[0]))


class ResponseCache:
    """ASGI middleware (``app.add_middleware(ResponseCache, version=...)``); see the module docstring."""

    def __init__(self, app: ASGIApp, version: DataVersion, paths: Iterable[str] = CACHED,
                 max_bytes: int = 64 << 20) -> None:
        self.app, self.version, self.paths, self.max_bytes = app, version, tuple(paths), max_bytes
        self._entries: OrderedDict[_Key, tuple[list[tuple[bytes, bytes]], bytes]] = OrderedDict()
        self._size = 0
        self._pending: dict[_Key, asyncio.Event] = {}
        self.hits = self.misses = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD") and scope["path"] not in SPOOLED:
            await self._write(scope, receive, send)
            return
        if scope["method"] != "GET" or scope["path"].rstrip("/") not in self.paths:
            await self.app(scope, receive, send)
            return
        token = token_of(scope)
        db = getattr(scope["app"].state, "db", None)
        # the principal is remembered for 10 s: a lookup is a dictionary hit, and a miss one indexed query
        who = db.principal(token) if token and db is not None else None
        if who is None:  # the route answers 401 itself
            await self.app(scope, receive, send)
            return
        key = (scope["path"].rstrip("/"), canonical_query(scope.get("query_string", b"")), who.team,
               self.version.value)
        while key in self._pending:  # the same answer is being computed: wait for it
            await self._pending[key].wait()
        if (hit := self._entries.get(key)) is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            await self._answer(send, *hit)
            return
        self.misses += 1
        done = self._pending[key] = asyncio.Event()
        try:
            await self._compute(key, scope, receive, send)
        finally:
            del self._pending[key]
            done.set()

    async def _write(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request that may write: the data version moves before it runs and before its answer leaves."""
        self.version.bump()

        async def bump_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.version.bump()
            await send(message)

        await self.app(scope, receive, bump_then_send)

    async def _compute(self, key: _Key, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = 0, [], bytearray()

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", []))
                message = {**message, "headers": [*headers, (b"x-cache", b"miss")]}
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if status == 200 and len(body) <= self.max_bytes // 4:
            self._store(key, headers, bytes(body))

    def _store(self, key: _Key, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        old = [k for k in self._entries if k[3] != key[3]]  # answers of an older data version are dead
        for k in old:
            self._size -= len(self._entries.pop(k)[1])
        self._entries[key] = (headers, body)
        self._size += len(body)
        while self._size > self.max_bytes and self._entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._size -= len(dropped)

    @staticmethod
    async def _answer(send: Send, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [*headers, (b"x-cache", b"hit")]})
        await send({"type": "http.response.body", "body": body})
