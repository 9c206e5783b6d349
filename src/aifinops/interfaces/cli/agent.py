"""``aifinops agent``: sample every NVIDIA GPU of this host through NVML and write Parquet files.

The files hold the canonical ``gpu_samples`` columns (model/gpu.py: ratios 0..1, MiB, W, J, UTC), with
``source`` = ``nvml`` and ``node`` = this host's name, one file per rotation period; load them with
``aifinops ingest nvml DIR``. A file is written under a temporary name and renamed when complete, so an
ingest running alongside never reads half a file.

Rows: one per GPU per sample, and, for a GPU in MIG mode, one more per MIG instance with
``gpu_instance_id`` / ``gpu_instance_profile`` set and the instance's memory (NVML reports neither
utilization nor power per MIG instance: those are NULL). Summing memory over rows of one sample therefore
counts a MIG GPU twice: filter on ``gpu_instance_id IS NULL`` for whole GPUs.

The NVML calls are kept thin (one small function each, named after its call) so the sampling logic can
be tested without a GPU by replacing the ``pynvml`` functions, and so each call is easy to check against
a real driver. A field the GPU does not support is NULL, never an error.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
import typer

from ...model.gpu import GPU_SAMPLE_COLUMNS

_ARROW_TYPES = {"TIMESTAMP": pa.timestamp("us"), "VARCHAR": pa.string(), "INTEGER": pa.int32(),
                "DOUBLE": pa.float64()}
SCHEMA = pa.schema([pa.field(c, _ARROW_TYPES[t]) for c, t in GPU_SAMPLE_COLUMNS.items()])
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_MIG_PROFILE = re.compile(r"(\d+g\.\d+gb)", re.I)
MIB = 1024 * 1024


class NoGpu(Exception):
    """NVML cannot start here: no driver, no library or no GPU. The agent reports it and exits 1."""


def parse_duration(text: str) -> float:
    """``15s``, ``1m``, ``1h``, ``500ms``, ``2.5s`` or bare seconds -> seconds (> 0)."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r}: expected a duration such as 15s, 1m, 1h")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _nvml() -> Any:
    """pynvml, imported on first use: the rest of the CLI works where nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError as exc:
        raise NoGpu(f"nvidia-ml-py is not installed ({exc}); pip install nvidia-ml-py") from None
    return pynvml


# -- thin NVML wrappers: one call each --------------------------------------------------------------

def nvml_init() -> None:
    """nvmlInit: loads libnvidia-ml and attaches to the driver. Any failure means no usable GPU here."""
    nv = _nvml()
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        raise NoGpu(str(exc) or type(exc).__name__) from None


def nvml_shutdown() -> None:
    """nvmlShutdown: releases the driver handle taken by nvmlInit."""
    nv = _nvml()
    with contextlib.suppress(nv.NVMLError):
        nv.nvmlShutdown()


def device_count() -> int:
    """nvmlDeviceGetCount: GPUs visible to this process (CUDA_VISIBLE_DEVICES does not apply to NVML)."""
    return int(_nvml().nvmlDeviceGetCount())


def device_handle(index: int) -> Any:
    """nvmlDeviceGetHandleByIndex."""
    return _nvml().nvmlDeviceGetHandleByIndex(index)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)  # old pynvml returns bytes


def device_uuid(handle: Any) -> str:
    """nvmlDeviceGetUUID: ``GPU-...``, the identity that survives reboots and re-indexing."""
    return _text(_nvml().nvmlDeviceGetUUID(handle))


def device_name(handle: Any) -> str:
    """nvmlDeviceGetName: the model, e.g. ``NVIDIA H100 80GB HBM3`` (a MIG device's name ends in its profile)."""
    return _text(_nvml().nvmlDeviceGetName(handle))


def utilization_ratio(handle: Any) -> float:
    """nvmlDeviceGetUtilizationRates().gpu: percent of time a kernel ran over the last period -> 0..1."""
    return _nvml().nvmlDeviceGetUtilizationRates(handle).gpu / 100


def memory_mib(handle: Any) -> tuple[float, float]:
    """nvmlDeviceGetMemoryInfo: bytes -> (used MiB, free MiB = total - used, as nvidia-smi rows compute it)."""
    info = _nvml().nvmlDeviceGetMemoryInfo(handle)
    return info.used / MIB, (info.total - info.used) / MIB


def power_w(handle: Any) -> float:
    """nvmlDeviceGetPowerUsage: mW -> W."""
    return _nvml().nvmlDeviceGetPowerUsage(handle) / 1000


def energy_j(handle: Any) -> float:
    """nvmlDeviceGetTotalEnergyConsumption: mJ since the driver loaded -> J (Volta and newer)."""
    return _nvml().nvmlDeviceGetTotalEnergyConsumption(handle) / 1000


def mig_enabled(handle: Any) -> bool:
    """nvmlDeviceGetMigMode: (current, pending); only the current mode matters for what runs now."""
    nv = _nvml()
    current, _pending = nv.nvmlDeviceGetMigMode(handle)
    return current == nv.NVML_DEVICE_MIG_ENABLE


def mig_max_count(handle: Any) -> int:
    """nvmlDeviceGetMaxMigDeviceCount: slots to probe; empty ones raise NotFound."""
    return int(_nvml().nvmlDeviceGetMaxMigDeviceCount(handle))


def mig_handle(handle: Any, index: int) -> Any:
    """nvmlDeviceGetMigDeviceHandleByIndex."""
    return _nvml().nvmlDeviceGetMigDeviceHandleByIndex(handle, index)


def gpu_instance_id(handle: Any) -> int:
    """nvmlDeviceGetGpuInstanceId: the GPU_I_ID DCGM also reports, so both sources join on it."""
    return int(_nvml().nvmlDeviceGetGpuInstanceId(handle))


# -- sampling ---------------------------------------------------------------------------------------

class Sampler:
    """Reads every GPU once per ``sample()``; a field NVML cannot give (not supported, no permission,
    a transient error) is NULL and reported once on stderr instead of stopping a long-running agent."""

    def __init__(self, node: str, warn: Callable[[str], None] | None = None) -> None:
        self.node = node
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr))
        self._warned: set[tuple[str, str]] = set()

    def _get(self, what: str, gpu: str, fn: Callable[..., Any], *args: Any) -> Any:
        nv = _nvml()
        try:
            return fn(*args)
        except nv.NVMLError as exc:
            if not isinstance(exc, nv.NVMLError_NotSupported) and (gpu, what) not in self._warned:
                self._warned.add((gpu, what))
                self.warn(f"warning: {gpu}: {what}: {exc} (recorded as NULL)")
            return None

    def sample(self, ts: datetime) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        naive = ts.astimezone(UTC).replace(tzinfo=None)
        for index in range(device_count()):
            handle = device_handle(index)
            uuid = self._get("uuid", f"GPU {index}", device_uuid, handle) or f"{self.node}/{index}"
            model = self._get("name", uuid, device_name, handle)
            used, free = self._get("memory", uuid, memory_mib, handle) or (None, None)
            base = {"ts": naive, "node": self.node, "gpu": uuid, "gpu_index": index, "gpu_model": model,
                    "source": "nvml"}
            rows.append({**base, "gpu_util": self._get("utilization", uuid, utilization_ratio, handle),
                         "fb_used_mib": used, "fb_free_mib": free,
                         "power_w": self._get("power", uuid, power_w, handle),
                         "energy_j": self._get("energy", uuid, energy_j, handle)})
            if self._get("MIG mode", uuid, mig_enabled, handle):
                rows.extend(self._mig_rows(handle, uuid, base))
        return rows

    def _mig_rows(self, handle: Any, uuid: str, base: dict[str, Any]) -> list[dict[str, Any]]:
        nv = _nvml()
        rows = []
        for slot in range(self._get("MIG count", uuid, mig_max_count, handle) or 0):
            try:
                mig = mig_handle(handle, slot)
            except nv.NVMLError:  # NotFound: an empty slot
                continue
            gi = self._get("GPU instance id", uuid, gpu_instance_id, mig)
            name = self._get("MIG name", uuid, device_name, mig) or ""
            profile = m.group(1).lower() if (m := _MIG_PROFILE.search(name)) else None
            used, free = self._get("MIG memory", uuid, memory_mib, mig) or (None, None)
            rows.append({**base, "gpu_instance_id": None if gi is None else str(gi), "gpu_instance_profile": profile,
                         "fb_used_mib": used, "fb_free_mib": free})
        return rows


