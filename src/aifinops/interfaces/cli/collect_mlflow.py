"""``aifinops collect mlflow``: page through an MLflow tracking server's runs and load their metrics as one batch.

The collector asks the REST API 2.0 and writes what it answers to files that ``aifinops ingest mlflow`` reads,
so a live collection and a recorded one are the same code from the files on:

1. ``POST experiments/search`` (paged): the experiments' names, and which experiments to read (``--experiment``,
   default all active ones);
2. ``POST runs/search`` over them (paged with ``page_token``, oldest run first, ``--filter`` passed through):
   each page is written as it came, plus ``experiments`` (the objects of step 1) so that the source can name
   the experiment of a run;
3. with ``--history``, ``GET metrics/get-history`` (paged) for every metric of every run: the run's
   ``data.metrics`` (which runs/search fills with each metric's latest point only) becomes the whole history,
   in the same shape, ordered by metric, step and time.

The files stay in ``--out`` for audit and re-ingest; collecting again when nothing changed writes the same bytes,
and the batch is then a no-op. A point collected again supersedes its earlier copy (``run_metrics``' key).

Retries: connection errors, timeouts and 5xx answers are retried with exponential backoff; a 4xx is a wrong
URL, filter or credential and stops at once with MLflow's own ``error_code`` and ``message``. Credentials come
as the MLflow client takes them: ``MLFLOW_TRACKING_TOKEN`` (bearer) or ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD`` (basic auth).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from .collect import CollectError, _friendly, answer, collect_app
from .collect import register as register_collect
from .common import RichProgress, open_store, print_batch, state
from .output import err_console

#: experiment ids per runs/search request (the API takes a list; a bounded one keeps requests small)
IDS_PER_SEARCH = 100
#: points per metrics/get-history page
HISTORY_PAGE = 25_000


def register(app: typer.Typer) -> None:
    """Add ``collect mlflow`` (and the ``collect`` group if missing) to ``app``; idempotent."""
    register_collect(app)
    if not any(c.name == "mlflow" for c in collect_app.registered_commands):
        collect_app.command("mlflow")(_friendly(mlflow))


class Api:
    """Calls to one tracking server's REST API 2.0 with retries; every answer decoded as a JSON object."""

    def __init__(self, url: str, client: httpx.Client, retries: int,
                 on_request: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base = url.rstrip("/") + "/api/2.0/mlflow/"
        self.client, self.retries, self.on_request, self.sleep = client, retries, on_request, sleep

    def call(self, method: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base + endpoint

        def send() -> httpx.Response:
            if self.on_request:
                self.on_request(endpoint)
            return self.client.post(url, json=body) if method == "POST" else self.client.get(url, params=body)

        resp, doc, problem = answer(send, self.retries, self.sleep)
        if resp is None:
            raise CollectError(f"{url}: no answer after {self.retries + 1} attempt(s): {problem}")
        if resp.status_code >= 400 or not isinstance(doc, dict):
            said = (f"{doc.get('error_code', '')}: {doc.get('message', '')}" if isinstance(doc, dict)
                    else resp.text[:200].strip() or "not a JSON answer")
            raise CollectError(f"{url} refused the request (HTTP {resp.status_code}): {said}")
        return doc

    def pages(self, method: str, endpoint: str, body: dict[str, Any]) -> Any:
        """Every page of a paged endpoint (``page_token`` in, ``next_page_token`` out)."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            page = self.call(method, endpoint, {**body, **({"page_token": token} if token else {})})
            yield page
            token = page.get("next_page_token") or None
            if not token:
                return
            if token in seen:  # a server that hands out the same token again would never end
                raise CollectError(f"{self.base + endpoint}: the server repeated page token {token!r}")
            seen.add(token)


def experiments(api: Api, names: list[str] | None, page_size: int) -> list[dict[str, Any]]:
    """The experiments to read: those named (every name must exist), else every active one."""
    found = [e for page in api.pages("POST", "experiments/search", {"max_results": page_size})
             for e in page.get("experiments") or []]
    if not names:
        return found
    by_name = {e.get("name"): e for e in found}
    names = list(dict.fromkeys(names))
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(sorted(str(n) for n in by_name)[:20])
        raise CollectError(f"no experiment named {', '.join(map(repr, missing))} on the server (known: {known})")
    return [by_name[n] for n in names]


def history(api: Api, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every point of every metric of ``run``, ordered by metric, step and time."""
    run_id = (run.get("info") or {}).get("run_id") or (run.get("info") or {}).get("run_uuid")
    keys = sorted({m.get("key") for m in (run.get("data") or {}).get("metrics") or [] if m.get("key")})
    points = [p for key in keys
              for page in api.pages("GET", "metrics/get-history",
                                    {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE})
              for p in page.get("metrics") or []]
    return sorted(points, key=lambda p: (p.get("key"), int(p.get("step") or 0), int(p.get("timestamp") or 0)))


def collect(url: str, out: Path, *, experiment: list[str] | None = None, filter: str | None = None,
            full_history: bool = False, page_size: int = 1000, timeout: float = 30, retries: int = 3,
            token: str | None = None, username: str | None = None, password: str | None = None,
            on_request: Callable[[str], None] | None = None) -> list[Path]:
    """Write the runs of the chosen experiments as runs/search pages in ``out``; returns the files."""
    if page_size < 1:
        raise CollectError("--page-size must be positive")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    auth = httpx.BasicAuth(username, password or "") if username else None
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with httpx.Client(timeout=timeout, headers=headers, auth=auth) as client:
        api = Api(url, client, retries, on_request)
        chosen = experiments(api, experiment, page_size)
        ids = [str(e["experiment_id"]) for e in chosen if e.get("experiment_id") is not None]
        body: dict[str, Any] = {"max_results": page_size, "order_by": ["attributes.start_time ASC"],
                                "run_view_type": "ACTIVE_ONLY", **({"filter": filter} if filter else {})}
        for i in range(0, len(ids), IDS_PER_SEARCH):
            for page in api.pages("POST", "runs/search", {**body, "experiment_ids": ids[i:i + IDS_PER_SEARCH]}):
                runs = page.get("runs") or []
                if full_history:
                    for run in runs:
                        run.setdefault("data", {})["metrics"] = history(api, run)
                path = out / f"mlflow-runs-{len(files) + 1:04d}.json"
                doc = {"runs": runs, "experiments": chosen,
                       **({"next_page_token": page["next_page_token"]} if page.get("next_page_token") else {})}
                path.write_text(json.dumps(doc, indent=1))
                files.append(path)
        if not files:  # no experiment at all: one empty page, so that the ingest reports an empty batch
            path = out / "mlflow-runs-0001.json"
            path.write_text(json.dumps({"runs": [], "experiments": chosen}, indent=1))
            files.append(path)
    return files


def mlflow(
    url: Annotated[str, typer.Option(envvar="MLFLOW_TRACKING_URI", help="Tracking server, e.g. http://mlflow:5000")],
    experiment: Annotated[list[str] | None, typer.Option(
        help="Only this experiment, by name (repeatable; default every active one).")] = None,
    filter: Annotated[str | None, typer.Option(
        help="runs/search filter, e.g. \"attributes.status = 'FINISHED'\"")] = None,
    full_history: Annotated[bool, typer.Option(
        "--history/--no-history", help="Every logged point of every metric (metrics/get-history), not only the "
        "latest.")] = False,
    page_size: Annotated[int, typer.Option(help="Runs per runs/search page.")] = 1000,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 30.0,
    retries: Annotated[int, typer.Option(help="Retries on connection errors and 5xx answers.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Keep the answers in this folder (default: a temp folder).")]
    = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="A source option of `ingest mlflow`, KEY=VALUE (repeatable), e.g. run_tag=job.")]
    = None,
    token: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_TOKEN", hidden=True)] = None,
    username: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_USERNAME", hidden=True)] = None,
    password: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_PASSWORD", hidden=True)] = None,
) -> None:
    """Read runs and their metrics from an MLflow tracking server (REST API 2.0) and load them as one batch."""
    from ...sources.base import SourceError
    from ...sources.mlflow import MlflowSource
    from ...store.ingest import IngestError, ingest

    options = dict(state.settings.sources.get("mlflow", {}))
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CollectError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip()] = value
    try:
        source = MlflowSource(**options)
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="aifinops-mlflow-") as tmp:
        folder = out or Path(tmp)
        with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True,
                      disable=not err_console.is_terminal) as progress:
            task = progress.add_task("asking MLflow", total=None)
            calls = {"n": 0}

            def tick(endpoint: str) -> None:
                calls["n"] += 1
                progress.update(task, description=f"{endpoint} (request {calls['n']})")

            files = collect(url, folder, experiment=experiment, filter=filter, full_history=full_history,
                            page_size=page_size, timeout=timeout, retries=retries, token=token, username=username,
                            password=password, on_request=tick)
        err_console.print(f"fetched {len(files)} runs/search page(s) into {folder}", highlight=False)
        with open_store() as store, Progress(TextColumn("{task.description}"), TimeElapsedColumn(),
                                             console=err_console, transient=True,
                                             disable=not err_console.is_terminal) as progress:
            res = ingest(store, source, list(files), progress=RichProgress(progress))
    print_batch(res)
