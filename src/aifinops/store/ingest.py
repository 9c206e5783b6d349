"""The ingest engine: files from a source become one atomic, idempotent, restatement-safe batch.

Order of operations for one batch (all inside one transaction, so an error or a ``kill -9`` at any
point leaves the store exactly as it was):

1. Every file's header is checked by its source before the store is touched (fail fast, load nothing).
2. The batch fingerprint (sha256 over the sorted file fingerprints) is looked up: content already
   ingested is a no-op.
3. Per file: the rows are staged as read (text for CSV), rules are evaluated as SQL, valid rows are cast
   to the canonical types and inserted, rows that break an error rule go to ``quarantine`` with their
   file, row number, column and reason; malformed CSV lines go there too.
4. Restatement: the batch's restatement keys (for FOCUS: ProviderName, BillingAccountId,
   BillingPeriodStart) replace the rows earlier batches loaded for the same keys.
5. Reconciliation: rows and money as read must equal loaded + quarantined, exactly, or nothing commits.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ..model.checks import ERROR, WARNING, Check
from ..sources.base import FileRead, Source, SourceError, SourceFile, expand
from . import progress as progress_mod
from .connection import Store


class IngestError(Exception):
    """A batch that cannot be loaded; nothing was written."""


@dataclass
class FileResult:
    path: Path
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    version: str | None = None


@dataclass
class BatchResult:
    batch_id: int | None
    status: str  # loaded | unchanged | empty
    source_kind: str
    files: list[FileResult] = field(default_factory=list)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_replaced: int = 0
    replaced_batches: list[int] = field(default_factory=list)
    money: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # column -> read/loaded/quarantined
    warnings: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    duplicate_of: int | None = None


class IngestProgress:
    """Callbacks the CLI implements to draw progress; the default does nothing."""

    def start_file(self, file: SourceFile, index: int, total: int) -> None: ...

    def update(self, pct: float) -> None: ...


_BAD = "_aif_bad"


@dataclass(frozen=True)
class _Staged:
    """Temp tables holding one file as read. Staged before the batch transaction opens, so their row
    ids are the file's row order (rows inserted inside a transaction get provisional row ids)."""

    index: int

    @property
    def stage(self) -> str:
        return f"_aif_stage_{self.index}"

    @property
    def rejects(self) -> str:
        return f"_aif_rejects_{self.index}"

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.stage, self.rejects, f"{self.rejects}_scan", f"{self.rejects}_pos")


def batch_fingerprint(files: list[SourceFile]) -> str:
    return hashlib.sha256("\n".join(sorted(f.fingerprint for f in files)).encode()).hexdigest()


def ingest(store: Store, source: Source, paths: list[str | Path], *, strict: bool = False,
           allow_older: bool = False, progress: IngestProgress | None = None) -> BatchResult:
    progress = progress or IngestProgress()
    started = time.perf_counter()
    try:
        files = expand(paths)
        reads = [source.read(f) for f in files]
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    result = BatchResult(None, "loaded", source.kind)
    for r in reads:
        result.notes.extend(r.notes)
    fp = batch_fingerprint(files)
    seen = store.con.execute(
        "SELECT batch_id, status FROM batches WHERE fingerprint = ? AND source_kind = ? ORDER BY batch_id LIMIT 1",
        [fp, source.kind],
    ).fetchone()
    if seen:
        result.status, result.duplicate_of = "unchanged", seen[0]
        result.notes.append(f"same content as batch {seen[0]} ({seen[1]}): nothing to do")
        return result

    staged = [_Staged(i) for i in range(len(reads))]
    try:
        for st, read in zip(staged, reads, strict=True):
            progress.start_file(read.file, st.index, len(reads))
            _stage_file(store, read, st, progress.update)
        with store.transaction():
            _load_batch(store, source, reads, staged, files, fp, strict, allow_older, result, started)
    except _Empty:
        result.batch_id, result.status = None, "empty"
        result.notes.append("no data rows in the given files (header only): nothing loaded")
    finally:
        for st in staged:
            for t in st.tables:
                store.con.execute(f"DROP TABLE IF EXISTS {t}")
    return result


def _load_batch(store: Store, source: Source, reads: list[FileRead], staged: list[_Staged],
                files: list[SourceFile], fp: str, strict: bool, allow_older: bool, result: BatchResult,
                started: float) -> None:
    con = store.con
    batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchone()[0]
    result.batch_id = batch_id
    for st, read in zip(staged, reads, strict=True):
        result.files.append(_load_file(store, source, read, st, batch_id, strict, result))
    if result.rows_read == 0:
        raise _Empty()
    if source.restatement_key:
        _restate(store, source, batch_id, allow_older, result)
    _reconcile(store, source, batch_id, result)
    result.seconds = time.perf_counter() - started
    _record(store, source, batch_id, fp, files, result)


