"""The ingest engine: files from a source become one atomic, idempotent, restatement-safe batch.

Order of operations for one batch (all inside one transaction, so an error or a ``kill -9`` at any
point leaves the store exactly as it was):

1. Every file's header is checked by its source before the store is touched (fail fast, load nothing).
2. The batch fingerprint (sha256 over the sorted file fingerprints, and the source options that are not
   defaults) is looked up: content already ingested with the same options is a no-op.
3. Per file: the rows are staged as read (text for CSV), rules are evaluated as SQL, valid rows are cast
   to the canonical types and inserted, rows that break an error rule go to ``quarantine`` with their
   file, row number, column and reason; malformed CSV lines go there too.
4. Duplicates: for sources with a ``unique_key`` (GPU samples), a row seen again — within the batch or
   already loaded — marks the older copy ``_superseded`` (newest wins).
5. Restatement: the batch's restatement keys (for FOCUS: ProviderName, BillingAccountId,
   BillingPeriodStart) replace the rows earlier batches loaded for the same keys.
6. Reconciliation: rows and money as read must equal loaded + quarantined, exactly, or nothing commits.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from ..model.checks import ERROR, WARNING, Check, sql_str
from ..sources.base import FileRead, Source, SourceError, SourceFile, typed_ref
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
    reader: str = ""  # pyarrow (the fast CSV path) | duckdb


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


_REJ, _SEQ = "_aif_rejects", "_aif_rownum"


def batch_fingerprint(files: list[SourceFile], options: dict[str, object] | None = None) -> str:
    """The files' content, and the source options that change what they load as (a trace read as another
    model, a snapshot given another date): the same files with other options are another batch. Default
    options add nothing, so a batch keeps the fingerprint it had before options existed."""
    text = "\n".join(sorted(f.fingerprint for f in files))
    if options:
        text += "\n" + json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def ingest(store: Store, source: Source, paths: list[str | Path], *, strict: bool = False,
           allow_older: bool = False, progress: IngestProgress | None = None) -> BatchResult:
    progress = progress or IngestProgress()
    started = time.perf_counter()
    try:
        files = source.files(paths)
        reads = [source.read(f) for f in files]
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    result = BatchResult(None, "loaded", source.kind)
    for r in reads:
        result.notes.extend(r.notes)
    fp = batch_fingerprint(files, source.options.model_dump(mode="json", exclude_defaults=True))
    seen = store.con.execute(
        "SELECT batch_id, status FROM batches WHERE fingerprint = ? AND source_kind = ? ORDER BY batch_id LIMIT 1",
        [fp, source.kind],
    ).fetchone()
    if seen:
        result.status, result.duplicate_of = "unchanged", seen[0]
        result.notes.append(f"same content as batch {seen[0]} ({seen[1]}): nothing to do")
        return result

    try:
        with store.transaction():
            _load_batch(store, source, reads, files, fp, strict, allow_older, result, started, progress)
    except _Empty:
        result.batch_id, result.status = None, "empty"
        result.notes.append("no data rows in the given files (header only): nothing loaded")
    finally:
        for t in (_REJ, f"{_REJ}_scan", f"{_REJ}_pos"):
            store.con.execute(f"DROP TABLE IF EXISTS {t}")
    return result


def _load_batch(store: Store, source: Source, reads: list[FileRead], files: list[SourceFile], fp: str,
                strict: bool, allow_older: bool, result: BatchResult, started: float,
                progress: IngestProgress) -> None:
    con = store.con
    batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchone()[0]
    result.batch_id = batch_id
    for i, read in enumerate(reads):
        progress.start_file(read.file, i, len(reads))
        result.files.append(_load_file(store, source, read, batch_id, strict, result, progress.update))
    if result.rows_read == 0:
        raise _Empty()
    if source.unique_key:
        _supersede(store, source, batch_id, result)
    if source.restatement_key:
        _restate(store, source, batch_id, allow_older, result)
    _reconcile(store, source, batch_id, result)
    result.seconds = time.perf_counter() - started
    _record(store, source, batch_id, fp, files, result)


class _Empty(Exception):
    """Only header-only files were given: roll back, report, load nothing."""


# -- one file -------------------------------------------------------------------------------------

def _load_file(store: Store, source: Source, read: FileRead, batch_id: int, strict: bool,
               result: BatchResult, on_progress: Callable[[float], None]) -> FileResult:
    """One pass over the file: every row lands in the target with its typed values, its rule breaches
    (``_errors``, ``_warnings``) and, for a bad row only, its raw values (``_raw``). Bad rows then move to
    ``quarantine``. Nothing is staged in full: a temp copy of a large file spills to disk and is read
    back several times, which made ingest several times slower than a bare load."""
    con = store.con
    fr = FileResult(read.file.path, version=read.version)
    _ensure_columns(store, source.target, read.extra_columns)
    errors = [c for c in read.checks if c.severity == ERROR or (strict and c.severity == WARNING)]
    warns = [] if strict else [c for c in read.checks if c.severity == WARNING]
    bad = " OR ".join(f"coalesce({c.violation}, false)" for c in errors) or "false"
    warned = " OR ".join(f"coalesce({c.violation}, false)" for c in warns) or "false"
    raw_map = "map_from_entries([" + ", ".join(
        f"({sql_str(c)}, CAST({read.raw[c]} AS VARCHAR))" for c in read.raw) + "])"
    cols = list(read.typed)
    file_label = str(read.file.path)
    where = f"_batch_id = {int(batch_id)} AND _file = {sql_str(file_label)}"

    def insert(relation: str, row_expr: str, fraction: Callable[[], float] | None = None) -> None:
        target_cols = ", ".join(f'"{c}"' for c in cols)
        exprs = ", ".join(typed_ref(i) for i in range(len(cols)))
        # Each value is cast once, in the inner projection; rules and the insert read the typed result.
        casts = ", ".join(f'{read.typed[c]} AS "_t{i}"' for i, c in enumerate(cols))
        try:
            progress_mod.execute(
                con,
                f"INSERT INTO {source.target} ({target_cols}, _batch_id, _file, _row, _errors, _warnings, _raw) "
                f"SELECT {exprs}, $batch, $file, {row_expr}, "
                f"CASE WHEN {bad} THEN {_error_list(errors)} END, "
                f"CASE WHEN {warned} THEN {_error_list(warns)} END, "
                f"CASE WHEN {bad} THEN {raw_map} END FROM (SELECT *, {casts} FROM {relation} s) s",
                {"batch": batch_id, "file": file_label}, on_progress=on_progress, fraction=fraction,
            )
        except Exception as exc:
            raise IngestError(f"{read.file.path}: cannot be read: {_explain(exc)}") from None

    streamed = False
    if read.stream is not None:
        # Fast path: pyarrow parses the CSV on all cores and numbers the rows; DuckDB casts and checks.
        con.register("_aif_stream", read.stream.open())
        try:
            insert("_aif_stream", "s._rn", read.stream.fraction)
        finally:  # after a failed scan the transaction is aborted; the error that matters is already raised
            with suppress(duckdb.Error):
                con.unregister("_aif_stream")
        streamed = read.stream.failed is None
        if not streamed:  # read this file again on the exact path, which names the line and the problem
            con.execute(f"DELETE FROM {source.target} WHERE {where}")
    rejects = 0
    fr.reader = "pyarrow" if streamed else "duckdb"
    if streamed:
        pass
    elif read.is_csv:
        # Exact path: DuckDB's reader, single-threaded so that a sequence numbers rows in file order;
        # malformed lines go to the rejects table.
        con.execute(f"CREATE OR REPLACE TEMP SEQUENCE {_SEQ} START 1")
        insert(read.relation_sql[:-1] + f", rejects_table = '{_REJ}', rejects_scan = '{_REJ}_scan')",
               f"nextval('{_SEQ}')")
        rejects = _collect_rejects(store, source, read, batch_id, where)
    else:
        insert(read.relation_sql, "s.file_row_number + 1")

    # Money as read: every value that can be read as a number, whatever happens to its row next.
    sums = ", ".join(f'coalesce(sum("{c}"), 0)' for c in source.reconciled)
    row = con.execute(f"SELECT count(*), count(_errors){', ' + sums if sums else ''} "
                      f"FROM {source.target} WHERE {where}").fetchone()
    fr.rows_read, bad_rows = row[0] + rejects, row[1]
    for col, value in zip(source.reconciled, row[2:], strict=True):
        m = result.money.setdefault(col, {"read": Decimal(0), "loaded": Decimal(0), "quarantined": Decimal(0)})
        m["read"] += value
    if bad_rows:
        money = ", ".join(f'"{c}"' if c in read.typed else "NULL" for c in ("BilledCost", "EffectiveCost"))
        con.execute(
            "INSERT INTO quarantine SELECT _batch_id, ?, _file, _row, "
            "list_transform(_errors, lambda e: {'column': e.\"column\", 'reason': e.reason}), "
            f"{money}, _raw "
            f"FROM {source.target} WHERE {where} AND _errors IS NOT NULL", [source.kind])
        con.execute(f"DELETE FROM {source.target} WHERE {where} AND _errors IS NOT NULL")
    if warns:
        _count_warnings(store, source, read, batch_id, where, result)
    fr.rows_loaded = row[0] - bad_rows
    fr.rows_quarantined = bad_rows + rejects
    result.rows_read += fr.rows_read
    result.rows_loaded += fr.rows_loaded
    result.rows_quarantined += fr.rows_quarantined
    return fr



def _error_list(checks: list[Check]) -> str:
    """A list of {column, reason, rule} for the checks a row breaks (evaluated only for rows that break one)."""
    if not checks:
        return "NULL"
    items = ", ".join(
        f"CASE WHEN coalesce({c.violation}, false) THEN {{'column': {sql_str(c.column)}, 'reason': {c.reason}, "
        f"'rule': {sql_str(c.rule)}}} END"
        for c in checks
    )
    return f"list_filter([{items}], lambda x: x IS NOT NULL)"


def _collect_rejects(store: Store, source: Source, read: FileRead, batch_id: int, where: str) -> int:
    """Malformed CSV lines -> quarantine rows, and row numbers after them corrected. Returns how many."""
    con = store.con
    lines = con.execute(
        f"SELECT line, any_value(error_type), any_value(csv_line), any_value(error_message) "
        f"FROM {_REJ} GROUP BY line ORDER BY line"
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
    loaded = con.execute(f"SELECT count(*) FROM {source.target} WHERE {where}").fetchone()[0]
    if loaded == 0:
        raise IngestError(
            f"{read.file.path}: no line has the header's number of fields ({lines[0][3]} on line {lines[0][0]});"
            " is the delimiter of the rows the same as the header's?"
        )
    # The sequence numbered only the good rows. The j-th reject (at file line L) follows L-2-j good rows,
    # so good row q is data row q + (rejects that follow fewer than q good rows).
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_REJ}_pos AS SELECT line - 2 - (row_number() OVER (ORDER BY line) - 1) "
        f"AS pos FROM (SELECT DISTINCT line FROM {_REJ})"
    )
    con.execute(f"UPDATE {source.target} SET _row = _row + (SELECT count(*) FROM {_REJ}_pos p "
                f"WHERE p.pos < {source.target}._row) WHERE {where}")
    con.execute(
        f"INSERT INTO quarantine SELECT ?, ?, ?, line - 1, [{{'column': any_value(column_name), "
        f"'reason': any_value(error_type) || ': ' || any_value(error_message)}}], NULL, NULL, "
        f"map_from_entries([('_line', any_value(csv_line))]) FROM {_REJ} GROUP BY line",
        [batch_id, source.kind, str(read.file.path)],
    )
    for t in (_REJ, f"{_REJ}_scan", f"{_REJ}_pos"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return len(lines)


def _count_warnings(store: Store, source: Source, read: FileRead, batch_id: int, where: str,
                    result: BatchResult) -> None:
    rows = store.con.execute(
        f"SELECT w.rule, w.\"column\", count(*), min(_row) FROM (SELECT unnest(_warnings) AS w, _row "
        f"FROM {source.target} WHERE {where} AND _warnings IS NOT NULL) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for rule, column, n, first in rows:
        store.con.execute("INSERT INTO row_warnings VALUES (?, ?, ?, ?, ?, ?)",
                          [batch_id, str(read.file.path), rule, column, n, first])
        result.warnings.append({"file": str(read.file.path), "rule": rule, "column": column,
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
    """Rows of earlier batches with a key this batch holds are replaced by this batch's rows."""
    con, t, keys = store.con, source.target, source.restatement_key
    key = ", ".join(f'"{k}"' for k in keys)
    on = " AND ".join(f'o."{k}" = n."{k}"' for k in keys)
    nkeys = ", ".join(f'n."{k}"' for k in keys)
    okeys = ", ".join(f'o."{k}"' for k in keys)
    end = source.restatement_end
    new_end = f', max("{end}") AS new_end' if end else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _aif_keys AS SELECT {key}{new_end} FROM {t} WHERE _batch_id = ? "
                "GROUP BY ALL", [batch_id])
    try:
        if end:
            older = con.execute(
                f'SELECT {nkeys}, n.new_end, max(o."{end}") FROM {t} o JOIN _aif_keys n ON {on} '
                f'WHERE o._batch_id <> ? GROUP BY ALL HAVING n.new_end < max(o."{end}")', [batch_id],
            ).fetchall()
            if older and not allow_older:
                k = older[0]
                raise IngestError(
                    f"these files hold older data than what is loaded for {len(older)} {source.key_noun}, e.g. "
                    f"{source.describe_key(k[:len(keys)])}: "
                    f"data ends {k[-2]} but the store has data to {k[-1]}. Refusing to replace newer data "
                    "with older; pass --allow-older to restate anyway."
                )
        sums = ", ".join(f'sum(o."{c}")' if c in source.reconciled else "NULL"
                         for c in ("BilledCost", "EffectiveCost"))
        replaced = con.execute(
            f"SELECT o._batch_id, {okeys}, count(*), {sums} FROM {t} o JOIN _aif_keys n ON {on} "
            "WHERE o._batch_id <> ? GROUP BY ALL ORDER BY ALL", [batch_id],
        ).fetchall()
        if not replaced:
            return
        focus_key = keys == ("ProviderName", "BillingAccountId", "BillingPeriodStart")
        con.executemany(
            "INSERT INTO restatements (batch_id, replaced_batch_id, \"ProviderName\", \"BillingAccountId\", "
            "\"BillingPeriodStart\", rows_replaced, billed_replaced, effective_replaced, key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[batch_id, r[0], *(r[1:4] if focus_key else (None, None, None)), *r[-3:],
              json.dumps(dict(zip(keys, map(str, r[1:1 + len(keys)]), strict=True)))] for r in replaced],
        )
        con.execute(f"DELETE FROM {t} o WHERE o._batch_id <> ? AND EXISTS (SELECT 1 FROM _aif_keys n WHERE {on})",
                    [batch_id])
        for old in sorted({r[0] for r in replaced}):
            left = con.execute(f"SELECT count(*) FROM {t} WHERE _batch_id = ?", [old]).fetchone()[0]
            con.execute("UPDATE batches SET status = ? WHERE batch_id = ?",
                        ["replaced" if left == 0 else "partly replaced", old])
        result.rows_replaced = sum(r[-3] for r in replaced)
        result.replaced_batches = sorted({r[0] for r in replaced})
    finally:
        con.execute("DROP TABLE IF EXISTS _aif_keys")


