"""Kubernetes pods as workloads: a saved ``kubectl get pods -A -o json``, or the live API.

One row per pod (``workload_id`` = ``metadata.uid``). A newer snapshot of a pod replaces its older row
(restatement key ``source, workload_id``), so ingesting ``kubectl get pods`` every few minutes keeps
each pod's latest phase, end time and exit code.

GPUs held by a pod, summed over its containers (the effective request: an init container's request
counts when it is larger than the sum of the app containers', as the scheduler counts it):

- ``nvidia.com/gpu``: whole GPUs;
- ``nvidia.com/mig-<g>g.<mem>gb``: MIG slices; the share uses the GPU model when the pod names it
  (``nvidia.com/gpu.product`` in its nodeSelector, labels or annotations, or the ``gpu_models`` option
  node -> model), else 7 slices per GPU;
- ``nvidia.com/gpu.shared``: time-sliced replicas (GPU operator with ``renameByDefault``); the share is
  count / ``timeslice_replicas`` (option, default 4: set it to the ``replicas`` of your time-slicing
  config);
- a fraction annotation (option ``fraction_annotations``, default run:ai's ``gpu-fraction``, a number in
  (0, 1]): share = fraction, resource = the annotation key; read only for a pod that requests no GPU
  resource (run:ai's fractional pods request none).

Requests are used, limits when a container has no request (for extended resources they are equal).

Bad pods (``pod_checks`` lists the rules): a pod without ``metadata.uid``, with a resource quantity that
is not one or is negative (the reason names the resource and the container), a time that is not RFC 3339
or an end before its start is quarantined. A pod loads with a warning when its phase is not Pending,
Running, Succeeded or Failed (it gets no end time), or when it is past Pending and holds GPUs but has no
node or no start time. A Pending pod without node or start is normal and loads silently.

Live mode: ``aifinops ingest kubernetes --option kubeconfig=~/.kube/config [--option context=NAME] live:``.
The pods are listed with the official client (``pip install kubernetes``), page by page, and serialised
to the same JSON ``kubectl`` prints, so one parser reads both.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field, field_validator

from ..model.checks import ERROR, WARNING, Check, sql_str
from ..model.gpu import gpu_share
from .base import ArrowStream, FileRead, Source, SourceError, SourceFile, expand, sources, typed_ref

#: Path argument that selects live mode (the ``kubeconfig`` option says which cluster).
LIVE = "live:"
_PAGE = 500
_MAX_PAGES = 10_000  # 5 million pods: a bound, not a limit anyone meets

_GPU = "nvidia.com/gpu"
_SHARED = "nvidia.com/gpu.shared"
_MIG_PREFIX = "nvidia.com/mig-"
_PRODUCT = "nvidia.com/gpu.product"
_TERMINAL = ("Succeeded", "Failed")
#: pod phases other than these load with a warning (``Unknown`` included: the node stopped reporting)
_PHASES = ("Pending", "Running", "Succeeded", "Failed")

_SUFFIX = {"": 1, "m": Decimal("0.001"), "u": Decimal("1e-6"), "n": Decimal("1e-9"),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}

# Arrow column -> type. Timestamps stay text here and are cast by DuckDB (so a bad one is reported).
_SCHEMA = pa.schema([
    ("workload_id", pa.string()), ("name", pa.string()), ("namespace", pa.string()),
    ("owner_kind", pa.string()), ("owner_name", pa.string()), ("node", pa.string()),
    ("start_ts", pa.string()), ("end_ts", pa.string()), ("phase", pa.string()),
    ("gpu_resource", pa.string()), ("gpu_count", pa.float64()), ("gpu_share", pa.float64()),
    ("cpu_request", pa.float64()), ("memory_request_mib", pa.float64()),
    ("labels", pa.map_(pa.string(), pa.string())), ("annotations", pa.map_(pa.string(), pa.string())),
    ("exit_code", pa.int32()), ("_problem", pa.string()), ("_rn", pa.int64()),
])


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``16Gi``, ``512M``, ``1e9``, ``2``) as a number.

    Raises ValueError for text that is not a quantity."""
    s = str(text).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if suffix and s.endswith(suffix):
            number, factor = s[: -len(suffix)], _SUFFIX[suffix]
            break
    else:
        number, factor = s, 1
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return value * factor


