"""Readers, one module per input format. A reader turns files into rows named like a canonical table;
it never writes to the store (the store's ingest engine does that, atomically)."""

from .base import SourceError, SourceFile, sources

__all__ = ["SourceError", "SourceFile", "sources"]
