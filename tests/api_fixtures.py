"""A small store holding two teams' data in every table the API reads, for the API tests. Every identifier of
team ``bravo`` contains "bravo", so a response that leaks any of bravo's detail to team ``alpha`` shows it.

  ledger, 14 days (2026-09-17 .. 2026-10-01), per day:
    alpha  EC2 r-alpha-1 $10, S3 r-alpha-2 $2                  -> alpha $168 over the 14 days
    bravo  EC2 r-bravo-1 $7, BravoOnlyService r-bravo-2 $3     -> bravo $140
    untagged EC2 r-untagged $0.50                              -> $7
  GPU, 2026-10-01 00:00 .. 10:00 (the window ``10h``), nodes priced per hour:
    gpu-1      8 GPUs, $8/h, pool shared-pool owned by alpha   -> $80
      alpha-train  4 GPUs 10 h, team alpha, ns-alpha, SM 0.5   -> 40 GPU-h, $40
      bravo-train  2 GPUs 10 h, team bravo, ns-bravo, SM 0.9   -> 20 GPU-h, $20
      job-untagged 1 GPU  10 h, no labels, default, SM 0.2     -> 10 GPU-h, $10
      idle         1 GPU  10 h                                  -> 10 GPU-h, $10
    gpu-bravo  4 GPUs, $4/h, pool pool-bravo owned by bravo    -> $40
      bravo-serve  4 GPUs 5 h, team bravo, ns-bravo, SM 0.7    -> 20 GPU-h, $20; idle 20 GPU-h, $20
    fleet: 120 GPU-h, $120; alpha's $40, everyone else's $80 (with shareIdle=none)
  LLM requests (model m1, $1 in / $2 out per 1M tokens): alpha 3 x (1000 in, 500 out) = $0.006 (feature
    alpha-chat, user alpha-user); bravo 2 x (2000, 1000) = $0.008 (bravo-search, bravo-user)
  findings: alpha 2 (achievable $100 and $50), bravo 1 ($70), no owner 1 ($5)
  anomalies: alpha's (owner alpha, root causes naming alpha and bravo), bravo's (series bravo of tag:team),
    one owned by bravo's contact, one of nobody's (ServiceName)
  budgets: alpha ($500, tag:team alpha), bravo ($300), all-spend ($1,000)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from waste_fixtures import add_activity, add_charge, add_node, add_requests, add_workload

from aifinops.config import Settings
from aifinops.store import findings as findings_store
from aifinops.store import tokens
from aifinops.store.connection import Store

LEDGER_START = datetime(2026, 9, 17)
GPU_START = datetime(2026, 10, 1)
NOW = datetime(2026, 10, 2)


def settings(db: Path) -> Settings:
    return Settings.model_validate({
        "db": str(db),
        "llm": {"prices": [{"model": "m1", "kind": "override", "input_per_mtok": "1", "output_per_mtok": "2"}]},
        "alerts": {"owners": {"bravo": "bravo-oncall@example.com"}},
        "budgets": [{"name": "alpha", "scope": {"tag:team": "alpha"}, "amount": 500},
                    {"name": "bravo-budget", "scope": {"tag:team": "bravo"}, "amount": 300},
                    {"name": "all-spend", "scope": {}, "amount": 1000}]})


def _ledger(store: Store) -> None:
    for d in range(14):
        t0 = LEDGER_START + timedelta(days=d)
        t1 = t0 + timedelta(days=1)
        for rid, svc, team, cost in (("r-alpha-1", "EC2", "alpha", "10"), ("r-alpha-2", "S3", "alpha", "2"),
                                     ("r-bravo-1", "EC2", "bravo", "7"),
                                     ("r-bravo-2", "BravoOnlyService", "bravo", "3"),
                                     ("r-untagged", "EC2", None, "0.5")):
            add_charge(store.con, t0, t1, cost, ResourceId=rid, ServiceName=svc, Tags={"team": team} if team else {},
                       ChargeFrequency="Usage-Based")


def _gpus(store: Store) -> None:
    con = store.con
    add_node(con, "gpu-1", 8, "8", node_pool="shared-pool", owner="alpha")
    add_node(con, "gpu-bravo", 4, "4", node_pool="pool-bravo", owner="bravo")
    end = GPU_START + timedelta(hours=10)
    for wid, node, gpus, stop, labels, ns in (
            ("alpha-train", "gpu-1", 4, end, {"team": "alpha"}, "ns-alpha"),
            ("bravo-train", "gpu-1", 2, end, {"team": "bravo"}, "ns-bravo"),
            ("job-untagged", "gpu-1", 1, end, {}, "default"),
            ("bravo-serve", "gpu-bravo", 4, GPU_START + timedelta(hours=5), {"team": "bravo"}, "ns-bravo")):
        add_workload(con, wid, node, gpus, GPU_START, stop, labels=labels, namespace=ns)
    for node, gpus, pod, ns, sm, hours in (("gpu-1", range(0, 4), "alpha-train", "ns-alpha", 0.5, 10),
                                           ("gpu-1", range(4, 6), "bravo-train", "ns-bravo", 0.9, 10),
                                           ("gpu-1", range(6, 7), "job-untagged", "default", 0.2, 10),
                                           ("gpu-bravo", range(0, 4), "bravo-serve", "ns-bravo", 0.7, 5)):
        for g in gpus:
            add_activity(con, node, g, GPU_START, hours, sm, pod=pod, namespace=ns, every_s=300)


def _llm(store: Store) -> None:
    rows = [{"ts": GPU_START + timedelta(hours=i), "provider": "openai", "request_model": "m1", "input_tokens": 1000,
             "output_tokens": 500, "team": "alpha", "feature": "alpha-chat", "user_id": "alpha-user"} for i in range(3)]
    rows += [{"ts": GPU_START + timedelta(hours=i), "provider": "openai", "request_model": "m1", "input_tokens": 2000,
              "output_tokens": 1000, "team": "bravo", "feature": "bravo-search", "user_id": "bravo-user"}
             for i in range(2)]
    add_requests(store.con, rows)


def _findings(store: Store) -> None:
    def rec(fid: str, scope: str, owner: str | None, saving: str) -> dict[str, object]:
        return {"finding_id": fid, "rule": "underused-gpu", "scope_kind": "workload", "scope": scope, "owner": owner,
                "window_start": GPU_START, "window_end": NOW, "monthly_cost": saving, "monthly_waste": saving,
                "monthly_saving": saving, "achievable_saving": saving, "confidence": "high",
                "recommendation": f"right-size {scope}",
                "detail": {"evidence": {"workload": scope}, "assumptions": ["a month is 730 hours"],
                           "saving_formula": f"{saving} = waste", "pool": f"workload:{scope}", "pool_cost": saving}}

    findings_store.record(store.con, [rec("a1a1a1a1a1a1", "ns-alpha/alpha-train", "alpha", "100"),
                                      rec("a2a2a2a2a2a2", "ns-alpha/alpha-infer", "alpha", "50"),
                                      rec("b1b1b1b1b1b1", "ns-bravo/bravo-train", "bravo", "70"),
                                      rec("c0c0c0c0c0c0", "default/job-untagged", None, "5")],
                          ["underused-gpu"], NOW)


def _anomalies(store: Store) -> None:
    causes_alpha = [{"dimension": "tag:team", "value": "alpha", "actual": 30, "expected": 10, "impact": 20,
                     "contribution": 0.8},
                    {"dimension": "tag:team", "value": "bravo", "actual": 12, "expected": 7, "impact": 5,
                     "contribution": 0.2}]
    for aid, dim, series, owner, impact, causes in (
            ("aaaa00000001", "ServiceName", "EC2", "alpha", 25.0, causes_alpha),
            ("bbbb00000001", "tag:team", "bravo", None, 40.0, []),
            ("bbbb00000002", "ServiceName", "BravoOnlyService", "bravo-oncall@example.com", 9.0, []),
            ("cccc00000001", "ServiceName", "S3", None, 3.0, [])):
        store.con.execute(
            "INSERT INTO anomalies (anomaly_id, metric, dimension, series, grain, period_start, period_end, periods, "
            "actual, expected, lower, upper, impact, impact_cost, direction, severity, root_causes, owner, "
            "first_seen, last_seen) VALUES (?, 'cost', ?, ?, 'day', ?, NULL, 1, 30, 10, 5, 15, ?, ?, 'up', 'high', "
            "?, ?, ?, ?)", [aid, dim, series, LEDGER_START + timedelta(days=13), impact, impact, json.dumps(causes),
                            owner, NOW, NOW])


def build(db: Path) -> dict[str, str]:
    """The store at ``db``; returns tokens by name: all (viewer), alpha, bravo (team viewers), admin, alpha-admin,
    analyst, alpha-analyst."""
    with Store(db) as store:
        _ledger(store)
        _gpus(store)
        _llm(store)
        _findings(store)
        _anomalies(store)
        store.con.execute(
            "INSERT INTO batches (batch_id, source_kind, status, fingerprint, started_at, seconds, rows_read, "
            "rows_loaded, rows_quarantined, billed_read, billed_loaded, effective_read, effective_loaded) VALUES "
            "(1, 'focus', 'loaded', 'fp', ?, 1.0, 70, 70, 0, 315, 315, 315, 315)", [NOW])
        store.con.execute("INSERT INTO batch_files VALUES (1, 'bravo-bill.csv', 'fp', 10, 'csv', '1.2', 70)")
        return {name: tokens.create(store.con, role, team, name, NOW)[1] for name, role, team in (
            ("all", "viewer", None), ("alpha", "viewer", "alpha"), ("bravo", "viewer", "bravo"),
            ("admin", "admin", None), ("alpha-admin", "admin", "alpha"), ("analyst", "analyst", None),
            ("alpha-analyst", "analyst", "alpha"))}
