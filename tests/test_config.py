"""Settings precedence: aifinops.yaml < environment < flags; bad settings name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifinops.config import ConfigError, load_settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.db == Path("aifinops.duckdb") and s.ingest.strict is False


def test_precedence_file_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("aifinops.yaml").write_text("db: from-file.duckdb\nmemory_limit: 3GB\ningest:\n  strict: true\n")
    assert load_settings(environ={}).db == Path("from-file.duckdb")
    env = {"AIFINOPS_DB": "from-env.duckdb", "AIFINOPS_INGEST__STRICT": "false", "AIFINOPS_TAG_KEYS": "team, env"}
    s = load_settings(environ=env)
    assert s.db == Path("from-env.duckdb") and s.ingest.strict is False and s.memory_limit == "3GB"
    assert s.tag_keys == ["team", "env"]
    s = load_settings(flags={"db": Path("flag.duckdb"), "memory_limit": None}, environ=env)
    assert s.db == Path("flag.duckdb") and s.memory_limit == "3GB"


def test_explicit_config_path_via_env(tmp_path: Path) -> None:
    f = tmp_path / "other.yaml"
    f.write_text("tag_keys: [a, b]\n")
    assert load_settings(environ={"AIFINOPS_CONFIG": str(f)}).tag_keys == ["a", "b"]


@pytest.mark.parametrize(("text", "message"), [
    ("dbb: x\n", "dbb"),
    ("ingest:\n  strict: maybe\n", "ingest.strict"),
    ("- a\n- b\n", "mapping"),
    ("db: [unclosed\n", "not valid YAML"),
])
def test_bad_settings_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "aifinops.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(f, environ={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
