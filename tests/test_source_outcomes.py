"""The outcomes source: CSV and JSON lines column by column, a re-reported outcome superseding the earlier
value (never counted twice), re-ingest idempotent, bad rows quarantined with their reason."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aifinops.sources.base import SourceError
from aifinops.sources.outcomes import OutcomesSource
from aifinops.store.connection import Store
from aifinops.store.ingest import IngestError, ingest

FIXTURES = Path(__file__).parent / "fixtures" / "outcomes"
CSV_FILE = FIXTURES / "outcomes.csv"
JSONL_FILE = FIXTURES / "outcomes.jsonl"
COLUMNS = "ts, metric, value, unit, feature, model, team, tenant, user_id, attributes"
D2, D3 = datetime(2025, 6, 2), datetime(2025, 6, 3)
ZENDESK_EU = {"region": "eu-west", "source_system": "zendesk"}


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def live(store: Store) -> list[tuple]:
    sql = f"SELECT {COLUMNS} FROM outcomes WHERE NOT _superseded ORDER BY _batch_id, _row"
    return store.con.execute(sql).fetchall()


def reasons(store: Store) -> list[tuple]:
    return store.con.execute('SELECT row_number, "column", reason FROM quarantine_errors ORDER BY 1, 2').fetchall()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_golden_rows(store):
    res = ingest(store, OutcomesSource(), [CSV_FILE])
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined, res.notes) == ("loaded", 8, 8, 0, [])
    assert live(store) == [
        (D2, "tickets_resolved", Decimal("412"), "count", "ticket-triage", "claude-sonnet", "support", "globex", None,
         ZENDESK_EU),
        (D2, "tickets_resolved", Decimal("198"), "count", "ticket-triage", "claude-sonnet", "support", "acme", None,
         {"region": "us-east", "source_system": "zendesk"}),
        (D2, "tickets_escalated", Decimal("37"), "count", "ticket-triage", None, "support", None, None, ZENDESK_EU),
        (D2, "conversions", Decimal("54"), "count", "semantic-search", "gpt-4o", "search", "acme", None,
         {"region": "us-east", "source_system": "segment"}),
        (D2, "revenue", Decimal("1830.25"), "USD", "semantic-search", "gpt-4o", "search", "acme", None,
         {"region": "us-east", "source_system": "stripe"}),
        (D2, "documents_summarized", Decimal("1270"), "count", "summarize", "gemini-flash", None, "initech", None,
         {"region": "us-central", "source_system": "app-db"}),
        (D3, "tickets_resolved", Decimal("389"), "count", "ticket-triage", "claude-sonnet", "support", "globex", None,
         ZENDESK_EU),
        (D3, "revenue", Decimal("2044.10"), "USD", "semantic-search", "gpt-4o", "search", "acme", None,
         {"region": "us-east", "source_system": "stripe"}),
    ]
    assert store.con.execute("SELECT sum(value) FROM outcomes WHERE metric = 'revenue'").fetchone()[0] == \
        Decimal("3874.35")


def test_json_lines_with_an_attributes_object_and_offsets(store):
    res = ingest(store, OutcomesSource(), [JSONL_FILE])
    assert (res.rows_loaded, res.rows_quarantined) == (3, 0)
    assert live(store) == [
        (D2, "conversions", Decimal("54"), "count", "semantic-search", None, "search", "acme", None,
         {"channel": "web", "campaign": "summer"}),
        (D2, "revenue", Decimal("1830.25"), "USD", "semantic-search", None, "search", "acme", None, {"channel": "web"}),
        (datetime(2025, 6, 2, 10), "tickets_resolved", Decimal("23"), "count", "ticket-triage", None, "support", None,
         "agent-17", {}),
    ]


def test_a_reexported_report_supersedes_the_earlier_values(store, tmp_path):
    ingest(store, OutcomesSource(), [CSV_FILE])
    # the next export corrects June 2nd's resolved tickets for globex and adds June 4th
    lines = CSV_FILE.read_text().splitlines()
    corrected = lines[1].replace(",412,", ",420,")
    newer = _write(tmp_path / "newer.csv", "\n".join([lines[0], corrected,
                   "2025-06-04,ticket-triage,support,claude-sonnet,globex,tickets_resolved,401,count,eu-west,zendesk"])
                   + "\n")
    res = ingest(store, OutcomesSource(), [newer])
    assert res.rows_loaded == 2
    assert any("1 row(s) of earlier batches observed again" in n for n in res.notes)
    total = store.con.execute("SELECT sum(value), count(*) FROM outcomes WHERE NOT _superseded AND "
                              "metric = 'tickets_resolved' AND tenant = 'globex'").fetchone()
    assert total == (Decimal("420") + 389 + 401, 3)
    assert store.con.execute("SELECT value, _batch_id FROM outcomes WHERE _superseded").fetchall() == \
        [(Decimal("412"), 1)]


def test_the_same_outcome_twice_in_a_file_counts_once(store, tmp_path):
    f = _write(tmp_path / "dupe.csv", "ts,metric,value,feature\n2026-01-01,conversions,5,search\n"
                                      "2026-01-01,conversions,7,search\n2026-01-01,conversions,1,chat\n")
    res = ingest(store, OutcomesSource(), [f])
    assert any("1 row(s) repeat an observation" in n for n in res.notes)
    assert store.con.execute("SELECT feature, value FROM outcomes WHERE NOT _superseded ORDER BY 1").fetchall() == \
        [("chat", Decimal("1")), ("search", Decimal("7"))]


def test_reingest_is_a_no_op(store, tmp_path):
    ingest(store, OutcomesSource(), [CSV_FILE])
    again = tmp_path / "again.csv"
    again.write_bytes(CSV_FILE.read_bytes())
    res = ingest(store, OutcomesSource(), [again])
    assert (res.status, res.duplicate_of) == ("unchanged", 1)
    assert store.con.execute("SELECT count(*) FROM outcomes").fetchone() == (8,)


def test_bad_rows_are_quarantined_with_their_reason(store, tmp_path):
    f = _write(tmp_path / "bad.jsonl", "\n".join([
        json.dumps({"time": "2026-01-01", "metric": "conversions", "value": 3, "team": "search"}),   # 1 ok
        json.dumps({"metric": "conversions", "value": 3}),                                          # 2 no time
        json.dumps({"time": "soon", "metric": "conversions", "value": 3}),                          # 3 not a time
        json.dumps({"time": "2026-01-01", "value": 3}),                                             # 4 no metric
        json.dumps({"time": "2026-01-01", "metric": "revenue", "value": "12,50"}),                  # 5 not a number
        json.dumps({"time": "2026-01-01", "metric": "revenue"}),                                    # 6 no value
        "[1, 2]",                                                                                   # 7 not an object
    ]) + "\n")
    res = ingest(store, OutcomesSource(), [f])
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (7, 1, 6)
    got = reasons(store)
    assert [r for r in got if r[0] < 7] == [
        (2, "ts", "no time"),
        (3, "ts", "not a time: 'soon'"),
        (4, "metric", "no metric"),
        (5, "value", "not a number: '12,50'"),
        (6, "value", "no value"),
    ]
    assert (7, "_line", "not a JSON object: [1, 2]") in got


def test_a_file_without_the_required_columns_is_refused(store, tmp_path):
    f = _write(tmp_path / "x.csv", "reported_on,feature,solved\n2026-01-01,triage,3\n")
    with pytest.raises(IngestError) as err:
        ingest(store, OutcomesSource(), [f])
    assert "not an outcomes file: no ts / time / timestamp / datetime / date / day column for ts (and metric, value)" \
        in str(err.value)
    # the mapping says what the file calls them
    src = OutcomesSource(columns="{ts: reported_on, metric: \"'tickets_resolved'\", value: solved}")
    assert ingest(store, src, [f]).rows_loaded == 1
    assert live(store) == [(datetime(2026, 1, 1), "tickets_resolved", Decimal("3"), None, "triage", None, None, None,
                            None, {})]


def test_epoch_times_and_parquet(store, tmp_path):
    f = tmp_path / "o.parquet"
    duckdb.sql("SELECT 1767225600 AS ts, 'revenue' AS metric, 99.5::DOUBLE AS value, 'EUR' AS currency, "
               "'acme' AS customer").write_parquet(str(f))
    assert ingest(store, OutcomesSource(time_unit="s"), [f]).rows_loaded == 1
    assert live(store) == [(datetime(2026, 1, 1), "revenue", Decimal("99.5"), "EUR", None, None, None, "acme", None,
                            {})]


def test_bad_options_are_named():
    with pytest.raises(SourceError, match="cost cannot be mapped"):
        OutcomesSource(columns={"cost": "x"})
    with pytest.raises(SourceError, match="time_unit"):
        OutcomesSource(time_unit="h")
