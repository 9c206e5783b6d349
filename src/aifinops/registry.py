"""A registry is a dictionary with a decorator (the Cloud Custodian shape).

Sources, waste rules and policy checks each have one. Built-ins register through the same
``importlib.metadata`` entry-point group that third-party packages use, so adding a source is one new
file plus one entry-point line, and a plugin package needs no edit here. A built-in named ``package.*``
imports every module of that package: waste rules live one per file in ``aifinops.waste.rules``, so a new
rule is one new file and nothing else.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable, Iterator
from importlib import import_module
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class. ``@registry.register("name")`` stores the class and sets ``cls.kind = name``."""

    def __init__(self, group: str, builtins: tuple[str, ...] = ()) -> None:
        self.group = group  # entry-point group, e.g. "aifinops.sources"
        # Modules of the built-ins, imported even when the package runs from a source tree without
        # installed metadata; when installed, the same modules also arrive through the entry points.
        self.builtins = builtins
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            existing = self._items.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.group}: {name!r} is already registered by {existing.__qualname__}")
            cls.kind = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return deco

    def load_plugins(self) -> None:
        """Import every module named in the entry-point group; importing registers the class."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtins:
            if module.endswith(".*"):
                package = import_module(module[:-2])
                for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                    if not info.name.startswith("_"):
                        import_module(f"{package.__name__}.{info.name}")
            else:
                import_module(module)
        for ep in entry_points(group=self.group):
            ep.load()

    def get(self, name: str) -> type[T]:
        self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.group.rsplit('.', 1)[-1][:-1]} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def __iter__(self) -> Iterator[tuple[str, type[T]]]:
        self.load_plugins()
        return iter(sorted(self._items.items()))
