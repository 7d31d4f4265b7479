"""CKAN's Action API end to end: packages pushed with the real CLI, read back with the real CKAN
client (``ckanapi.RemoteCKAN``) and plain HTTP, on the embedded hub and the scale hub."""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ckanapi import RemoteCKAN
from ckanapi.errors import (
    CKANAPIError,
    NotAuthorized,
    NotFound,
    SearchQueryError,
    ValidationError,
)

from dphub.compat.ckan import ckan_name, package_of
from tests.conftest import HubServer, Publisher, cli, fetch, new_publisher, write_package

RAIN = b"year,value\n2020,1.5\n2021,2.5\n2022,3.5\n"
STATIONS = b"station,height\nnorth,120\nsouth,45\n"
GDP = b"country,gdp\nfr,2.9\nde,4.1\n"
SECRET = b"code,count\nx,1\n"
ORG_TITLE = "CKAN Test Organization"


@dataclass
class World:
    hub: HubServer
    word: str
    """A keyword only this module's packages hold, so the shared hub's other packages stay out."""
    alice: Publisher
    """Publishes everything, and owns the organization."""
    bob: Publisher
    """Holds no role anywhere."""
    org: str

    @property
    def rain(self) -> str:
        return ckan_name(self.alice.username, "rain")

    @property
    def bank(self) -> str:
        return ckan_name(self.org, "world_bank.v2")

    @property
    def vault(self) -> str:
        return ckan_name(self.org, "vault")

    def ckan(self, who: Publisher | None = None, **kwargs: Any) -> RemoteCKAN:
        """The CKAN client, with the publisher's API key (what CKAN users hold) or anonymous."""
        return RemoteCKAN(self.hub.url, apikey=who.secret if who else None, **kwargs)

    def action(self, name: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.hub.url}/api/3/action/{name}", timeout=60, **kwargs)


def _push(root: Path, who: Publisher, name: str, *flags: str, **descriptor: Any) -> None:
    files = descriptor.pop("files")
    folder = write_package(root / name, name, files=files, descriptor={"name": name, **descriptor})
    pushed = cli("push", str(folder), *flags, env=who.env)
    assert "SUCCEEDED" in pushed.stdout + pushed.stderr, pushed.stdout + pushed.stderr


