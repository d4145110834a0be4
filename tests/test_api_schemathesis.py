"""Property-based fuzzing of every operation in the app's own OpenAPI document: no input makes it fail
(5xx), and every answer is one the document describes (status code, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from common.settings import Settings
from tests.api_world import World
from tests.helpers import ApiServer
from tracking_api.app import create_app

# The document needs no database; the calls go to a real server on a real, populated one. Streams never
# end: they are left out here and covered by tests/test_api_live.py.
schema = schemathesis.openapi.from_dict(create_app(Settings(database_url="postgresql://unused")).openapi()).exclude(
    path_regex=r".*/stream$")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def server(world: World) -> Iterator[ApiServer]:
    # Rate limits off: the fuzzer sends far more than a client may.
    with ApiServer(create_app(Settings(database_url=world.db_url, api_rate_limit_per_minute=0,
                                              api_auth_failures_per_minute=0))) as running:
        yield running


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail_and_every_answer_is_documented(case: schemathesis.Case, world: World,
                                                                     server: ApiServer) -> None:
    for role in ("admin", "acme", None):  # all-seeing staff, a customer, nobody
        case.call_and_validate(base_url=server.url, headers=world.headers(role), checks=CHECKS)


def test_every_json_answer_has_a_schema() -> None:
    """A 2XX answer without a schema would pass the conformance check above unchecked."""
    document = create_app(Settings(database_url="postgresql://unused")).openapi()
    bare = [f"{method.upper()} {path}" for path, operations in document["paths"].items()
            for method, operation in operations.items()
            for status, answer in operation["responses"].items() if status.startswith("2")
            for media, content in answer.get("content", {}).items()
            if "json" in media and not content.get("schema", {}).get("$ref") and "properties" not in content.get(
                "schema", {})]
    assert not bare, bare
