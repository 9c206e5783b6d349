"""``kill -9`` in the middle of an ingest leaves the store exactly as it was, and the same ingest then completes.

A child process ingests a generated FOCUS CSV (the sample's AWS rows repeated, with varied costs) into a store
that already holds the sample as batch 1. The child prints a marker when it starts loading the file inside the batch
transaction; the parent SIGKILLs it a moment later (EARLY) or as soon as the store file grows (LOAD), mid-INSERT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import aifinops
from aifinops.store.connection import Store
from aifinops.store.ingest import ingest

ROWS = 250_000
KILL_AFTER = 0.3  # seconds after the LOAD marker, for the EARLY kill
GROW_WAIT = 5.0  # at most this long after the LOAD marker

CHILD = r"""
import sys, time
from aifinops.store import ingest as ing
from aifinops.store.connection import Store
from aifinops.sources.base import sources

db, path = sys.argv[1], sys.argv[2]
t0 = time.monotonic()

def marked(name, fn):
    def wrapper(*args, **kwargs):
        print(name, round(time.monotonic() - t0, 3), flush=True)
        return fn(*args, **kwargs)
    return wrapper

ing._load_file = marked("LOAD", ing._load_file)
ing._restate = marked("RESTATE", ing._restate)
ing._record = marked("RECORD", ing._record)
store = Store(db)
res = ing.ingest(store, sources.get("focus")(), [path])
store.close()
print("DONE", res.status, res.rows_loaded, round(time.monotonic() - t0, 3), flush=True)
"""


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory, focus_rows) -> tuple[Path, int, Decimal, Decimal]:
    """ROWS AWS rows (same provider, account and period as the sample's AWS rows), costs varied."""
    out = tmp_path_factory.mktemp("crash") / "aws_large.csv"
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE s AS SELECT row_number() OVER () AS rn, * FROM read_csv('{focus_rows.path}', "
        "all_varchar = true, nullstr = 'NULL') WHERE ProviderName = 'AWS'"
    )
    n_aws = con.execute("SELECT count(*) FROM s").fetchone()[0]
    cols = []
    for c in focus_rows.header:
        if c in ("BilledCost", "EffectiveCost"):
            cols.append(f'CAST(CAST(s."{c}" AS DECIMAL(38, 12)) * (1 + r.range % 7) AS VARCHAR) AS "{c}"')
        elif c == "Id":
            cols.append('CAST(r.range AS VARCHAR) AS "Id"')
        else:
            cols.append(f's."{c}"')
    con.execute(
        f"COPY (SELECT {', '.join(cols)} FROM range({ROWS}) r JOIN s ON s.rn = r.range % {n_aws} + 1 "
        f"ORDER BY r.range) TO '{out}' (FORMAT csv, HEADER true, NULLSTR 'NULL')"
    )
    billed, effective = con.execute(
        f"SELECT sum(CAST(BilledCost AS DECIMAL(38, 12))), sum(CAST(EffectiveCost AS DECIMAL(38, 12))) "
        f"FROM read_csv('{out}', all_varchar = true, nullstr = 'NULL')"
    ).fetchone()
    con.close()
    return out, ROWS, billed, effective


def snapshot(db: Path) -> dict[str, object]:
    with Store(db) as s:
        q = s.con.execute
        return {
            "batches": q("SELECT batch_id, status, rows_loaded, billed_loaded FROM batches ORDER BY 1").fetchall(),
            "batch_files": q("SELECT batch_id, count(*) FROM batch_files GROUP BY 1 ORDER BY 1").fetchall(),
            "rows": q('SELECT _batch_id, count(*), sum("BilledCost"), sum("EffectiveCost") FROM focus_charges '
                      "GROUP BY 1 ORDER BY 1").fetchall(),
            "quarantine": q("SELECT count(*) FROM quarantine").fetchone()[0],
            "warnings": q("SELECT batch_id, rule, rows FROM row_warnings ORDER BY ALL").fetchall(),
            "restatements": q("SELECT count(*) FROM restatements").fetchone()[0],
            "tables": sorted(r[0] for r in q("SELECT table_name FROM information_schema.tables").fetchall()),
        }


def run_and_kill(db: Path, csv_path: Path, phase: str) -> tuple[bool, list[str]]:
    """Start the child and SIGKILL it once it is inside ``phase``; True when it was killed before it finished.

    EARLY: KILL_AFTER seconds after the LOAD marker (the insert takes over a second). LOAD: as soon as the store
    file grows, i.e. while the uncommitted INSERT is writing its blocks (at most GROW_WAIT seconds after it)."""
    env = dict(os.environ, PYTHONPATH=str(Path(aifinops.__file__).resolve().parents[1]))
    size = db.stat().st_size
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(csv_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    seen = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("LOAD"):
                seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    started = time.monotonic()
    while not seen.is_set() and proc.poll() is None and time.monotonic() - started < 60:
        seen.wait(0.01)
    killed = False
    if seen.is_set():
        marker = time.monotonic()
        if phase == "LOAD":
            while proc.poll() is None and db.stat().st_size == size and time.monotonic() - marker < GROW_WAIT:
                time.sleep(0.005)
        else:
            time.sleep(KILL_AFTER)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed = True
            lines.append(f"(SIGKILL {time.monotonic() - marker:.2f}s after {phase}; store file {size} -> "
                         f"{db.stat().st_size} bytes)")
    proc.wait(timeout=60)
    t.join(timeout=5)
    err = proc.stderr.read() if proc.stderr else ""
    if not killed:
        assert proc.returncode == 0, err
    else:
        assert proc.returncode == -signal.SIGKILL
    return killed, lines


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["EARLY", "LOAD"])
def test_kill_mid_ingest_leaves_the_store_as_it_was(phase, tmp_path, big_csv, focus_rows, focus_source):
    csv_path, n, billed, effective = big_csv
    db = tmp_path / "store.duckdb"
    with Store(db) as s:
        ingest(s, focus_source, [focus_rows.path])
    before = snapshot(db)
    assert before["rows"] == [(1, 1000, Decimal("20.520226728990"), Decimal("14.976514185860"))]

    killed, lines = run_and_kill(db, csv_path, phase)
    leftovers = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    print(f"\nphase {phase}: killed={killed}; child printed {lines}; files after: {leftovers}")

    after = snapshot(db)
    if killed:
        assert "DONE" not in " ".join(lines)
        assert after == before  # exactly the earlier batch, no partial rows, no orphan records
    else:  # the child finished before the kill (a very fast machine): the batch must then be whole
        print("the ingest finished before the kill; checking the completed state instead")
        assert [b[:3] for b in after["batches"]] == [(1, "partly replaced", 1000), (2, "loaded", n)]

    # the same ingest again completes and loads every row exactly once
    with Store(db) as s:
        res = ingest(s, focus_source, [csv_path])
        if killed:
            assert (res.status, res.batch_id, res.rows_loaded, res.rows_quarantined) == ("loaded", 2, n, 0)
            assert (res.rows_replaced, res.replaced_batches) == (942, [1])
        else:
            assert res.status == "unchanged"
        rows = s.con.execute('SELECT _batch_id, count(*), count(DISTINCT x_Id), sum("BilledCost"), '
                             'sum("EffectiveCost") FROM focus_charges GROUP BY 1 ORDER BY 1').fetchall()
        others = Decimal("1.976514185860") + Decimal("0.537073924730")
        assert rows == [(1, 58, 58, others, Decimal("1.976514185860")), (2, n, n, billed, effective)]
        # each row carries its own row number in the file (x_Id is its 0-based index)
        assert s.con.execute(
            "SELECT count(*) FROM focus_charges WHERE _batch_id = 2 AND _row <> CAST(x_Id AS BIGINT) + 1"
        ).fetchone() == (0,)
        assert s.con.execute("SELECT batch_id, status FROM batches ORDER BY 1").fetchall() == \
            [(1, "partly replaced"), (2, "loaded")]
        assert s.con.execute("SELECT count(*) FROM batch_files").fetchone() == (2,)

