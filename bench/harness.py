"""What every benchmark here shares: each measured step runs in a fresh interpreter, timed inside the child,
with the child's own peak memory.

Why a child per step: a step's peak RSS must be its own, and Linux carries a parent's high-water mark into
``ru_maxrss`` of a forked child, so each step reads ``VmHWM`` of its own process just before it exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def peak_mb() -> float:
    """This process's peak resident set (VmHWM, Linux); ru_maxrss, which may include the parent's, elsewhere."""
    status = Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []
    kb = next((int(x.split()[1]) for x in status if x.startswith("VmHWM:")), None)
    return (kb or __import__("resource").getrusage(0).ru_maxrss) / 1024


def run_child(script: str, child_args: list[str], memory_limit: str, profile: bool = False,
              show_stderr: bool = False) -> dict[str, Any]:
    """Run ``script --child *child_args`` in a fresh interpreter (the checkout's aifinops first on the path) and
    return the JSON report it prints last, with its wall time; a failed step stops the benchmark."""
    cmd = [sys.executable, script, "--child", *child_args, "--memory-limit", memory_limit,
           *(["--profile"] if profile else [])]
    paths = [str(HERE.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if show_stderr else subprocess.PIPE,
                          text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{child_args[0]} failed:\n{(proc.stderr or '')[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - started}
