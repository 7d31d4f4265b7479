"""The activity stream over HTTP and the CLI, on both hubs: pushes, processing, failures and
findability changes recorded newest first; private packages' events hidden from everyone without
a role; paging; bad queries answered 400."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli, write_package

CSV = b"year,value\n2020,1\n2021,2\n"
SCHEMA = {"fields": [{"name": "year", "type": "integer"}, {"name": "value", "type": "integer"}]}


def package(root: Path, name: str, data: bytes = CSV) -> Path:
    resource = {"name": "values", "path": "values.csv", "schema": SCHEMA}
    return write_package(
        root, name, files={"values.csv": data}, descriptor={"name": name, "resources": [resource]}
    )


def get_events(
    hub: HubServer, path: str = "/api/events", token: str | None = None, **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{hub.url}{path}", params=params, headers=headers, timeout=30)


def kinds(answer: httpx.Response) -> list[tuple[str, str | None, int | None]]:
    assert answer.status_code == 200, answer.text
    return [(e["kind"], e["name"], e["revision"]) for e in answer.json()["events"]]


def test_a_push_is_pushed_then_processed_and_a_failed_one_failed(
    publisher: Publisher, tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    cli("push", str(package(tmp_path / "v1", "rain")), env=publisher.env)
    bad = package(tmp_path / "v2", "rain", data=CSV + b"twenty,3\n")
    assert cli("push", str(bad), env=publisher.env, check=False).returncode == 1

    answer = get_events(hub, f"/api/package/{owner}/rain/events")
    assert kinds(answer) == [
        ("failed", "rain", 2),
        ("pushed", "rain", 2),
        ("processed", "rain", 1),
        ("pushed", "rain", 1),
    ]
    failed, pushed, processed, first = answer.json()["events"]
    assert answer.json()["next"] is None
    assert first["owner"] == owner
    assert first["actor"] == owner
    assert first["detail"]["files"] == 2
    assert processed["actor"] is None
    assert failed["id"] > pushed["id"] > processed["id"] > first["id"]
    assert "created_at" in failed
    assert answer.headers["cache-control"] == "no-store"
    # The same stream through /api/events, by package or by owner, and one kind only.
    assert get_events(hub, owner=owner, package="rain").json() == answer.json()
    assert kinds(get_events(hub, owner=owner)) == kinds(answer)
    assert kinds(get_events(hub, owner=owner, kind="failed,processed")) == [
        ("failed", "rain", 2),
        ("processed", "rain", 1),
    ]
    assert ("processed", "rain", 1) in kinds(get_events(hub, limit=200))


def test_a_findability_change_is_an_event(publisher: Publisher, tmp_path: Path) -> None:
    hub, owner = publisher.hub, publisher.username
    cli("push", str(package(tmp_path / "p", "moving")), env=publisher.env)
    with publisher.client() as client:
        changed = client.patch(f"/api/package/{owner}/moving", json={"findability": "unlisted"})
        assert changed.status_code == 200, changed.text
    found = get_events(hub, owner=owner, package="moving", kind="findability-changed").json()
    (event,) = found["events"]
    assert event["detail"] == {"before": "published", "after": "unlisted"}
    assert event["actor"] == owner
    # Unlisted: readable by name, no longer in the owner's stream for others.
    assert kinds(get_events(hub, owner=owner)) == []
    assert len(kinds(get_events(hub, f"/api/package/{owner}/moving/events"))) == 3


def test_a_private_packages_events_reach_only_those_with_a_role(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    cli("push", str(package(tmp_path / "s", "secret")), "--private", env=publisher.env)
    cli("push", str(package(tmp_path / "o", "open")), env=publisher.env)
    stranger = make_publisher().token()
    collaborator = make_publisher()
    with publisher.client() as client:
        path = f"/api/package/{owner}/secret/collaborators/{collaborator.username}"
        assert client.put(path, json={"role": "viewer"}).status_code == 200

    for token in (None, stranger):
        assert {name for _, name, _ in kinds(get_events(hub, token=token, owner=owner))} == {"open"}
        hub_wide = get_events(hub, token=token)
        assert hub_wide.status_code == 200
        # other publishers may have packages of that name: the owner tells them apart
        assert (owner, "secret") not in {(e["owner"], e["name"]) for e in hub_wide.json()["events"]}
        for hidden in (
            get_events(hub, f"/api/package/{owner}/secret/events", token=token),
            get_events(hub, token=token, owner=owner, package="secret"),
        ):
            assert hidden.status_code == 404
            assert hidden.json()["error"]["code"] == "package-not-found"
        # Hidden the same way as a package that never existed.
        never = get_events(hub, f"/api/package/{owner}/never-was/events", token=token)
        assert never.status_code == 404
        assert never.json() == hidden.json()

    for token in (publisher.token(), collaborator.token()):
        seen = kinds(get_events(hub, token=token, owner=owner))
        assert ("processed", "secret", 1) in seen
        assert ("processed", "open", 1) in seen
        mine = get_events(hub, f"/api/package/{owner}/secret/events", token=token)
        assert kinds(mine) == [("processed", "secret", 1), ("pushed", "secret", 1)]


def test_pages_run_newest_first_until_next_is_null(publisher: Publisher, tmp_path: Path) -> None:
    hub, owner = publisher.hub, publisher.username
    folder = package(tmp_path / "p", "paged")
    for _ in range(3):
        (folder / "values.csv").write_bytes((folder / "values.csv").read_bytes() + b"2022,3\n")
        cli("push", str(folder), env=publisher.env)
    everything = kinds(get_events(hub, owner=owner))
    assert len(everything) == 6
    pages: list[tuple[str, str | None, int | None]] = []
    before = None
    while True:
        params: dict[str, Any] = {"owner": owner, "limit": 4}
        if before is not None:
            params["before"] = before
        answer = get_events(hub, **params)
        pages.extend(kinds(answer))
        before = answer.json()["next"]
        if before is None:
            break
    assert pages == everything
    assert [r for _, _, r in everything] == [3, 3, 2, 2, 1, 1]
    last_id = get_events(hub, owner=owner).json()["events"][-1]["id"]
    assert kinds(get_events(hub, owner=owner, before=last_id)) == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "many"},
        {"before": "abc"},
        {"before": "0"},
        {"before": str(2**70)},
        {"kind": "exploded"},
        {"kind": "pushed,'; DROP TABLE events;--"},
        {"package": "rain"},
        {"owner": "Not A Name!"},
        {"owner": "x" * 5000},
    ],
)
def test_bad_queries_are_answered_400(hub: HubServer, params: dict[str, str]) -> None:
    answer = get_events(hub, **params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] in ("invalid-request", "invalid-query")


def test_the_cli_shows_the_stream(publisher: Publisher, tmp_path: Path) -> None:
    owner = publisher.username
    cli("push", str(package(tmp_path / "p", "shown")), env=publisher.env)
    table = cli("events", f"{owner}/shown", env=publisher.env).stdout
    lines = [line for line in table.splitlines() if f"{owner}/shown" in line]
    assert len(lines) == 2
    assert "processed" in lines[0]
    assert "pushed" in lines[1]
    assert "files=2" in lines[1]
    answer = json.loads(cli("events", owner, "--json", "--limit", "1", env=publisher.env).stdout)
    assert [e["kind"] for e in answer["events"]] == ["processed"]
    assert answer["next"] is not None
    older = cli("events", owner, "--limit", "1", env=publisher.env).stdout
    assert f"dphub events {owner} --before {answer['next']}" in older
    only = cli("events", owner, "--kind", "pushed", "--json", env=publisher.env).stdout
    assert [e["kind"] for e in json.loads(only)["events"]] == ["pushed"]
    refused = cli("events", "Bad Name/x", env=publisher.env, check=False)
    assert refused.returncode != 0
    assert "OWNER or OWNER/NAME" in refused.stderr
