"""Helpers shared by tests (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aifinops.model import focus

GOLDEN = Path(__file__).parent / "golden"


def write_focus_csv(path: Path, rows: list[dict[str, str | None]]) -> Path:
    """A FOCUS 1.2 CSV with every column; cells not given are NULL. Used for hand-computed cases."""
    base = {
        "BillingAccountId": "acct-1", "BillingAccountName": "Acme", "BillingCurrency": "USD",
        "BillingPeriodStart": "2026-10-01T00:00:00Z", "BillingPeriodEnd": "2026-11-01T00:00:00Z",
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "ProviderName": "AWS",
        "PublisherName": "AWS", "InvoiceIssuerName": "AWS", "ServiceCategory": "Compute",
        "ServiceName": "Amazon Elastic Compute Cloud", "ListCost": "0", "ContractedCost": "0",
    }
    names = focus.column_names()
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for r in rows:
            merged = {**base, **r}
            w.writerow([merged.get(n) if merged.get(n) is not None else "NULL" for n in names])
    return path


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers with ``_send`` and logs nothing (the fake servers of the collector tests)."""

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler], poll: float = 0.05) -> Iterator[ThreadingHTTPServer]:
    """``handler`` served on 127.0.0.1 (a free port) in a thread, for the length of the ``with``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
