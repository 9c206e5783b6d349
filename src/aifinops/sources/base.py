"""What every source provides, and the registry that finds them by name."""

from __future__ import annotations

import glob
import gzip
import hashlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..model.checks import WARNING, Check
from ..model.gpu import SAMPLE_KEY
from ..model.llm import REQUEST_KEY
from ..registry import Registry

sources: Registry[Source] = Registry(
    "aifinops.sources",
    builtins=("aifinops.sources.focus", "aifinops.sources.dcgm", "aifinops.sources.workloads_csv",
              "aifinops.sources.inventory", "aifinops.sources.kubernetes", "aifinops.sources.slurm",
              "aifinops.sources.nvidia_smi", "aifinops.sources.nvml", "aifinops.sources.otel_genai",
              "aifinops.sources.litellm_prices", "aifinops.sources.genai_prices", "aifinops.sources.litellm_spend",
              "aifinops.sources.llm_usage_csv", "aifinops.sources.outcomes", "aifinops.sources.mlflow",
              "aifinops.sources.run_metrics_csv"),
)

_CHUNK = 1 << 20


class SourceError(Exception):
    """A file that cannot be read at all. The message names the file and the problem; nothing is loaded."""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    format: str  # csv | csv.gz | parquet
    fingerprint: str  # sha256 of the bytes: the same content is the same file, wherever it lives
    bytes: int


@dataclass
class ArrowStream:
    """A file read by pyarrow as record batches of text columns plus ``_rn``, the 1-based row number.

    The fast path for CSV: pyarrow parses in parallel and numbers rows exactly, so DuckDB can cast and
    check them on every core. When the stream meets something it cannot read cleanly (a malformed row,
    bytes that are not UTF-8, a broken gzip) it stops and sets ``failed``; the engine then discards
    what it inserted and reads the file through ``FileRead.relation_sql``, which reports the exact line."""

    open: Callable[[], pa.RecordBatchReader]
    fraction: Callable[[], float] = lambda: 0.0
    failed: str | None = None


@dataclass
class FileRead:
    """How the ingest engine reads one file: a SQL table expression plus the column mapping."""

    file: SourceFile
    relation_sql: str  # e.g. read_csv('...', all_varchar = true, ...)
    #: canonical column -> SQL expression over the relation's raw columns (the raw value, untyped)
    raw: dict[str, str]
    #: canonical column -> SQL expression that gives the typed value from the raw one (never raises:
    #: a value that cannot be cast is NULL, and a check reports it)
    typed: dict[str, str]
    #: canonical column -> SQL type, for columns the target table may not have yet (x_ columns)
    extra_columns: dict[str, str]
    checks: list[Check]  # over ``raw`` and over ``typed_ref(column)``
    version: str | None = None
    is_csv: bool = False
    notes: list[str] = field(default_factory=list)
    stream: ArrowStream | None = None


def csv_first_line(file: SourceFile) -> str:
    """The first line of a CSV(.gz), decoded, without reading its rows: a file that cannot be read at all is
    rejected here, naming the file and the problem, before anything touches the store."""
    opener = gzip.open if file.format == "csv.gz" else open
    try:
        with opener(file.path, "rb") as fh:
            head = fh.read(1 << 16)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{file.path}: cannot decompress ({exc}); the gzip file is corrupt or truncated") from None
    if not head.strip():
        raise SourceError(f"{file.path}: the file is empty (no header, no rows)")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{file.path}: the file is UTF-16; it must be UTF-8 (re-encode it, e.g. with iconv)")
    try:
        return head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{file.path}: the header is not UTF-8 (byte {exc.start}); re-encode the file as UTF-8") \
            from None


def arrow_input(file: SourceFile) -> tuple[pa.NativeFile, pa.NativeFile]:
    """(raw file, byte stream to parse) for pyarrow readers: the raw file's position measures progress
    through a gzip file, whose decompressed size is unknown."""
    raw = pa.OSFile(str(file.path))
    return raw, (pa.CompressedInputStream(raw, "gzip") if file.format == "csv.gz" else raw)


