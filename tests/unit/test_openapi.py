"""The API description says what the routes answer: one id per operation, the error body for every
client error, no FastAPI 422 the hub never sends, and no body on a GET."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from dphub.api.app import create_app
from dphub.api.openapi import ERROR_SCHEMA
from dphub.config import Settings


@pytest.fixture(scope="module")
def description(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    # building it warns of a duplicate operation id, and warnings fail the tests
    return app.openapi()


def _operations(description: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in description["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_has_its_own_id(description: dict[str, Any]) -> None:
    ids = Counter(op["operationId"] for _, _, op in _operations(description))
    assert [i for i, n in ids.items() if n > 1] == []
    sql = description["paths"]["/api/datastore/sql"]
    assert sql["get"]["operationId"] == "sql_query_api_datastore_sql_get"
    assert sql["post"]["operationId"] == "sql_query_api_datastore_sql_post"
    files = description["paths"]["/{owner}/{name}/datapackage.json"]
    assert list(files) == ["get", "head"]
    assert files["head"]["operationId"] == "descriptor__owner___name__datapackage_json_head"


def test_every_operation_documents_the_error_body(description: dict[str, Any]) -> None:
    assert description["components"]["schemas"]["Error"] == ERROR_SCHEMA
    assert "HTTPValidationError" not in description["components"]["schemas"]
    for path, method, operation in _operations(description):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        assert "4XX" in responses, (method, path)
        assert "503" in responses, (method, path)
    ckan = description["paths"]["/api/3/action/{action}"]["get"]["responses"]["4XX"]
    schemas = ckan["content"]["application/json"]["schema"]["anyOf"]
    assert schemas[1] == {"$ref": "#/components/schemas/Error"}
    assert schemas[0]["properties"]["success"] == {"const": False}


def test_a_get_takes_no_body_and_the_post_beside_it_does(description: dict[str, Any]) -> None:
    for path, method, operation in _operations(description):
        if method in ("get", "head"):
            assert "requestBody" not in operation, (method, path)
    sql_body = description["paths"]["/api/datastore/sql"]["post"]["requestBody"]
    assert sql_body["content"]["application/json"]["schema"]["required"] == ["sql"]


def test_answers_that_are_not_json_say_so(description: dict[str, Any]) -> None:
    paths = description["paths"]
    assert set(paths["/api/dataproxy"]["get"]["responses"]["200"]["content"]) == {
        "application/json",
        "application/x-ndjson",
        "text/csv; charset=utf-8",
    }
    assert "*/*" in paths["/{owner}/{name}/r/{leaf}"]["get"]["responses"]["200"]["content"]
    assert "302" in paths["/{owner}/{name}/files/{path}"]["get"]["responses"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "content" not in paths["/api/auth/oidc/{provider}/login"]["get"]["responses"]["302"]


DESCRIBE = """
import json, sys, tempfile, pathlib
from dphub.api.app import create_app
from dphub.config import Settings
app = create_app(Settings(data_dir=pathlib.Path(tempfile.mkdtemp())))
json.dump(app.openapi(), sys.stdout)
"""


def test_the_description_is_the_same_in_every_process() -> None:
    """The order of a route's methods comes from a set, whose order changes with the hash seed
    of each process; test ids are made from the description, and xdist's processes must agree."""
    seen = []
    for seed in ("1", "2"):
        described = subprocess.run(
            [sys.executable, "-c", DESCRIBE],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=True,
            text=True,
            timeout=120,
        )
        document = json.loads(described.stdout)
        seen.append([(path, list(item)) for path, item in document["paths"].items()])
    assert seen[0] == seen[1]