@pytest.fixture(scope="module")
def world(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("ckan")
    word = "ckan" + "".join(random.choices(string.ascii_lowercase, k=10))
    alice, bob = (new_publisher(hub, root / who, f"ck-{who}") for who in ("alice", "bob"))
    org = f"ck-org-{word[4:]}-{hub.kind}"
    with alice.client() as client:
        made = client.post("/api/org", json={"name": org, "title": ORG_TITLE})
        assert made.status_code == 201, made.text
    alice.login()
    _push(
        root,
        alice,
        "rain",
        title=f"Rain {word}",
        description="Rainfall by year.",
        keywords=["weather", f"{word}kw"],
        licenses=[
            {
                "name": "CC-BY-4.0",
                "title": "Creative Commons Attribution 4.0",
                "path": "https://creativecommons.org/licenses/by/4.0/",
            }
        ],
        files={"data/rain.csv": RAIN, "data/stations.csv": STATIONS},
        resources=[
            {"name": "values", "path": "data/rain.csv", "description": "Yearly rainfall."},
            {"name": "stations", "path": "data/stations.csv"},
        ],
    )
    _push(
        root,
        alice,
        "world_bank.v2",
        "--owner",
        org,
        title=f"World bank {word}",
        keywords=["finance", f"{word}kw"],
        licenses=[{"name": "ODC-BY-1.0"}],
        files={"gdp.csv": GDP},
        resources=[{"name": "gdp", "path": "gdp.csv"}],
    )
    _push(
        root,
        alice,
        "vault",
        "--owner",
        org,
        "--private",
        title=f"Vault {word}",
        keywords=[f"{word}kw"],
        files={"secret.csv": SECRET},
        resources=[{"name": "secret", "path": "secret.csv"}],
    )
    return World(hub, word, alice, bob, org)


# Reading


def test_status_show_in_the_envelope(world: World) -> None:
    status = world.ckan().action.status_show()
    assert status["site_url"] == world.hub.url
    assert status["ckan_version"].startswith("2.")
    assert "datastore" in status["extensions"]
    for path in ("/api/action/status_show", "/api/3/action/status_show"):
        answer = httpx.get(world.hub.url + path, timeout=30)
        assert answer.status_code == 200
        body = answer.json()
        assert body["success"] is True
        assert body["help"] == f"{world.hub.url}/api/3/action/help_show?name=status_show"
        assert body["result"] == status
    helped = world.action("help_show", params={"name": "package_show"}).json()
    assert helped["success"] is True
    assert "dataset" in helped["result"]


def test_package_show_of_a_users_package(world: World) -> None:
    a = world.alice.username
    dataset = world.ckan().action.package_show(id=world.rain)
    assert dataset["id"] == dataset["name"] == world.rain == f"{a}--rain"
    assert dataset["title"] == f"Rain {world.word}"
    assert dataset["notes"] == "Rainfall by year."
    assert dataset["license_id"] == "CC-BY-4.0"
    assert dataset["license_title"] == "Creative Commons Attribution 4.0"
    assert dataset["license_url"] == "https://creativecommons.org/licenses/by/4.0/"
    assert dataset["organization"] is None
    assert dataset["owner_org"] is None
    assert dataset["private"] is False
    assert dataset["state"] == "active"
    assert dataset["url"] == f"{world.hub.url}/{a}/rain"
    assert sorted(t["name"] for t in dataset["tags"]) == sorted(["weather", f"{world.word}kw"])
    assert dataset["num_resources"] == 2
    assert dataset["num_tags"] == 2
    assert dataset["metadata_modified"] >= dataset["metadata_created"]
    extras = {e["key"]: e["value"] for e in dataset["extras"]}
    assert extras["dphub_owner"] == a
    assert extras["dphub_name"] == "rain"
    values, stations = dataset["resources"]
    assert [values["position"], stations["position"]] == [0, 1]
    for resource, content, label in ((values, RAIN, "values"), (stations, STATIONS, "stations")):
        assert resource["id"] == f"{a}/rain/{label}"
        assert resource["name"] == label
        assert resource["package_id"] == world.rain
        assert resource["format"] == "CSV"
        assert resource["size"] == len(content)
        assert resource["hash"] == "sha256:" + hashlib.sha256(content).hexdigest()
        assert resource["datastore_active"] is True
        downloaded = fetch(resource["url"])
        assert downloaded.status_code == 200
        assert downloaded.content == content
    assert values["description"] == "Yearly rainfall."
    # the same dataset by owner/name, and with a token instead of an API key
    assert world.ckan().action.package_show(id=f"{a}/rain") == dataset
    with_token = RemoteCKAN(world.hub.url, apikey=world.alice.token())
    assert with_token.action.package_show(id=world.rain) == dataset


def test_package_show_of_an_organizations_package(world: World) -> None:
    dataset = world.ckan().action.package_show(id=world.bank)
    assert dataset["name"] == f"{world.org}--world__bank_dv2"
    assert dataset["organization"]["name"] == world.org
    assert dataset["organization"]["title"] == ORG_TITLE
    assert dataset["owner_org"] == world.org
    assert dataset["license_id"] == dataset["license_title"] == "ODC-BY-1.0"
    (gdp,) = dataset["resources"]
    assert gdp["id"] == f"{world.org}/world_bank.v2/gdp"
    assert fetch(gdp["url"]).content == GDP


def test_resource_show(world: World) -> None:
    ckan = world.ckan()
    dataset = ckan.action.package_show(id=world.rain)
    for resource in dataset["resources"]:
        assert ckan.action.resource_show(id=resource["id"]) == resource
    with pytest.raises(NotFound):
        ckan.action.resource_show(id=f"{world.alice.username}/rain/nothing")
    with pytest.raises(NotFound):
        ckan.action.resource_show(id="not-a-resource-id")


def test_package_list_lists_published_packages_in_order(world: World) -> None:
    ckan = world.ckan()
    names = ckan.action.package_list()
    assert world.rain in names
    assert world.bank in names
    assert world.vault not in names  # private
    pairs = [package_of(n) or ("", "") for n in names]
    assert ("", "") not in pairs
    assert pairs == sorted(pairs)
    at = names.index(world.rain)
    assert ckan.action.package_list(limit=2, offset=at) == names[at : at + 2]
    # the owner sees the same list: CKAN lists public datasets only
    assert world.ckan(world.alice).action.package_list() == names


def test_package_search(world: World) -> None:
    anonymous, alice = world.ckan(), world.ckan(world.alice)
    found = anonymous.action.package_search(q=world.word)
    assert found["count"] == 2
    assert {d["name"] for d in found["results"]} == {world.rain, world.bank}
    shown = anonymous.action.package_show(id=world.rain)
    assert next(d for d in found["results"] if d["name"] == world.rain) == shown
    # include_private: the packages the caller holds a role on as well
    mine = alice.action.package_search(q=world.word, include_private=True)
    assert {d["name"] for d in mine["results"]} == {world.rain, world.bank, world.vault}
    vault = next(d for d in mine["results"] if d["name"] == world.vault)
    assert vault["private"] is True
    assert alice.action.package_search(q=world.word)["count"] == 2
    assert anonymous.action.package_search(q=world.word, include_private=True)["count"] == 2
    assert (
        world.ckan(world.bob).action.package_search(q=world.word, include_private=True)["count"]
        == 2
    )


def test_package_search_filters(world: World) -> None:
    ckan, alice = world.ckan(), world.ckan(world.alice)

    def names(who: RemoteCKAN, fq: str, **params: Any) -> set[str]:
        found = who.action.package_search(q=world.word, fq=fq, **params)
        assert found["count"] == len(found["results"])
        return {d["name"] for d in found["results"]}

    assert names(ckan, f"organization:{world.org}") == {world.bank}
    assert names(alice, f"organization:{world.org}", include_private=True) == {
        world.bank,
        world.vault,
    }
    assert names(ckan, "tags:weather") == {world.rain}
    assert names(ckan, "tags:(weather OR finance)") == {world.rain, world.bank}
    assert names(ckan, 'license_id:"CC-BY-4.0"') == {world.rain}
    assert names(ckan, "res_format:CSV AND tags:finance") == {world.bank}
    assert names(ckan, f"+organization:{world.org} +dataset_type:dataset") == {world.bank}
    assert names(ckan, "dataset_type:harvest") == set()
    assert names(ckan, "tags:nothing-has-this") == set()


def test_package_search_facets_and_paging(world: World) -> None:
    ckan = world.ckan()
    found = ckan.call_action(
        "package_search",
        {
            "q": world.word,
            "facet.field": ["organization", "tags", "license_id", "res_format"],
            "sort": "name asc",
        },
    )
    assert found["facets"]["tags"] == {f"{world.word}kw": 2, "weather": 1, "finance": 1}
    assert found["facets"]["organization"] == {world.org: 1}
    assert found["facets"]["license_id"] == {"CC-BY-4.0": 1, "ODC-BY-1.0": 1}
    assert found["facets"]["res_format"] == {"CSV": 2}
    organization = found["search_facets"]["organization"]
    assert organization["items"] == [{"name": world.org, "display_name": ORG_TITLE, "count": 1}]
    assert [d["name"] for d in found["results"]] == [world.rain, world.bank]  # rain < world_bank
    # facet.field as JSON text, over GET as over POST
    by_get = world.ckan(get_only=True).call_action(
        "package_search", {"q": world.word, "facet.field": '["tags"]', "rows": "1"}
    )
    assert by_get["facets"] == {"tags": found["facets"]["tags"]}
    assert by_get["count"] == 2
    assert len(by_get["results"]) == 1
    pages = [
        ckan.action.package_search(q=world.word, sort="name asc", rows=1, start=start)
        for start in (0, 1, 2)
    ]
    assert [[d["name"] for d in p["results"]] for p in pages] == [[world.rain], [world.bank], []]
    assert {p["count"] for p in pages} == {2}
    assert ckan.action.package_search(q=world.word, rows=5000)["count"] == 2
    assert ckan.action.package_search(q=world.word, rows=0)["results"] == []


def test_organizations(world: World) -> None:
    anonymous, alice = world.ckan(), world.ckan(world.alice)
    assert world.org in anonymous.action.organization_list(limit=1000)
    listed = anonymous.action.organization_list(
        all_fields=True, organizations=[world.org], sort="name asc"
    )
    assert [(o["name"], o["title"], o["package_count"]) for o in listed] == [
        (world.org, ORG_TITLE, 1)
    ]
    assert (
        alice.action.organization_list(all_fields=True, organizations=[world.org])[0][
            "package_count"
        ]
        == 2
    )
    shown = anonymous.action.organization_show(id=world.org, include_datasets=True)
    assert shown["name"] == world.org
    assert shown["title"] == ORG_TITLE
    assert shown["is_organization"] is True
    assert shown["package_count"] == 1
    assert [d["name"] for d in shown["packages"]] == [world.bank]
    assert "users" not in shown
    own = alice.action.organization_show(id=world.org, include_datasets=True)
    assert [d["name"] for d in own["packages"]] == [world.vault, world.bank]
    assert own["users"] == [{"name": world.alice.username, "capacity": "admin"}]
    assert "packages" not in alice.action.organization_show(id=world.org)
    with pytest.raises(NotFound):
        anonymous.action.organization_show(id=world.alice.username)  # a user
    with pytest.raises(NotFound):
        anonymous.action.organization_show(id=f"{world.org}-nothing")


def test_datastore_search(world: World) -> None:
    ckan = world.ckan()
    values = ckan.action.package_show(id=world.rain)["resources"][0]
    found = ckan.action.datastore_search(resource_id=values["id"])
    assert found["resource_id"] == values["id"]
    assert found["fields"] == [{"id": "year", "type": "int"}, {"id": "value", "type": "numeric"}]
    assert found["records"] == [
        {"year": 2020, "value": 1.5},
        {"year": 2021, "value": 2.5},
        {"year": 2022, "value": 3.5},
    ]
    assert found["total"] == 3
    assert found["limit"] == 100
    assert found["offset"] == 0
    assert found["_links"]["start"].startswith("/api/3/action/datastore_search?")
    filtered = ckan.action.datastore_search(
        resource_id=values["id"], filters={"year": [2021, 2022]}, sort="year desc", limit=1
    )
    assert filtered["records"] == [{"year": 2022, "value": 3.5}]
    assert filtered["total"] == 2
    following = httpx.get(world.hub.url + filtered["_links"]["next"], timeout=30).json()
    assert following["result"]["records"] == [{"year": 2021, "value": 2.5}]
    chosen = ckan.action.datastore_search(
        resource_id=values["id"], q="2.5", fields=["value"], include_total=False
    )
    assert chosen["records"] == [{"value": 2.5}]
    assert "total" not in chosen
    lists = ckan.action.datastore_search(resource_id=values["id"], records_format="lists", offset=2)
    assert lists["records"] == [[2022, 3.5]]
    assert lists["total"] == 3
    by_get = world.ckan(get_only=True).action.datastore_search(
        resource_id=values["id"], filters='{"year": 2020}'
    )
    assert by_get["records"] == [{"year": 2020, "value": 1.5}]


def test_datastore_search_sql(world: World) -> None:
    ckan = world.ckan()
    rid = f"{world.alice.username}/rain/values"
    sql = f'SELECT year, value * 2 AS double FROM "{rid}" WHERE year > 2020 ORDER BY year'
    found = ckan.action.datastore_search_sql(sql=sql)
    assert found["sql"] == sql
    assert found["records"] == [{"year": 2021, "double": 5.0}, {"year": 2022, "double": 7.0}]
    assert [f["id"] for f in found["fields"]] == ["year", "double"]
    assert found["records_truncated"] is False
    joined = ckan.action.datastore_search_sql(
        sql=f'SELECT count(*) AS n FROM "{rid}", "{world.org}/world_bank.v2/gdp"'
    )
    assert joined["records"] == [{"n": 6}]


def test_an_unlisted_package_is_read_by_name_but_not_listed(
    world: World, publisher: Publisher, tmp_path: Path
) -> None:
    word = "unl" + "".join(random.choices(string.ascii_lowercase, k=10))
    _push(
        tmp_path,
        publisher,
        "draft.v1",
        "--unlisted",
        title=f"Draft {word}",
        files={"values.csv": RAIN},
        resources=[{"name": "values", "path": "values.csv"}],
    )
    name = ckan_name(publisher.username, "draft.v1")
    assert name == f"{publisher.username}--draft_dv1"
    anonymous, own = world.ckan(), world.ckan(publisher)
    shown = anonymous.action.package_show(id=name)
    assert shown["private"] is False
    assert {e["key"]: e["value"] for e in shown["extras"]}["dphub_findability"] == "unlisted"
    assert name not in anonymous.action.package_list()
    assert anonymous.action.package_search(q=word)["count"] == 0
    assert own.action.package_search(q=word)["count"] == 0  # CKAN's default: public ones only
    found = own.action.package_search(q=word, include_private=True)
    assert [d["name"] for d in found["results"]] == [name]
    rid = shown["resources"][0]["id"]
    assert anonymous.action.datastore_search(resource_id=rid)["total"] == 3


# Private packages: not found to anyone without a role, never revealed


def test_private_package_is_not_found_to_others(world: World) -> None:
    rid = f"{world.org}/vault/secret"
    owner = world.ckan(world.alice)
    assert owner.action.package_show(id=world.vault)["private"] is True
    assert owner.action.datastore_search(resource_id=rid)["records"] == [{"code": "x", "count": 1}]
    absent = ckan_name(world.org, "never-pushed")
    for who in (None, world.bob):
        ckan = world.ckan(who)
        messages = []
        for dataset in (world.vault, absent):
            with pytest.raises(NotFound) as caught:
                ckan.action.package_show(id=dataset)
            messages.append(str(caught.value).replace(dataset, "X"))
        assert messages[0] == messages[1]
        with pytest.raises(NotFound):
            ckan.action.resource_show(id=rid)
        with pytest.raises(NotFound):
            ckan.action.datastore_search(resource_id=rid)
        with pytest.raises(NotFound):
            ckan.action.datastore_search_sql(sql=f'SELECT * FROM "{rid}"')
    answer = world.action("package_show", params={"id": world.vault})
    assert answer.status_code == 404
    body = answer.json()
    assert body["success"] is False
    assert body["error"]["__type"] == "Not Found Error"
    assert "vault" not in body["error"]["message"].replace(world.vault, "")


# Bad input: each through ckanapi's exceptions and CKAN's statuses


def test_unknown_action(world: World) -> None:
    with pytest.raises(CKANAPIError) as caught:
        world.ckan().action.package_create(name="x")
    assert type(caught.value) is CKANAPIError
    assert "Action name not known: package_create" in str(caught.value)
    answer = world.action("no_such_action")
    assert answer.status_code == 400
    assert (
        answer.json()["error"]["message"] == "Bad request - Action name not known: no_such_action"
    )
    assert answer.json()["success"] is False


def test_missing_id(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        world.ckan().action.package_show()
    assert caught.value.error_dict["id"] == ["Missing value"]
    assert caught.value.error_dict["__type"] == "Validation Error"
    assert world.action("package_show").status_code == 409


def test_invalid_rows(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        world.ckan().action.package_search(rows=-1)
    assert "rows" in caught.value.error_dict
    with pytest.raises(ValidationError) as caught:
        world.ckan().action.package_search(start="many")
    assert "start" in caught.value.error_dict
    assert world.action("package_search", params={"rows": "-1"}).status_code == 409


@pytest.mark.parametrize(
    "fq",
    ["nosuchfield:x", "organization:(a OR", "tags", "tags:a tags:b", "tags:a OR tags:b"],
)
def test_bad_fq(world: World, fq: str) -> None:
    with pytest.raises(SearchQueryError) as caught:
        world.ckan().action.package_search(fq=fq)
    assert "fq" in str(caught.value)
    answer = world.action("package_search", params={"fq": fq})
    assert answer.status_code == 400
    assert answer.json()["error"]["__type"] == "Search Query Error"


def test_bad_sort_and_facets(world: World) -> None:
    with pytest.raises(SearchQueryError):
        world.ckan().action.package_search(sort="popularity desc")
    with pytest.raises(SearchQueryError):
        world.ckan().call_action("package_search", {"facet.field": ["nonsense"]})
    with pytest.raises(ValidationError) as caught:
        world.ckan().call_action("package_search", {"facet.field": "[not json"})
    assert "facet.field" in caught.value.error_dict


def test_bad_filters(world: World) -> None:
    rid = f"{world.alice.username}/rain/values"
    ckan = world.ckan()
    with pytest.raises(ValidationError) as caught:
        ckan.action.datastore_search(resource_id=rid, filters="{not json")
    assert "filters" in caught.value.error_dict
    with pytest.raises(ValidationError) as caught:
        ckan.action.datastore_search(resource_id=rid, filters={"nothing": 1})
    assert "filters" in caught.value.error_dict
    with pytest.raises(ValidationError) as caught:
        ckan.action.datastore_search(resource_id=rid, filters={"year": "not a year"})
    assert "filters" in caught.value.error_dict
    with pytest.raises(ValidationError) as caught:
        ckan.action.datastore_search(resource_id=rid, limit=-5)
    assert "limit" in caught.value.error_dict
    with pytest.raises(ValidationError) as caught:
        ckan.action.datastore_search()
    assert caught.value.error_dict["resource_id"] == ["Missing value"]
    answer = world.action("datastore_search", params={"resource_id": rid, "filters": "[1"})
    assert answer.status_code == 409


def test_unknown_resource_id(world: World) -> None:
    ckan = world.ckan()
    for rid in (f"{world.alice.username}/rain/nothing", f"{world.alice.username}/nothing/values"):
        with pytest.raises(NotFound):
            ckan.action.datastore_search(resource_id=rid)
    answer = world.action("datastore_search", params={"resource_id": "a/b/c"})
    assert answer.status_code == 404
    assert answer.json()["error"]["__type"] == "Not Found Error"


@pytest.mark.parametrize(
    "sql",
    [
        'DELETE FROM "{rid}"',
        'DROP TABLE "{rid}"',
        'SELECT * FROM "{rid}"; DELETE FROM "{rid}"',
        "SELECT * FROM pg_catalog.pg_tables",
    ],
)
def test_only_select_sql(world: World, sql: str) -> None:
    rid = f"{world.alice.username}/rain/values"
    with pytest.raises(ValidationError) as caught:
        world.ckan().action.datastore_search_sql(sql=sql.format(rid=rid))
    assert caught.value.error_dict["__type"] == "Validation Error"
    answer = world.action("datastore_search_sql", "POST", json={"sql": sql.format(rid=rid)})
    assert answer.status_code == 409
    # the table is as it was
    count = world.ckan().action.datastore_search_sql(sql=f'SELECT count(*) AS n FROM "{rid}"')
    assert count["records"] == [{"n": 3}]


def test_missing_sql(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        world.ckan().action.datastore_search_sql()
    assert caught.value.error_dict["sql"] == ["Missing value"]


def test_a_bad_token_is_refused(world: World) -> None:
    with pytest.raises(NotAuthorized):
        RemoteCKAN(world.hub.url, apikey="not-a-token").action.package_list()
    answer = world.action("package_list", headers={"Authorization": "Bearer not.a.token"})
    assert answer.status_code == 403
    assert answer.json()["error"]["__type"] == "Authorization Error"


def test_a_body_that_is_not_a_json_object(world: World) -> None:
    for content in (b"{not json", b"[1, 2]"):
        answer = world.action(
            "package_list",
            "POST",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400
        body = answer.json()
        assert body["success"] is False
        assert body["error"]["message"].startswith("Bad request - JSON Error")
    form = world.action(
        "package_show",
        "POST",
        content=f"id={world.rain}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.json()["result"]["name"] == world.rain
