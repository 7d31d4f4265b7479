"""The object store or the database goes away: the API answers 503 with a clear error and
nothing half-written becomes visible."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubServer, Publisher, new_publisher, start_hub, stop_hub
from tests.e2e.test_bad_input import authorize, finalize, post_form
from tests.services import PostgresServer, S3Server, start_postgres, start_seaweedfs


@pytest.fixture
def own_services(tmp_path: Path) -> Iterator[tuple[HubServer, PostgresServer, S3Server]]:
    """A scale hub on a PostgreSQL and a SeaweedFS of its own, so that they can be stopped."""
    postgres = start_postgres()
    s3 = start_seaweedfs()
    hub = start_hub(
        tmp_path,
        {"DPHUB_DATABASE_URL": postgres.create_database(), **s3.storage_env(prefix="hub")},
        kind="scale",
    )
    try:
        yield hub, postgres, s3
    finally:
        stop_hub(hub)
        s3.stop()
        postgres.stop()


def test_store_and_database_outages_answer_503(
    own_services: tuple[HubServer, PostgresServer, S3Server], tmp_path: Path
) -> None:
    hub, postgres, s3 = own_services
    publisher: Publisher = new_publisher(hub, tmp_path / "home")
    data = b"a,b\n1,2\n"
    descriptor = json.dumps({"name": "outage", "resources": [{"name": "d", "path": "d.csv"}]})
    with publisher.client() as client:
        granted = authorize(
            client,
            publisher.username,
            "outage",
            {"datapackage.json": descriptor.encode(), "d.csv": data},
        )
        assert post_form(granted["datapackage.json"], descriptor.encode()).status_code == 204
        assert post_form(granted["d.csv"], data).status_code == 204

        s3.stop()
        answer = finalize(client, granted["datapackage.json"])
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert (error["code"], error["component"]) == ("service-unavailable", "bitstore")
        assert "try again" in error["message"].lower()
        assert answer.headers["retry-after"] == "5"
        probe = client.post(
            "/api/datastore/authorize",
            json={
                "metadata": {"owner": publisher.username, "name": "outage"},
                "filedata": {"x.csv": {"size": 3, "sha256": hashlib.sha256(b"x\n\n").hexdigest()}},
            },
        )
        assert probe.status_code == 503
        ready = httpx.get(f"{hub.url}/readyz", timeout=60)
        assert ready.status_code == 503
        assert ready.json()["checks"]["bitstore"]["ok"] is False
        assert ready.json()["checks"]["metastore"]["ok"] is True
        assert ready.json()["error"]["code"] == "service-unavailable"
        # nothing of the interrupted push is visible
        assert client.get(f"/api/package/{publisher.username}/outage").status_code == 404

        postgres.stop()
        down = client.get(f"/api/package/{publisher.username}")
        assert down.status_code == 503
        assert down.json()["error"]["component"] == "metastore"
        assert httpx.get(f"{hub.url}/api/package/{publisher.username}/outage").status_code == 503
        assert (
            httpx.get(f"{hub.url}/readyz", timeout=60).json()["checks"]["metastore"]["ok"] is False
        )
        assert httpx.get(f"{hub.url}/healthz").json() == {"status": "ok"}
