"""Every pushed revision is processed: validated, derived, previewed, zipped and loaded, then
queried by the datastore API, SQL and the CLI, on both setups."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import HubServer, Publisher, cli, fetch, write_package

RAIN = (
    "station;year;rain;checked\n"
    "oslo;2020;712.5;true\n"
    "oslo;2021;801.25;false\n"
    "bergen;2020;2250;true\n"
    'bergen;2021;"1999.5";true\n'
    "tromsø;2020;1030;false\n"
).encode()
SCHEMA = {
    "fields": [
        {"name": "station", "type": "string"},
        {"name": "year", "type": "integer"},
        {"name": "rain", "type": "number"},
        {"name": "checked", "type": "boolean"},
    ]
}


def rain_package(root: Path, name: str, data: bytes = RAIN, schema: Any = SCHEMA) -> Path:
    resource: dict[str, Any] = {"name": "rain", "path": "data/rain.csv"}
    if schema is not None:
        resource["schema"] = schema
    return write_package(
        root,
        name,
        files={"data/rain.csv": data},
        descriptor={"name": name, "title": "Rain", "resources": [resource]},
    )


def search(hub: HubServer, **params: Any) -> httpx.Response:
    return httpx.get(f"{hub.url}/api/datastore/search", params=params, timeout=30)


def sql(hub: HubServer, statement: str) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/datastore/sql", json={"sql": statement}, timeout=30)


def test_push_waits_for_processing_and_shows_the_steps(
    publisher: Publisher, tmp_path: Path
) -> None:
    folder = rain_package(tmp_path / "rain", "rain")
    out = cli("push", str(folder), env=publisher.env).stdout
    assert "SUCCEEDED" in out
    for title in ("Validate", "Derive", "Preview", "Zip", "Load"):
        assert title in out
    hub = publisher.hub
    status = httpx.get(f"{hub.url}/api/package/{publisher.username}/rain/revisions/1").json()
    assert status["state"] == "SUCCEEDED"
    assert {s["status"] for s in status["pipelines"].values()} == {"SUCCEEDED"}
    assert status["report"]["valid"] is True
    assert status["report"]["tasks"][0]["stats"]["rows"] == 5
    assert status["pipelines"]["load"]["stats"]["rows"] == 5
    assert isinstance(status["pipelines"]["validate"]["seconds"], float)


def test_derived_files_are_served_and_listed(publisher: Publisher, tmp_path: Path) -> None:
    cli("push", str(rain_package(tmp_path / "rain", "rain")), env=publisher.env)
    hub, owner = publisher.hub, publisher.username
    base = f"{hub.url}/{owner}/rain"
    derived_csv = fetch(f"{base}/r/rain_csv.csv")
    assert derived_csv.status_code == 200
    rows = list(csv.reader(io.StringIO(derived_csv.text)))
    assert rows[0] == ["station", "year", "rain", "checked"]
    assert rows[3] == ["bergen", "2020", "2250.0", "true"]
    assert rows[5][0] == "tromsø"
    as_json = fetch(f"{base}/r/rain.json").json()
    assert as_json[1] == {"station": "oslo", "year": 2021, "rain": 801.25, "checked": False}
    archive = zipfile.ZipFile(io.BytesIO(fetch(f"{base}/r/datapackage_zip.zip").content))
    assert archive.read("data/rain.csv") == RAIN
    assert json.loads(archive.read("datapackage.json"))["name"] == "rain"
    descriptor = fetch(f"{base}/datapackage.json").json()
    names = [r["name"] for r in descriptor["resources"]]
    assert names[0] == "rain"
    assert {"rain_csv", "rain_json", "datapackage_zip"} <= set(names)
    derived = next(r for r in descriptor["resources"] if r["name"] == "rain_json")
    assert derived["dphub"] == {"type": "derived/json", "derivedFrom": ["rain"]}
    assert fetch(derived["path"]).json() == as_json


def test_a_schema_is_inferred_when_none_is_given(publisher: Publisher, tmp_path: Path) -> None:
    cli("push", str(rain_package(tmp_path / "rain", "inferred", schema=None)), env=publisher.env)
    show = fetch(f"{publisher.hub.url}/api/package/{publisher.username}/inferred").json()
    fields = show["descriptor"]["resources"][0]["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields] == [
        ("station", "string"),
        ("year", "integer"),
        ("rain", "number"),
        ("checked", "boolean"),
    ]


def test_search_filters_sorts_and_pages(publisher: Publisher, tmp_path: Path) -> None:
    cli("push", str(rain_package(tmp_path / "rain", "rain")), env=publisher.env)
    hub, rid = publisher.hub, f"{publisher.username}/rain/rain"
    everything = search(hub, resource_id=rid).json()
    assert everything["total"] == 5
    assert [f["id"] for f in everything["fields"]] == ["station", "year", "rain", "checked"]
    assert everything["records"][0] == {
        "station": "oslo",
        "year": 2020,
        "rain": 712.5,
        "checked": True,
    }
    bergen = search(hub, resource_id=rid, filters=json.dumps({"station": "bergen"})).json()
    assert bergen["total"] == 2
    assert {r["year"] for r in bergen["records"]} == {2020, 2021}
    wet = search(
        hub, resource_id=rid, filters=json.dumps({"rain": {"gte": 1000}}), sort="rain desc"
    ).json()
    assert [r["rain"] for r in wet["records"]] == [2250.0, 1999.5, 1030.0]
    page = search(hub, resource_id=rid, sort="year, station", limit=2, offset=2).json()
    assert [(r["station"], r["year"]) for r in page["records"]] == [
        ("tromsø", 2020),
        ("bergen", 2021),
    ]
    assert page["next"]
    assert "offset=4" in page["next"]
    text = search(hub, resource_id=rid, q="TROMS").json()
    assert [r["station"] for r in text["records"]] == ["tromsø"]
    lists = search(hub, resource_id=rid, fields="year,station", records_format="lists", limit=1)
    assert lists.json()["records"] == [[2020, "oslo"]]
    pinned = search(hub, resource_id=f"{publisher.username}/rain@1/0").json()
    assert pinned["total"] == 5
    assert pinned["total_was_estimated"] is False
    # above the threshold the total comes from a sample of the table (all of it, at 5 rows)
    estimated = search(
        hub,
        resource_id=rid,
        filters=json.dumps({"station": "bergen"}),
        total_estimation_threshold=0,
    ).json()
    assert estimated["total"] == 2
    assert estimated["total_was_estimated"] is True


def test_sql_over_tables(publisher: Publisher, tmp_path: Path) -> None:
    cli("push", str(rain_package(tmp_path / "rain", "rain")), env=publisher.env)
    rid = f"{publisher.username}/rain/rain"
    answer = sql(
        publisher.hub,
        f'SELECT year, round(sum(rain), 2) AS total FROM "{rid}" GROUP BY year ORDER BY year',
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [f["id"] for f in body["fields"]] == ["year", "total"]
    assert body["records"] == [
        {"year": 2020, "total": 3992.5},
        {"year": 2021, "total": 2800.75},
    ]
    got = httpx.get(
        f"{publisher.hub.url}/api/datastore/sql",
        params={"sql": f'SELECT count(*) AS n FROM "{rid}" WHERE checked'},
    )
    assert got.json()["records"] == [{"n": 3}]


def test_cli_query_prints_tables_and_csv(publisher: Publisher, tmp_path: Path) -> None:
    cli("push", str(rain_package(tmp_path / "rain", "rain")), env=publisher.env)
    owner = publisher.username
    table = cli("query", f"{owner}/rain", "--filter", "station=oslo", env=publisher.env).stdout
    assert "712.5" in table
    assert "801.25" in table
    assert "bergen" not in table
    assert "2 of 2 rows" in table
    as_csv = cli(
        "query",
        "--sql",
        f'SELECT station, max(rain) AS wettest FROM "{owner}/rain/rain" GROUP BY 1 ORDER BY 1',
        "--format",
        "csv",
        env=publisher.env,
    ).stdout
    assert as_csv.splitlines() == [
        "station,wettest",
        "bergen,2250.0",
        "oslo,801.25",
        "tromsø,1030.0",
    ]
    status = cli("status", f"{owner}/rain@1", env=publisher.env).stdout
    assert "SUCCEEDED" in status


def test_invalid_data_fails_and_the_previous_revision_stays_served(
    publisher: Publisher, tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    cli("push", str(rain_package(tmp_path / "v1", "rain")), env=publisher.env)
    bad = RAIN + b"oslo;twenty;1;true\n"
    result = cli(
        "push", str(rain_package(tmp_path / "v2", "rain", data=bad)), env=publisher.env, check=False
    )
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert "twenty" in result.stdout
    status = httpx.get(f"{hub.url}/api/package/{owner}/rain/revisions/2").json()
    assert status["state"] == "FAILED"
    assert status["report"]["valid"] is False
    error = status["report"]["tasks"][0]["errors"][0]
    assert error["type"] == "type-error"
    assert error["rowNumber"] == 7
    assert error["fieldName"] == "year"
    assert status["pipelines"]["load"]["status"] == "SKIPPED"
    show = httpx.get(f"{hub.url}/api/package/{owner}/rain").json()
    assert show["revision"] == 1
    assert search(hub, resource_id=f"{owner}/rain/rain").json()["total"] == 5
    refused = search(hub, resource_id=f"{owner}/rain@2/rain")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "table-not-found"


def test_private_tables_are_hidden(publisher: Publisher, tmp_path: Path) -> None:
    cli("push", str(rain_package(tmp_path / "p", "secret")), "--private", env=publisher.env)
    hub, rid = publisher.hub, f"{publisher.username}/secret/rain"
    anonymous = search(hub, resource_id=rid)
    assert anonymous.status_code == 404
    assert anonymous.json()["error"]["code"] == "table-not-found"
    assert sql(hub, f'SELECT * FROM "{rid}"').status_code == 404
    mine = httpx.get(
        f"{hub.url}/api/datastore/search",
        params={"resource_id": rid},
        headers={"Authorization": f"Bearer {publisher.token()}"},
    )
    assert mine.status_code == 200
    assert mine.json()["total"] == 5


def _xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "first"
    for row in rows:
        sheet.append(row)
    extra = book.create_sheet("second")
    extra.append(["only", "header"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_every_input_format_is_loaded(publisher: Publisher, tmp_path: Path) -> None:
    files = {
        "latin1.csv": "ville;habitants\nCréteil;92000\nSète;44000\n".encode("cp1252"),
        "tabs.tsv": b'\xef\xbb\xbfa\tb\n1\t"two\nlines"\n',
        "sheet.xlsx": _xlsx([["year", "value"], [2020, 1.5], [2021, 2.5]]),
        "rows.json": json.dumps([{"k": "x", "n": 1}, {"k": "y", "n": 2}]).encode(),
        "header-only.csv": b"just,a,header\n",
    }
    resources = [{"name": Path(p).stem, "path": p} for p in files]
    folder = write_package(
        tmp_path / "formats",
        "formats",
        files=files,
        descriptor={"name": "formats", "resources": resources},
    )
    cli("push", str(folder), env=publisher.env)
    hub, owner = publisher.hub, publisher.username

    def records(resource: str) -> list[dict[str, Any]]:
        answer = search(hub, resource_id=f"{owner}/formats/{resource}")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["records"])

    assert records("latin1") == [
        {"ville": "Créteil", "habitants": 92000},
        {"ville": "Sète", "habitants": 44000},
    ]
    assert records("tabs") == [{"a": 1, "b": "two\nlines"}]
    assert records("sheet") == [{"year": 2020, "value": 1.5}, {"year": 2021, "value": 2.5}]
    assert records("rows") == [{"k": "x", "n": 1}, {"k": "y", "n": 2}]
    assert records("header-only") == []
    derived = fetch(f"{hub.url}/{owner}/formats/r/latin1_csv.csv")
    assert derived.content.decode("utf-8").splitlines() == [
        "ville,habitants",
        "Créteil,92000",
        "Sète,44000",
    ]


def test_ragged_rows_are_reported_not_fatal_to_the_hub(
    publisher: Publisher, tmp_path: Path
) -> None:
    ragged = b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n"
    folder = write_package(tmp_path / "ragged", "ragged", files={"data.csv": ragged})
    result = cli("push", str(folder), env=publisher.env, check=False)
    assert result.returncode == 1
    status = publisher.hub.wait_processed(publisher.username, "ragged")
    errors = status["report"]["tasks"][0]["errors"]
    assert [(e["type"], e["rowNumber"]) for e in errors] == [
        ("missing-cell", 3),
        ("extra-cell", 4),
    ]
