"""Canonical tables as an ordered list of migrations.

A store records the number of migrations applied in ``meta.schema_version``. Opening a store made by an
older aifinops applies the missing migrations in one transaction, so a store is never half-migrated.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

from ..model import focus, gpu, llm, runs

MONEY = focus.DECIMAL_SQL


def _focus_charges() -> str:
    cols = ",\n  ".join(
        f'"{c.id}" {"MAP(VARCHAR, VARCHAR)" if c.id == "Tags" else c.sql_type}' for c in focus.columns()
    )
    # Lineage columns start with "_": never exported, always there to link a number to its rows.
    return f"""
CREATE TABLE focus_charges (
  {cols},
  _batch_id INTEGER NOT NULL,
  _file VARCHAR NOT NULL,
  _row BIGINT NOT NULL
)"""


MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "batches and the FOCUS ledger",
        [
            "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
            f"""
CREATE TABLE batches (
  batch_id INTEGER PRIMARY KEY,
  source_kind VARCHAR NOT NULL,
  status VARCHAR NOT NULL,            -- loaded | replaced | partly replaced
  fingerprint VARCHAR NOT NULL,       -- sha256 over the sorted file fingerprints
  started_at TIMESTAMP NOT NULL,
  seconds DOUBLE NOT NULL,
  focus_version VARCHAR,
  rows_read BIGINT NOT NULL,
  rows_loaded BIGINT NOT NULL,
  rows_quarantined BIGINT NOT NULL,
  billed_read {MONEY}, billed_loaded {MONEY}, billed_quarantined {MONEY},
  effective_read {MONEY}, effective_loaded {MONEY}, effective_quarantined {MONEY},
  rows_replaced BIGINT NOT NULL DEFAULT 0,  -- rows of earlier batches this one replaced
  note VARCHAR
)""",
            """
CREATE TABLE batch_files (
  batch_id INTEGER NOT NULL,
  path VARCHAR NOT NULL,
  fingerprint VARCHAR NOT NULL,
  bytes BIGINT NOT NULL,
  format VARCHAR NOT NULL,
  focus_version VARCHAR,
  rows_read BIGINT NOT NULL
)""",
            _focus_charges(),
        ],
    ),
    (
        "quarantine, warnings and restatements",
        [
            f"""
CREATE TABLE quarantine (
  batch_id INTEGER NOT NULL,
  source_kind VARCHAR NOT NULL,
  file VARCHAR NOT NULL,
  row_number BIGINT,                  -- 1-based data row (header excluded); NULL for unparseable lines
  errors STRUCT("column" VARCHAR, reason VARCHAR)[] NOT NULL,
  "BilledCost" {MONEY},               -- as far as it could be read, for the money reconciliation
  "EffectiveCost" {MONEY},
  raw MAP(VARCHAR, VARCHAR)           -- the row as read, to fix and re-ingest
)""",
            """
CREATE TABLE row_warnings (
  batch_id INTEGER NOT NULL,
  file VARCHAR NOT NULL,
  rule VARCHAR NOT NULL,
  "column" VARCHAR,
  rows BIGINT NOT NULL,
  first_row BIGINT
)""",
            f"""