def _supersede(store: Store, source: Source, batch_id: int, result: BatchResult) -> None:
    """Mark older copies of this batch's observations ``_superseded``: first repeats inside the batch (the
    last file's last row wins), then rows of earlier batches that this batch observes again. One window
    and one join, both in the engine; the earlier rows are searched only within this batch's range."""
    con, t = store.con, source.target
    part = ", ".join(f'"{k}"' for k in source.unique_key)
    inside = con.execute(
        f"UPDATE {t} SET _superseded = true WHERE _batch_id = $b AND rowid IN (SELECT rowid FROM {t} "
        f"WHERE _batch_id = $b QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY _file DESC, _row DESC) > 1)",
        {"b": batch_id}).fetchone()[0]
    same = " AND ".join(f'o."{k}" IS NOT DISTINCT FROM n."{k}"' for k in source.unique_key)
    bound, params = "", {"b": batch_id}
    if source.unique_range:
        lo, hi = con.execute(f'SELECT min("{source.unique_range}"), max("{source.unique_range}") FROM {t} '
                             "WHERE _batch_id = $b", params).fetchone()
        if lo is None:
            return
        bound = f' AND o."{source.unique_range}" BETWEEN $lo AND $hi'
        params = {**params, "lo": lo, "hi": hi}
    earlier = con.execute(
        f"UPDATE {t} AS o SET _superseded = true FROM (SELECT DISTINCT {part} FROM {t} WHERE _batch_id = $b) n "
        f"WHERE o._batch_id < $b AND NOT o._superseded{bound} AND {same}", params).fetchone()[0]
    if inside:
        result.notes.append(f"{inside:,} row(s) repeat an observation of these files ({', '.join(source.unique_key)}):"
                            " the last copy counts, the others are kept as superseded")
    if earlier:
        result.notes.append(f"{earlier:,} row(s) of earlier batches observed again: superseded by this batch")


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
