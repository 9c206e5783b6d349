"""`--window all` on the hourly analyses is the data's span, not 1970..9999: a node with a $2/h GPU held by one
workload for 3 hours gives $6 of allocated GPU cost, at once."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner
from waste_fixtures import T0, add_node, add_requests, add_workload

from aifinops.interfaces.cli.app import app
from aifinops.store.connection import Store


def test_allocation_and_unit_costs_over_all_are_the_span_of_the_data(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        add_node(store.con, "n1", 1, "2")
        add_workload(store.con, "w1", "n1", 1, T0, T0 + timedelta(hours=3), labels={"team": "a"})
        add_requests(store.con, [{"ts": T0 + timedelta(hours=1), "provider": "openai", "request_model": "gpt-x",
                                  "input_tokens": 10, "output_tokens": 5, "team": "a"}])
    run = CliRunner().invoke
    res = run(app, ["--db", str(db), "allocation", "--window", "all", "--aggregate", "label:team", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["label:team"]: r for r in json.loads(res.output)}
    assert rows["a"]["gpuCost"] == "6" or float(rows["a"]["gpuCost"]) == 6.0
    assert float(rows["a"]["gpuHours"]) == 3.0
    res = run(app, ["--db", str(db), "allocation", "--window", "all", "--aggregate", "label:team"])
    assert f"window {T0:%Y-%m-%d}" in res.output  # the caption names the data's span, not 1970
    res = run(app, ["--db", str(db), "unit-costs", "--window", "all", "--by", "team"])
    assert res.exit_code == 0 and f"window {T0:%Y-%m-%d}" in res.output, res.output
