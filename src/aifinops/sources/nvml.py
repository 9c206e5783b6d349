"""GPU samples written by ``aifinops agent`` (NVML through nvidia-ml-py), as Parquet files.

The agent writes the canonical ``gpu_samples`` columns with their canonical types and units (see
model/gpu.py), so reading is a typed copy plus the rules below; any Parquet file with at least ``ts`` and
``gpu`` columns named like ``GPU_SAMPLE_COLUMNS`` loads (other producers can write them too). Columns the
file lacks are NULL; columns that are not canonical are ignored (a note says which).

Bad input (the rules are listed in ``nvml_checks``): a row without ``ts`` or ``gpu`` is quarantined (a file
without either column is refused); ``node`` may be NULL (the GPU UUID identifies the GPU). A value that does
not cast to its column's type, an activity outside [0, 1], a negative or an infinite value is quarantined
with its column and reason. A NaN (NVML never writes one; another producer may) loads as NULL with a
warning, as in the dcgm source, so it cannot turn a sum into NaN. Rows out of timestamp order are loaded as
they are (analyses bucket by time, not by position). A repeated sample (same GPU, MIG instance, time and
pod) counts once: the later copy supersedes the earlier (``SampleSource``).

Energy counter resets: ``energy_j`` is NVML's total energy since the driver loaded, so it restarts near
zero when the GPU or the driver resets. A sample whose ``energy_j`` is lower than the previous usable
reading of the same GPU and MIG instance in the same file (in timestamp order, then row order) is a real
observation: it loads, with a ``counter-reset`` warning whose reason gives both readings ("energy counter
went down from 8132643.0 J to 120.5 J: the GPU or driver was reset; the counter restarts from this
sample"). Each file is compared on its own, so a reset between two rotated files is not flagged. The
counter is kept as read: analyses take energy from ``power_w`` samples (power x time), which a reset does
not disturb, never from differences of the counter.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from ..model.checks import ERROR, WARNING, Check, sql_ident, sql_str
from ..model.gpu import GPU_SAMPLE_COLUMNS
from .base import FileRead, SampleSource, SourceError, SourceFile, energy_reset_check, sources, typed_ref

REQUIRED = ("ts", "gpu")
RATIOS = ("sm_active", "gr_engine_active", "gpu_util")
NON_NEGATIVE = ("fb_used_mib", "fb_free_mib", "power_w", "energy_j")



def nvml_checks(raw: dict[str, str], typed: dict[str, str]) -> list[Check]:
    """The rules of a GPU sample file, listed once:

    - ``not-null`` (error): ``ts`` or ``gpu`` missing (the row cannot be placed in time or on a GPU);
    - ``type`` (error): a value that does not cast to its column's type;
    - ``nan`` (warning): a NaN number, loaded as NULL (a NaN would make every sum over it NaN);
    - ``finite`` (error): an infinite number;
    - ``ratio`` (error): an activity outside [0, 1] (a percentage written unscaled would triple-count);
    - ``non-negative`` (error): negative memory, power or energy;
    - ``counter-reset`` (warning): ``energy_j`` lower than the GPU's previous reading (see the module docstring).

    ``typed`` maps every canonical column to its typed value; ``raw`` only the columns the file has.
    """
    checks = [Check("not-null", c, ERROR, f"{typed[c]} IS NULL", sql_str(f"{c} must not be null"))
              for c in REQUIRED]
    for c in raw:
        if c in REQUIRED:
            continue
        nan = f"coalesce(isnan(TRY_CAST({raw[c]} AS DOUBLE)), false)" if GPU_SAMPLE_COLUMNS[c] == "DOUBLE" else ""
        checks.append(Check("type", c, ERROR,
                            f"{raw[c]} IS NOT NULL AND {typed[c]} IS NULL" + (f" AND NOT {nan}" if nan else ""),
                            f"'not a {GPU_SAMPLE_COLUMNS[c]}: ' || left(CAST({raw[c]} AS VARCHAR), 80)"))
        if nan:
            checks.append(Check("nan", c, WARNING, nan, sql_str(f"{c} is NaN: loaded as NULL")))
            checks.append(Check("finite", c, ERROR, f"isinf({typed[c]})",
                                f"'{c} is not finite: ' || CAST({typed[c]} AS VARCHAR)"))
    for c in RATIOS:
        if c in raw:
            checks.append(Check("ratio", c, ERROR, f"{typed[c]} < 0 OR {typed[c]} > 1",
                                f"'{c} outside 0..1: ' || CAST({typed[c]} AS VARCHAR)"))
    for c in NON_NEGATIVE:
        if c in raw:
            checks.append(Check("non-negative", c, ERROR, f"{typed[c]} < 0",
                                f"'{c} is negative: ' || CAST({typed[c]} AS VARCHAR)"))
    if "energy_j" in raw:
        checks.append(energy_reset_check(typed, "s.file_row_number"))
    return checks


@sources.register("nvml")
class NvmlSource(SampleSource):
    """GPU samples recorded by `aifinops agent` (NVML: utilization, memory, power, energy, MIG) as Parquet.

    Example: ``aifinops ingest nvml /var/lib/aifinops/agent/``
    """


    def read(self, file: SourceFile) -> FileRead:
        if file.format != "parquet":
            raise SourceError(f"{file.path}: the nvml source reads the agent's Parquet files; for nvidia-smi CSV "
                              "use `ingest nvidia-smi`")
        try:
            names = list(pq.read_schema(file.path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise SourceError(f"{file.path}: not a readable Parquet file ({exc})") from None
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise SourceError(f"{file.path}: not a GPU sample file: missing column(s) {', '.join(missing)} "
                              f"(columns: {', '.join(names[:8])})")
        present = [c for c in GPU_SAMPLE_COLUMNS if c in names and c != "source"]
        raw = {c: f"s.{sql_ident(c)}" for c in present}
        typed = {}
        for c, t in GPU_SAMPLE_COLUMNS.items():
            if c == "source":
                typed[c] = "'nvml'"
            elif c in raw and t == "DOUBLE":  # a NaN becomes NULL (the nan rule says so); NULL stays NULL
                v = f"TRY_CAST({raw[c]} AS DOUBLE)"
                typed[c] = f"CASE WHEN NOT isnan({v}) THEN {v} END"
            elif c in raw:
                typed[c] = f"TRY_CAST({raw[c]} AS {t})"
            else:
                typed[c] = f"CAST(NULL AS {t})"
        ignored = [n for n in names if n not in GPU_SAMPLE_COLUMNS]
        notes = [f"{file.path.name}: ignored column(s) {', '.join(ignored)}"] if ignored else []
        path = sql_str(str(file.path))
        return FileRead(
            file=file, relation_sql=f"read_parquet({path}, file_row_number = true)", raw=raw, typed=typed,
            extra_columns={}, checks=nvml_checks(raw, {c: typed_ref(i) for i, c in enumerate(typed)}),
            is_csv=False, notes=notes,
        )
