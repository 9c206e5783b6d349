"""Imports point one way: sources -> store -> analysis -> governance -> interfaces.

model/, registry.py and config.py may be imported from anywhere. A module importing a layer above
its own fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

import aifinops
from aifinops.sources.base import sources

PKG = Path(aifinops.__file__).parent
LAYERS = {"sources": 1, "store": 2, "analysis": 3, "waste": 3, "governance": 4, "interfaces": 5, "demo": 5}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "aifinops" else None


def _imports(path: Path) -> list[str]:
    rel = path.relative_to(PKG.parent).with_suffix("")
    pkg_parts = list(rel.parts[:-1])  # the package a relative import is relative to
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                out.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.append(node.module)
    return out


def test_no_upward_imports() -> None:
    bad = []
    for path in PKG.rglob("*.py"):
        mod = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        own = _layer(mod)
        if own is None:
            continue
        for imp in _imports(path):
            other = _layer(imp)
            if other is not None and other > own:
                bad.append(f"{mod} imports {imp}")
    assert bad == []


def test_every_source_is_documented_and_registered() -> None:
    names = sources.names()
    assert "focus" in names
    readme = (PKG.parent.parent / "README.md").read_text()
    for name, cls in sources:
        assert cls.__doc__, f"source {name} has no docstring"
        assert f"ingest {name}" in readme, f"README does not show `aifinops ingest {name}`"


def test_every_waste_rule_is_one_documented_file() -> None:
    """A rule is one file in waste/rules/ that registers itself, says what it targets and how it saves (its module
    docstring), and has a row in the README's rule table."""
    from aifinops.waste import registry as rules

    readme = (PKG.parent.parent / "README.md").read_text()
    files = {p.stem for p in (PKG / "waste" / "rules").glob("*.py") if not p.stem.startswith("_")}
    assert {cls.__module__.rsplit(".", 1)[-1] for _, cls in rules} == files
    for name, cls in rules:
        module = __import__(cls.__module__, fromlist=["_"])
        assert module.__doc__ and f"``{name}``" in module.__doc__, f"rule {name}: its module docstring names it"
        assert cls.title and cls.targets, f"rule {name} has no title or target"
        assert f"| `{name}` |" in readme, f"README's rule table has no row for {name}"
