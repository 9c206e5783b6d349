"""``POST /api/v1/ingest/{kind}``: load uploaded files as one batch of any registered source (``aifinops ingest
<kind>`` over HTTP; admin only): a FOCUS CSV or Parquet export, a DCGM ``/metrics`` scrape, an OTLP JSON lines
file, an inventory, ...

The uploads are written to a temporary folder under their own file names (a source recognises its formats by
the name's suffix) and ingested by ``store.ingest`` under the server's write lock, as one atomic batch: the
answer is the batch result the CLI prints (rows read, loaded, quarantined and replaced, the money read and
loaded, warnings, notes). Readers keep reading the snapshot before the batch while it loads. The same content
uploaded again is ``unchanged``. With ``scan=true`` the anomaly scans and budgets then run once, as
``aifinops ingest`` does by default (alerts are sent through the configured channels).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile

from ....governance.watch import after_ingest
from ....sources.base import SourceError, sources
from ....store.ingest import IngestError, ingest
from ....store.tokens import Principal
from ..auth import admin
from ..mounts import store_for_write
from ..paging import jsonable

router = APIRouter(tags=["ingest"])

#: the registered source kinds (built-ins and plugins), as the path's enum in the OpenAPI document
Kind = Literal[tuple(sources.names())]  # type: ignore[valid-type]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(name: str | None) -> str:
    """A file name safe to write in the temporary folder, keeping the suffixes a source reads formats from."""
    return _SAFE.sub("_", FilePath(name or "").name).lstrip(".") or "upload"


def _local(text: str, tmp: str) -> str:
    """A message about an upload with the upload's own name in place of its temporary path."""
    return re.sub(re.escape(tmp) + r"/\d{3}/", "", text)


def _options(items: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    options = dict(defaults)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise IngestError(f"option {item!r}: expected KEY=VALUE")
        options[key.strip()] = value
    return options


@router.post("/ingest/{kind}", summary="Load uploaded files as one batch of a source (admin)")
def ingest_upload(
    kind: Annotated[Kind, Path(description="A registered source: focus, dcgm, otel, inventory, ...")],
    request: Request,
    who: Annotated[Principal, Depends(admin)],
    file: Annotated[list[UploadFile], File(description="One or more files; sent together they are one batch")],
    option: Annotated[list[str] | None, Query(description="A source option KEY=VALUE (repeatable); overrides "
                                                          "aifinops.yaml")] = None,
    strict: Annotated[bool | None, Query(description="Quarantine rows that break any spec rule (default "
                                                     "ingest.strict)")] = None,
    allow_older: Annotated[bool | None, Query(description="Restate a period even when these files end earlier")]
    = None,
    scan: Annotated[bool, Query(description="Then run the anomaly scans and budgets once (and send due alerts)")]
    = False,
) -> dict[str, Any]:
    db = request.app.state.db
    s = db.settings
    try:
        source = sources.get(kind)(**_options(option or [], s.sources.get(kind, {})))
    except SourceError as exc:
        raise IngestError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="aifinops-upload-") as tmp:
        paths = []
        for i, up in enumerate(file):  # a folder each: two uploads may share a name
            path = FilePath(tmp) / f"{i:03d}" / upload_name(up.filename)
            path.parent.mkdir()
            with path.open("wb") as out:
                shutil.copyfileobj(up.file, out, 1 << 20)
            paths.append(path)
        try:
            with store_for_write(db) as store:
                res = ingest(store, source, paths, strict=s.ingest.strict if strict is None else strict,
                             allow_older=s.ingest.allow_older if allow_older is None else allow_older)
                watched = after_ingest(store.con, s) if scan and res.rows_loaded else None
        except IngestError as exc:  # name the upload, not the temporary folder
            raise IngestError(_local(str(exc), tmp)) from None
    names = {str(p): up.filename for p, up in zip(paths, file, strict=True)}
    return jsonable({
        "batch_id": res.batch_id, "status": res.status, "source_kind": res.source_kind, "rows_read": res.rows_read,
        "rows_loaded": res.rows_loaded, "rows_quarantined": res.rows_quarantined, "rows_replaced": res.rows_replaced,
        "replaced_batches": res.replaced_batches, "duplicate_of": res.duplicate_of, "seconds": res.seconds,
        "money": res.money, "warnings": [{**w, "file": names.get(str(w.get("file")), w.get("file"))}
                                         for w in res.warnings],
        "notes": [_local(n, tmp) for n in res.notes],
        "files": [{"name": names.get(str(f.path), f.path.name), "rows_read": f.rows_read, "rows_loaded": f.rows_loaded,
                   "rows_quarantined": f.rows_quarantined, "version": f.version, "reader": f.reader}
                  for f in res.files],
        "watch": None if watched is None else {"summary": watched.line(), "errors": watched.errors}})