def write_parquet(rows: list[dict[str, Any]], out: Path, node: str, start: datetime) -> Path | None:
    """Rows -> ``nvml-<node>-<start UTC>.parquet`` in ``out`` (temp name, then rename). None if no rows."""
    if not rows:
        return None
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    stem = f"nvml-{re.sub(r'[^A-Za-z0-9_.-]', '_', node)}-{start.astimezone(UTC):%Y%m%dT%H%M%S}Z"
    path, n = out / f"{stem}.parquet", 1
    while path.exists():
        path, n = out / f"{stem}-{n}.parquet", n + 1
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def run_agent(out: Path, interval: float, rotate: float, count: int | None = None, node: str | None = None,
              stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> list[Path]:
    """Sample every ``interval`` seconds until ``count`` samples or ``stop``; a file per ``rotate`` seconds.

    The buffer is always flushed on the way out (count reached, stop set, Ctrl-C, an error), so an agent
    stopped by systemd loses nothing it has sampled. Raises NoGpu when NVML cannot start."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    stop = stop or threading.Event()
    node = node or socket.gethostname()
    nvml_init()
    written: list[Path] = []
    buffer: list[dict[str, Any]] = []
    file_start: datetime | None = None

    def flush() -> None:
        nonlocal buffer, file_start
        if file_start is not None and (path := write_parquet(buffer, out, node, file_start)):
            written.append(path)
            log(f"wrote {len(buffer)} samples to {path}")
        buffer, file_start = [], None

    try:
        gpus = device_count()
        if gpus == 0:
            raise NoGpu("the NVIDIA driver is loaded but sees no GPU")
        log(f"sampling {gpus} GPU(s) every {interval:g} s into {out}" + (f", {count} sample(s)" if count else ""))
        sampler = Sampler(node, warn=log)
        taken, tick = 0, time.monotonic()
        while not stop.is_set() and (count is None or taken < count):
            now = datetime.now(UTC)
            if file_start is not None and now - file_start >= timedelta(seconds=rotate):
                flush()
            file_start = file_start or now
            buffer.extend(sampler.sample(now))
            taken += 1
            if count is not None and taken >= count:
                break
            tick += interval
            stop.wait(max(0.0, tick - time.monotonic()))
    finally:
        flush()
        nvml_shutdown()
    return written


def register(app: typer.Typer) -> None:
    """Adds ``aifinops agent`` to the CLI (app.py calls this once)."""

    @app.command()
    def agent(
        out: Annotated[Path, typer.Option("--out", help="Folder the Parquet files are written to.")],
        interval: Annotated[str, typer.Option(help="Time between samples, e.g. 15s, 1m.")] = "15s",
        count: Annotated[int | None, typer.Option(help="Stop after this many samples (default: run until "
                                                       "stopped).", min=1)] = None,
        rotate: Annotated[str, typer.Option(help="Start a new file after this long, e.g. 1h.")] = "1h",
    ) -> None:
        """Sample this host's NVIDIA GPUs with NVML into Parquet files for `aifinops ingest nvml`."""
        every, period = parse_duration(interval), parse_duration(rotate)
        stop = threading.Event()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            # Stop between samples, then flush. The handler runs in the main thread, which may be inside
            # stop.wait() holding the Event's non-reentrant lock: setting it from here could deadlock, so
            # a short-lived thread sets it once that lock is free.
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: threading.Thread(target=stop.set).start())
        try:
            files = run_agent(out, every, period, count=count, stop=stop)
        except NoGpu as exc:
            print(f"no NVIDIA driver/GPU found on this machine: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print(f"{len(files)} file(s) written to {out}", file=sys.stderr)
