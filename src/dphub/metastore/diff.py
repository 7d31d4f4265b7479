"""What changed between two revisions of a package: files (by hash), the descriptor (as an RFC 6902
JSON Patch), each resource's schema, and the row counts of its datastore tables."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from dphub.auth.permissions import Action, require
from dphub.auth.principal import Principal
from dphub.auth.roles import package_ref
from dphub.errors import PackageNotFound
from dphub.metastore.models import DatastoreTable, Revision, RevisionFile
from dphub.metastore.packages import find_package, get_revision
from dphub.names import is_valid_name

MAX_PATCH_OPS = 1000
MAX_FILES = 1000
"""Entries of each file list (added, removed, changed) before the answer says ``truncated``."""
MAX_DEPTH = 64
"""Below this depth, a changed value is replaced whole instead of compared further."""
MAX_MATCH_CELLS = 40_000
"""Lists whose differing middles are larger than this (length x length) are compared by position
instead of by their longest common run of equal items."""

Json = Any
Path = tuple[str | int, ...]


# JSON Patch


def json_patch(before: Json, after: Json, limit: int = MAX_PATCH_OPS) -> tuple[list[Json], bool]:
    """The operations (add, remove, replace) that turn ``before`` into ``after``, at most ``limit``
    of them, and whether more were left out."""
    ops: list[Json] = []
    for op in _ops(before, after, (), 0):
        if len(ops) == limit:
            return ops, True
        ops.append(op)
    return ops, False


def pointer(path: Path) -> str:
    """The JSON Pointer (RFC 6901) of ``path``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def same(a: Json, b: Json, depth: int = 0) -> bool:
    """Equality of JSON values: ``true`` is not ``1``, as it is for Python's ``==``."""
    if type(a) is not type(b):
        return False
    if depth > MAX_DEPTH and isinstance(a, dict | list):
        try:
            return _key(a) == _key(b)
        except (RecursionError, ValueError):  # deeper than the encoder goes: say it changed
            return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k], depth + 1) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _ops(a: Json, b: Json, path: Path, depth: int) -> Iterator[Json]:
    if same(a, b):
        return
    if isinstance(a, dict) and isinstance(b, dict) and depth < MAX_DEPTH:
        for key in a:
            if key not in b:
                yield {"op": "remove", "path": pointer((*path, key))}
        for key, value in b.items():
            if key in a:
                yield from _ops(a[key], value, (*path, key), depth + 1)
            else:
                yield {"op": "add", "path": pointer((*path, key)), "value": value}
    elif isinstance(a, list) and isinstance(b, list) and depth < MAX_DEPTH:
        yield from _list_ops(a, b, path, depth)
    else:
        yield {"op": "replace", "path": pointer(path), "value": b}


def _list_ops(a: list[Json], b: list[Json], path: Path, depth: int) -> Iterator[Json]:
    """Items kept in place stay untouched; between them, items are changed in place, removed or
    inserted. ``position`` follows the index in the array as the operations so far left it."""
    start = 0
    while start < len(a) and start < len(b) and same(a[start], b[start]):
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and same(a[end_a - 1], b[end_b - 1]):
        end_a, end_b = end_a - 1, end_b - 1
    middle_a, middle_b = a[start:end_a], b[start:end_b]
    anchors = [*_common_run(middle_a, middle_b), (len(middle_a), len(middle_b))]
    position, i, j = start, 0, 0
    for next_i, next_j in anchors:
        gone, new = middle_a[i:next_i], middle_b[j:next_j]
        paired = min(len(gone), len(new))
        for k in range(paired):
            yield from _ops(gone[k], new[k], (*path, position), depth + 1)
            position += 1
        for _ in range(len(gone) - paired):
            yield {"op": "remove", "path": pointer((*path, position))}
        for value in new[paired:]:
            yield {"op": "add", "path": pointer((*path, position)), "value": value}
            position += 1
        position += 1  # the anchor itself, unchanged
        i, j = next_i + 1, next_j + 1


