"""`aifinops recommend` end to end: findings sorted by saving with stable ids, kept in the store (first seen
stays, a dismissal survives re-detection, a finding no longer found becomes inactive), explain, the rule
list, and clear errors for unknown rules, bad thresholds and unknown ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from waste_fixtures import T0, add_activity, add_node, add_workload

from aifinops.interfaces.cli.app import app
from aifinops.store.connection import Store
from aifinops.waste import registry as rules
from aifinops.waste.engine import finding_id

WINDOW = ["--window", "2026-10-01T00:00..2026-10-03T00:00"]
#: the two rules this fixture is built for (others, such as commitment-coverage, see waste in it too)
RULES = ["--rule", "idle-gpu-capacity,underused-gpu"]
runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two idle 4-GPU nodes and one busy one in pool-a; one H100 workload at 10% SM (team search)."""
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        for node in ("n1", "n2", "n3"):
            add_node(store.con, node, 4, "4", owner="ml-platform")
        add_workload(store.con, "w1", "n1", 1, T0, None, labels={"team": "search"})
        add_activity(store.con, "n1", 0, T0, 48, 0.10, pod="w1", every_s=600)
        add_workload(store.con, "w2", "n1", 3, T0, None, labels={"team": "search"})
        add_activity(store.con, "n1", 1, T0, 48, 0.9, pod="w2", every_s=600)
    return path


def cli(db: Path, *args: str, config: Path | None = None) -> tuple[int, str]:
    pre = ["--db", str(db)] + (["--config", str(config)] if config else [])
    res = runner.invoke(app, [*pre, *args])
    return res.exit_code, res.output


def listed(db: Path, *args: str) -> list[dict]:
    code, out = cli(db, "recommend", *WINDOW, *(RULES if "--rule" not in args else ()), "--format", "json", *args)
    assert code == 0, out
    return json.loads(out)


def test_findings_are_listed_by_saving_with_stable_ids(db: Path) -> None:
    first = listed(db)
    assert [(f["rule"], f["scope"]) for f in first] == [("idle-gpu-capacity", "pool-a"),
                                                        ("underused-gpu", "default/w1")]
    savings = [float(f["achievableSaving"]) for f in first]
    assert savings == sorted(savings, reverse=True) and savings[0] > 0
    assert first[0]["id"] == finding_id("idle-gpu-capacity", "node_pool", "pool-a")
    assert first[0]["evidence"]["mode"] == "placement" and first[0]["assumptions"]
    again = listed(db)
    assert [(f["id"], f["firstSeen"]) for f in again] == [(f["id"], f["firstSeen"]) for f in first]
    assert listed(db, "--team", "search") == [again[1]]
    assert listed(db, "--min-saving", str(savings[0] + 1)) == []
    assert [f["rule"] for f in listed(db, "--rule", "underused-gpu")] == ["underused-gpu"]


def test_dismiss_survives_and_explain_shows_the_arithmetic(db: Path) -> None:
    idle, under = listed(db)
    code, out = cli(db, "recommend", "dismiss", under["id"][:6])
    assert code == 1 and "needs --reason" in out
    code, out = cli(db, "recommend", "dismiss", under["id"][:6], "--reason", "inference canary, sized on purpose")
    assert code == 0 and "dismissed" in out
    assert [f["id"] for f in listed(db)] == [idle["id"]]
    [*_, hidden] = listed(db, "--all")
    assert (hidden["id"], hidden["status"], float(hidden["achievableSaving"])) == (under["id"], "dismissed", 0.0)
    assert hidden["statusReason"] == "inference canary, sized on purpose"
    code, out = cli(db, "recommend", "explain", idle["id"][:8])
    assert code == 0
    assert "Remove 2 node(s) (8 GPUs)" in out and "GPUs x" in out and "assumptions:" in out and "min_idle_gpus" in out
    code, out = cli(db, "recommend", "reopen", under["id"])
    assert code == 0 and len(listed(db)) == 2


def test_a_finding_no_longer_found_becomes_inactive(db: Path, tmp_path: Path) -> None:
    listed(db)
    config = tmp_path / "aifinops.yaml"
    config.write_text("waste:\n  rules:\n    underused-gpu:\n      max_activity: 0.05\n")
    code, out = cli(db, "recommend", *WINDOW, *RULES, config=config)
    assert code == 0, out
    with Store(db, read_only=True) as store:
        rows = dict(store.con.execute("SELECT rule, active FROM findings").fetchall())
    assert rows == {"idle-gpu-capacity": True, "underused-gpu": False}


def test_no_record_leaves_the_store_alone(db: Path) -> None:
    assert listed(db, "--no-record")
    with Store(db, read_only=True) as store:
        assert store.con.execute("SELECT count(*) FROM findings").fetchone()[0] == 0


def test_errors_name_the_rule_and_the_key(db: Path, tmp_path: Path) -> None:
    code, out = cli(db, "recommend", *WINDOW, "--rule", "idle-gpus")
    assert code == 1 and "unknown rule 'idle-gpus'" in out and "idle-gpu-capacity" in out
    config = tmp_path / "bad.yaml"
    config.write_text("waste:\n  rules:\n    underused-gpu:\n      max_activity: 2\n")
    code, out = cli(db, "recommend", *WINDOW, config=config)
    assert code == 1 and "waste.rules.underused-gpu: max_activity" in out
    code, out = cli(db, "recommend", "explain", "ffffffff")
    assert code == 1 and "no finding 'ffffffff'" in out


def test_rules_lists_every_registered_rule_with_its_thresholds(db: Path) -> None:
    code, out = cli(db, "recommend", "rules", "--format", "json")
    assert code == 0
    got = {r["rule"]: r for r in json.loads(out)}
    assert set(got) == set(rules.names())
    assert got["underused-gpu"]["thresholds"]["max_activity"] == 0.3
    for r in got.values():
        assert r["title"] and r["targets"]