def csv_stream(file: SourceFile, names: list[str], delim: str,
               types: dict[str, pa.DataType] | None = None) -> ArrowStream:
    """CSV(.gz) as a pyarrow stream of text columns numbered by ``_rn`` (see ArrowStream). ``types`` reads
    some columns as another type (``pa.float64()`` for numbers a mapping computes with); a value that does not
    convert stops the stream, and the engine then reads the file on its exact path, which names the line."""
    state = ArrowStream(open=lambda: pa.RecordBatchReader.from_batches(schema, iter(())))
    column_types = {n: (types or {}).get(n, pa.string()) for n in names}
    schema = pa.schema([pa.field(n, t) for n, t in column_types.items()] + [pa.field("_rn", pa.int64())])
    size = max(file.bytes, 1)
    position = {"raw": None}

    def invalid(row: pacsv.InvalidRow) -> str:
        state.failed = f"a row with {row.actual_columns} fields where the header has {row.expected_columns}"
        return "skip"

    def batches() -> Iterator[pa.RecordBatch]:
        raw, stream = arrow_input(file)
        position["raw"] = raw
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=4 << 20),
                parse_options=pacsv.ParseOptions(delimiter=delim, quote_char='"', double_quote=True,
                                                 newlines_in_values=True, invalid_row_handler=invalid),
                convert_options=pacsv.ConvertOptions(column_types=column_types,
                                                     null_values=["NULL", ""], strings_can_be_null=True,
                                                     quoted_strings_can_be_null=True),
            )
            offset = 0
            for batch in reader:
                if state.failed:
                    return
                n = batch.num_rows
                yield batch.append_column("_rn", pa.array(np.arange(offset + 1, offset + n + 1, dtype=np.int64)))
                offset += n
        except (pa.ArrowException, OSError, EOFError) as exc:
            state.failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            raw.close()

    def fraction() -> float:
        raw = position["raw"]
        try:
            return min(raw.tell() / size, 1.0) if raw is not None and not raw.closed else 0.0
        except (OSError, ValueError):
            return 0.0

    state.open = lambda: pa.RecordBatchReader.from_batches(schema, batches())
    state.fraction = fraction
    return state


def typed_ref(index: int) -> str:
    """Where the ingest engine exposes the typed value of the ``index``-th column of ``FileRead.typed``:
    it casts each value once in an inner projection, and rules and the insert read the result."""
    return f's."_t{index}"'


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".csv.gz", ".csv.gzip")):
        return "csv.gz"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq", ".snappy.parquet", ".zstd.parquet")):
        return "parquet"
    return None


def fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def expand(paths: list[str | Path], classify: Callable[[Path], str | None] = file_format,
           what: str = ".csv, .csv.gz or .parquet", keep: Callable[[Path], bool] = lambda _: True,
           named_as: str | None = None) -> list[SourceFile]:
    """Files, folders (recursively) and globs -> data files, sorted, each fingerprinted once.

    ``classify`` gives a file's format from its name (None: not ours); in folders only files it knows and
    ``keep`` accepts are read. A file named explicitly must be known too, unless ``named_as`` gives the
    format to read any explicitly named file as (a ``kubectl`` dump saved as pods.out is still JSON)."""
    found: dict[Path, str] = {}
    for given in paths:
        text = str(given)
        if any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise SourceError(f"{text}: no file matches this pattern")
        else:
            p = Path(text)
            if not p.exists():
                raise SourceError(f"{text}: no such file or folder")
            matches = [p]
        for m in matches:
            if m.is_dir():
                inner = sorted(f for f in m.rglob("*") if f.is_file() and classify(f) and keep(f))
                if not inner:
                    raise SourceError(f"{m}: folder holds no {what} file")
                found.update((f, classify(f) or "") for f in inner)
            elif fmt := classify(m) or named_as:
                found[m] = fmt
            else:
                raise SourceError(f"{m}: not a {what} file")
    return [SourceFile(p, fmt, fingerprint(p), p.stat().st_size) for p, fmt in found.items()]