CREATE TABLE restatements (
  batch_id INTEGER NOT NULL,          -- the newer batch
  replaced_batch_id INTEGER NOT NULL,
  "ProviderName" VARCHAR, "BillingAccountId" VARCHAR, "BillingPeriodStart" TIMESTAMP,
  rows_replaced BIGINT NOT NULL,
  billed_replaced {MONEY},
  effective_replaced {MONEY}
)""",
            "CREATE VIEW quarantine_errors AS SELECT batch_id, file, row_number, e.\"column\", e.reason "
            "FROM (SELECT batch_id, file, row_number, unnest(errors) AS e FROM quarantine)",
        ],
    ),
]

BREACHES = 'STRUCT("column" VARCHAR, reason VARCHAR, rule VARCHAR)[]'


def lineage_columns(table: str) -> list[str]:
    """Columns every ingest target carries besides _batch_id/_file/_row: the rule breaches of a row and,
    for a row about to be quarantined, its raw values. Ingest writes a file in one pass through them."""
    return [f"ALTER TABLE {table} ADD COLUMN _errors {BREACHES}",
            f"ALTER TABLE {table} ADD COLUMN _warnings {BREACHES}",
            f"ALTER TABLE {table} ADD COLUMN _raw MAP(VARCHAR, VARCHAR)"]


MIGRATIONS.append(("one-pass ingest: rule breaches carried on the row", lineage_columns("focus_charges")))


def _table(name: str, columns: dict[str, str]) -> list[str]:
    cols = ",\n  ".join(f'"{c}" {t}' for c, t in columns.items())
    lineage = "_batch_id INTEGER NOT NULL, _file VARCHAR NOT NULL, _row BIGINT NOT NULL"
    return [f"CREATE TABLE {name} (\n  {cols},\n  {lineage}\n)", *lineage_columns(name)]


#: Columns later migrations added to the GPU tables: migration 4 creates the tables without them, as it did
#: when it was released, and migration 5 adds them, so old and new stores end up with the same columns.
ADDED_IN_5: dict[str, dict[str, str]] = {
    "gpu_samples": {"job": "VARCHAR"},
    "gpu_nodes": {"cpu_cores": "DOUBLE", "memory_mib": "DOUBLE"},
}


def _as_of_4(table: str, columns: dict[str, str]) -> dict[str, str]:
    return {c: t for c, t in columns.items() if c not in ADDED_IN_5.get(table, {})}


MIGRATIONS.append((
    "GPU telemetry, workloads and inventory",
    [
        *_table("gpu_samples", _as_of_4("gpu_samples", gpu.GPU_SAMPLE_COLUMNS)),
        *_table("workloads", gpu.WORKLOAD_COLUMNS),
        *_table("gpu_nodes", _as_of_4("gpu_nodes", gpu.GPU_NODE_COLUMNS)),
        # Restatement keys of any source, as JSON text (the FOCUS key also keeps its own columns).
        "ALTER TABLE restatements ADD COLUMN key VARCHAR",
    ],
))

MIGRATIONS.append((
    "HPC job of GPU samples, node CPU and memory capacity, superseded duplicate samples",
    [
        *(f'ALTER TABLE {table} ADD COLUMN "{c}" {t}' for table, cols in ADDED_IN_5.items() for c, t in cols.items()),
        # A sample seen again (same GPU, instance, time and pod) in a newer batch supersedes the older row.
        "ALTER TABLE gpu_samples ADD COLUMN _superseded BOOLEAN DEFAULT false",
    ],
))

MIGRATIONS.append((
    "LLM requests, price catalogs and business outcomes",
    [
        *_table("llm_requests", llm.LLM_REQUEST_COLUMNS),
        # a request seen again (a retried export, overlapping files) supersedes the older row
        "ALTER TABLE llm_requests ADD COLUMN _superseded BOOLEAN DEFAULT false",
        *_table("llm_prices", llm.LLM_PRICE_COLUMNS),
        *_table("outcomes", llm.OUTCOME_COLUMNS),
        # an outcome row seen again (a re-exported report) supersedes the older one
        "ALTER TABLE outcomes ADD COLUMN _superseded BOOLEAN DEFAULT false",
    ],
))

MIGRATIONS.append((
    "waste findings, training-run metrics, prompt fingerprints of LLM requests",
    [
        # A finding is identified by its rule and scope (finding_id = a hash of them), so the same waste seen
        # by a later run updates its row: first_seen stays, last_seen and the numbers move, and a dismissal
        # (status, reason) survives re-detection.
        f"""
CREATE TABLE findings (
  finding_id VARCHAR PRIMARY KEY,
  rule VARCHAR NOT NULL,
  scope_kind VARCHAR NOT NULL,        -- workload | endpoint | model | feature | team | node_pool | resource | run
  scope VARCHAR NOT NULL,
  owner VARCHAR,
  status VARCHAR NOT NULL DEFAULT 'open',   -- open | accepted | dismissed
  status_reason VARCHAR,
  status_at TIMESTAMP,
  first_seen TIMESTAMP NOT NULL,
  last_seen TIMESTAMP NOT NULL,
  active BOOLEAN NOT NULL DEFAULT true,     -- found by the latest run of its rule
  window_start TIMESTAMP, window_end TIMESTAMP,
  monthly_cost {MONEY}, monthly_waste {MONEY}, monthly_saving {MONEY}, achievable_saving {MONEY},
  confidence VARCHAR,
  recommendation VARCHAR,
  detail VARCHAR                      -- JSON: evidence, assumptions, how the saving was computed, pool
)""",
        *_table("run_metrics", runs.RUN_METRIC_COLUMNS),
        "ALTER TABLE run_metrics ADD COLUMN _superseded BOOLEAN DEFAULT false",
        # A fingerprint of the whole prompt and of its reusable prefix (system prompt, tools, leading
        # messages), hashed at ingest: repeated prompts are found without keeping their text.
        *(f'ALTER TABLE llm_requests ADD COLUMN "{c}" {t}' for c, t in llm.PROMPT_COLUMNS.items()),
    ],
))

MIGRATIONS.append((
    "anomalies with feedback, alerts and their deliveries",
    [
        # An anomaly is identified by what was measured, on which series, and when it started (anomaly_id = a
        # hash of metric, dimension, series, grain and start), so a later scan updates the same row: the end and
        # the impact move while it grows, and its status (feedback) stays.
        """
