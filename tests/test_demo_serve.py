"""`aifinops demo` as a new user runs it: it builds the store, prints a dashboard link with a read-only token,
and serves until stopped; `--no-serve` only builds."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_serves_its_dashboard_with_a_read_only_token(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIFINOPS_")}
    proc = subprocess.Popen([sys.executable, "-m", "aifinops.interfaces.cli.app", "demo", "--out",
                             str(tmp_path / "demo"), "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        link = None
        while time.monotonic() < deadline and link is None:
            hit = next((m for line in list(lines) if (m := re.search(r"(http://\S+/login\?token=(\S+))", line))), None)
            if hit:
                link, token = hit.group(1), hit.group(2)
            assert proc.poll() is None, "".join(lines)[-3000:]
            time.sleep(0.2)
        assert link, "no dashboard link printed:\n" + "".join(lines)[-3000:]
        base = link.split("/login")[0]
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        costs = httpx.get(base + "/api/v1/costs", params={"window": "30d", "by": "tag:team"}, headers=auth).json()
        assert costs["total"] >= 5  # the demo company's teams
        # read-only: the demo token is a viewer; admin actions are refused
        assert httpx.get(base + "/api/v1/tokens", headers=auth).status_code == 403
        login = httpx.get(link, follow_redirects=False)
        assert login.status_code == 303 and "aifinops_token" in login.headers.get("set-cookie", "")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, "".join(lines)[-2000:]
    assert (tmp_path / "demo" / "aifinops.duckdb").exists()
