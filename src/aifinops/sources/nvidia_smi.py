"""GPU samples recorded with ``nvidia-smi --query-gpu ... --format=csv`` (one sample per GPU per line).

The command this reader is made for (any host with an NVIDIA driver; ``-l 15`` repeats every 15 s)::

    nvidia-smi --query-gpu=timestamp,uuid,name,utilization.gpu,memory.used,memory.total,power.draw \\
        --format=csv -l 15 > gpu-node-1.csv

Format, as nvidia-smi writes it: a header ``timestamp, uuid, name, utilization.gpu [%], ...`` (units in
brackets), fields separated by ``", "``, values with units (``87 %``, ``40321 MiB``, ``512.34 W``),
``[N/A]`` / ``[Not Supported]`` where the GPU cannot tell (loaded as NULL, not an error), timestamps
``2026/11/20 14:03:07.123`` in the host's local time without a zone. A header repeated inside the file
(concatenated runs) is skipped.

Options:

- ``timezone`` (default ``UTC``): the IANA zone the host's clock was in; timestamps are converted to UTC.
- ``node``: the node the file was recorded on; default the file name's stem (``gpu-node-1.csv`` -> ``gpu-node-1``).
- ``columns``: for ``--format=csv,noheader[,nounits]`` output, the ``--query-gpu`` fields in order, comma
  separated; default ``timestamp,uuid,name,utilization.gpu,memory.used,memory.total,power.draw``.
  A file with a header is read by the header's names, in any order; other fields are ignored.

Understood fields: ``timestamp``, ``uuid``, ``name``, ``index``, ``utilization.gpu``, ``memory.used``,
``memory.total``, ``memory.free``, ``power.draw`` (or ``power.draw.instant`` / ``power.draw.average``).
``fb_free_mib`` is ``memory.total - memory.used`` (``memory.free`` when one of them is missing); ``gpu`` is
the UUID, else ``<node>/<index>``.

Files: ``.csv``, ``.log`` or ``.txt``, plain or gzipped (``nvidia-smi ... -f gpu.log`` or a redirect); a
folder is read recursively for those endings.

Row numbers in quarantine are the file's line number minus the header line (data row 1 is line 2), so a
repeated header or a blank line keeps the numbering aligned with the file.

Bad input (the rules are listed in ``NvidiaSmiSource._columns``): a line with another number of fields, a
timestamp that does not parse, a value that is not a number with its unit (``nan W`` included), a
utilization outside 0..100 % or a negative memory or power value is quarantined with its line's row number,
field and reason; so is a line with neither UUID nor index. A file without a timestamp field, or without
both uuid and index, is refused before anything loads. Fields other than the understood ones are ignored
and named in a note. Lines out of timestamp order (clock steps, concatenated logs) are loaded as they are,
each with its own timestamp (analyses bucket by time, not by position). A line repeated (same GPU and
time) counts once: the later copy supersedes the earlier (``SampleSource``). No energy field is read
(``energy_j`` is NULL), so there is no energy counter whose reset could be checked.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import field_validator

from ..model.checks import ERROR, Check, sql_ident, sql_str
from ..model.gpu import GPU_SAMPLE_COLUMNS
from .base import (
    ArrowStream,
    FileRead,
    SampleSource,
    Source,
    SourceError,
    SourceFile,
    arrow_input,
    expand,
    sources,
    typed_ref,
)

DEFAULT_COLUMNS = "timestamp,uuid,name,utilization.gpu,memory.used,memory.total,power.draw"
#: values nvidia-smi prints when a field does not apply or the GPU cannot report it: NULL, not an error
MISSING = ("[N/A]", "[Not Supported]")
#: query field -> the unit nvidia-smi appends with --format=csv (absent with nounits)
NUMBER_FIELDS = {"utilization.gpu": "%", "memory.used": "MiB", "memory.total": "MiB", "memory.free": "MiB",
                 "power.draw": "W", "power.draw.instant": "W", "power.draw.average": "W", "index": ""}
KNOWN_FIELDS = ("timestamp", "uuid", "name", *NUMBER_FIELDS)
_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")
_LINE, _NFIELDS, _RN = "_line", "_nfields", "_rn"
NOT_UTF8 = -1  # ``_nfields`` of a line that is not UTF-8 text


#: file endings read: nvidia-smi output is saved as .csv, or with -f / a redirect as .log or .txt
SUFFIXES = (".csv", ".log", ".txt")


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(tuple(s + ".gz" for s in SUFFIXES)):
        return "csv.gz"
    return "csv" if name.endswith(SUFFIXES) else None



def _open_text(file: SourceFile) -> pa.NativeFile:
    raw = pa.OSFile(str(file.path))
    return pa.CompressedInputStream(raw, "gzip") if file.format == "csv.gz" else raw


def _first_line(file: SourceFile) -> str:
    """The first non-empty line, to tell a header from data without reading the rows."""
    try:
        with _open_text(file) as fh:
            head = fh.read(1 << 16)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{file.path}: cannot read ({exc})") from None
    for line in head.splitlines():
        if line.strip():
            try:
                return line.decode("utf-8-sig").strip()
            except UnicodeDecodeError:
                raise SourceError(f"{file.path}: the first line is not UTF-8 text; is this nvidia-smi output?") \
                    from None
    raise SourceError(f"{file.path}: the file is empty (no header, no rows)")


def _as_text(lines: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Bytes -> text, and which lines are not UTF-8 (None when all are, the usual case).

    A log appended by ``nvidia-smi -l`` can end in garbage after a crash or a full disk: such a line is
    quarantined (``_nfields`` = NOT_UTF8) instead of failing the file. Only a batch that holds one is
    decoded line by line."""
    try:
        return lines.cast(pa.string()), None
    except pa.ArrowInvalid:
        raw = lines.to_pylist()
        bad = []
        for b in raw:
            try:
                b.decode("utf-8")
                bad.append(False)
            except UnicodeDecodeError:
                bad.append(True)
        return pa.array([b.decode("utf-8", "replace") for b in raw], pa.string()), pa.array(bad)


