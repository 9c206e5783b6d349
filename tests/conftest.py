"""Shared fixtures: the bundled real FOCUS sample and fresh stores."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from alert_servers import HttpRecorder, Smtp, serve_http, serve_smtp

from aifinops.demo import bundled_sample
from aifinops.sources.base import Source, sources
from aifinops.store.connection import Store


@pytest.fixture
def sample_path() -> Path:
    return bundled_sample()


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "store.duckdb")
    yield s
    s.close()


# -- ingest tests (tests/test_ingest_*.py): the sample as parsed rows, bad-input builders, stores -------


@dataclass(frozen=True)
class FocusRows:
    """The FOCUS 1.0 sample as text cells (``NULL`` literals kept), to derive small bad inputs from."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def col(self, name: str) -> int:
        return self.header.index(name)

    def head(self, n: int) -> list[list[str]]:
        return [list(r) for r in self.rows[:n]]

    def write(self, path: Path, rows: list[list[str]], header: list[str] | None = None, delimiter: str = ",",
              gz: bool = False) -> Path:
        out = io.StringIO()
        w = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        w.writerow(list(header or self.header))
        w.writerows(rows)
        data = out.getvalue().encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    def money(self, rows: list[list[str]], column: str) -> Decimal:
        """Sum of the cells of ``column`` that read as numbers (what the ingest reports as read)."""
        total = Decimal(0)
        for r in rows:
            with contextlib.suppress(InvalidOperation, IndexError):
                total += Decimal(r[self.col(column)])
        return total


@pytest.fixture(scope="session")
def focus_rows() -> FocusRows:
    path = bundled_sample()
    table = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8"))))
    return FocusRows(path, tuple(table[0]), tuple(tuple(r) for r in table[1:]))


@pytest.fixture
def focus_source() -> Source:
    return sources.get("focus")()


@pytest.fixture
def new_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """``new_store("a.duckdb")`` -> an open Store under tmp_path, closed after the test."""
    opened: list[Store] = []

    def make(name: str = "ingest.duckdb") -> Store:
        s = Store(tmp_path / name)
        opened.append(s)
        return s

    yield make
    for s in opened:
        with contextlib.suppress(Exception):
            s.close()


@pytest.fixture
def http() -> Iterator[HttpRecorder]:
    """A recording HTTP server on loopback (alert_servers.serve_http), for the alert and watch tests."""
    with serve_http() as rec:
        yield rec


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """An aiosmtpd server on loopback (alert_servers.serve_smtp)."""
    with serve_smtp() as server:
        yield server