def option_from_text(value: Any) -> Any:
    """A list or mapping option given as text (``--option`` and environment variables give text): YAML/JSON
    for ``{...}`` and ``[...]`` (``columns={request_id: id}``), else a comma list (``labels=qos,gpu_spec``)."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith(("{", "[")):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"not a YAML/JSON mapping or list: {exc}") from None
    return [v.strip() for v in value.split(",") if v.strip()]


class Source:
    """Base of all sources. Subclasses set ``target`` and implement ``read``."""

    kind: ClassVar[str]
    #: the canonical table rows land in
    target: ClassVar[str]
    #: columns whose values identify a delivery that a newer one replaces (restatement)
    restatement_key: ClassVar[tuple[str, ...]] = ()
    #: column whose maximum per key tells how far a delivery's data reaches: an older one is refused
    restatement_end: ClassVar[str | None] = None
    key_noun: ClassVar[str] = "key(s)"
    #: columns that make a row one observation (the target needs a ``_superseded`` column): when the same
    #: observation arrives twice, the newest batch's row (in a batch, the last file's last row) is kept and
    #: the others are marked ``_superseded`` — counted in a note, never deleted, never counted twice
    unique_key: ClassVar[tuple[str, ...]] = ()
    #: a column of ``unique_key`` whose range bounds the search for earlier copies (e.g. the timestamp)
    unique_range: ClassVar[str | None] = None
    #: columns summed for the batch's money reconciliation
    reconciled: ClassVar[tuple[str, ...]] = ()

    class Options(BaseModel):
        """A source's settings (``sources: {<kind>: {...}}`` in aifinops.yaml, or ``--option KEY=VALUE``).
        Subclasses declare their own; an unknown or ill-typed option is an error that names it."""

        model_config = ConfigDict(extra="forbid")

    def __init__(self, **options: Any) -> None:
        try:
            self.options = self.Options.model_validate(options)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SourceError(f"options of source {getattr(self, 'kind', type(self).__name__)!r}: {problems}") from None

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """The files ``paths`` (files, folders, globs) name that this source reads; default CSV and Parquet."""
        return expand(paths)

    def read(self, file: SourceFile) -> FileRead:
        raise NotImplementedError

    def describe_key(self, values: tuple[Any, ...]) -> str:
        """One restatement key, as a person reads it in a message."""
        return ", ".join(f"{k} {v}" for k, v in zip(self.restatement_key, values, strict=True))


class SampleSource(Source):
    """Base of GPU telemetry sources: rows land in ``gpu_samples``, one per observation (``SAMPLE_KEY``), so
    overlapping scrapes, re-exported logs and query_range chunks that touch never count a sample twice."""

    target: ClassVar[str] = "gpu_samples"
    unique_key: ClassVar[tuple[str, ...]] = SAMPLE_KEY
    unique_range: ClassVar[str | None] = "ts"


class RequestSource(Source):
    """Base of LLM usage sources: rows land in ``llm_requests``, one per request (``REQUEST_KEY``), so a
    retried export or overlapping files never count a request twice (the newer copy supersedes)."""

    target: ClassVar[str] = "llm_requests"
    unique_key: ClassVar[tuple[str, ...]] = REQUEST_KEY
    unique_range: ClassVar[str | None] = "ts"


def energy_reset_check(typed: dict[str, str], row_order: str) -> Check:
    """A warning on a sample whose ``energy_j`` is lower than the previous sample's of the same GPU and MIG
    instance in the same file: the counter (energy since boot) restarted because the GPU or the driver was
    reset. The sample is a real observation, so it loads; the warning says why the counter went down.

    ``typed`` maps canonical columns to their typed values (``typed_ref``); ``row_order`` is the relation's
    row number, which orders samples of the same timestamp. The engine runs each file's checks in one
    statement over that file alone, so the window compares samples of one file, never across files or
    batches. Only usable readings take part (a NULL, NaN, infinite or negative one is reported by other
    rules and sits in a partition of its own), so a gap in the readings is not a reset."""
    e = typed["energy_j"]
    usable = f"coalesce(isfinite({e}) AND {e} >= 0, false)"
    prev = (f"lag({e}) OVER (PARTITION BY {typed['gpu']}, {typed['gpu_instance_id']}, {usable} "
            f"ORDER BY {typed['ts']}, {row_order})")
    return Check("counter-reset", "energy_j", WARNING, f"{usable} AND {e} < {prev}",
                 f"'energy counter went down from ' || CAST({prev} AS VARCHAR) || ' J to ' || CAST({e} AS VARCHAR)"
                 " || ' J: the GPU or driver was reset; the counter restarts from this sample'")
