"""What one dashboard request knows: who asks, the filters it carries, the store's read cursor and the data
version; and how it builds links that keep the filters (every link of every page goes through ``Ctx.url``).

**Filters** carry across pages as query parameters: ``window`` (as the CLI writes it: 30d, 2026-10,
START..END), ``team``, ``model`` and ``env``. Each data source reads them through its own column: the ledger
through tags (``tag:<team key>``, ``tag:model``, ``tag:env``), GPU workloads through labels, LLM requests
through their ``team``, priced model and ``environment``. Page-specific parameters (the finance page's cost
centre, a table's offset) stay on their page.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlencode

import duckdb
from starlette.datastructures import QueryParams

from ...config import Settings
from ...store.tokens import Principal
from ..api.scope import team_key
from .cache import Cache

T = TypeVar("T")

DEFAULT_WINDOW = "30d"
FILTERS = ("window", "team", "model", "env")
#: the ledger tag and workload label that name an environment and a model
ENV_KEY = "env"
MODEL_TAG = "model"
MAX_PARAM = 200  # longer filter values are no one's team


class FilterError(ValueError):
    """A filter value the dashboard will not use (answered 400 with the reason)."""


class Missing(LookupError):
    """No such finding, anomaly, table or rows kind (answered 404)."""


@dataclass(frozen=True)
class Filters:
    """The filters of a request; None is "all"."""

    window: str = DEFAULT_WINDOW
    team: str | None = None
    model: str | None = None
    env: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Filters:
        values: dict[str, str | None] = {}
        for name in FILTERS:
            v = (params.get(name) or "").strip()
            if len(v) > MAX_PARAM:
                raise FilterError(f"filter {name} is longer than {MAX_PARAM} characters")
            values[name] = v or None
        return cls(window=values["window"] or DEFAULT_WINDOW, team=values["team"], model=values["model"],
                   env=values["env"])

    def query(self) -> dict[str, str]:
        """The filters that differ from the defaults, as query parameters."""
        out = {"window": self.window} if self.window != DEFAULT_WINDOW else {}
        out.update({k: v for k in ("team", "model", "env") if (v := getattr(self, k))})
        return out

    def key(self) -> tuple[str | None, ...]:
        return (self.window, self.team, self.model, self.env)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in {"window": self.window, **self.query()}.items())


def dims(params: QueryParams) -> dict[str, list[str]]:
    """The ``d.<dimension>=<value>`` parameters of a rows page (repeated: any of the values)."""
    out: dict[str, list[str]] = {}
    for k, v in params.multi_items():
        if k.startswith("d.") and len(k) > 2:
            out.setdefault(k[2:], []).append(v)
    return out


@dataclass
class Ctx:
    """One request's view of the store (see the module docstring)."""

    who: Principal
    settings: Settings
    con: duckdb.DuckDBPyConnection
    filters: Filters
    version: str
    cache: Cache
    path: str = "/"
    #: this page's own parameters (kept on links to the same page and its tables, not across pages)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def team_key(self) -> str:
        """The tag and label that say which team a charge or a workload is (``waste.owner_labels``' first)."""
        return team_key(self.settings)

    @property
    def scoped(self) -> bool:
        return self.who.team is not None

    def url(self, path: str, params: Mapping[str, Any] | None = None, keep: bool = True) -> str:
        """``path`` with the request's filters (``keep``) and ``params`` (a None value drops a parameter; a list
        repeats it)."""
        q: dict[str, Any] = dict(self.filters.query()) if keep else {}
        for k, v in (params or {}).items():
            if v is None:
                q.pop(k, None)
            else:
                q[k] = v
        text = urlencode(q, doseq=True)
        return f"{path}?{text}" if text else path

    def here(self, params: Mapping[str, Any] | None = None) -> str:
        """This page with its own parameters kept."""
        return self.url(self.path, {**self.extra, **(params or {})})

    def with_filters(self, **changes: str | None) -> Ctx:
        return replace(self, filters=replace(self.filters, **changes))

    def rows(self, kind: str, where: Mapping[str, Any], window: str | None = None,
             params: Mapping[str, Any] | None = None, keep: bool = True) -> str:
        """The rows page listing what is behind a number: ``kind`` is charges, workloads or requests; ``where``
        the dimension values of the number's row; ``keep`` False for a number the request's filters do not
        narrow (a budget's spend)."""
        q: dict[str, Any] = {f"d.{k}": v for k, v in where.items() if v is not None}
        if window:
            q["window"] = window
        return self.url(f"/rows/{kind}", {**q, **(params or {})}, keep=keep)

    def cached(self, name: str, args: Hashable, compute: Callable[[], T]) -> T:
        """An analysis result shared by pages, computed once per data version (and scope, when ``args``
        holds it)."""
        return self.cache.get((self.version, name, args), compute)
