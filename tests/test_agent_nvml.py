"""``aifinops agent`` and the ``nvml`` source.

The no-GPU path runs for real (this test machine has no NVIDIA driver). The sampling path runs against a
stand-in for the handful of pynvml functions the agent's thin wrappers call: it simulates two GPUs, one
in MIG mode, only inside these tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pynvml
import pytest
import typer
from typer.testing import CliRunner

from aifinops.interfaces.cli import agent
from aifinops.model.gpu import GPU_SAMPLE_COLUMNS
from aifinops.sources.nvml import NvmlSource
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

MIB = 1024 * 1024


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    agent.register(app)
    return app


def _has_driver() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_no_driver_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    if _has_driver():
        pytest.skip("this machine has an NVIDIA driver")
    res = CliRunner().invoke(_cli(), ["agent", "--out", str(tmp_path / "out"), "--count", "1"])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("no NVIDIA driver/GPU found on this machine: ")
    assert not (tmp_path / "out").exists()


def test_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(_cli(), ["agent", "--out", str(tmp_path), "--interval", "soon"])
    assert res.exit_code == 2 and "expected a duration" in res.output


class FakeNvml:
    """Two H100s: GPU 0 whole (its power not supported), GPU 1 in MIG mode with instances in slots 0 and 2."""

    def __init__(self) -> None:
        self.calls = 0
        self.shutdown = False

    def install(self, mp: pytest.MonkeyPatch) -> None:
        def not_supported() -> pynvml.NVMLError:
            return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

        def power(h: str) -> int:
            if h == "gpu0":
                raise not_supported()
            return 350_500  # mW

        def util(h: str) -> SimpleNamespace:
            if h.startswith("mig"):
                raise not_supported()
            self.calls += 1
            return SimpleNamespace(gpu=87 if h == "gpu0" else 40, memory=10)

        def mig_handle(h: str, i: int) -> str:
            if i not in (0, 2):
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
            return f"mig{i}"

        mem = {"gpu0": (40321, 81559), "gpu1": (20000, 81559), "mig0": (5000, 9856), "mig2": (100, 19968)}
        names = {"gpu0": "NVIDIA H100 80GB HBM3", "gpu1": "NVIDIA H100 80GB HBM3",
                 "mig0": "NVIDIA H100 80GB HBM3 MIG 1g.10gb", "mig2": "NVIDIA H100 80GB HBM3 MIG 2g.20gb"}
        fns = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": lambda: setattr(self, "shutdown", True),
            "nvmlDeviceGetCount": lambda: 2,
            "nvmlDeviceGetHandleByIndex": lambda i: f"gpu{i}",
            "nvmlDeviceGetUUID": lambda h: f"GPU-{h}-uuid",
            "nvmlDeviceGetName": lambda h: names[h],
            "nvmlDeviceGetUtilizationRates": util,
            "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(used=mem[h][0] * MIB, total=mem[h][1] * MIB,
                                                                 free=(mem[h][1] - mem[h][0]) * MIB),
            "nvmlDeviceGetPowerUsage": power,
            "nvmlDeviceGetTotalEnergyConsumption": lambda h: 123_456_789,  # mJ
            "nvmlDeviceGetMigMode": lambda h: (1, 1) if h == "gpu1" else (0, 0),
            "nvmlDeviceGetMaxMigDeviceCount": lambda h: 7,
            "nvmlDeviceGetMigDeviceHandleByIndex": mig_handle,
            "nvmlDeviceGetGpuInstanceId": lambda h: {"mig0": 7, "mig2": 3}[h],
        }
        for name, fn in fns.items():
            assert hasattr(pynvml, name), name  # the stand-in replaces real pynvml functions only
            mp.setattr(pynvml, name, fn)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    f = FakeNvml()
    f.install(monkeypatch)
    return f


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.duckdb")
    yield store
    store.close()


def test_agent_writes_canonical_parquet_that_the_nvml_source_loads(fake: FakeNvml, tmp_path: Path, s: Store) -> None:
    out = tmp_path / "out"
    logs: list[str] = []
    files = agent.run_agent(out, interval=0.01, rotate=3600, count=3, node="gpu-node-7", log=logs.append)
    assert len(files) == 1 and files[0].name.startswith("nvml-gpu-node-7-") and fake.shutdown
    assert not list(out.glob("*.tmp"))
    table = pq.read_table(files[0])
    assert table.schema.names == list(GPU_SAMPLE_COLUMNS)
    assert table.num_rows == 3 * 4  # per sample: 2 GPUs + 2 MIG instances
    # Power "not supported" is silent; nothing else failed.
    assert logs[1:] == [f"wrote 12 samples to {files[0]}"]

    res = ingest(s, NvmlSource(), [out])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (12, 12, 0)
    got = s.con.execute(
        "SELECT node, gpu, gpu_index, gpu_model, gpu_instance_id, gpu_instance_profile, gpu_util, fb_used_mib, "
        "fb_free_mib, power_w, energy_j, source FROM gpu_samples WHERE _row <= 4 ORDER BY _row").fetchall()
    assert got == [
        ("gpu-node-7", "GPU-gpu0-uuid", 0, "NVIDIA H100 80GB HBM3", None, None, 0.87, 40321.0, 41238.0, None,
         123456.789, "nvml"),
        ("gpu-node-7", "GPU-gpu1-uuid", 1, "NVIDIA H100 80GB HBM3", None, None, 0.40, 20000.0, 61559.0, 350.5,
         123456.789, "nvml"),
        ("gpu-node-7", "GPU-gpu1-uuid", 1, "NVIDIA H100 80GB HBM3", "7", "1g.10gb", None, 5000.0, 4856.0, None,
         None, "nvml"),
        ("gpu-node-7", "GPU-gpu1-uuid", 1, "NVIDIA H100 80GB HBM3", "3", "2g.20gb", None, 100.0, 19868.0, None,
         None, "nvml"),
    ]
    ts = s.con.execute("SELECT DISTINCT ts FROM gpu_samples ORDER BY ts").fetchall()
    assert len(ts) == 3 and all(isinstance(t[0], datetime) for t in ts)
    assert abs((datetime.now(UTC).replace(tzinfo=None) - ts[-1][0]).total_seconds()) < 60  # stored naive UTC


def test_rotation_writes_one_file_per_period(fake: FakeNvml, tmp_path: Path, s: Store) -> None:
    files = agent.run_agent(tmp_path, interval=0.02, rotate=0.03, count=4, node="n", log=lambda _: None)
    assert len(files) >= 2
    assert sum(pq.read_metadata(f).num_rows for f in files) == 16
    assert ingest(s, NvmlSource(), files).rows_loaded == 16


def test_stop_flushes_the_buffer(fake: FakeNvml, tmp_path: Path) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)  # what SIGTERM / Ctrl-C do in the command
    timer.start()
    files = agent.run_agent(tmp_path, interval=0.05, rotate=3600, node="n", stop=stop, log=lambda _: None)
    timer.join()
    assert len(files) == 1 and pq.read_metadata(files[0]).num_rows >= 4 and fake.shutdown


def test_cli_agent_with_stand_in(fake: FakeNvml, tmp_path: Path) -> None:
    res = CliRunner().invoke(_cli(), ["agent", "--out", str(tmp_path), "--interval", "10ms", "--count", "2"])
    assert res.exit_code == 0, res.output
    assert "1 file(s) written" in res.output
    assert len(list(tmp_path.glob("nvml-*.parquet"))) == 1


def test_parse_duration() -> None:
    assert [agent.parse_duration(t) for t in ("15s", "1m", "1h", "500ms", "2")] == [15, 60, 3600, 0.5, 2]


def test_nvml_source_quarantines_bad_rows(tmp_path: Path, s: Store) -> None:
    import pyarrow as pa

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"ts": pa.array([datetime(2026, 11, 20), None, datetime(2026, 11, 20)]),
                             "gpu": ["GPU-a", "GPU-a", "GPU-a"], "gpu_util": [0.5, 0.5, 87.0],
                             "extra": [1, 2, 3]}), path)
    res = ingest(s, NvmlSource(), [path])
    assert (res.rows_loaded, res.rows_quarantined) == (1, 2)
    assert s.con.execute("SELECT row_number, \"column\", reason FROM quarantine_errors ORDER BY 1").fetchall() == [
        (2, "ts", "ts must not be null"), (3, "gpu_util", "gpu_util outside 0..1: 87.0")]
    assert any("ignored column(s) extra" in n for n in res.notes)


_STAND_IN = '''
"""A one-GPU stand-in for pynvml, for the SIGTERM test only."""
class NVMLError(Exception):
    pass
class NVMLError_NotSupported(NVMLError):
    pass
NVML_DEVICE_MIG_ENABLE = 1
def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetCount(): return 1
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetUUID(h): return "GPU-stand-in"
def nvmlDeviceGetName(h): return "NVIDIA L4"
class _U: gpu = 25
def nvmlDeviceGetUtilizationRates(h): return _U()
class _M: used = 1024 * 1024 * 100; total = 1024 * 1024 * 23034
def nvmlDeviceGetMemoryInfo(h): return _M()
def nvmlDeviceGetPowerUsage(h): return 72000
def nvmlDeviceGetTotalEnergyConsumption(h): raise NVMLError_NotSupported()
def nvmlDeviceGetMigMode(h): raise NVMLError_NotSupported()
'''


def test_sigterm_flushes_before_exit(tmp_path: Path) -> None:
    """The real signal path, in a child process whose pynvml is a stand-in module."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "pynvml.py").write_text(_STAND_IN)
    src = Path(agent.__file__).parents[3]
    code = ("import typer\nfrom aifinops.interfaces.cli.agent import register\napp = typer.Typer()\n"
            "@app.callback()\ndef main() -> None: pass\nregister(app)\napp()\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{src}"}
    proc = subprocess.Popen([sys.executable, "-c", code, "agent", "--out", str(out), "--interval", "50ms"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # printed once the signal handlers are in place
        assert first.startswith("sampling 1 GPU(s) every 0.05 s"), first
        time.sleep(0.3)  # a few samples
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    files = list(out.glob("*.parquet"))
    assert len(files) == 1 and "1 file(s) written" in err
    t = pq.read_table(files[0]).to_pylist()
    assert t and t[0]["gpu"] == "GPU-stand-in" and t[0]["gpu_util"] == 0.25 and t[0]["power_w"] == 72.0
    assert t[0]["energy_j"] is None and t[0]["node"]
