"""Answers kept per data version: a page (or an analysis several pages share) is computed once per state of the
store, and every later request for it is a dictionary lookup.

The **data version** is a few counters the store changes whenever an answer could change: batches (every ingest,
restatement and upload), findings and anomalies (a `recommend` run, a dismissal, feedback) and the stored LLM
prices. Reading it is one small query, made at most once a second (``web.VERSION_SECONDS``): a new batch shows
within a second.

Computations are **single-flight**: when two requests (or the warm-up) ask for the same key at once, one computes
and the other waits for its answer instead of running the same 1-second GPU query twice on a 2-core machine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")

#: entries kept (pages and shared analyses of every filter combination seen); the oldest go first
MAX_ENTRIES = 512

_VERSION_SQL = """SELECT
  (SELECT coalesce(max(batch_id), 0) FROM batches), (SELECT count(*) FROM batches),
  (SELECT count(*) FILTER (WHERE status = 'loaded') FROM batches),
  (SELECT count(*) FROM findings), (SELECT max(greatest(last_seen, coalesce(status_at, last_seen))) FROM findings),
  (SELECT count(*) FROM anomalies), (SELECT max(greatest(last_seen, coalesce(status_at, last_seen))) FROM anomalies),
  (SELECT count(*) FROM anomaly_feedback), (SELECT count(*) FROM llm_prices)"""


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """A text that changes whenever the store changes in a way an answer could show."""
    return "|".join(str(v) for v in con.execute(_VERSION_SQL).fetchone() or ())


class _Slot:
    """One key's answer, or the promise of it while it is being computed."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Cache:
    """A bounded LRU of computed answers with single-flight computation (see the module docstring)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer for ``key``: kept, being computed by someone else (then waited for), or computed now.
        A computation that fails is not kept: the next request tries again."""
        with self._lock:
            slot = self._slots.get(key)
            mine = slot is None
            if slot is None:
                slot = self._slots[key] = _Slot()
                self.misses += 1
                while len(self._slots) > self.max_entries:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(key)
                self.hits += 1
        if not mine:
            slot.done.wait()
            if slot.error is not None:
                raise slot.error
            return slot.value  # type: ignore[no-any-return]
        try:
            slot.value = compute()
        except BaseException as exc:
            slot.error = exc
            with self._lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
            raise
        finally:
            slot.done.set()
        return slot.value  # type: ignore[no-any-return]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            slot = self._slots.get(key)
        return slot is not None and slot.done.is_set() and slot.error is None

    def drop_other_versions(self, version: str) -> None:
        """Forget answers of older data versions (keys are tuples that start with the version)."""
        with self._lock:
            for key in [k for k in self._slots if isinstance(k, tuple) and k and k[0] != version]:
                if self._slots[key].done.is_set():
                    del self._slots[key]