class _Empty(Exception):
    """Only header-only files were given: roll back, report, load nothing."""


# -- one file -------------------------------------------------------------------------------------

def _stage_file(store: Store, read: FileRead, st: _Staged, on_progress: Callable[[float], None]) -> None:
    relation = read.relation_sql
    if read.is_csv:
        relation = relation[:-1] + f", rejects_table = '{st.rejects}', rejects_scan = '{st.rejects}_scan')"
    try:
        progress_mod.execute(store.con, f"CREATE OR REPLACE TEMP TABLE {st.stage} AS SELECT * FROM {relation}",
                             on_progress=on_progress)
    except Exception as exc:
        raise IngestError(f"{read.file.path}: cannot be read: {_explain(exc)}") from None


def _load_file(store: Store, source: Source, read: FileRead, st: _Staged, batch_id: int, strict: bool,
               result: BatchResult) -> FileResult:
    con = store.con
    fr = FileResult(read.file.path, version=read.version)
    stage = st.stage
    staged = con.execute(f"SELECT count(*) FROM {stage}").fetchone()[0]
    rejects = _collect_rejects(store, source, read, st, staged, batch_id) if read.is_csv else 0
    fr.rows_read = staged + rejects

    # Row numbers are 1-based data rows. Malformed lines were skipped by the reader, so rows after
    # them shift by the number of rejects before them (j-th reject at line L follows L-2-j good rows).
    row_expr = "s.rowid + 1"
    if rejects:
        row_expr = f"s.rowid + 1 + (SELECT count(*) FROM {st.rejects}_pos p WHERE p.pos <= s.rowid)"

    _ensure_columns(store, source.target, read.extra_columns)
    errors = [c for c in read.checks if c.severity == ERROR or (strict and c.severity == WARNING)]
    warns = [] if strict else [c for c in read.checks if c.severity == WARNING]
    cond = " OR ".join(f"coalesce({c.violation}, false)" for c in errors) or "false"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_BAD} AS SELECT s.rowid AS _rid, {_error_list(errors)} AS errors "
        f"FROM {stage} s WHERE {cond}"
    )
    bad = con.execute(f"SELECT count(*) FROM {_BAD}").fetchone()[0]

    cols = list(read.typed)
    target_cols = ", ".join(f'"{c}"' for c in cols)
    exprs = ", ".join(read.typed[c] for c in cols)
    anti = f" ANTI JOIN {_BAD} b ON s.rowid = b._rid" if bad else ""
    file_label = str(read.file.path)
    con.execute(
        f'INSERT INTO {source.target} ({target_cols}, _batch_id, _file, _row) '
        f"SELECT {exprs}, ?, ?, {row_expr} FROM {stage} s{anti}",
        [batch_id, file_label],
    )
    fr.rows_loaded = staged - bad
    if bad:
        money = ", ".join(
            f"TRY_CAST({read.raw[c]} AS DECIMAL(38, 12))" if c in read.raw
            else "NULL" for c in ("BilledCost", "EffectiveCost")
        )
        raw_map = "map_from_entries([" + ", ".join(
            f"({_lit(c)}, CAST({read.raw[c]} AS VARCHAR))" for c in read.raw
        ) + "])"
        con.execute(
            f"INSERT INTO quarantine SELECT ?, ?, ?, {row_expr}, b.errors, {money}, {raw_map} "
            f"FROM {stage} s JOIN {_BAD} b ON s.rowid = b._rid",
            [batch_id, source.kind, file_label],
        )
    fr.rows_quarantined = bad + rejects
    if warns:
        _count_warnings(store, read, st, warns, batch_id, row_expr, result)

    # Money as read: every value that can be read as a number, whatever happened to its row.
    for col in source.reconciled:
        read_sum = Decimal(0)
        if col in read.raw:
            v = read.raw[col]
            read_sum = con.execute(
                f"SELECT coalesce(sum(TRY_CAST({v} AS DECIMAL(38, 12))), 0) FROM {stage} s"
            ).fetchone()[0]
        m = result.money.setdefault(col, {"read": Decimal(0), "loaded": Decimal(0), "quarantined": Decimal(0)})
        m["read"] += read_sum
    result.rows_read += fr.rows_read
    result.rows_loaded += fr.rows_loaded
    result.rows_quarantined += fr.rows_quarantined
    con.execute(f"DROP TABLE IF EXISTS {_BAD}")
    return fr


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _error_list(checks: list[Check]) -> str:
    if not checks:
        return "[]::STRUCT(\"column\" VARCHAR, reason VARCHAR)[]"
    items = ", ".join(
        f"CASE WHEN coalesce({c.violation}, false) THEN {{'column': {_lit(c.column)}, 'reason': {c.reason}}} END"
        for c in checks
    )
    return f"list_filter([{items}], lambda x: x IS NOT NULL)"


