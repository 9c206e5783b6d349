"""The real application served by uvicorn on 127.0.0.1 (a free port) in a thread, for the API tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from aifinops.config import Settings
from aifinops.interfaces.api.app import create_app


@contextmanager
def serve(db: Path, settings: Settings | None = None) -> Iterator[str]:
    """Serve ``db`` for the length of the ``with``; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db, settings or Settings(db=db)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        raise AssertionError("the server did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