def _effective(pod_spec: dict[str, Any], name: str) -> Decimal | None:
    """Effective request of resource ``name``: max(sum over containers, max over init containers)."""

    def one(c: dict[str, Any]) -> Decimal | None:
        res = c.get("resources") or {}
        value = (res.get("requests") or {}).get(name)
        if value is None:
            value = (res.get("limits") or {}).get(name)
        if value is None:
            return None
        # Checked per container, naming it: summed, a negative request would hide another container's GPUs.
        where = f"{name} of container {c.get('name')!r}"
        try:
            quantity = parse_quantity(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if quantity < 0:
            raise ValueError(f"{where} is negative: {value!r}")
        return quantity

    apps = [v for c in pod_spec.get("containers") or [] if (v := one(c)) is not None]
    inits = [v for c in pod_spec.get("initContainers") or [] if (v := one(c)) is not None]
    if not apps and not inits:
        return None
    total = sum(apps, Decimal(0))
    return max(total, *inits) if inits else total


def _resource_names(spec: dict[str, Any]) -> list[str]:
    names: set[str] = set()
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        names.update((res.get("requests") or {}).keys(), (res.get("limits") or {}).keys())
    return sorted(n for n in names if n in (_GPU, _SHARED) or n.startswith(_MIG_PREFIX))


def _start(status: dict[str, Any]) -> str | None:
    if status.get("startTime"):
        return str(status["startTime"])
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            return cond.get("lastTransitionTime")
    return None


def _text_map(d: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    return None if d is None else [(str(k), str(v)) for k, v in d.items()]


@sources.register("kubernetes")
class KubernetesSource(Source):
    """Pods from ``kubectl get pods -A -o json`` files, or listed live from a cluster.

    Example: ``kubectl get pods -A -o json > pods.json && aifinops ingest kubernetes pods.json``
    """

    target: ClassVar[str] = "workloads"
    restatement_key: ClassVar[tuple[str, ...]] = ("source", "workload_id")
    key_noun: ClassVar[str] = "pod(s)"

    class Options(Source.Options):
        kubeconfig: str | None = None  # live mode: the kubeconfig file (``~`` is expanded)
        context: str | None = None  # live mode: the kubeconfig context, else its current-context
        timeslice_replicas: int = Field(4, ge=1)  # replicas per GPU of nvidia.com/gpu.shared
        #: pod annotations holding a GPU fraction (run:ai)
        fraction_annotations: list[str] = Field(default_factory=lambda: ["gpu-fraction"])
        #: node -> GPU model, for the MIG share of pods that do not name their model
        gpu_models: dict[str, str] = Field(default_factory=dict)

        @field_validator("fraction_annotations", mode="before")
        @classmethod
        def _split_list(cls, v: Any) -> Any:
            """``--option fraction_annotations=a,b`` arrives as text."""
            return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

        @field_validator("gpu_models", mode="before")
        @classmethod
        def _split_map(cls, v: Any) -> Any:
            """``--option gpu_models=node1=NVIDIA-H100,node2=NVIDIA-A30`` arrives as text."""
            if not isinstance(v, str):
                return v
            pairs = [x.partition("=") for x in v.split(",") if x.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ValueError("expected NODE=MODEL,NODE=MODEL")
            return {k.strip(): m.strip() for k, _, m in pairs}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._live: dict[str, bytes] = {}  # fingerprint -> listed JSON, for read()

    # -- files ----------------------------------------------------------------------------------

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """Paths -> files; ``live:`` lists the cluster now and stands for that snapshot (its fingerprint
        is the listed content's, so two listings that differ are two batches)."""
        out: list[SourceFile] = []
        for p in paths:
            if str(p) == LIVE:
                data = self.list_live()
                fp = hashlib.sha256(data).hexdigest()
                self._live[fp] = data
                out.append(SourceFile(Path(LIVE + (self.options.context or "")), "json", fp, len(data)))
            else:
                out.extend(expand([p], classify=lambda f: "json" if f.name.lower().endswith(".json") else None,
                                  what=".json", named_as="json"))
        return out

    def list_live(self) -> bytes:
        """All pods of the cluster as ``kubectl get pods -A -o json`` prints them (a ``List``)."""
        if not self.options.kubeconfig:
            raise SourceError(f"{LIVE} needs the kubeconfig option, e.g. --option kubeconfig=~/.kube/config")
        try:
            from kubernetes import client, config
        except ImportError:
            raise SourceError("live mode needs the Kubernetes client: pip install kubernetes") from None
        path = str(Path(self.options.kubeconfig).expanduser())
        try:
            api = config.new_client_from_config(config_file=path, context=self.options.context,
                                                persist_config=False)
        except Exception as exc:  # the loader raises ConfigException, OSError, yaml errors...
            raise SourceError(f"{path}: cannot load the kubeconfig ({exc})") from None
        items: list[Any] = []
        token: str | None = None
        with api:
            core = client.CoreV1Api(api)
            for _ in range(_MAX_PAGES):
                try:
                    page = core.list_pod_for_all_namespaces(limit=_PAGE, _continue=token or None)
                except Exception as exc:  # ApiException, urllib3 errors
                    raise SourceError(f"listing pods with {path}: {str(exc).splitlines()[0]}") from None
                items.extend(api.sanitize_for_serialization(page.items))
                token = page.metadata._continue if page.metadata else None
                if not token:
                    break
            else:
                raise SourceError(f"listing pods with {path}: more than {_MAX_PAGES} pages")
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode()

    # -- read -----------------------------------------------------------------------------------

    def _pods(self, file: SourceFile) -> list[dict[str, Any]]:
        data = self._live.get(file.fingerprint)
        try:
            doc = json.loads(data if data is not None else file.path.read_bytes())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{file.path}: not a JSON file ({exc})") from None
        if not isinstance(doc, dict) or doc.get("kind") not in ("List", "PodList", "Pod"):
            raise SourceError(f"{file.path}: not the output of kubectl get pods -o json (a List of Pods)")
        pods = [doc] if doc["kind"] == "Pod" else doc.get("items") or []
        if not all(isinstance(p, dict) for p in pods):
            raise SourceError(f"{file.path}: items must be Pod objects")
        return pods

    def read(self, file: SourceFile) -> FileRead:
        cols: dict[str, list[Any]] = {f.name: [] for f in _SCHEMA}
        for rn, pod in enumerate(self._pods(file), start=1):
            for k, v in self._row(pod).items():
                cols[k].append(v)
            cols["_rn"].append(rn)
        table = pa.table(cols, schema=_SCHEMA)
        raw = {c: f's."{c}"' for c in _SCHEMA.names if not c.startswith("_")}
        typed: dict[str, str] = {"source": "'kubernetes'", "kind": "'pod'"}
        for c in raw:
            typed[c] = f"CAST(TRY_CAST({raw[c]} AS TIMESTAMPTZ) AS TIMESTAMP)" if c.endswith("_ts") else raw[c]
        t = {c: typed_ref(i) for i, c in enumerate(typed)}
        return FileRead(file=file, relation_sql="", raw=raw, typed=typed, extra_columns={},
                        checks=pod_checks(raw, t), is_csv=False,
                        stream=ArrowStream(open=table.to_reader, fraction=lambda: 1.0))

    def _row(self, pod: dict[str, Any]) -> dict[str, Any]:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        owner = (meta.get("ownerReferences") or [{}])[0]
        labels, annotations = meta.get("labels"), meta.get("annotations")
        phase = status.get("phase")
        terminated = [s["state"]["terminated"] for s in status.get("containerStatuses") or []
                      if (s.get("state") or {}).get("terminated")]
        finished = [t["finishedAt"] for t in terminated if t.get("finishedAt")]
        row: dict[str, Any] = {
            "workload_id": meta.get("uid"), "name": meta.get("name"), "namespace": meta.get("namespace"),
            "owner_kind": owner.get("kind"), "owner_name": owner.get("name"), "node": spec.get("nodeName"),
            "start_ts": _start(status),
            # RFC 3339 times in UTC ("Z") sort as text; the live client's "+00:00" form too.
            "end_ts": max(finished) if phase in _TERMINAL and finished else None,
            "phase": phase, "labels": _text_map(labels), "annotations": _text_map(annotations),
            "exit_code": terminated[0].get("exitCode") if terminated else None, "_problem": None,
        }
        try:
            row.update(self._resources(spec, row["node"], labels or {}, annotations or {}))
        except ValueError as exc:
            row.update(gpu_resource=None, gpu_count=None, gpu_share=None, cpu_request=None,
                       memory_request_mib=None, _problem=str(exc))
        return row

    def _resources(self, spec: dict[str, Any], node: str | None, labels: dict[str, Any],
                   annotations: dict[str, Any]) -> dict[str, Any]:
        model = ((spec.get("nodeSelector") or {}).get(_PRODUCT) or labels.get(_PRODUCT)
                 or annotations.get(_PRODUCT) or self.options.gpu_models.get(node or ""))
        used: list[str] = []
        count = share = 0.0
        for name in _resource_names(spec):
            n = float(_effective(spec, name) or 0)
            if n == 0:
                continue
            used.append(name)
            count += n
            replicas = self.options.timeslice_replicas if name == _SHARED else None
            share += gpu_share(name, n, gpu_model=model, replicas=replicas)
        for key in self.options.fraction_annotations if not used else ():
            if key in annotations:  # run:ai: a fractional pod requests no GPU resource, the annotation is all
                try:
                    fraction = float(annotations[key])
                except ValueError:
                    fraction = float("nan")
                if not 0 < fraction <= 1:
                    raise ValueError(f"annotation {key} is not a GPU fraction in (0, 1]: {annotations[key]!r}")
                used, count, share = [key], 1.0, gpu_share(key, 1.0, fraction=fraction)
                break
        cpu, mem = _effective(spec, "cpu"), _effective(spec, "memory")
        return {"gpu_resource": ",".join(used) or None, "gpu_count": count, "gpu_share": share,
                "cpu_request": None if cpu is None else float(cpu),
                "memory_request_mib": None if mem is None else float(mem / 2**20)}


def pod_checks(raw: dict[str, str], t: dict[str, str]) -> list[Check]:
    """The rules of a pod row (``raw``: column -> value as read; ``t``: column -> typed value).

    Errors quarantine the pod: no ``metadata.uid``; a resource quantity that is not one or is negative (the
    reason names the resource and the container); a start or end that is not an RFC 3339 time; an end before
    the start. Warnings load it and say what an analysis cannot do with it: a phase other than Pending,
    Running, Succeeded and Failed (``Unknown``: the node stopped reporting; only Succeeded and Failed pods get
    an end time, so such a pod counts as running), and a pod past Pending that holds GPUs but has no node or
    no start time (its GPU time cannot be placed on a node or in time)."""
    phase = raw["phase"]
    shown = f"coalesce('''' || {phase} || '''', '(none)')"
    placed = f"{t['gpu_share']} > 0 AND {phase} IS DISTINCT FROM 'Pending'"
    known = ", ".join(sql_str(p) for p in _PHASES)
    checks = [
        Check("not-null", "workload_id", ERROR, f"{raw['workload_id']} IS NULL",
              sql_str("a pod without metadata.uid cannot be identified")),
        Check("quantity", "resources", ERROR, 's."_problem" IS NOT NULL', 's."_problem"'),
    ]
    for c in ("start_ts", "end_ts"):
        checks.append(Check("datetime", c, ERROR, f"{raw[c]} IS NOT NULL AND {t[c]} IS NULL",
                            f"'not an RFC 3339 time: ' || {raw[c]}"))
    checks += [
        Check("period-order", "end_ts", ERROR, f"{t['end_ts']} < {t['start_ts']}",
              f"'ends ' || {raw['end_ts']} || ' before it starts ' || {raw['start_ts']}"),
        Check("unknown-phase", "phase", WARNING, f"{phase} IS NULL OR {phase} NOT IN ({known})",
              f"coalesce('pod phase ''' || {phase} || ''' is not one of {', '.join(_PHASES)}', "
              "'no pod phase (status.phase)') || ': loaded as is; only a Succeeded or Failed pod gets an end "
              "time, so this one counts as running'"),
        Check("no-node", "node", WARNING, f"{placed} AND {raw['node']} IS NULL",
              f"'holds GPUs in phase ' || {shown} || ' but has no spec.nodeName: loaded; its GPU time "
              "cannot be placed on a node'"),
        Check("no-start", "start_ts", WARNING, f"{placed} AND {raw['start_ts']} IS NULL",
              f"'holds GPUs in phase ' || {shown} || ' but has no start time (no status.startTime, no "
              "PodScheduled condition): loaded; counted as holding them since before the data'"),
    ]
    return checks
