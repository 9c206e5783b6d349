"""API load benchmark: 50 concurrent clients for 60 s over ``/api/v1/costs`` and ``/api/v1/allocation`` on the demo
store, through the real server on loopback; requests, errors (must be 0) and p50/p95/p99 latency per endpoint.

- **The store** is ``aifinops demo``'s (built once into ``bench/out/demo``; ``--regen`` rebuilds it). Three
  viewer tokens are created in it: one that sees every team and two team-scoped ones (genai-apps, ml-platform),
  so the mix exercises scoping too.
- **The server** is a separate process (this script with ``--serve``): ``create_app`` under uvicorn on
  127.0.0.1 with 40 request threads, as ``aifinops serve`` runs it. ``--no-cache`` removes the response cache
  (``interfaces/api/cache.py``) to measure the routes alone: the "before".
- **The mix**: costs over 3 windows x 5 groupings, allocation over 2 windows x 4 aggregates x 2 (accumulate,
  shareIdle) settings, each with every token: 93 distinct requests, chosen at random (seeded) per request,
  half costs and half allocation.
- **Cold, then warm**: with the cache, each distinct request is first sent once, one at a time (what the first
  caller of a new answer waits; reported as ``cold``), then the 60 s run measures the steady state.
- **The clients** are aiohttp coroutines sharing one bounded connection pool (50 connections). httpx's async
  client was measured first: against a trivial ASGI app on this 2-core machine it tops out near 270 requests/s
  with a p99 near 1 s, so it would have measured itself rather than the server.

Run: ``python bench/api_load.py [--clients 50] [--seconds 60] [--no-cache] [--regen] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEAMS = ("genai-apps", "ml-platform")
COSTS = [{"window": w, "by": by} for w in ("30d", "7d", "2026-10")
         for by in ("ServiceName", "tag:team", "ProviderName,ServiceName", "day", "layer")]
ALLOCATION = [{"window": w, "aggregate": agg, "accumulate": acc, "shareIdle": share} for w in ("7d", "30d")
              for agg in ("namespace", "node", "label:team", "workload")
              for acc, share in (("true", "false"), ("false", "true"))]


def _src_path() -> None:
    sys.path.insert(0, str(HERE.parent / "src"))


def build(out: Path, regen: bool) -> tuple[Path, Path]:
    db, config = out / "aifinops.duckdb", out / "aifinops.yaml"
    if regen or not db.exists():
        _src_path()
        from aifinops.demo.run import run_demo

        run_demo(out)
    return db, config


def make_tokens(db: Path) -> dict[str, str]:
    _src_path()
    from aifinops.store import tokens
    from aifinops.store.connection import Store

    now = datetime.now(UTC).replace(tzinfo=None)
    with Store(db) as store:
        out = {"all": tokens.create(store.con, "viewer", None, "bench: every team", now)[1]}
        out.update({t: tokens.create(store.con, "viewer", t, f"bench: {t}", now)[1] for t in TEAMS})
    return out


def serve(db: Path, config: Path, port: int, cache: bool) -> None:
    """The server process: the app as ``aifinops serve`` runs it (40 request threads), optionally without its
    response cache."""
    _src_path()
    import anyio
    import uvicorn

    from aifinops.config import load_settings
    from aifinops.interfaces.api.app import create_app
    from aifinops.interfaces.api.cache import ResponseCache

    settings = load_settings(config, {"db": db})
    app = create_app(db, settings)
    if not cache:  # the middleware stack is built at the first request: drop the cache before it
        app.user_middleware = [m for m in app.user_middleware if m.cls is not ResponseCache]

    async def main() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 40
        await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                            access_log=False)).serve()

    anyio.run(main)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def q(p: float) -> float:
        return v[min(len(v) - 1, int(p * len(v)))] * 1000

    return {"p50_ms": round(q(0.50), 2), "p95_ms": round(q(0.95), 2), "p99_ms": round(q(0.99), 2),
            "max_ms": round(v[-1] * 1000, 2)}


async def load(url: str, keys: dict[str, str], clients: int, seconds: float, warm: bool, seed: int
               ) -> dict[str, Any]:
    import aiohttp

    requests = [(path, params, who) for who in keys for path, mix in (("/api/v1/costs", COSTS),
                                                                     ("/api/v1/allocation", ALLOCATION))
                for params in mix]
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=clients)
    report: dict[str, Any] = {"distinct_requests": len(requests)}
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        async def one(path: str, params: dict[str, str], who: str) -> tuple[int, float]:
            started = time.perf_counter()
            try:
                async with session.get(path, params=params, headers={"Authorization": f"Bearer {keys[who]}"}) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            return status, time.perf_counter() - started

        if warm:
            cold: dict[str, list[float]] = {}
            cold_errors = 0
            for path, params, who in requests:
                status, dt = await one(path, params, who)
                cold.setdefault(path, []).append(dt)
                cold_errors += status != 200
            report["cold"] = {p: {"requests": len(v), **_percentiles(v)} for p, v in cold.items()}
            report["cold_errors"] = cold_errors
        lat: dict[str, list[float]] = {}
        errors: dict[str, int] = {}
        stop = time.monotonic() + seconds

        async def client(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            while time.monotonic() < stop:
                path, params, who = rng.choice(requests)
                status, dt = await one(path, params, who)
                lat.setdefault(path, []).append(dt)
                if status != 200:
                    errors[path] = errors.get(path, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.perf_counter() - started
    report["run"] = {p: {"requests": len(v), "errors": errors.get(p, 0), **_percentiles(v)} for p, v in lat.items()}
    total = sum(len(v) for v in lat.values())
    report.update(requests=total, errors=sum(errors.values()), seconds=round(wall, 1),
                  requests_per_second=round(total / wall, 1), all=_percentiles([x for v in lat.values() for x in v]))
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--no-cache", action="store_true", help="Serve without the response cache (the 'before').")
    ap.add_argument("--regen", action="store_true", help="Rebuild the demo store.")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "demo")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--serve", nargs=3, metavar=("DB", "CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), int(args.serve[2]), not args.no_cache)
        return
    db, config = build(args.out, args.regen)
    keys = make_tokens(db)
    port = _free_port()
    cmd = [sys.executable, __file__, "--serve", str(db), str(config), str(port), *(["--no-cache"] * args.no_cache)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"),
                                                        *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.1)
        report = asyncio.run(load(url, keys, args.clients, args.seconds, not args.no_cache, args.seed))
    finally:
        proc.terminate()
        proc.wait(30)
    report = {"cache": not args.no_cache, "clients": args.clients, **report}
    (args.out.parent / f"api_load{'_nocache' if args.no_cache else ''}.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['requests']:,} requests in {report['seconds']} s ({report['requests_per_second']:,} /s) from "
          f"{args.clients} clients, {report['errors']} errors; cache {'on' if report['cache'] else 'off'}")
    for name, part in (("cold (each distinct request once, one at a time)", report.get("cold")),
                       ("run", report["run"])):
        if not part:
            continue
        print(f"  {name}:")
        for path, s in part.items():
            print(f"    {path:<22} {s['requests']:>7,} req  p50 {s['p50_ms']:>8.2f} ms  p95 {s['p95_ms']:>8.2f} ms  "
                  f"p99 {s['p99_ms']:>8.2f} ms  max {s['max_ms']:>9.2f} ms"
                  + (f"  errors {s['errors']}" if "errors" in s else ""))


if __name__ == "__main__":
    main()
