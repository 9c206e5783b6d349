"""Slurm jobs as workloads, from ``sacct`` output.

Produce the input with::

    sacct --parsable2 --allocations --allusers --starttime=2026-11-01 \\
          --format=JobID,JobName,User,Account,Partition,NodeList,Start,End,State,ExitCode,AllocTRES,Elapsed

``--parsable2`` separates fields with ``|`` and prints no trailing one; ``--allocations`` prints one line
per job allocation (no ``.batch`` / ``.0`` / ``.extern`` steps, which would count the same GPUs again: a
step line that slips in is quarantined). With ``--noheader`` set the option ``header=false``: the fields
are then taken in the ``FORMAT`` order above. A header may hold other fields in any order; the ones in
``REQUIRED`` must be there.

One row per allocation, ``workload_id`` = JobID as sacct prints it (array tasks ``123_4``, pending arrays
``123_[5-9]``, heterogeneous components ``123+0``). A newer export replaces the rows of the jobs it holds
(restatement key ``source, workload_id``), so a running job's row gets its end when it ends.

- ``node`` is NodeList as printed (``gpu[01-02]``): a multi-node job is one row; splitting it per node is
  the allocation step's job. ``None assigned`` (pending) is NULL.
- GPUs come from AllocTRES: ``gres/gpu=N`` is the total; typed entries ``gres/gpu:h100=N`` name the model
  (kept in ``gpu_resource``) and are summed when no total is printed. MIG types (``gres/gpu:1g.10gb``)
  count ``g`` of the GPU's slices, as ``model.gpu.gpu_share`` says.
- ``Start``/``End`` are the cluster's local time (sacct prints them so): set the option ``timezone``
  (default UTC). ``Unknown`` and ``None`` are NULL (not started, still running).
- ``phase`` is the State's first word (``CANCELLED by 123`` -> ``CANCELLED``); the full State, ExitCode,
  Elapsed and AllocTRES are kept in ``annotations`` (``slurm.*``).
- ``exit_code`` is the ExitCode's code, or 128 + signal when a signal ended the job (``0:9`` -> 137),
  the convention shells and Kubernetes report, so the two sources compare.
- ``labels``: user, account, partition, job_name, and ``team``: by default the Slurm account (the unit a
  cluster bills), so that ``--aggregate label:team`` puts Slurm jobs beside Kubernetes pods; the option
  ``team_from`` names another field (``user``, ``partition``) or ``none``.

Bad lines: a line with another number of fields (a job name holding ``|``), a job step, a line without
JobID, a Start or End that is not a sacct time, an end before its start, and a GPU entry of AllocTRES
whose count is not a whole number (``gres/gpu=-1``: it would otherwise count as no GPU) are quarantined
with their row and reason. A job that holds GPUs but has no NodeList or no Start loads with a warning
(``no-node``: its GPU time cannot be placed on a node; ``no-start``: counted, like any workload without a
start, as holding its GPUs since before the data). The State is kept as sacct prints it and is not
checked: no rule reads it, and sacct adds states across versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from ..model.checks import ERROR, WARNING, Check, sql_ident, sql_str
from ..model.gpu import DEFAULT_MIG_SLICES, MIG_SLICES
from .base import FileRead, Source, SourceError, SourceFile, expand, sources, typed_ref

#: ``--format`` fields in the order ``header=false`` assumes.
FORMAT = ("JobID", "JobName", "User", "Account", "Partition", "NodeList", "Start", "End", "State", "ExitCode",
          "AllocTRES", "Elapsed")
REQUIRED = ("JobID", "Start", "End", "State", "AllocTRES")
_SUFFIXES = (".txt", ".psv", ".sacct", ".out")



def _tres_number(tres: str, key: str) -> str:
    """SQL: the number of TRES ``key`` in an AllocTRES text (NULL when absent)."""
    return f"TRY_CAST(NULLIF(regexp_extract({tres}, '(?:^|,){key}=([0-9.]+)', 1), '') AS DOUBLE)"


def _mig_share(entry_type: str) -> str:
    """SQL: GPU-equivalents of one unit of a typed GPU (``a100`` -> 1, ``1g.10gb`` -> 1/7, on A30 1/4)."""
    slices = " ".join(f"WHEN contains(upper({entry_type}), {sql_str(m)}) THEN {n}"
                      for m, n in sorted(MIG_SLICES.items(), key=lambda kv: -len(kv[0])) if n != DEFAULT_MIG_SLICES)
    g = f"TRY_CAST(regexp_extract({entry_type}, '([0-9]+)g\\.[0-9]+gb', 1) AS DOUBLE)"
    return f"coalesce({g} / (CASE {slices} ELSE {DEFAULT_MIG_SLICES} END), 1)" if slices else \
        f"coalesce({g} / {DEFAULT_MIG_SLICES}, 1)"


def _looks_like_sacct(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return b"|" in fh.readline(1 << 16)
    except OSError:
        return True  # named in the error read() gives


def _header(file: SourceFile) -> list[str]:
    try:
        with file.path.open("rb") as fh:
            first = fh.readline().rstrip(b"\r\n")
    except OSError as exc:
        raise SourceError(f"{file.path}: cannot read ({exc})") from None
    if not first.strip():
        raise SourceError(f"{file.path}: the file is empty (no header, no rows)")
    try:
        return first.decode("utf-8-sig").split("|")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{file.path}: the header is not UTF-8 (byte {exc.start})") from None


@sources.register("slurm")
class SlurmSource(Source):
    """Slurm job allocations from ``sacct --parsable2 --allocations`` output.

    Example: ``sacct -P -X -a --format=... > jobs.txt && aifinops ingest slurm jobs.txt``
    """

    target: ClassVar[str] = "workloads"
    restatement_key: ClassVar[tuple[str, ...]] = ("source", "workload_id")
    key_noun: ClassVar[str] = "job(s)"

    class Options(Source.Options):
        header: bool = True  # false for sacct --noheader: fields in FORMAT order
        timezone: str = "UTC"  # the cluster's time zone: sacct prints local times
        team_from: Literal["account", "user", "partition", "none"] = "account"  # which field is the team label

    def files(self, paths: list[str | Path]) -> list[SourceFile]:
        """Paths -> files: named files whatever their name; in folders, ``.txt``/``.psv``/``.sacct``/``.out``
        files whose first line has a ``|`` (a folder of exports often holds a README too)."""
        return expand(paths, classify=lambda f: "sacct" if f.name.lower().endswith(_SUFFIXES) else None,
                      what=" or ".join(_SUFFIXES), keep=_looks_like_sacct, named_as="sacct")

    def read(self, file: SourceFile) -> FileRead:
        path = sql_str(str(file.path))
        if file.bytes == 0:
            raise SourceError(f"{file.path}: the file is empty (no rows)")
        if self.options.header:
            names = _header(file)
            by_lower = {n.lower(): n for n in names}
            missing = [c for c in REQUIRED if c.lower() not in by_lower]
            if missing:
                hint = " Is it sacct --parsable2 output?" if len(names) == 1 else ""
                raise SourceError(f"{file.path}: not sacct output: missing field(s) {', '.join(missing)} "
                                  f"(header: {'|'.join(names[:12])}).{hint}")
            cols = {c: by_lower.get(c.lower()) for c in FORMAT}
            head = "header = true"
        else:
            cols = {c: c for c in FORMAT}
            head = "header = false, names = [" + ", ".join(sql_str(c) for c in FORMAT) + "]"
        # No quoting: sacct never quotes, and a job name may hold a '"'. A job name holding '|' breaks its
        # line into more fields; the engine quarantines that line and names it.
        relation = (f"read_csv({path}, {head}, all_varchar = true, delim = '|', quote = '', escape = '', "
                    "nullstr = [''], strict_mode = true, store_rejects = true, rejects_limit = 0, "
                    "null_padding = false, compression = 'none', parallel = false)")
        raw = {c: ("s." + sql_ident(n)) if n else "CAST(NULL AS VARCHAR)" for c, n in cols.items()}
        tz = sql_str(self.options.timezone)

        def when(v: str) -> str:
            return (f"CASE WHEN {v} IN ('Unknown', 'None') THEN NULL "
                    f"ELSE CAST(timezone({tz}, TRY_CAST({v} AS TIMESTAMP)) AS TIMESTAMP) END")

        tres = raw["AllocTRES"]
        typed_gpus = f"regexp_extract_all({tres}, '(?:^|,)gres/gpu:([^=,]+=[0-9]+)', 1)"
        total = _tres_number(tres, "gres/gpu")
        typed_count = f"list_sum(list_transform({typed_gpus}, lambda e: CAST(split_part(e, '=', 2) AS DOUBLE)))"
        unit_share = _mig_share("split_part(e, '=', 1)")
        typed_share = (f"list_sum(list_transform({typed_gpus}, lambda e: CAST(split_part(e, '=', 2) AS DOUBLE) * "
                       f"{unit_share}))")
        kinds = f"list_distinct(list_transform({typed_gpus}, lambda e: 'gres/gpu:' || split_part(e, '=', 1)))"
        mem = (f"regexp_extract({tres}, '(?:^|,)mem=([0-9.]+)([KMGTP]?)', ['n', 'u'])")
        code, signal = (f"TRY_CAST(split_part({raw['ExitCode']}, ':', {i}) AS INTEGER)" for i in (1, 2))
        state = raw["State"]

        field = {"account": "Account", "user": "User", "partition": "Partition"}.get(self.options.team_from)
        team = {"team": raw[field]} if field and field in raw else {}

        def entries(pairs: dict[str, str]) -> str:
            items = ", ".join(f"{{'k': {sql_str(k)}, 'v': {v}}}" for k, v in pairs.items())
            return f"map_from_entries(list_filter([{items}], lambda e: e.v IS NOT NULL))"

        typed = {
            "workload_id": raw["JobID"], "source": "'slurm'", "kind": "'slurm-job'", "name": raw["JobName"],
            "node": f"CASE WHEN {raw['NodeList']} = 'None assigned' THEN NULL ELSE {raw['NodeList']} END",
            "start_ts": when(raw["Start"]), "end_ts": when(raw["End"]),
            "phase": f"split_part({state}, ' ', 1)",
            "gpu_resource": f"CASE WHEN len({kinds}) > 0 THEN array_to_string(list_sort({kinds}), ',') "
                            f"WHEN {total} IS NOT NULL THEN 'gres/gpu' END",
            "gpu_count": f"coalesce({total}, {typed_count}, 0)",
            "gpu_share": f"CASE WHEN len({typed_gpus}) > 0 THEN {typed_share} ELSE coalesce({total}, 0) END",
            "cpu_request": _tres_number(tres, "cpu"),
            "memory_request_mib": f"TRY_CAST({mem}.n AS DOUBLE) * CASE {mem}.u WHEN 'K' THEN 1.0 / 1024 "
                                  "WHEN 'G' THEN 1024 WHEN 'T' THEN 1048576 WHEN 'P' THEN 1073741824 ELSE 1 END",
            "labels": entries({"user": raw["User"], "account": raw["Account"], "partition": raw["Partition"],
                               "job_name": raw["JobName"], **team}),
            "annotations": entries({"slurm.state": state, "slurm.exit_code": raw["ExitCode"],
                                    "slurm.elapsed": raw["Elapsed"], "slurm.alloc_tres": tres}),
            "exit_code": f"CASE WHEN {signal} > 0 THEN 128 + {signal} ELSE {code} END",
        }
        t = {c: typed_ref(i) for i, c in enumerate(typed)}
        job = raw["JobID"]
        checks = [
            Check("not-null", "workload_id", ERROR, f"{job} IS NULL", sql_str("a job without JobID")),
            Check("job-step", "workload_id", ERROR, f"regexp_matches({job}, '\\.[A-Za-z0-9]+$')",
                  f"'a job step, not an allocation (run sacct with --allocations): ' || {job}"),
        ]
        for c, field in (("start_ts", "Start"), ("end_ts", "End")):
            v = raw[field]
            checks.append(Check("datetime", c, ERROR, f"{v} IS NOT NULL AND {v} NOT IN ('Unknown', 'None') "
                                f"AND {t[c]} IS NULL", f"'not a sacct time: ' || {v}"))
        checks.append(Check("period-order", "end_ts", ERROR, f"{t['end_ts']} < {t['start_ts']}",
                            f"'ends ' || {raw['End']} || ' before it starts ' || {raw['Start']}"))
        # A GPU entry whose count is not a whole number would otherwise count as no GPU at all.
        gpu_entries = f"regexp_extract_all({tres}, '(?:^|,)(gres/gpu(?::[^=,]*)?=[^,]*)', 1)"
        bad_gpus = f"list_filter({gpu_entries}, lambda e: NOT regexp_full_match(e, 'gres/gpu(:[^=,]+)?=[0-9]+'))"
        checks.append(Check("gpu-count", "gpu_count", ERROR, f"len({bad_gpus}) > 0",
                            f"'AllocTRES GPU count is not a whole number: ' || array_to_string({bad_gpus}, ',')"))
        # Loaded, but said: GPU time needs a node and a start to be placed.
        for c, what in (("node", "no NodeList"), ("start_ts", "no Start")):
            checks.append(Check(f"no-{c.removesuffix('_ts')}", c, WARNING, f"{t['gpu_share']} > 0 AND {t[c]} IS NULL",
                                f"'holds GPUs (' || {tres} || ') but has {what}: loaded; "
                                + ("its GPU time cannot be placed on a node'" if c == "node" else
                                   "counted as holding them since before the data'")))
        return FileRead(file=file, relation_sql=relation, raw={k: v for k, v in raw.items() if cols[k]},
                        typed=typed, extra_columns={}, checks=checks, is_csv=True)
