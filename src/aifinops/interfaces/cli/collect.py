"""``aifinops collect prometheus``: pull DCGM telemetry out of a Prometheus server and load it as one batch.

Why query_range in chunks: Prometheus refuses a query whose result would exceed 11,000 points per series,
and a week at 15 s is 40,320 points. Each chunk is ``[t, t + chunk - step]`` so that adjacent chunks never
return the same sample twice (query_range includes both ends).

Why one file per chunk and not per response: the ``dcgm`` source pivots the metrics of one file into wide
rows (one per GPU and timestamp). The per-metric responses of a chunk are therefore written together as one
query_range document (the same JSON shape, the results concatenated), so a row holds every metric of its
GPU at that instant. The files stay in ``--out`` for audit and re-ingest.

Retries: connection errors, timeouts and 5xx answers (a Prometheus restarting, a proxy's 503) are retried
with exponential backoff; a 4xx or ``"status": "error"`` is a wrong query or URL and stops at once with
Prometheus' own message.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ...sources.dcgm import METRICS
from .common import RichProgress, friendly, open_store, print_batch
from .output import err_console

collect_app = typer.Typer(help="Fetch telemetry from running systems into the store.", no_args_is_help=True)

#: seconds before the first retry; doubles each attempt (capped by MAX_BACKOFF)
BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: Prometheus' own limit of points per series in one query_range answer
MAX_POINTS = 11_000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CollectError(Exception):
    """Prometheus cannot be asked, or refuses the query; nothing was loaded."""


def register(app: typer.Typer) -> None:
    """Add the ``collect`` group to ``app`` (idempotent, so tests may register it on the shared app)."""
    if not any(g.name == "collect" for g in app.registered_groups):
        app.add_typer(collect_app, name="collect")


def parse_duration(text: str) -> float:
    """Prometheus-style duration (``15s``, ``6h``, ``7d``, ``1h30m``) -> seconds."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CollectError(f"{text!r} is not a duration: use e.g. 15s, 5m, 6h, 7d or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def chunks(start: float, end: float, step: float, chunk: float) -> Iterator[tuple[float, float]]:
    """``[start, end]`` as consecutive ``(chunk_start, chunk_end)`` ranges that share no sample time."""
    if step <= 0 or chunk < step:
        raise CollectError(f"--chunk ({chunk:g}s) must be at least --step ({step:g}s), and --step positive")
    if chunk / step > MAX_POINTS:
        raise CollectError(f"--chunk of {chunk:g}s at --step {step:g}s is {chunk / step:,.0f} points per series; "
                           f"Prometheus answers at most {MAX_POINTS:,}: use a shorter --chunk")
    t = start
    for _ in range(int((end - start) // step) + 2):  # bounded: one chunk holds at least one step
        if t > end:
            return
        stop = min(t + chunk - step, end)
        yield t, stop
        t = stop + step


def selector(metric: str, match: str | None) -> str:
    """``METRIC{extra}``: ``--match`` is label matchers, with or without braces (``Hostname=~"node-.*"``)."""
    extra = (match or "").strip().removeprefix("{").removesuffix("}").strip()
    return f"{metric}{{{extra}}}" if extra else metric


def query_range(client: httpx.Client, url: str, query: str, start: float, end: float, step: float,
                retries: int, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """One ``/api/v1/query_range`` call with retries; returns the decoded ``success`` document."""
    endpoint = url.rstrip("/") + "/api/v1/query_range"
    params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}s"}
    resp, doc, problem = answer(lambda: client.get(endpoint, params=params), retries, sleep)
    if resp is None:
        raise CollectError(f"{endpoint}: no answer after {retries + 1} attempt(s) for {query!r}: {problem}")
    if resp.status_code >= 400 or not isinstance(doc, dict) or doc.get("status") != "success":
        said = f"{doc.get('errorType', '')}: {doc.get('error', '')}" if isinstance(doc, dict) else \
            resp.text[:200].strip()
        raise CollectError(f"{endpoint} refused {query!r} (HTTP {resp.status_code}): {said}")
    return doc


def answer(send: Callable[[], httpx.Response], retries: int,
           sleep: Callable[[float], None] = time.sleep) -> tuple[httpx.Response | None, Any, str]:
    """``send()`` until the server answers, retrying what may be transient (a connection refused, reset or timed
    out; an HTTP 5xx) with exponential backoff: (the answer, its JSON or None, the last problem). No answer after
    ``retries`` retries: (None, None, the last problem). A 4xx is an answer: the caller says what was refused."""
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(min(BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF))
        try:
            resp = send()
        except httpx.TransportError as exc:  # connection refused, reset, timeout: maybe transient
            problem = f"{type(exc).__name__}: {exc}"
            continue
        if resp.status_code >= 500:
            problem = f"HTTP {resp.status_code} {resp.reason_phrase}"
            continue
        try:
            return resp, resp.json(), problem
        except ValueError:
            return resp, None, problem
    return None, None, problem


def collect(url: str, end: float, window: float, step: float, chunk: float, out: Path, *, timeout: float = 30,
            retries: int = 3, match: str | None = None,
            on_request: Callable[[str, float, float], None] | None = None) -> list[Path]:
    """Query every DCGM metric over ``[end - window, end]``; one file per chunk in ``out``. Returns the files."""
    if window <= 0:
        raise CollectError("--window must be positive")
    ranges = list(chunks(end - window, end, step, chunk))
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with httpx.Client(timeout=timeout) as client:
        for start_t, end_t in ranges:
            results: list[Any] = []
            for metric in METRICS:
                if on_request:
                    on_request(metric, start_t, end_t)
                doc = query_range(client, url, selector(metric, match), start_t, end_t, step, retries)
                data = doc.get("data") or {}
                if data.get("resultType") != "matrix":
                    raise CollectError(f"{url}: query_range answered {data.get('resultType')!r}, not a matrix")
                results.extend(data.get("result") or [])
            stamp = datetime.fromtimestamp(start_t, UTC).strftime("%Y%m%dT%H%M%SZ")
            path = out / f"dcgm-{stamp}-{int(end_t - start_t + step)}s.json"
            path.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": results}}))
            files.append(path)
    return files


def _parse_end(text: str | None) -> float:
    if not text:
        return datetime.now(UTC).timestamp()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CollectError(f"--end {text!r}: expected an ISO 8601 time, e.g. 2026-11-20T10:00:00Z") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures as one red line, exit status 1, as the app's other commands."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return friendly(fn)(*args, **kwargs)
        except CollectError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def prometheus(
    url: Annotated[str, typer.Option(help="Prometheus base URL, e.g. http://prometheus:9090")],
    window: Annotated[str, typer.Option(help="How far back from --end: 15m, 6h, 7d ...")] = "7d",
    step: Annotated[str, typer.Option(help="Resolution (dcgm-exporter's scrape interval is often 15s or 30s).")]
    = "15s",
    chunk: Annotated[str, typer.Option(help="Time range per request (at most 11,000 steps).")] = "6h",
    end: Annotated[str | None, typer.Option(help="End of the window, ISO 8601 UTC (default: now).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 30.0,
    retries: Annotated[int, typer.Option(help="Retries on connection errors and 5xx answers.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Keep the responses in this folder (default: a temp folder).")]
    = None,
    match: Annotated[str | None, typer.Option(help='Extra label matchers, e.g. Hostname=~"gpu-node-.*"')] = None,
) -> None:
    """Query DCGM metrics from Prometheus (query_range, in chunks) and load them as one dcgm batch."""
    from ...sources.dcgm import DcgmSource
    from ...store.ingest import ingest

    end_t, window_s, step_s, chunk_s = _parse_end(end), parse_duration(window), parse_duration(step), \
        parse_duration(chunk)
    total = len(list(chunks(end_t - window_s, end_t, step_s, chunk_s))) * len(METRICS)
    with tempfile.TemporaryDirectory(prefix="aifinops-prometheus-") as tmp:
        folder = out or Path(tmp)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
            task = progress.add_task("querying Prometheus", total=total)

            def tick(metric: str, start_t: float, _end: float) -> None:
                when = datetime.fromtimestamp(start_t, UTC).strftime("%Y-%m-%d %H:%M")
                progress.update(task, description=f"{metric} from {when}", advance=1)

            files = collect(url, end_t, window_s, step_s, chunk_s, folder, timeout=timeout, retries=retries,
                            match=match, on_request=tick)
        err_console.print(f"fetched {len(files)} chunk file(s) of {len(METRICS)} metrics into {folder}",
                          highlight=False)
        with open_store() as store, Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), console=err_console, transient=True, disable=not err_console.is_terminal,
        ) as progress:
            res = ingest(store, DcgmSource(), list(files), progress=RichProgress(progress))
    print_batch(res)


collect_app.command("prometheus")(_friendly(prometheus))