def _collect_rejects(store: Store, source: Source, read: FileRead, st: _Staged, staged: int,
                     batch_id: int) -> int:
    """Malformed CSV lines -> quarantine rows. Returns how many lines were rejected."""
    con = store.con
    rej = st.rejects
    lines = con.execute(
        f"SELECT line, any_value(error_type), any_value(csv_line), any_value(error_message) "
        f"FROM {rej} GROUP BY line ORDER BY line"
    ).fetchall()
    if not lines:
        return 0
    types = {r[1] for r in lines}
    if "INVALID UNICODE" in types or "INVALID ENCODING" in types:
        line = next(r[0] for r in lines if r[1] in ("INVALID UNICODE", "INVALID ENCODING"))
        raise IngestError(
            f"{read.file.path}: not UTF-8 (first invalid byte on line {line}); re-encode the file as UTF-8,"
            " e.g. iconv -f latin1 -t utf-8"
        )
    if staged == 0:
        raise IngestError(
            f"{read.file.path}: no line has the header's number of fields ({lines[0][3]} on line {lines[0][0]});"
            " is the delimiter of the rows the same as the header's?"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {rej}_pos AS SELECT line - 2 - (row_number() OVER (ORDER BY line) - 1) "
        f"AS pos FROM (SELECT DISTINCT line FROM {rej})"
    )
    con.execute(
        f"INSERT INTO quarantine SELECT ?, ?, ?, line - 1, [{{'column': any_value(column_name), "
        f"'reason': any_value(error_type) || ': ' || any_value(error_message)}}], NULL, NULL, "
        f"map_from_entries([('_line', any_value(csv_line))]) FROM {rej} GROUP BY line",
        [batch_id, source.kind, str(read.file.path)],
    )
    return len(lines)


def _count_warnings(store: Store, read: FileRead, st: _Staged, warns: list[Check], batch_id: int,
                    row_expr: str, result: BatchResult) -> None:
    aggs = ", ".join(
        f"count(*) FILTER (WHERE coalesce({w.violation}, false)), "
        f"min({row_expr}) FILTER (WHERE coalesce({w.violation}, false))"
        for w in warns
    )
    row = store.con.execute(f"SELECT {aggs} FROM {st.stage} s").fetchone()
    for i, w in enumerate(warns):
        n, first = row[2 * i], row[2 * i + 1]
        if n:
            store.con.execute("INSERT INTO row_warnings VALUES (?, ?, ?, ?, ?, ?)",
                              [batch_id, str(read.file.path), w.rule, w.column, n, first])
            result.warnings.append({"file": str(read.file.path), "rule": w.rule, "column": w.column,
                                    "rows": n, "first_row": first})


def _ensure_columns(store: Store, table: str, extra: dict[str, str]) -> None:
    have = set(store.table_columns(table))
    for col, typ in extra.items():
        if col not in have:
            store.con.execute(f'ALTER TABLE {table} ADD COLUMN "{col}" {typ}')


