"""``always-on-endpoint``: a self-hosted endpoint up all day for three bursts of requests, replayed against
scale-to-zero; silent for steady traffic and for an endpoint that is not always on; thresholds as options."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from waste_fixtures import T0, add_node, add_requests, add_workload, findings, window
from waste_llm_sources import otel_spans

from aifinops.store.connection import Store

RULE = "always-on-endpoint"
MODEL = "llama-3-8b"
#: three bursts: 09:00-09:10 (every 5 min), 14:00 and 14:01, 20:00
BURSTS = [T0 + timedelta(hours=h, minutes=m) for h, m in ((9, 0), (9, 5), (9, 10), (14, 0), (14, 1), (20, 0))]
MONTH = Decimal("730.5") / Decimal(24)  # a 24 h window -> a month


def endpoint(store: Store, hours: float = 24) -> None:
    """One GPU at $4/h serving MODEL (a Deployment's pod) from T0 for ``hours``."""
    add_node(store.con, "n1", 1, "4")
    add_workload(store.con, "llama-0", "n1", 1, T0, T0 + timedelta(hours=hours) if hours < 24 else None,
                 labels={"model": MODEL, "team": "ml-platform"}, owner_kind="ReplicaSet", owner_name="llama-7d9f")


def requests(store: Store, times: list[datetime]) -> None:
    add_requests(store.con, [{"ts": t, "provider": "vllm", "request_model": MODEL, "input_tokens": 400,
                              "output_tokens": 80} for t in times])


def test_bursty_traffic_on_an_always_on_endpoint(store: Store) -> None:
    """Up 24 h of 24 for $96 ($4/h). Replay (timeout 15 min, cold start 120 s), up from a session's first request
    until 15 min after max(last request, first + 120 s):
      09:00-09:10 -> 09:10 + 15 min = 09:25: 25 min; 14:00-14:01 -> 14:02 + 15 = 14:17: 17 min; 20:00 -> 20:17: 17
    = 59 min = 3,540 s. Saving = 96 x (1 - 3,540 / 86,400) = 92.0666..., x 730.5 / 24 a month = 2,802.279166...
    Cold starts: 3 of 6 requests; waiting within a cold start: 09:00, 14:00, 14:01, 20:00 = 4 (66.7% > 1%: medium)."""
    endpoint(store)
    requests(store, BURSTS)
    res = findings(store.con, window(24), RULE)
    [f] = res.findings
    expected = (Decimal(96) - Decimal(96) * Decimal(3540) / Decimal(86400)) * MONTH
    assert abs(f.monthly_saving - expected) < Decimal("1e-9")
    assert f.monthly_cost == Decimal(96) * MONTH
    assert (f.scope_kind, f.scope, f.owner, f.pool, f.confidence) == (
        "endpoint", MODEL, "ml-platform", f"endpoint:{MODEL}", "medium")
    assert f.pool_cost == Decimal(96) * MONTH
    e = f.evidence
    assert (e["requests"], e["sessions"], e["cold_start_requests"], e["delayed_requests"]) == (6, 3, 3, 4)
    assert (e["up_share"], e["busy_share"], e["cost_per_hour"]) == (1.0, round(3540 / 86400, 4), Decimal(4))
    assert e["replayed_up_hours"] == round(3540 / 3600, 3)
    assert "Scale endpoint llama-3-8b to zero" in f.recommendation and "15 min" in f.recommendation
    assert "3 cold start(s), 4 request(s) (66.7%) waiting up to 120 s" in f.recommendation
    assert "0.983 h replayed / 24.000 h up" in f.saving_formula


def test_no_cold_start_means_high_confidence(store: Store) -> None:
    """cold_start_seconds 0: no request waits, so confidence is high; sessions are last + 15 min long."""
    endpoint(store)
    requests(store, BURSTS)
    [f] = findings(store.con, window(24), RULE, cold_start_seconds=0).findings
    assert (f.confidence, f.evidence["delayed_requests"]) == ("high", 0)
    # 09:00-09:10 + 15 = 25 min, 14:00-14:01 + 15 = 16 min, 20:00 + 15 = 15 min: 56 min
    assert f.evidence["replayed_up_hours"] == round(56 / 60, 3)


def test_an_endpoint_without_requests_is_not_judged_unless_asked(store: Store) -> None:
    """No request of the model at all (only another model's): no telemetry is not no traffic, so it is silent;
    with count_unseen_traffic the whole $96 is saved, with low confidence."""
    endpoint(store)
    add_requests(store.con, [{"ts": T0 + timedelta(hours=1), "provider": "openai", "request_model": "gpt-4o-mini",
                              "input_tokens": 10, "output_tokens": 1}])
    assert findings(store.con, window(24), RULE).findings == []
    [f] = findings(store.con, window(24), RULE, count_unseen_traffic=True).findings
    assert (f.confidence, f.evidence["requests"]) == ("low", 0)
    assert f.monthly_saving == Decimal(96) * MONTH
    assert "no request of llama-3-8b was seen" in f.recommendation


def test_silent_for_steady_traffic_and_for_an_endpoint_not_always_on(store: Store, tmp_path: Path) -> None:
    """A request every 10 min keeps the replay up all day (busy 100% >= 60%); an endpoint up 20 h of 24 (83% <=
    90%) is not always on."""
    endpoint(store)
    requests(store, [T0 + timedelta(minutes=10 * i) for i in range(144)])
    assert findings(store.con, window(24), RULE).findings == []
    other = Store(tmp_path / "b.duckdb")
    try:
        endpoint(other, hours=20)
        requests(other, BURSTS)
        assert findings(other.con, window(24), RULE).findings == []
    finally:
        other.close()


def test_thresholds_are_options(store: Store, tmp_path: Path) -> None:
    """min_up_share 0.8 reports the endpoint up 20 h of 24: $80, replay 59 min = 3,540 s of 72,000 s up, saving
    80 x (1 - 3,540 / 72,000) x 730.5 / 24. max_busy_share 0.04 silences the all-day one (busy 4.1%)."""
    endpoint(store, hours=20)
    requests(store, BURSTS)
    [f] = findings(store.con, window(24), RULE, min_up_share=0.8).findings
    expected = (Decimal(80) - Decimal(80) * Decimal(3540) / Decimal(72000)) * MONTH
    assert abs(f.monthly_saving - expected) < Decimal("1e-9")
    other = Store(tmp_path / "b.duckdb")
    try:
        endpoint(other)
        requests(other, BURSTS)
        assert len(findings(other.con, window(24), RULE).findings) == 1
        assert findings(other.con, window(24), RULE, max_busy_share=0.04).findings == []
    finally:
        other.close()


def test_skipped_without_its_data(store: Store) -> None:
    res = findings(store.con, window(24), RULE)
    assert res.findings == [] and [s.rule for s in res.skipped] == [RULE]
    assert "GPU node inventory" in res.skipped[0].reason
    endpoint(store)
    res = findings(store.con, window(24), RULE)
    assert "no LLM requests" in res.skipped[0].reason


def test_requests_from_otel_spans(store: Store, tmp_path: Path) -> None:
    """The same bursts as SDK-written OTel spans of a vLLM server, naming the model as Hugging Face does (its key,
    llama-3-8b, is the endpoint's label): the same finding as the direct rows."""
    endpoint(store)
    res = otel_spans(store, tmp_path / "vllm.jsonl", [
        {"ts": t, "model": "meta-llama/Llama-3-8B", "provider": "vllm", "input_tokens": 400, "output_tokens": 80}
        for t in BURSTS])
    assert res.rows_loaded == 6
    [f] = findings(store.con, window(24), RULE).findings
    expected = (Decimal(96) - Decimal(96) * Decimal(3540) / Decimal(86400)) * MONTH
    assert abs(f.monthly_saving - expected) < Decimal("1e-9")
    assert (f.evidence["sessions"], f.evidence["delayed_requests"]) == (3, 4)
