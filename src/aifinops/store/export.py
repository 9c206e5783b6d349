"""Write the ledger back out as FOCUS 1.2 (CSV or Parquet), for other FinOps tools and the validator."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..model import focus
from ..model.checks import sql_str
from .connection import Store


class ExportError(Exception):
    pass


def export_focus(store: Store, out: Path, start: datetime | None = None, end: datetime | None = None) -> int:
    """Export the FOCUS 1.2 columns in spec order, then the ``x_`` columns; returns rows written.

    Lineage columns (``_batch_id``...) are internal and not written. FOCUS 1.3 columns kept at ingest are
    written as ``x_<name>``, since a 1.2 dataset may carry only 1.2 columns and ``x_`` custom columns."""
    out = Path(out)
    fmt = "parquet" if out.suffix.lower() in (".parquet", ".pq") else "csv" if out.suffix.lower() == ".csv" else None
    if fmt is None:
        raise ExportError(f"{out}: choose a .csv or .parquet file name")
    have = store.table_columns("focus_charges")
    exprs = []
    for c in focus.columns():
        col = f'"{c.id}"'
        if c.id == "Tags":
            exprs.append(f"CASE WHEN {col} IS NULL THEN NULL ELSE CAST(to_json({col}) AS VARCHAR) END AS {col}")
        elif c.data_type == "Date/Time" and fmt == "csv":
            exprs.append(f"strftime({col}, '%Y-%m-%dT%H:%M:%SZ') AS {col}")
        else:
            exprs.append(col)
    for name in have:
        if name.startswith("x_"):
            exprs.append(f'"{name}"')
        elif name in focus.FOCUS_1_3_COLUMNS:
            exprs.append(f'"{name}" AS "x_{name}"')
    where, params = [], []
    if start is not None:
        where.append('"ChargePeriodStart" >= ?')
        params.append(start)
    if end is not None:
        where.append('"ChargePeriodStart" < ?')
        params.append(end)
    sql = f"SELECT {', '.join(exprs)} FROM focus_charges"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += ' ORDER BY "ChargePeriodStart", _batch_id, _file, _row'
    options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"
    out.parent.mkdir(parents=True, exist_ok=True)
    store.con.execute(f"COPY ({sql}) TO {sql_str(str(out))} ({options})", params)
    count = f"SELECT count(*) FROM focus_charges{' WHERE ' + ' AND '.join(where) if where else ''}"
    return int(store.con.execute(count, params).fetchone()[0])
