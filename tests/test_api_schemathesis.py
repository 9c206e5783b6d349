"""Schemathesis against the live server's own OpenAPI document: for every operation, requests generated from its
parameters and bodies (valid and not), sent with an admin token to the real server over the small two-team
store of ``api_fixtures``. No answer may be a 5xx, answers must be the declared content type, and a 200 must
match its declared schema. Expected failures are 400 (with the reason), 401/403/404 or FastAPI's 422; their
codes are not all declared per operation, so the status-code conformance check is not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_fixtures import build, settings
from api_server import serve
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from aifinops.config import Settings
from aifinops.interfaces.api.app import create_app

#: per operation, valid and invalid requests mixed (about 20 operations: some 700 requests)
EXAMPLES = 40


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation of the document the app serves (built without a store: nothing runs)."""
    doc = create_app(Path("unused.duckdb"), Settings()).openapi()
    return [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    db: Path = tmp_path_factory.mktemp("schemathesis") / "s.duckdb"
    keys = build(db)
    with serve(db, settings(db)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json"), keys["admin"]


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: v)
def test_no_request_the_schema_allows_gets_a_server_error(live, method: str, path: str) -> None:
    """Schemathesis's pytest loader (``from_fixture``) does not run under pytest 9, so each operation's
    strategy is driven by Hypothesis here, as its ``parametrize`` would."""
    schema, admin = live
    operation = schema[path][method]
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @given(strategy)
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {admin}"}, timeout=60,
                               checks=[not_a_server_error, content_type_conformance, response_schema_conformance])

    check()