CREATE TABLE anomalies (
  anomaly_id VARCHAR PRIMARY KEY,
  metric VARCHAR NOT NULL,            -- cost | gpu_hours | gpu_cost | tokens | requests | llm_cost
  dimension VARCHAR NOT NULL,
  series VARCHAR NOT NULL,
  grain VARCHAR NOT NULL,             -- day | hour
  period_start TIMESTAMP NOT NULL,
  period_end TIMESTAMP,               -- exclusive; NULL while still anomalous at the last period
  periods INTEGER NOT NULL,
  actual DOUBLE, expected DOUBLE, lower DOUBLE, upper DOUBLE,
  impact DOUBLE,                      -- in the metric's unit
  impact_cost DOUBLE,                 -- in dollars
  direction VARCHAR, severity VARCHAR,
  root_causes VARCHAR,                -- JSON list: dimension, value, actual, expected, impact, contribution
  owner VARCHAR,
  status VARCHAR NOT NULL DEFAULT 'open',   -- open | expected | planned | wrong
  status_reason VARCHAR,
  status_at TIMESTAMP,
  first_seen TIMESTAMP NOT NULL,
  last_seen TIMESTAMP NOT NULL,
  active BOOLEAN NOT NULL DEFAULT true      -- reported by the latest scan of its metric and dimension
)""",
        # What people said about a series over a time range: expected (a new normal: learnt at once), planned (a
        # one-off: never alerts, kept out of the baseline), wrong (normal after all: learnt, widens the bounds).
        # A planned event can be declared before it happens (no anomaly_id).
        """
CREATE TABLE anomaly_feedback (
  feedback_id VARCHAR PRIMARY KEY,
  anomaly_id VARCHAR,
  metric VARCHAR NOT NULL,
  dimension VARCHAR NOT NULL,
  series VARCHAR NOT NULL,
  period_start TIMESTAMP NOT NULL,
  period_end TIMESTAMP,               -- exclusive; NULL: from period_start on
  kind VARCHAR NOT NULL,              -- expected | planned | wrong
  reason VARCHAR,
  created_at TIMESTAMP NOT NULL
)""",
        # One alert per anomaly or budget threshold crossing (alert_key: anomaly:<id>, budget:<name>:<period
        # start>:<actual|forecast>:<pct>); an alert that grows is updated, not repeated.
        """
CREATE TABLE alerts (
  alert_key VARCHAR PRIMARY KEY,
  kind VARCHAR NOT NULL,              -- anomaly | budget
  subject VARCHAR NOT NULL,           -- one line: what happened
  owner VARCHAR,
  severity VARCHAR,
  impact_cost DOUBLE,
  link VARCHAR,                       -- the evidence: a dashboard URL or a CLI command
  payload VARCHAR NOT NULL,           -- JSON: everything the channels render
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  resolved_at TIMESTAMP
)""",
        # Where each alert stands on each of its channels: what was last delivered, and when to try again.
        """
CREATE TABLE alert_sends (
  alert_key VARCHAR NOT NULL,
  channel VARCHAR NOT NULL,
  state VARCHAR NOT NULL,             -- pending | sent | failed
  sent_impact DOUBLE,                 -- the impact the channel last heard of (updates are sent when it grows)
  sent_at TIMESTAMP,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP,
  last_error VARCHAR,
  PRIMARY KEY (alert_key, channel)
)""",
        # Every attempt, kept: the audit trail of what was sent where and what the channel answered.
        """
CREATE TABLE alert_deliveries (
  alert_key VARCHAR NOT NULL,
  channel VARCHAR NOT NULL,
  event VARCHAR NOT NULL,             -- new | update
  attempt INTEGER NOT NULL,
  attempted_at TIMESTAMP NOT NULL,
  ok BOOLEAN NOT NULL,
  status VARCHAR,                     -- HTTP status or SMTP reply
  error VARCHAR,
  seconds DOUBLE
)""",
    ],
))

MIGRATIONS.append((
    "API tokens",
    [
        # A token is shown once, when it is created; the store keeps only its SHA-256 (a token is 32 random bytes,
        # so a fast hash is enough: there is nothing to guess). A team-scoped token sees its team's detail and only
        # totals of the others.
        """
CREATE TABLE api_tokens (
  token_id VARCHAR PRIMARY KEY,       -- the public part: shown in listings and logs
  name VARCHAR,
  role VARCHAR NOT NULL,              -- viewer | analyst | admin
  team VARCHAR,                       -- NULL: every team
  secret_sha256 VARCHAR NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL,
  last_used_at TIMESTAMP,
  revoked_at TIMESTAMP
)""",
    ],
))

SCHEMA_VERSION = len(MIGRATIONS)
