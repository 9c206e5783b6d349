"""Rows from a JSON export, read by DuckDB in the ingest statement itself (vectorised, never row by row).

Exports of usage come as JSON in a few shapes, all read here into one row per record:

- an array of objects (``[{...}, {...}]``: LiteLLM's ``GET /spend/logs``, a ``SELECT row_to_json``);
- an object whose ``data`` is that array (a page: LiteLLM's ``/spend/logs/ui``, OpenAI's Usage API);
- JSON lines (one object per line; ``.jsonl``/``.ndjson``, or a ``.json`` file that is not one document);
- buckets (OpenAI's Usage API): elements with a ``results`` array; each result is a row, with its
  bucket's ``start_time`` and ``end_time``.

The shape and the keys of the records are found before the store is touched (a file that is not JSON is
refused naming it); the records are then parsed again inside the ingest statement, in the store's own
connection, so nothing is staged in Python. Row numbers are the record's position (1-based); for JSON
lines, the line number. A record that is not an object (a JSON line that does not parse, a number in the
array) keeps its text in ``_line`` and its row is quarantined by the source's check (``record_check``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..model.checks import ERROR, Check, sql_ident, sql_str
from .base import SourceError, SourceFile, file_format
from .workloads_csv import shown

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
#: the largest record of an array read (DuckDB sizes its buffers by it; a spend-log row is a few KB)
_MAX_RECORD = 64 << 20


def table_format(path: Path) -> str | None:
    """``csv``, ``csv.gz``, ``parquet`` or ``json`` by the file name (None: not a table file)."""
    return "json" if path.name.lower().endswith(JSON_SUFFIXES) else file_format(path)


@dataclass(frozen=True)
class JsonRows:
    #: SQL table expression with ``file_row_number`` (0-based), ``r`` (the record, JSON; NULL when it is not
    #: an object) and ``_line`` (the text of such a record)
    sql: str
    keys: list[str]  # every key of the records, in the order first seen
    empty: bool  # no records at all
    shape: str  # array | page | lines | buckets


def _head(file: SourceFile) -> bytes:
    with file.path.open("rb") as fh:
        head = fh.read(1 << 20).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise SourceError(f"{file.path}: the file is empty (no JSON, no rows)")
    return head


def _tail(file: SourceFile) -> bytes:
    """The last character of the file that is not white space."""
    with file.path.open("rb") as fh:
        fh.seek(max(file.bytes - 4096, 0))
        return fh.read().rstrip(b" \t\r\n")[-1:]


def _is_lines(head: bytes) -> bool:
    """JSON lines: the first line is a whole object on its own (and not a page of rows, ``{"data": [...]}``)."""
    line, newline, _ = head.partition(b"\n")
    if not newline:
        return False
    try:
        first = json.loads(line)
    except ValueError:  # UnicodeDecodeError is one
        return False
    return isinstance(first, dict) and not isinstance(first.get("data"), list)


def _numbered(elements: str, bucketed: bool) -> str:
    """SQL: records from ``elements`` (``i``: position, ``e``: element), or from the ``results`` of each
    element when they are buckets (with the bucket's start_time and end_time), numbered in document order."""
    if bucketed:
        return (f"SELECT row_number() OVER (ORDER BY i, k) - 1 AS file_row_number, "
                f"CASE WHEN json_type(res) = 'OBJECT' THEN json_merge_patch(res, json_object("
                f"'start_time', json_extract(e, '$.start_time'), 'end_time', json_extract(e, '$.end_time'))) END AS r, "
                f"CASE WHEN json_type(res) <> 'OBJECT' THEN left(CAST(res AS VARCHAR), 1000) END AS _line "
                f"FROM (SELECT i, e, generate_subscripts(rs, 1) AS k, unnest(rs) AS res FROM (SELECT i, e, "
                f"CAST(coalesce(json_extract(e, '$.results'), '[]') AS JSON[]) AS rs FROM ({elements})))")
    return (f"SELECT i - 1 AS file_row_number, CASE WHEN json_type(e) = 'OBJECT' THEN e END AS r, "
            f"CASE WHEN json_type(e) <> 'OBJECT' THEN left(CAST(e AS VARCHAR), 1000) END AS _line FROM ({elements})")


def _records(file: SourceFile, shape: str, bucketed: bool) -> str:
    """SQL: the records of the file. An array and JSON lines are read as a stream (DuckDB's JSON reader, or
    one line per row), so a large export is never held whole; a page or a single object is one document."""
    path = sql_str(str(file.path))
    if shape == "lines":
        # one row per line (\\x01 never occurs unescaped in JSON), numbered as read
        lines = (f"SELECT row_number() OVER () AS ln, rtrim(line, chr(13)) AS line FROM read_csv({path}, "
                 "columns = {'line': 'VARCHAR'}, delim = chr(1), quote = '', escape = '', header = false, "
                 "auto_detect = false, strict_mode = false, parallel = false)")
        return (f"SELECT ln - 1 AS file_row_number, CASE WHEN json_type(j) = 'OBJECT' THEN j END AS r, "
                f"CASE WHEN j IS NULL OR json_type(j) <> 'OBJECT' THEN left(line, 1000) END AS _line "
                f"FROM (SELECT ln, line, TRY_CAST(line AS JSON) AS j FROM ({lines}) WHERE trim(line) <> '')")
    if shape == "array":
        size = _MAX_RECORD
        return _numbered(f"SELECT row_number() OVER () AS i, json AS e FROM read_json({path}, format = 'array', "
                         f"records = false, maximum_object_size = {size})", bucketed)
    doc = f"(SELECT CAST(content AS JSON) FROM read_text({path}))"
    array = f"json_extract({doc}, '$.data')" if shape == "page" else f"json_array({doc})"
    return _numbered(f"SELECT generate_subscripts(a, 1) AS i, unnest(a) AS e FROM "
                     f"(SELECT CAST(coalesce({array}, '[]') AS JSON[]) AS a)", bucketed)


def read_json_rows(file: SourceFile, what: str = "an export of rows") -> JsonRows:
    """The shape and keys of a JSON file, found in a scratch connection (the store is not
    touched): a file that is not JSON, or not one of the shapes above, is refused naming it."""
    head = _head(file)
    if head[:1] not in (b"[", b"{"):
        raise SourceError(f"{file.path}: not JSON (it starts with {head[:1].decode('latin-1')!r}, not [ or {{)")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    path = sql_str(str(file.path))
    try:
        try:
            if head[:1] == b"[":
                shape = "array"
                if _tail(file) != b"]":  # DuckDB's array reader stops quietly at a cut-off end
                    raise SourceError(f"{file.path}: not valid JSON: the array does not end with ] "
                                      "(a truncated download or export?)")
                first = con.execute(f"SELECT json FROM read_json({path}, format = 'array', records = false, "
                                    f"maximum_object_size = {_MAX_RECORD}) LIMIT 1").fetchone()
                bucketed = bool(first) and con.execute(
                    "SELECT coalesce(json_type(?::JSON, '$.results') = 'ARRAY', false)", [first[0]]).fetchone()[0]
            elif _is_lines(head):
                shape, bucketed = "lines", False
            else:
                valid, page, bucketed = con.execute(
                    f"SELECT json_valid(c), coalesce(json_type(c, '$.data') = 'ARRAY', false), "
                    f"coalesce(json_type(c, '$.data[0].results') = 'ARRAY', false) "
                    f"FROM (SELECT content AS c FROM read_text({path}))").fetchone()
                if not valid:
                    raise SourceError(f"{file.path}: not valid JSON (neither one document nor JSON lines)")
                shape = "page" if page else "object"
        except duckdb.Error as exc:
            raise SourceError(f"{file.path}: not valid JSON ({_first_line(exc)})") from None
        sql = _records(file, shape, bucketed)
        try:
            empty = not con.execute(f"SELECT 1 FROM ({sql}) LIMIT 1").fetchall()
            keys = [k for (k,) in con.execute(
                f"SELECT k FROM (SELECT file_row_number AS rn, unnest(json_keys(r)) AS k, "
                f"generate_subscripts(json_keys(r), 1) AS i FROM ({sql}) WHERE r IS NOT NULL) "
                "GROUP BY k ORDER BY min(rn), arg_min(i, rn)").fetchall()]
            seen: set[str] = set()  # one struct field per name: DuckDB's field names ignore case
            keys = [k for k in keys if not (k.lower() in seen or seen.add(k.lower()))]
        except duckdb.Error as exc:
            raise SourceError(f"{file.path}: not {what} ({_first_line(exc)})") from None
    finally:
        con.close()
    return JsonRows(sql=sql, keys=keys, empty=empty, shape="buckets" if bucketed else shape)


def json_relation(rows: JsonRows, names: list[str], numeric: set[str] | None = None) -> str:
    """A table expression over the records with one column per key in ``names``: text (a nested value as
    its JSON text, a string unquoted), or DOUBLE for the ``numeric`` ones (lower-cased names), so a mapping
    can compute with them; ``_text_<name>`` keeps a numeric one's text for ``numeric_checks``. Each record is
    parsed once (``json_transform`` to a struct of text). The engine numbers rows by ``file_row_number``."""
    numeric = numeric or set()
    if not names:
        return f"(SELECT file_row_number, _line FROM ({rows.sql}))"
    schema = json.dumps(dict.fromkeys(names, "VARCHAR"))
    cols = []
    for n in names:
        field = f"t.{sql_ident(n)}"
        if n.lower() in numeric:
            cols += [f"TRY_CAST({field} AS DOUBLE) AS {sql_ident(n)}", f"{field} AS {sql_ident('_text_' + n)}"]
        else:
            cols.append(f"{field} AS {sql_ident(n)}")
    return (f"(SELECT file_row_number, _line, {', '.join(cols)} "
            f"FROM (SELECT *, json_transform(r, {sql_str(schema)}) AS t FROM ({rows.sql})))")


def numeric_checks(names: list[str], numeric: set[str]) -> list[Check]:
    """A value of a ``numeric`` key that is not a number quarantines its record, naming the value (a CSV
    reader rejects such a line; a JSON record is read whole, so its values are checked here)."""
    checks = []
    for n in names:
        if n.lower() in numeric:
            text = f"s.{sql_ident('_text_' + n)}"
            checks.append(Check("number", n, ERROR, f"{text} IS NOT NULL AND s.{sql_ident(n)} IS NULL",
                                f"'not a number: ' || {shown(text)}"))
    return checks


def record_check() -> Check:
    """The record is not a JSON object (a line that does not parse, a number in the array)."""
    return Check("json-object", "_line", ERROR, 's."_line" IS NOT NULL',
                 "'not a JSON object: ' || left(s.\"_line\", 200)")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
