"""Revision diffs: the JSON Patch of descriptors (checked by applying it), and files, schemas and row
counts between revisions on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.principal import Principal
from dphub.errors import PackageNotFound, RevisionNotFound
from dphub.metastore.db import transaction
from dphub.metastore.diff import MAX_FILES, json_patch, pointer, revision_diff, same
from dphub.metastore.models import DatastoreTable, Package, PackageTag, Revision, RevisionFile

# An RFC 6902 reader of our own, independent of the code that writes the patches.


def _parse(path: str) -> list[str]:
    assert path == "" or path.startswith("/")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def apply_patch(document: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(document)
    for op in ops:
        parts = _parse(op["path"])
        if not parts:
            assert op["op"] == "replace"
            doc = copy.deepcopy(op["value"])
            continue
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                assert 0 <= index <= len(parent), op
                parent.insert(index, copy.deepcopy(op["value"]))
            elif op["op"] == "remove":
                assert 0 <= index < len(parent), op
                del parent[index]
            else:
                assert op["op"] == "replace", op
                assert 0 <= index < len(parent), op
                parent[index] = copy.deepcopy(op["value"])
        elif op["op"] == "add":
            assert last not in parent, op  # adding over a member is replace's job
            parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[last]
        else:
            assert op["op"] == "replace", op
            assert last in parent, op
            parent[last] = copy.deepcopy(op["value"])
    return doc


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["scalar", "scalar", "list", "dict"] if depth < 4 else ["scalar"])
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    if kind == "dict":
        keys = ["a", "b", "c/d", "e~f", "", "g", "0"]
        return {k: _random_json(rng, depth + 1) for k in rng.sample(keys, rng.randint(0, 5))}
    return rng.choice([0, 1, 1.0, True, False, None, "x", "y", "", 2.5, "1"])


def _mutate(rng: random.Random, value: Any) -> Any:
    value = copy.deepcopy(value)
    if isinstance(value, list) and value and rng.random() < 0.8:
        action = rng.choice(["insert", "delete", "change", "shuffle"])
        if action == "insert":
            value.insert(rng.randint(0, len(value)), _random_json(rng, 3))
        elif action == "delete":
            del value[rng.randrange(len(value))]
        elif action == "change":
            index = rng.randrange(len(value))
            value[index] = _mutate(rng, value[index])
        else:
            rng.shuffle(value)
        return value
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        if rng.random() < 0.3:
            del value[key]
        else:
            value[key] = _mutate(rng, value[key])
        if rng.random() < 0.3:
            value["new"] = _random_json(rng, 3)
        return value
    return _random_json(rng, 2)


def test_patches_turn_one_document_into_the_other() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        before = _random_json(rng)
        after = _mutate(rng, before) if rng.random() < 0.7 else _random_json(rng)
        ops, truncated = json_patch(before, after)
        assert not truncated
        assert same(apply_patch(before, ops), after), (before, after, ops)
        if same(before, after):
            assert ops == []


def test_a_patch_names_what_changed() -> None:
    before = {
        "name": "rain",
        "title": "Rain",
        "resources": [
            {
                "name": "values",
                "schema": {
                    "fields": [
                        {"name": "year", "type": "integer"},
                        {"name": "v", "type": "integer"},
                    ]
                },
            }
        ],
    }
    after = copy.deepcopy(before)
    after["title"] = "Rainfall"
    del after["name"]
    fields = after["resources"][0]["schema"]["fields"]
    fields[1]["type"] = "number"
    fields.insert(0, {"name": "id", "type": "string"})
    ops, _ = json_patch(before, after)
    assert ops == [
        {"op": "remove", "path": "/name"},
        {"op": "replace", "path": "/title", "value": "Rainfall"},
        {
            "op": "add",
            "path": "/resources/0/schema/fields/0",
            "value": {"name": "id", "type": "string"},
        },
        {"op": "replace", "path": "/resources/0/schema/fields/2/type", "value": "number"},
    ]


def test_json_values_compare_strictly() -> None:
    assert not same(True, 1)
    assert not same({"a": [True]}, {"a": [1]})
    assert not same(0, False)
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert json_patch({"a": 1}, {"a": True})[0] == [{"op": "replace", "path": "/a", "value": True}]


def test_pointers_escape_tilde_and_slash() -> None:
    assert pointer(("a/b", "m~n", 3, "")) == "/a~1b/m~0n/3/"
    assert json_patch({}, {"a/b": 1})[0] == [{"op": "add", "path": "/a~1b", "value": 1}]


def test_long_patches_are_capped() -> None:
    before = {f"k{i}": i for i in range(5000)}
    after = {f"k{i}": i + 1 for i in range(5000)}
    ops, truncated = json_patch(before, after, limit=1000)
    assert len(ops) == 1000
    assert truncated
    ops, truncated = json_patch(before, after, limit=5000)
    assert (len(ops), truncated) == (5000, False)


def test_long_lists_and_deep_documents_stay_correct() -> None:
    before = list(range(3000))
    after = [-1, *range(0, 1500), *range(1501, 3000), 9999]
    ops, truncated = json_patch(before, after, limit=100_000)
    assert not truncated
    assert apply_patch(before, ops) == after
    deep: Any = 1
    for _ in range(150):
        deep = {"x": [deep]}
    other = copy.deepcopy(deep)
    node = other
    for _ in range(149):
        node = node["x"][0]
    node["x"] = [2]
    ops, _ = json_patch(deep, other)
    assert same(apply_patch(deep, ops), other)


# Revisions in the metastore


def _revision(
    s: Session,
    package: Package,
    number: int,
    files: dict[str, str],
    *,
    resources: list[dict[str, Any]],
    rows: dict[str, int] | None = None,
    state: str = "SUCCEEDED",
) -> Revision:
    revision = Revision(
        package_id=package.id,
        number=number,
        state=state,
        descriptor={"name": package.name, "resources": resources},
    )
    s.add(revision)
    s.flush()
    for path, content in files.items():
        s.add(
            RevisionFile(
                revision_id=revision.id,
                path=path,
                sha256=content * 64,
                size=len(path) * 10,
                media_type="text/csv",
            )
        )
    for index, (resource, count) in enumerate((rows or {}).items()):
        s.add(
            DatastoreTable(
                revision_id=revision.id,
                resource_index=index,
                resource_name=resource,
                table_name=f"t_{revision.id}_{index}",
                columns=[],
                rows=count,
            )
        )
    s.flush()
    return revision


def _schema(*fields: tuple[str, str]) -> dict[str, Any]:
    return {"fields": [{"name": n, "type": t} for n, t in fields]}


@pytest.fixture
def rain(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        package = Package(
            owner="ann",
            name="rain",
            findability="published",
            latest_revision=3,
            successful_revision=2,
        )
        s.add(package)
        s.flush()
        _revision(
            s,
            package,
            1,
            {"values.csv": "a", "old.csv": "b", "README.md": "c"},
            resources=[
                {"name": "values", "path": "values.csv", "schema": _schema(("year", "integer"))},
                {"name": "old", "path": "old.csv", "schema": _schema(("x", "string"))},
            ],
            rows={"values": 2, "old": 5},
        )
        _revision(
            s,
            package,
            2,
            {"values.csv": "d", "new.csv": "e", "README.md": "c"},
            resources=[
                {
                    "name": "values",
                    "path": "values.csv",
                    "schema": _schema(("year", "string"), ("value", "number")),
                },
                {"name": "new", "path": "new.csv"},
            ],
            rows={"values": 3},
        )
        _revision(
            s,
            package,
            3,
            {"values.csv": "d"},
            resources=[{"name": "values", "path": "values.csv"}],
            state="QUEUED",
        )
        s.add(PackageTag(package_id=package.id, tag="v1", revision=1))
        hidden = Package(owner="ann", name="hidden", findability="private", latest_revision=1)
        s.add(hidden)
        s.flush()
        _revision(s, hidden, 1, {"x.csv": "f"}, resources=[])


def _diff(db: sessionmaker[Session], **refs: str | None) -> dict[str, Any]:
    with db() as s:
        return revision_diff(s, None, "ann", "rain", **refs)


def test_a_diff_of_two_revisions(db: sessionmaker[Session], rain: None) -> None:
    answer = _diff(db, from_ref="v1", to_ref="2")
    assert answer["from"]["revision"] == 1
    assert answer["to"]["revision"] == 2
    assert answer["to"]["state"] == "SUCCEEDED"
    files = answer["files"]
    assert files["added"] == [{"path": "new.csv", "size": 70, "sha256": "e" * 64}]
    assert files["removed"] == [{"path": "old.csv", "size": 70, "sha256": "b" * 64}]
    assert files["changed"] == [
        {
            "path": "values.csv",
            "before": {"sha256": "a" * 64, "size": 100},
            "after": {"sha256": "d" * 64, "size": 100},
        }
    ]
    assert (files["unchanged"], files["truncated"]) == (1, False)
    assert answer["schemas"] == {
        "values": {
            "fields_added": ["value"],
            "fields_removed": [],
            "type_changed": [{"field": "year", "before": "integer", "after": "string"}],
        },
        "old": {"fields_added": [], "fields_removed": ["x"], "type_changed": []},
    }
    assert answer["rows"] == {
        "values": {"before": 2, "after": 3},
        "old": {"before": 5, "after": None},
    }
    with db() as s:
        one = s.get(Revision, 1)
        two = s.get(Revision, 2)
        assert one is not None
        assert two is not None
        assert apply_patch(one.descriptor, answer["descriptor"]) == two.descriptor
    assert answer["descriptor_truncated"] is False


def test_diff_defaults(db: sessionmaker[Session], rain: None) -> None:
    latest = _diff(db)
    assert (latest["from"]["revision"], latest["to"]["revision"]) == (2, 3)
    assert latest["rows"] == {"values": {"before": 3, "after": None}}
    assert latest["schemas"] == {}  # the queued revision's resources hold no schema yet
    first = _diff(db, to_ref="1")
    assert first["from"] is None
    assert [f["path"] for f in first["files"]["added"]] == ["README.md", "old.csv", "values.csv"]
    assert first["descriptor"][0]["op"] == "add"
    assert first["rows"] == {
        "values": {"before": None, "after": 2},
        "old": {"before": None, "after": 5},
    }
    same_revision = _diff(db, from_ref="2", to_ref="successful")
    assert same_revision["descriptor"] == []
    assert same_revision["files"]["unchanged"] == 3


@pytest.mark.parametrize("refs", [{"from_ref": "v9"}, {"to_ref": "7"}, {"to_ref": "0"}])
def test_refs_must_name_revisions_of_this_package(
    db: sessionmaker[Session], rain: None, refs: dict[str, str]
) -> None:
    with pytest.raises(RevisionNotFound):
        _diff(db, **refs)


def test_a_hidden_package_has_no_diff(db: sessionmaker[Session], rain: None) -> None:
    stranger = Principal(999, "sam", "sam@example.org")
    with db() as s, pytest.raises(PackageNotFound):
        revision_diff(s, stranger, "ann", "hidden", to_ref="1")
    with db() as s, pytest.raises(PackageNotFound):
        revision_diff(s, None, "ann", "hidden")
    with db() as s, pytest.raises(PackageNotFound):
        revision_diff(s, None, "ann", "Bad Name")


def test_many_changed_files_are_capped(db: sessionmaker[Session]) -> None:
    with transaction(db) as s:
        package = Package(owner="ann", name="many", findability="published", latest_revision=2)
        s.add(package)
        s.flush()
        count = MAX_FILES + 5
        _revision(s, package, 1, {f"f{i:05}.csv": "a" for i in range(count)}, resources=[])
        _revision(s, package, 2, {f"f{i:05}.csv": "b" for i in range(count)}, resources=[])
    with db() as s:
        files = revision_diff(s, None, "ann", "many")["files"]
    assert len(files["changed"]) == MAX_FILES
    assert files["truncated"] is True
    assert files["changed"][0]["path"] == "f00000.csv"
