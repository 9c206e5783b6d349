"""bench/inference.py at a tiny size: the benchmark runs, the daily unit economics add up to the window total to the
last decimal, unpriced requests are reported rather than costed, and the generated traffic has the shape the
benchmark claims (so the CI catches a broken benchmark before a 100M-request run does)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "inference.py"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench_inference")
    cmd = [sys.executable, str(SCRIPT), "--requests", "20000", "--no-litellm", "--out", str(out), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_daily_rows_add_up_to_the_window(result: dict) -> None:
    assert {"requests", "store", "generation", "steps", "check", "targets", "litellm"} <= result.keys()
    assert set(result["steps"]) == {"model-team-day", "team-window", "per-request"}
    for r in result["steps"].values():
        assert r["seconds"] > 0 and r["peak_mb"] > 0 and r["requests"] == 20000 and r["rows"] > 0
    day, window = result["steps"]["model-team-day"], result["steps"]["team-window"]
    check = result["check"]
    assert check["daily_equals_window"] and check["per_request_equal"]
    assert Decimal(day["cost"]) == Decimal(window["cost"]) == Decimal(result["steps"]["per-request"]["cost"]) > 0
    assert check["requests_counted"] == [20000, 20000, 20000]
    assert day["days"] == 30 and day["rows"] > 500  # a row per day, model and team
    assert window["groups"] == result["generation"]["teams"] == 12
    # the fine-tune and the in-house router: reported with their volume, never costed at 0
    assert 0.01 < check["unpriced_share"] < 0.06
    assert check["unpriced_requests"] == check["window_unpriced_requests"] > 0
    assert day["unpriced_tokens"] > 0
    assert result["litellm"] == {"skipped": "--no-litellm"}


@pytest.mark.slow
def test_generated_traffic_has_the_claimed_shape(result: dict) -> None:
    g = result["generation"]
    assert g["rows"] == 20000 and g["features_seen"] == 24
    assert 0.02 < g["batch_share"] < 0.15 and 0.15 < g["cache_read_share"] < 0.6 and g["above_200k"] > 0
    with duckdb.connect(result["store"], read_only=True) as con:
        lineage = con.execute("SELECT count(*) FROM llm_requests WHERE _batch_id IS NULL OR _superseded").fetchone()
        assert lineage == (0,)
        # a day's rows are in time order, as a collector delivers them
        unordered = con.execute("SELECT count(*) FROM (SELECT ts < lag(ts) OVER (PARTITION BY _batch_id ORDER BY "
                                "_row) AS back FROM llm_requests) WHERE back").fetchone()
        assert unordered == (0,)
        bad = con.execute("SELECT count(*) FROM llm_requests WHERE cache_read_tokens + coalesce(cache_write_tokens, "
                          "0) > input_tokens OR reasoning_tokens > output_tokens").fetchone()
        assert bad == (0,)
        providers = {r[0] for r in con.execute("SELECT DISTINCT provider FROM llm_requests").fetchall()}
        assert {"openai", "anthropic", "aws.bedrock", "azure.ai.openai", "gcp.vertex_ai"} <= providers
        top = con.execute("SELECT count(*) FROM llm_requests GROUP BY feature ORDER BY 1 DESC LIMIT 1").fetchone()
        assert top[0] > 20000 * 0.15  # the most popular feature carries a Zipf-like share