def _field_name(header_cell: str) -> str:
    """``utilization.gpu [%]`` -> ``utilization.gpu``."""
    return _UNIT.sub("", header_cell).strip().lower()


def _line_stream(file: SourceFile, names: list[str], skip_header: bool) -> ArrowStream:
    """The file as record batches: one text column per field, the line, its field count and ``_rn``.

    Lines are split with Arrow compute (no Python loop per row). Each line is padded with as many commas as
    there are fields before splitting, so a short line yields NULL-free empty cells instead of an error;
    ``_nfields`` keeps the real count and a check quarantines the line."""
    k = len(names)
    header_first = names[0]
    schema = pa.schema([pa.field(n, pa.string()) for n in names]
                       + [pa.field(_LINE, pa.string()), pa.field(_NFIELDS, pa.int32()), pa.field(_RN, pa.int64())])
    size = max(file.bytes, 1)
    position: dict[str, pa.NativeFile] = {}

    def batches() -> Iterator[pa.RecordBatch]:
        raw, stream = arrow_input(file)
        position["raw"] = raw
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=[_LINE], block_size=4 << 20),
                # A delimiter and a quote that never occur: each physical line is one cell.
                parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                                                 newlines_in_values=False, ignore_empty_lines=False),
                convert_options=pacsv.ConvertOptions(column_types={_LINE: pa.binary()}, strings_can_be_null=False),
            )
            offset = 0  # physical lines before this batch
            for batch in reader:
                n = batch.num_rows
                text, corrupt = _as_text(batch.column(0))
                lines = pc.utf8_trim_whitespace(pc.replace_substring(text, "\ufeff", ""))
                # line L (1-based) is data row L - 1 when the file has a header, L otherwise
                rn = np.arange(offset + 1, offset + n + 1, dtype=np.int64) - (1 if skip_header else 0)
                offset += n
                nfields = pc.list_value_length(pc.split_pattern(lines, ",")).cast(pa.int32())
                if corrupt is not None:
                    nfields = pc.if_else(corrupt, pa.scalar(NOT_UTF8, pa.int32()), nfields)
                padded = pc.split_pattern(pc.binary_join_element_wise(lines, "," * k, ""), ",")
                cols = [pc.utf8_trim_whitespace(pc.list_element(padded, i)) for i in range(k)]
                # the header, and any header repeated by concatenated runs, is not data
                first = pc.utf8_lower(pc.replace_substring_regex(cols[0], _UNIT.pattern, ""))
                keep = pc.and_(pc.not_equal(lines, ""), pc.not_equal(first, header_first))
                out = pa.RecordBatch.from_arrays([*cols, lines, nfields, pa.array(rn)], schema=schema).filter(keep)
                if out.num_rows:
                    yield out
        finally:
            raw.close()

    def fraction() -> float:
        raw = position.get("raw")
        try:
            return min(raw.tell() / size, 1.0) if raw is not None and not raw.closed else 0.0
        except (OSError, ValueError):
            return 0.0

    return ArrowStream(open=lambda: pa.RecordBatchReader.from_batches(schema, batches()), fraction=fraction)