def _explain(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = str(exc).lower()
    if "gzip" in low or "zlib" in low or "inflate" in low:
        return f"the gzip stream is corrupt or truncated ({text})"
    if "error when sniffing file" in low:  # DuckDB found no line that parses with the header's dialect
        return ("no line parses as CSV with the header's delimiter and quoting; is the delimiter of the rows the"
                " same as the header's, and are quotes balanced?")
    return text


# -- restatement, reconciliation, bookkeeping ----------------------------------------------------

def _restate(store: Store, source: Source, batch_id: int, allow_older: bool, result: BatchResult) -> None:
    con, t = store.con, source.target
    key = ", ".join(f'"{k}"' for k in source.restatement_key)
    on = " AND ".join(f'o."{k}" = n."{k}"' for k in source.restatement_key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _aif_keys AS SELECT {key}, max(\"ChargePeriodEnd\") AS new_end "
        f"FROM {t} WHERE _batch_id = ? GROUP BY ALL", [batch_id]
    )
    nkeys = ", ".join(f'n."{k}"' for k in source.restatement_key)
    okeys = ", ".join(f'o."{k}"' for k in source.restatement_key)
    older = con.execute(
        f"SELECT {nkeys}, "
        f"n.new_end, max(o.\"ChargePeriodEnd\") FROM {t} o JOIN _aif_keys n ON {on} "
        f"WHERE o._batch_id <> ? GROUP BY ALL HAVING n.new_end < max(o.\"ChargePeriodEnd\")",
        [batch_id],
    ).fetchall()
    if older and not allow_older:
        k = older[0]
        raise IngestError(
            f"these files hold older data than what is loaded for {len(older)} billing period(s), e.g. "
            f"{k[0]} account {k[1]} period {k[2]:%Y-%m}: data ends {k[3]} but the store has data to {k[4]}. "
            "Refusing to replace newer data with older; pass --allow-older to restate anyway."
        )
    replaced = con.execute(
        f"SELECT o._batch_id, {okeys}, "
        f"count(*), sum(o.\"BilledCost\"), sum(o.\"EffectiveCost\") "
        f"FROM {t} o JOIN _aif_keys n ON {on} WHERE o._batch_id <> ? GROUP BY ALL ORDER BY ALL",
        [batch_id],
    ).fetchall()
    if not replaced:
        con.execute("DROP TABLE IF EXISTS _aif_keys")
        return
    con.executemany("INSERT INTO restatements VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[batch_id, *r] for r in replaced])
    con.execute(
        f"DELETE FROM {t} o WHERE o._batch_id <> ? AND EXISTS (SELECT 1 FROM _aif_keys n WHERE {on})",
        [batch_id],
    )
    for old in sorted({r[0] for r in replaced}):
        left = con.execute(f"SELECT count(*) FROM {t} WHERE _batch_id = ?", [old]).fetchone()[0]
        con.execute("UPDATE batches SET status = ? WHERE batch_id = ?",
                    ["replaced" if left == 0 else "partly replaced", old])
    result.rows_replaced = sum(r[-3] for r in replaced)
    result.replaced_batches = sorted({r[0] for r in replaced})
    con.execute("DROP TABLE IF EXISTS _aif_keys")


def _reconcile(store: Store, source: Source, batch_id: int, result: BatchResult) -> None:
    con = store.con
    for col in source.reconciled:
        m = result.money[col]
        m["loaded"] = con.execute(
            f'SELECT coalesce(sum("{col}"), 0) FROM {source.target} WHERE _batch_id = ?', [batch_id]
        ).fetchone()[0]
        m["quarantined"] = con.execute(
            f'SELECT coalesce(sum("{col}"), 0) FROM quarantine WHERE batch_id = ?', [batch_id]
        ).fetchone()[0]
        if m["read"] != m["loaded"] + m["quarantined"]:
            raise IngestError(
                f"{col} does not reconcile: read {m['read']} != loaded {m['loaded']} + quarantined "
                f"{m['quarantined']}; nothing was written (this is a bug, please report it)"
            )
    loaded = con.execute(f"SELECT count(*) FROM {source.target} WHERE _batch_id = ?", [batch_id]).fetchone()[0]
    quarantined = con.execute("SELECT count(*) FROM quarantine WHERE batch_id = ?", [batch_id]).fetchone()[0]
    if (loaded, quarantined) != (result.rows_loaded, result.rows_quarantined) or \
            result.rows_read != loaded + quarantined:
        raise IngestError(
            f"row counts do not reconcile: read {result.rows_read}, loaded {loaded}, quarantined {quarantined};"
            " nothing was written (this is a bug, please report it)"
        )


def _record(store: Store, source: Source, batch_id: int, fp: str, files: list[SourceFile],
            result: BatchResult) -> None:
    m = result.money
    zero = {"read": None, "loaded": None, "quarantined": None}
    billed, eff = m.get("BilledCost", zero), m.get("EffectiveCost", zero)
    versions = sorted({f.version for f in result.files if f.version})
    store.con.execute(
        "INSERT INTO batches VALUES (?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [batch_id, source.kind, fp, datetime.now(UTC).replace(tzinfo=None), result.seconds,
         ",".join(versions) or None, result.rows_read, result.rows_loaded, result.rows_quarantined,
         billed["read"], billed["loaded"], billed["quarantined"], eff["read"], eff["loaded"],
         eff["quarantined"], result.rows_replaced, "; ".join(result.notes) or None],
    )
    store.con.executemany(
        "INSERT INTO batch_files VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[batch_id, str(f.path), f.fingerprint, f.bytes, f.format, fr.version, fr.rows_read]
         for f, fr in zip(files, result.files, strict=True)],
    )
