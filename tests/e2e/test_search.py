"""Package search end to end: packages pushed with the real CLI, found over HTTP and with
`dphub search`, on the embedded hub and the scale hub."""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubServer, Publisher, cli, new_publisher, write_package
from tests.unit.test_search import NASTY

SEARCH = "/api/search/package"


@dataclass
class World:
    hub: HubServer
    word: str
    """A word only this module's packages hold, so the shared hub's other packages stay out."""
    alice: Publisher
    """Publishes everything, and owns the organization."""
    carol: Publisher
    """A viewer in the organization."""
    bob: Publisher
    """Holds no role anywhere."""
    org: str
    root: Path

    def search(self, who: Publisher | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {who.token()}"} if who is not None else {}
        return httpx.get(f"{self.hub.url}{SEARCH}", params=params, headers=headers, timeout=60)

    def found(self, who: Publisher | None = None, **params: Any) -> dict[str, Any]:
        answer = self.search(who, **params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def push(self, name: str, *flags: str, readme: str | None = None, **descriptor: Any) -> None:
        files = {"values.csv": b"year,value\n2020,1\n2021,2\n"}
        files.update(descriptor.pop("files", {}))
        if readme is not None:
            files["README.md"] = readme.encode()
        resources = descriptor.pop("resources", None) or [
            {"name": "values", "path": "values.csv", "format": "csv"}
        ]
        folder = write_package(
            self.root / f"{name}-{random.randrange(10**9)}",
            name,
            files=files,
            descriptor={"name": name, "resources": resources, **descriptor},
        )
        pushed = cli("push", str(folder), *flags, env=self.alice.env)
        assert "SUCCEEDED" in pushed.stdout + pushed.stderr, pushed.stdout + pushed.stderr


def names(answer: dict[str, Any]) -> list[str]:
    return [f"{item['owner']}/{item['name']}" for item in answer["items"]]


def facet(answer: dict[str, Any], name: str) -> dict[str, int]:
    return {entry["value"]: entry["count"] for entry in answer["facets"][name]}


@pytest.fixture(scope="module")
def world(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("search")
    word = "srch" + "".join(random.choices(string.ascii_lowercase, k=10))
    alice, carol, bob = (
        new_publisher(hub, root / who, f"sr-{who}") for who in ("alice", "carol", "bob")
    )
    org = f"sr-org-{word[4:]}-{hub.kind}"
    with alice.client() as client:
        assert client.post("/api/org", json={"name": org}).status_code == 201
        added = client.put(f"/api/org/{org}/members/{carol.username}", json={"role": "viewer"})
        assert added.status_code == 200, added.text
    alice.login()
    world = World(hub, word, alice, carol, bob, org, root)
    world.push(
        "atlas",
        title=f"The {word} atlas of coasts",
        description="Coastlines measured around the world.",
        keywords=["geography", f"{word}kw"],
        licenses=[{"name": "CC0-1.0"}],
    )
    world.push(
        "notes",
        title="Field notes",
        description=f"Notes from the {word} surveys.",
        readme=f"# Notes\n\n{word} " * 6,
        licenses=[{"name": "ODC-BY-1.0"}],
        files={"notes.txt": b"plain words\n"},
        resources=[
            {"name": "values", "path": "values.csv"},
            {"name": "notes", "path": "notes.txt"},
        ],
    )
    world.push(
        "quiet",
        title="Quiet data",
        readme=f"Nothing to see, except {word}readme down here.",
        licenses=[{"name": "CC0-1.0"}],
    )
    world.push(
        "depths",
        title="Measurements",
        keywords=["geography"],
        licenses=[{"name": "CC0-1.0"}],
        files={"values.csv": f"year,{word}_depth\n2020,1\n".encode()},
        resources=[
            {
                "name": "values",
                "path": "values.csv",
                "schema": {
                    "fields": [
                        {"name": "year", "type": "integer"},
                        {"name": f"{word}_depth", "type": "integer"},
                    ]
                },
            }
        ],
    )
    world.push("vault", "--owner", org, "--private", title=f"The {word} vault")
    world.push("sketch", "--owner", org, "--unlisted", title=f"A {word} sketch")
    world.push("gone", title=f"The {word} gone")
    with alice.client() as client:
        assert client.delete(f"/api/package/{alice.username}/gone").status_code == 200
    return world


def test_finds_by_title_description_readme_keyword_and_field_name(world: World) -> None:
    a, w = world.alice.username, world.word
    assert names(world.found(q=f"{w}readme")) == [f"{a}/quiet"]
    assert names(world.found(q=f"{w}_depth")) == [f"{a}/depths"]
    assert names(world.found(q=f"{w} surveys")) == [f"{a}/notes"]
    assert names(world.found(q=f"{w}kw")) == [f"{a}/atlas"]
    assert names(world.found(q="coastlines measured", owner=a)) == [f"{a}/atlas"]
    assert names(world.found(q="notes", owner=a)) == [f"{a}/notes"]  # a resource's name
    found = world.found(q=w)
    assert set(names(found)) == {f"{a}/atlas", f"{a}/notes", f"{a}/depths"}
    (atlas,) = world.found(q=f"{w}kw")["items"]
    assert atlas["title"] == f"The {w} atlas of coasts"
    assert atlas["url"] == f"{world.hub.url}/{a}/atlas"
    assert atlas["licenses"] == ["CC0-1.0"]
    assert atlas["formats"] == ["csv"]
    assert atlas["keywords"] == ["geography", f"{w}kw"]
    assert atlas["findability"] == "published"
    assert httpx.get(atlas["url"], timeout=30).status_code == 200


def test_the_title_ranks_first(world: World) -> None:
    a = world.alice.username
    # notes holds the word seven times (description and README), atlas once, in its title
    assert names(world.found(q=world.word))[0] == f"{a}/atlas"
    mine = names(world.found(world.alice, q=world.word))
    titled = {f"{a}/atlas", f"{world.org}/vault", f"{world.org}/sketch"}
    assert set(mine[:3]) == titled
    assert set(mine[3:]) == {f"{a}/notes", f"{a}/depths"}


def test_facets_count_the_result(world: World) -> None:
    a, w = world.alice.username, world.word
    answer = world.found(q=w, limit=1)
    assert answer["total_count"] == 3
    assert len(answer["items"]) == 1
    assert facet(answer, "owner") == {a: 3}
    assert facet(answer, "license") == {"CC0-1.0": 2, "ODC-BY-1.0": 1}
    assert facet(answer, "format") == {"csv": 3, "txt": 1}
    assert facet(answer, "keyword") == {"geography": 2, f"{w}kw": 1}
    assert answer["facets"]["license"][0] == {"value": "CC0-1.0", "count": 2}
    assert "findability" not in answer["facets"]
    assert facet(world.found(world.bob, q=w), "findability") == {}
    mine = world.found(world.alice, q=w)
    assert facet(mine, "owner") == {a: 3, world.org: 2}
    assert facet(mine, "findability") == {"published": 3, "private": 1, "unlisted": 1}
    assert facet(world.found(world.carol, q=w), "findability") == {"private": 1, "unlisted": 1}


def test_filters_and_sorts(world: World) -> None:
    a, w = world.alice.username, world.word
    assert names(world.found(q=w, license="ODC-BY-1.0")) == [f"{a}/notes"]
    assert names(world.found(q=w, format="txt")) == [f"{a}/notes"]
    assert set(names(world.found(q=w, keyword="geography"))) == {f"{a}/atlas", f"{a}/depths"}
    both = world.found(q=w, license=["ODC-BY-1.0", "CC0-1.0"], keyword="geography")
    assert set(names(both)) == {f"{a}/atlas", f"{a}/depths"}
    assert names(world.found(q=w, owner=world.org)) == []
    assert names(world.found(q=w, sort="name")) == [f"{a}/atlas", f"{a}/depths", f"{a}/notes"]
    newest = names(world.found(q=w, sort="updated"))
    assert newest == [f"{a}/depths", f"{a}/notes", f"{a}/atlas"]  # pushed in the other order
    by_owner = names(world.found(owner=a))  # no q: every package of the owner, newest first
    assert by_owner == [f"{a}/depths", f"{a}/quiet", f"{a}/notes", f"{a}/atlas"]


def test_private_and_unlisted_packages_are_listed_only_to_their_members(world: World) -> None:
    org, w = world.org, world.word
    for member in (world.alice, world.carol):
        found = set(names(world.found(member, q=w)))
        assert {f"{org}/vault", f"{org}/sketch"} <= found, member.username
    for outsider in (None, world.bob):
        assert world.found(outsider, q=f"{w} vault")["total_count"] == 0
        assert world.found(outsider, q=f"{w} sketch")["total_count"] == 0
        assert world.found(outsider, owner=org)["total_count"] == 0
    # the unlisted package is readable by its URL all the same
    assert httpx.get(f"{world.hub.url}/api/package/{org}/sketch", timeout=30).status_code == 200
    assert names(world.found(world.carol, findability="private")) == [f"{org}/vault"]
    assert names(world.found(world.bob, findability="private")) == []
    refused = world.search(None, findability="private")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid-request"


def test_deleted_packages_are_gone_until_undeleted(world: World) -> None:
    a, w = world.alice.username, world.word
    for who in (None, world.alice):
        assert world.found(who, q=f"{w} gone")["total_count"] == 0
    with world.alice.client() as client:
        assert client.post(f"/api/package/{a}/gone/undelete").status_code == 200
        try:
            assert names(world.found(q=f"{w} gone")) == [f"{a}/gone"]
        finally:
            assert client.delete(f"/api/package/{a}/gone").status_code == 200
    assert world.found(q=f"{w} gone")["total_count"] == 0


def test_a_new_revision_replaces_what_is_found(world: World) -> None:
    w = world.word
    world.push("renamed", title=f"{w}first edition")
    assert names(world.found(q=f"{w}first")) == [f"{world.alice.username}/renamed"]
    world.push("renamed", title=f"{w}second edition")
    assert world.found(q=f"{w}first")["total_count"] == 0
    assert names(world.found(q=f"{w}second")) == [f"{world.alice.username}/renamed"]


def test_paging_past_the_end(world: World) -> None:
    pages = [world.found(q=world.word, limit=2, offset=offset) for offset in (0, 2, 3, 1000)]
    assert [len(p["items"]) for p in pages] == [2, 1, 0, 0]
    assert {p["total_count"] for p in pages} == {3}
    assert len({*names(pages[0]), *names(pages[1])}) == 3


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "many"},
        {"offset": "-5"},
        {"offset": str(2**40)},
        {"sort": "random"},
        {"facet_limit": "1000"},
        {"owner": "x" * 300},
    ],
)
def test_bad_parameters_are_refused(world: World, params: dict[str, str]) -> None:
    answer = world.search(None, **params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid-request"


def test_nasty_queries_answer_or_refuse_never_fail(world: World) -> None:
    outcomes: dict[int, int] = {}
    for typed in NASTY:
        for who in (None, world.alice):
            answer = world.search(who, q=typed)
            assert answer.status_code in (200, 400), (typed, answer.status_code, answer.text)
            if answer.status_code == 400:
                assert answer.json()["error"]["code"] == "invalid-query", typed
            else:
                assert isinstance(answer.json()["total_count"], int)
            outcomes[answer.status_code] = outcomes.get(answer.status_code, 0) + 1
    assert outcomes[200] > 0
    assert outcomes[400] > 0


def test_the_cli_searches(world: World) -> None:
    a, w = world.alice.username, world.word
    shown = cli("search", w, "--owner", a, env=world.alice.env)
    assert f"{a}/atlas" in shown.stdout
    assert "1-3 of 3 packages" in shown.stdout
    assert "license: CC0-1.0 (2), ODC-BY-1.0 (1)" in shown.stdout
    paged = cli("search", w, "--owner", a, "--limit", "1", env=world.alice.env)
    assert "1-1 of 3 packages; next page: --offset 1" in paged.stdout
    answer = json.loads(
        cli("search", w, "--license", "ODC-BY-1.0", "--json", env=world.alice.env).stdout
    )
    assert names(answer) == [f"{a}/notes"]
    mine = cli("search", "--findability", "private", "--owner", world.org, env=world.alice.env)
    assert f"{world.org}/vault (private)" in mine.stdout
    none = cli("search", f"{w}nothing", env=world.alice.env)
    assert "No packages found." in none.stdout
    bad = cli("search", "*", env=world.alice.env, check=False)
    assert bad.returncode == 1
    assert "no word to look for" in bad.stderr


def test_reindex_rebuilds_every_document(world: World) -> None:
    before = world.found(world.alice, q=world.word)
    rebuilt = world.hub.admin("search", "reindex")
    assert rebuilt.stdout.startswith("Indexed ")
    assert int(rebuilt.stdout.split()[1]) >= 8
    after = world.found(world.alice, q=world.word)
    assert names(after) == names(before)
    assert after["facets"] == before["facets"]
