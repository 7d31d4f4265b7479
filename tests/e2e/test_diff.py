"""Diffs between revisions end to end on both hubs: files by hash, the descriptor as a JSON Patch,
schema and row-count changes, by number or tag, and refs that name nothing of this package."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Publisher, cli, write_package

_n = itertools.count(1)
V1 = {"values.csv": b"year,value\n2020,1\n2021,2\n", "README.md": b"# Rain\n"}
V2 = {
    "values.csv": b"year,value,note\n2020,1.5,wet\n2021,2,dry\n2022,3,wet\n",
    "regions.csv": b"region\nnorth\nsouth\n",
}


def _push(publisher: Publisher, root: Path, name: str, files: dict[str, bytes], *args: str) -> None:
    folder = write_package(root / f"{name}-{next(_n)}", name, files=files)
    pushed = cli("push", str(folder), *args, env=publisher.env)
    assert "SUCCEEDED" in pushed.stdout + pushed.stderr, pushed.stdout + pushed.stderr


def _apply(document: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add, remove and replace, enough to check the hub's patches."""
    doc = copy.deepcopy(document)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        key: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if op["op"] == "remove":
            del parent[key]
        elif op["op"] == "add" and isinstance(parent, list):
            parent.insert(key, op["value"])
        else:
            parent[key] = op["value"]
    return doc


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_diff_of_two_pushes(publisher: Publisher, tmp_path: Path) -> None:
    hub, owner = publisher.hub, publisher.username
    _push(publisher, tmp_path, "rain", V1)
    _push(publisher, tmp_path, "rain", V2)
    api = f"{hub.url}/api/package/{owner}/rain"

    answer = httpx.get(f"{api}/diff")
    assert answer.status_code == 200, answer.text
    diff = answer.json()
    assert (diff["from"]["revision"], diff["to"]["revision"]) == (1, 2)
    assert diff["to"]["state"] == "SUCCEEDED"
    files = diff["files"]
    assert files["added"] == [
        {"path": "regions.csv", "size": len(V2["regions.csv"]), "sha256": _sha(V2["regions.csv"])}
    ]
    assert files["removed"] == [
        {"path": "README.md", "size": len(V1["README.md"]), "sha256": _sha(V1["README.md"])}
    ]
    changed = {f["path"]: f for f in files["changed"]}
    assert set(changed) == {"datapackage.json", "values.csv"}
    assert changed["values.csv"]["before"] == {
        "sha256": _sha(V1["values.csv"]),
        "size": len(V1["values.csv"]),
    }
    assert changed["values.csv"]["after"]["sha256"] == _sha(V2["values.csv"])
    assert (files["unchanged"], files["truncated"]) == (0, False)

    values = diff["schemas"]["values"]
    assert values["fields_added"] == ["note"]
    assert values["fields_removed"] == []
    assert values["type_changed"] == [{"field": "value", "before": "integer", "after": "number"}]
    assert diff["schemas"]["regions"]["fields_added"] == ["region"]
    assert diff["rows"] == {
        "values": {"before": 2, "after": 3},
        "regions": {"before": None, "after": 2},
    }

    one = httpx.get(api, params={"revision": "1"}).json()["descriptor"]
    two = httpx.get(api, params={"revision": "2"}).json()["descriptor"]
    assert diff["descriptor"]
    assert _apply(one, diff["descriptor"]) == two
    assert diff["descriptor_truncated"] is False

    # the same by tags, and from the CLI
    with publisher.client() as client:
        for tag, number in (("v1", 1), ("v2", 2)):
            made = client.post(
                f"/api/package/{owner}/rain/tag", json={"version": tag, "revision": number}
            )
            assert made.status_code == 201, made.text
    tagged = httpx.get(f"{api}/diff", params={"from": "v1", "to": "v2"}).json()
    assert tagged == diff
    summary = cli("diff", f"{owner}/rain", "--from", "v1", "--to", "v2", env=publisher.env).stdout
    assert f"{owner}/rain: revision 1 -> revision 2" in summary
    assert "Files: 1 added, 1 removed, 2 changed, 0 unchanged" in summary
    assert "+ regions.csv" in summary
    assert "- README.md" in summary
    assert "~ values.csv" in summary
    assert "values: +note, ~value (integer -> number)" in summary
    assert "values: 2 -> 3 (+1)" in summary
    as_json = cli("diff", f"{owner}/rain", "--json", env=publisher.env).stdout
    assert json.loads(as_json) == diff

    backwards = httpx.get(f"{api}/diff", params={"from": "2", "to": "v1"}).json()
    assert [f["path"] for f in backwards["files"]["added"]] == ["README.md"]
    assert backwards["rows"]["values"] == {"before": 3, "after": 2}
    first = httpx.get(f"{api}/diff", params={"to": "1"}).json()
    assert first["from"] is None
    assert {f["path"] for f in first["files"]["added"]} == {
        "datapackage.json",
        "values.csv",
        "README.md",
    }
    nothing = httpx.get(f"{api}/diff", params={"from": "v2", "to": "latest"}).json()
    assert nothing["descriptor"] == []
    assert nothing["files"]["changed"] == []
    assert nothing["schemas"] == {}


def test_refs_of_nothing_in_this_package(
    publisher: Publisher, make_publisher: Callable[..., Publisher], tmp_path: Path
) -> None:
    hub, owner = publisher.hub, publisher.username
    _push(publisher, tmp_path, "mine", V1)
    _push(publisher, tmp_path, "theirs", V1)
    _push(publisher, tmp_path, "theirs", V2)
    _push(publisher, tmp_path, "hidden", V1, "--private")
    _push(publisher, tmp_path, "hidden", V2)
    with publisher.client() as client:
        tagged = client.post(f"/api/package/{owner}/theirs/tag", json={"version": "only-theirs"})
        assert tagged.status_code == 201
    api = f"{hub.url}/api/package/{owner}"
    for params in (
        {"from": "only-theirs"},
        {"to": "only-theirs"},
        {"from": "nope"},
        {"to": "2"},
        {"from": "0", "to": "1"},
        {"to": "99999999999999999999"},
        {"from": "x" * 500},
        {"to": "v1\x00"},
    ):
        answer = httpx.get(f"{api}/mine/diff", params=params)
        assert answer.status_code == 404, (params, answer.text)
        assert answer.json()["error"]["code"] == "revision-not-found"

    stranger = make_publisher("stranger")
    with stranger.client() as client:
        refused = client.get(f"{api}/hidden/diff", params={"from": "1", "to": "2"})
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "package-not-found"
    assert httpx.get(f"{api}/hidden/diff").status_code == 404
    assert httpx.get(f"{api}/no-such-package/diff").status_code == 404
    with publisher.client() as client:
        assert client.get(f"{api}/hidden/diff").json()["to"]["revision"] == 2
    failed = cli("diff", f"{owner}/mine", "--from", "nope", env=publisher.env, check=False)
    assert failed.returncode == 1
    assert "no revision or tag 'nope'" in failed.stderr
