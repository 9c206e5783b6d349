"""Real servers on loopback for the alert tests: an HTTP server that records every request and answers from a
script (500 N times, then 200), and an SMTP server (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpRecorder:
    """Records requests; answers ``script`` in order (status, body), then ``default``."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    script: list[tuple[int, str]] = field(default_factory=list)
    default: tuple[int, str] = (200, "ok")
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0001/B0001/secret"

    def fail(self, times: int, status: int = 500) -> None:
        self.script = [(status, "upstream unavailable")] * times


def _handler(rec: HttpRecorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with rec.lock:
                rec.requests.append(Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, text = rec.script.pop(0) if rec.script else rec.default
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve_http() -> Iterator[HttpRecorder]:
    """A recording HTTP server on 127.0.0.1 (a free port), for the length of the ``with``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    rec = HttpRecorder(server)
    server.RequestHandlerClass = _handler(rec)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage


class Mailbox:
    """The aiosmtpd handler: accepts and keeps messages; refuses recipients in ``refuse`` with 550."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.refuse: set[str] = set()
        self.logins: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content.replace(b"\r\n", b"\n"), policy=policy.default)
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@dataclass
class Smtp:
    port: int
    box: Mailbox


def _authenticator(box: Mailbox) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"alerts", b"s3cret")
        if ok:
            box.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    return check


@contextmanager
def serve_smtp() -> Iterator[Smtp]:
    """An aiosmtpd server on 127.0.0.1 accepting LOGIN/PLAIN as alerts / s3cret (login is optional)."""
    box = Mailbox()
    port = closed_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port, authenticator=_authenticator(box),
                     auth_require_tls=False)
    ctl.start()
    try:
        yield Smtp(port, box)
    finally:
        ctl.stop()
