"""Hostile and broken queries: each is refused or stopped with a clear error, and every table stays
as it was."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli, new_publisher, write_package

DATA = b"name,value\na,1\nb,2\nc,3\n"


@pytest.fixture(scope="module")
def owner(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    """One publisher for the module: every attack runs against the same table."""
    publisher = new_publisher(hub, tmp_path_factory.mktemp("attacker-home"), "target")
    publisher.login()
    return publisher


@pytest.fixture(scope="module")
def table(owner: Publisher, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = write_package(
        tmp_path_factory.mktemp("t"),
        "target",
        files={"data/values.csv": DATA},
        descriptor={
            "name": "target",
            "resources": [{"name": "values", "path": "data/values.csv"}],
        },
    )
    cli("push", str(folder), env=owner.env)
    return f"{owner.username}/target/values"


def intact(hub: HubServer, rid: str) -> None:
    answer = httpx.get(f"{hub.url}/api/datastore/search", params={"resource_id": rid})
    assert answer.status_code == 200, answer.text
    assert answer.json()["records"] == [
        {"name": "a", "value": 1},
        {"name": "b", "value": 2},
        {"name": "c", "value": 3},
    ]


def refused(answer: httpx.Response, status: int = 400, code: str = "invalid-query") -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 10
    return str(error["message"])


SQL_ATTACKS = [
    'SELECT * FROM "{t}"; DROP TABLE "{t}"',
    'DROP TABLE "{t}"',
    'DELETE FROM "{t}"',
    "INSERT INTO \"{t}\" VALUES (1, 'x', 9)",
    'UPDATE "{t}" SET value = 0',
    "COPY (SELECT 1) TO '/tmp/dphub-owned.csv'",
    "ATTACH '/tmp/other.duckdb' AS other",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT * FROM pg_catalog.pg_tables",
    "SELECT * FROM information_schema.tables",
    "INSTALL httpfs",
    "PRAGMA database_list",
    "SET threads = 1",
    'SELECT * INTO stolen FROM "{t}"',
    'CREATE TABLE x AS SELECT * FROM "{t}"',
    'SELECT 1 /* ; */ ; SELECT * FROM "{t}"',
    "SELECT getenv('HOME')",
    "SELECT current_setting('data_directory')",
    'SELECT * FROM "someone/else/table"',
    "SELECT * FROM metastore_users",
    "SELEC nonsense",
]


@pytest.mark.parametrize("attack", SQL_ATTACKS)
def test_sql_attacks_are_refused(owner: Publisher, table: str, attack: str) -> None:
    hub = owner.hub
    answer = httpx.post(
        f"{hub.url}/api/datastore/sql", json={"sql": attack.format(t=table)}, timeout=30
    )
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["error"]["code"] in ("invalid-query", "table-not-found")
    intact(hub, table)


def test_a_query_that_never_ends_is_stopped(owner: Publisher, table: str) -> None:
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
        f' SELECT count(*) FROM n, "{table}"'
    )
    answer = httpx.post(f"{owner.hub.url}/api/datastore/sql", json={"sql": endless}, timeout=60)
    refused(answer, 408, "query-timeout")
    intact(owner.hub, table)


SEARCH_ATTACKS = [
    {"sort": "value; DROP TABLE x"},
    {"sort": 'value" desc; --'},
    {"sort": "nope"},
    {"fields": 'name" FROM x; --'},
    {"fields": "missing"},
    {"filters": json.dumps({"name\" = 'a' OR 1=1 --": "a"})},
    {"filters": json.dumps({"value": "not a number"})},
    {"filters": json.dumps({"value": {"between": [1, 2]}})},
    {"filters": "{not json"},
    {"filters": "[1, 2]"},
    {"records_format": "xml"},
]


@pytest.mark.parametrize("params", SEARCH_ATTACKS)
def test_search_attacks_are_refused(owner: Publisher, table: str, params: dict[str, str]) -> None:
    hub = owner.hub
    answer = httpx.get(
        f"{hub.url}/api/datastore/search", params={"resource_id": table, **params}, timeout=30
    )
    refused(answer)
    intact(hub, table)


def test_text_search_is_a_value_not_sql(owner: Publisher, table: str) -> None:
    hub = owner.hub
    for q in ("' OR 1=1 --", "%", "_", "a'; DROP TABLE x; --"):
        answer = httpx.get(
            f"{hub.url}/api/datastore/search", params={"resource_id": table, "q": q}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"] == 0
    intact(hub, table)


def test_bad_resource_ids_and_limits(owner: Publisher, table: str) -> None:
    hub = owner.hub
    url = f"{hub.url}/api/datastore/search"
    refused(httpx.get(url, params={"resource_id": "just-one-part"}))
    refused(httpx.get(url, params={"resource_id": "nobody/nothing/x"}), 404, "table-not-found")
    refused(httpx.get(url, params={"resource_id": f"{table}x"}), 404, "table-not-found")
    too_many = httpx.get(url, params={"resource_id": table, "limit": 32001})
    assert too_many.status_code == 400
    refused(httpx.post(f"{hub.url}/api/datastore/sql", json={"nothing": 1}))
    intact(hub, table)