@sources.register("nvidia-smi")
class NvidiaSmiSource(SampleSource):
    """GPU samples from nvidia-smi --query-gpu ... --format=csv output (utilization, memory, power per GPU).

    Example: ``aifinops ingest nvidia-smi gpu-node-1.csv -o timezone=Europe/Paris``
    """


    class Options(Source.Options):
        timezone: str = "UTC"
        node: str | None = None
        columns: str = DEFAULT_COLUMNS

        @field_validator("timezone")
        @classmethod
        def _known_zone(cls, value: str) -> str:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Paris)") from None
            return value

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """nvidia-smi output under any of its usual names (.csv, .log, .txt, plain or .gz)."""
        return expand(paths, classify=_format, what=".csv, .log or .txt (plain or .gz)")

    def read(self, file: SourceFile) -> FileRead:
        if file.format not in ("csv", "csv.gz"):
            raise SourceError(f"{file.path}: nvidia-smi writes text; for the agent's Parquet files use `ingest nvml`")
        first = _first_line(file)
        cells = [c.strip() for c in first.split(",")]
        has_header = _field_name(cells[0]) in KNOWN_FIELDS
        if has_header:
            names = [_field_name(c) for c in cells]
        else:
            names = [c.strip().lower() for c in self.options.columns.split(",") if c.strip()]
            if len(names) != len(cells):
                raise SourceError(
                    f"{file.path}: no header and {len(cells)} fields per line, but option columns names "
                    f"{len(names)} ({','.join(names)}); pass -o columns=<the --query-gpu list>")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SourceError(f"{file.path}: field(s) given twice: {', '.join(dupes)}")
        if "timestamp" not in names:
            raise SourceError(f"{file.path}: no timestamp field (query with --query-gpu=timestamp,...)")
        if "uuid" not in names and "index" not in names:
            raise SourceError(f"{file.path}: neither uuid nor index field: cannot tell the GPUs apart")
        node = self.options.node or Path(re.sub(r"\.gz$", "", file.path.name, flags=re.I)).stem
        stream = _line_stream(file, names, has_header)
        raw, typed, checks = self._columns(names, node)
        notes = [] if has_header else [f"{file.path.name}: no header; fields read as {','.join(names)}"]
        ignored = [n for n in names if n not in KNOWN_FIELDS]
        if ignored:  # said, so that a field the user expected to see loaded does not vanish silently
            notes.append(f"{file.path.name}: ignored field(s) not read by aifinops: {', '.join(ignored)}")
        return FileRead(file=file, relation_sql="", raw=raw, typed=typed, extra_columns={}, checks=checks,
                        version=None, is_csv=False, stream=stream, notes=notes)

    def _columns(self, names: list[str], node: str) -> tuple[dict[str, str], dict[str, str], list[Check]]:
        """raw, typed and the rules. Every rule is listed here, once:

        - ``fields`` (error): a line without the header's number of fields;
        - ``datetime`` (error): a timestamp that is missing or not ``YYYY/MM/DD HH:MM:SS[.fff]``;
        - ``number`` (error): a numeric field that is neither a number (with its unit) nor [N/A] / [Not Supported];
        - ``range`` (error): utilization.gpu outside 0..100 %, or negative memory or power;
        - ``gpu`` (error): no UUID and no index, so the sample belongs to no GPU.
        """
        field = {n: f"NULLIF(s.{sql_ident(n)}, '')" for n in names}
        raw: dict[str, str] = {"_line": f"s.{_LINE}"}
        number: dict[str, str] = {}  # field -> typed SQL (in the field's unit)
        for n in names:
            if n in NUMBER_FIELDS:
                unit = NUMBER_FIELDS[n]
                # string functions, not a regex: they are several times cheaper on millions of rows
                stripped = (f"CASE WHEN ends_with({field[n]}, ' {unit}') THEN left({field[n]}, -{len(unit) + 1}) "
                            f"ELSE {field[n]} END") if unit else field[n]
                number[n] = f"TRY_CAST({stripped} AS {'INTEGER' if n == 'index' else 'DOUBLE'})"
        power = next((p for p in ("power.draw", "power.draw.instant", "power.draw.average") if p in names), None)
        for canon, f in (("ts", "timestamp"), ("gpu", "uuid"), ("gpu_index", "index"), ("gpu_model", "name"),
                         ("gpu_util", "utilization.gpu"), ("fb_used_mib", "memory.used"), ("power_w", power)):
            if f in names:
                raw[canon] = field[f]
        for f in ("memory.total", "memory.free"):
            if f in names:
                raw[f] = field[f]

        def missing(f: str) -> str:
            return f"{field[f]} IN ({', '.join(sql_str(m) for m in MISSING)})"

        ts_text = f"replace({field['timestamp']}, '/', '-')"  # 2026/11/20 -> 2026-11-20
        local = f"TRY_CAST({ts_text} AS TIMESTAMP)"
        zone = sql_str(self.options.timezone)
        ts = local if self.options.timezone == "UTC" else f"timezone('UTC', timezone({zone}, {local}))"
        uuid = f"CASE WHEN {missing('uuid')} THEN NULL ELSE {field['uuid']} END" if "uuid" in names else "NULL"
        index = number.get("index", "NULL")
        gpu = f"coalesce({uuid}, {sql_str(node + '/')} || CAST({index} AS VARCHAR))"
        used, total, free = (number.get(f, "CAST(NULL AS DOUBLE)") for f in ("memory.used", "memory.total",
                                                                             "memory.free"))
        values = {
            "ts": ts, "node": sql_str(node), "gpu": gpu, "gpu_index": index,
            "gpu_model": field["name"] if "name" in names else "NULL",
            "gpu_util": f"{number['utilization.gpu']} / 100" if "utilization.gpu" in names else "NULL",
            "fb_used_mib": used, "fb_free_mib": f"coalesce({total} - {used}, {free})",
            "power_w": number[power] if power else "NULL", "source": "'nvidia-smi'",
        }
        typed = {c: f"CAST({values.get(c, 'NULL')} AS {t})" for c, t in GPU_SAMPLE_COLUMNS.items()}
        ref = {c: typed_ref(i) for i, c in enumerate(typed)}
        k = len(names)
        ok = f"s.{_NFIELDS} = {k}"
        checks = [
            Check("fields", "_line", ERROR, f"s.{_NFIELDS} <> {k}",
                  f"CASE WHEN s.{_NFIELDS} = {NOT_UTF8} THEN 'not UTF-8 text (a corrupt line?): ' "
                  f"ELSE 'expected {k} fields ({', '.join(names)}), found ' || s.{_NFIELDS} || ': ' END"
                  f" || left(s.{_LINE}, 200)"),
            Check("datetime", "timestamp", ERROR, f"{ok} AND {ref['ts']} IS NULL",
                  f"'not a timestamp YYYY/MM/DD HH:MM:SS.fff: ' || coalesce('''' || {field['timestamp']} || '''', "
                  "'missing')"),
            Check("gpu", "uuid", ERROR, f"{ok} AND {ref['gpu']} IS NULL",
                  "'no GPU UUID and no index: the sample belongs to no GPU'"),
        ]
        for f, t in number.items():
            unit = f" in {NUMBER_FIELDS[f]}" if NUMBER_FIELDS[f] else ""
            checks.append(Check(
                "number", f, ERROR,
                f"{ok} AND {field[f]} IS NOT NULL AND NOT {missing(f)} AND NOT coalesce(isfinite({t}), false)",
                f"'not a number{unit}: ''' || left({field[f]}, 80) || ''''"))
            if f == "utilization.gpu":
                checks.append(Check("range", f, ERROR, f"{t} < 0 OR {t} > 100",
                                    f"'utilization outside 0..100 %: ' || {field[f]}"))
            elif f != "index":
                checks.append(Check("range", f, ERROR, f"{t} < 0", f"'negative value: ' || {field[f]}"))
        return raw, typed, checks