def _common_run(a: Sequence[Json], b: Sequence[Json]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of equal items (none when too large to look)."""
    if not a or not b or len(a) * len(b) > MAX_MATCH_CELLS:
        return []
    keys_a = [_key(x) for x in a]
    keys_b = [_key(x) for x in b]
    n, m = len(a), len(b)
    lengths = [[0] * (m + 1) for _ in range(n + 1)]
    for x in range(n - 1, -1, -1):
        row, below = lengths[x], lengths[x + 1]
        for y in range(m - 1, -1, -1):
            row[y] = below[y + 1] + 1 if keys_a[x] == keys_b[y] else max(below[y], row[y + 1])
    pairs = []
    x = y = 0
    while x < n and y < m:
        if keys_a[x] == keys_b[y]:
            pairs.append((x, y))
            x, y = x + 1, y + 1
        elif lengths[x + 1][y] >= lengths[x][y + 1]:
            x += 1
        else:
            y += 1
    return pairs


def _key(value: Json) -> str:
    """A canonical text of a JSON value: equal texts, equal values (``true`` and ``1`` differ)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Revisions


def revision_diff(
    db: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    *,
    from_ref: str | None = None,
    to_ref: str | None = None,
) -> dict[str, Any]:
    """The changes from revision ``from_ref`` (default: the one before ``to_ref``; none before the
    first) to ``to_ref`` (default: the latest), both refs of this one package."""
    if not (is_valid_name(owner) and is_valid_name(name)):
        raise PackageNotFound()
    package = find_package(db, owner, name)
    if package is None:
        raise PackageNotFound()
    require(principal, Action.PACKAGE_READ, package_ref(db, principal, package))
    after = get_revision(db, package, to_ref or "latest")
    before: Revision | None
    if from_ref:
        before = get_revision(db, package, from_ref)
    elif after.number > 1:
        before = get_revision(db, package, after.number - 1)
    else:
        before = None
    descriptor, truncated = json_patch(before.descriptor if before else {}, after.descriptor)
    return {
        "package": f"{owner}/{name}",
        "from": _side(before),
        "to": _side(after),
        "files": _files(db, before, after),
        "descriptor": descriptor,
        "descriptor_truncated": truncated,
        "schemas": _schemas(before.descriptor if before else {}, after.descriptor),
        "rows": _rows(db, before, after),
    }


def _side(revision: Revision | None) -> dict[str, Any] | None:
    if revision is None:
        return None
    return {
        "revision": revision.number,
        "state": revision.state,
        "created": revision.created_at.isoformat(),
    }


def _files(db: Session, before: Revision | None, after: Revision) -> dict[str, Any]:
    new, old = aliased(RevisionFile), aliased(RevisionFile)
    before_id = before.id if before is not None else None

    def only_in(mine: Any, theirs: Any, mine_id: int, theirs_id: int | None) -> list[Json]:
        query = select(mine.path, mine.size, mine.sha256).where(mine.revision_id == mine_id)
        if theirs_id is not None:
            query = query.outerjoin(
                theirs, and_(theirs.revision_id == theirs_id, theirs.path == mine.path)
            ).where(theirs.id.is_(None))
        rows = db.execute(query.order_by(mine.path).limit(MAX_FILES + 1))
        return [{"path": p, "size": s, "sha256": h} for p, s, h in rows]

    added = only_in(new, old, after.id, before_id)
    removed = only_in(old, new, before_id, after.id) if before_id is not None else []
    changed: list[Json] = []
    unchanged = 0
    if before_id is not None:
        both = and_(new.revision_id == after.id, old.revision_id == before_id)
        pairs = select(new.path, old.sha256, old.size, new.sha256, new.size).join(
            old, old.path == new.path
        )
        rows = db.execute(
            pairs.where(both, old.sha256 != new.sha256).order_by(new.path).limit(MAX_FILES + 1)
        )
        changed = [
            {
                "path": path,
                "before": {"sha256": old_sha, "size": old_size},
                "after": {"sha256": new_sha, "size": new_size},
            }
            for path, old_sha, old_size, new_sha, new_size in rows
        ]
        unchanged = (
            db.scalar(
                select(func.count())
                .select_from(new)
                .join(old, old.path == new.path)
                .where(both, old.sha256 == new.sha256)
            )
            or 0
        )
    truncated = any(len(entries) > MAX_FILES for entries in (added, removed, changed))
    return {
        "added": added[:MAX_FILES],
        "removed": removed[:MAX_FILES],
        "changed": changed[:MAX_FILES],
        "unchanged": unchanged,
        "truncated": truncated,
    }


def _resources(descriptor: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for index, resource in enumerate(descriptor.get("resources") or []):
        if isinstance(resource, dict):
            key = resource.get("name")
            found[key if isinstance(key, str) else str(index)] = resource
    return found


def _fields(resource: dict[str, Any] | None) -> dict[str, str] | None:
    """Field name → type of the resource's schema; ``None`` when it has none to compare (none
    declared or inferred yet, or one referenced by URL)."""
    schema = resource.get("schema") if resource is not None else None
    if not isinstance(schema, dict):
        return None
    fields = schema.get("fields")
    found = {}
    for field in fields if isinstance(fields, list) else []:
        if isinstance(field, dict) and isinstance(field.get("name"), str):
            kind = field.get("type", "string")
            found[field["name"]] = kind if isinstance(kind, str) else json.dumps(kind)
    return found


def _schemas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    old, new = _resources(before), _resources(after)
    changes: dict[str, Any] = {}
    for key in [*new, *(k for k in old if k not in new)]:
        was, now = _fields(old.get(key)), _fields(new.get(key))
        if key in old and key in new and (was is None or now is None):
            continue  # one side has no schema to compare (still being inferred, or by URL)
        was, now = was or {}, now or {}
        change = {
            "fields_added": [f for f in now if f not in was],
            "fields_removed": [f for f in was if f not in now],
            "type_changed": [
                {"field": f, "before": was[f], "after": now[f]}
                for f in now
                if f in was and was[f] != now[f]
            ],
        }
        if any(change.values()):
            changes[key] = change
    return changes


def _rows(db: Session, before: Revision | None, after: Revision) -> dict[str, Any]:
    def counts(revision: Revision | None) -> dict[str, int]:
        if revision is None:
            return {}
        tables = db.execute(
            select(DatastoreTable.resource_name, DatastoreTable.rows)
            .where(DatastoreTable.revision_id == revision.id)
            .order_by(DatastoreTable.resource_index)
        )
        return {resource: int(rows) for resource, rows in tables}

    old, new = counts(before), counts(after)
    return {
        key: {"before": old.get(key), "after": new.get(key)}
        for key in [*new, *(k for k in old if k not in new)]
    }
