"""What a Data Package descriptor must look like, checked alike by the client and the hub.

The structure is checked with a JSON Schema written for the Data Package specification (v1,
accepting the v2 additions); the rules a schema cannot express (unique resource names, safe file
paths, the hub's package names) are checked in Python. Every problem carries the RFC 6901 JSON
pointer of the place it concerns, so a person can find it and a program can act on it.

Only :func:`validate_data` reads data; it imports frictionless when called, so this module stays
cheap to import for the client.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jsonschema

from dphub.errors import InvalidDescriptor, InvalidName
from dphub.names import check_name, path_problem

DESCRIPTOR_FILE = "datapackage.json"
RESOURCE_NAME_PATTERN = r"^[a-z0-9._/-]+$"
MAX_DATA_PROBLEMS = 20
MAX_DEPTH = 64
"""Levels of arrays and objects a descriptor may nest: real ones use a handful; the hub stores and
answers descriptors with a JSON writer that stops at 255."""

_REMOTE_PREFIXES = ("http://", "https://")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a package: where it is (file and JSON pointer) and what it is."""

    pointer: str
    message: str
    file: str = DESCRIPTOR_FILE

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "pointer": self.pointer, "message": self.message}


# The schema carries its own sentences: "x-messages" maps a failing keyword to what a person should
# read, and "x-required" does the same per missing property.

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}

_LICENSE = {
    "type": "object",
    "properties": {"name": _STRING, "path": _STRING, "title": _STRING},
    "anyOf": [{"required": ["name"]}, {"required": ["path"]}],
    "x-messages": {"anyOf": 'a license needs a "name" (an Open Definition id) or a "path" (a URL)'},
}
_SOURCE = {"type": "object", "properties": {"title": _STRING, "path": _STRING, "email": _STRING}}
_CONTRIBUTOR = {
    "type": "object",
    "properties": {"title": _STRING, "path": _STRING, "email": _STRING, "role": _STRING},
}
_FIELD = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STRING, "type": _STRING, "format": _STRING},
    "x-required": {"name": 'every field of a Table Schema needs a "name"'},
}
# "required" and "properties" only constrain objects, so a string (a path or URL to a schema file)
# passes untouched.
_TABLE_SCHEMA = {
    "type": ["object", "string"],
    "required": ["fields"],
    "properties": {
        "fields": {"type": "array", "items": _FIELD},
        "primaryKey": {"type": ["string", "array"], "items": _STRING},
        "missingValues": _STRINGS,
    },
    "x-messages": {"type": '"schema" must be a Table Schema object or the path or URL of one'},
    "x-required": {"fields": 'a Table Schema needs a "fields" array'},
}
_PATH = {
    "type": ["string", "array"],
    "minItems": 1,
    "items": _STRING,
    "x-messages": {
        "type": '"path" must be a string or a list of strings',
        "minItems": '"path" must list at least one file',
    },
}
_RESOURCE = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": RESOURCE_NAME_PATTERN,
            "x-messages": {
                "pattern": "a resource name may only use lowercase letters, digits,"
                " '.', '-', '_' and '/'"
            },
        },
        "path": _PATH,
        "schema": _TABLE_SCHEMA,
        "dialect": {"type": ["object", "string"]},
        "profile": _STRING,
        "type": _STRING,
        "title": _STRING,
        "description": _STRING,
        "format": _STRING,
        "mediatype": _STRING,
        "encoding": _STRING,
        "bytes": {"type": "integer", "minimum": 0},
        "hash": _STRING,
        "licenses": {"type": "array", "items": _LICENSE},
        "sources": {"type": "array", "items": _SOURCE},
    },
    "oneOf": [{"required": ["path"]}, {"required": ["data"]}],
    "x-messages": {
        "oneOf": 'a resource needs exactly one of "path" (its file or files) or inline "data"'
    },
    "x-required": {"name": 'every resource needs a "name"'},
}
PACKAGE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["resources"],
    "properties": {
        "$schema": _STRING,
        "profile": _STRING,
        "id": _STRING,
        "name": _STRING,
        "title": _STRING,
        "description": _STRING,
        "homepage": _STRING,
        "version": _STRING,
        "created": _STRING,
        "image": _STRING,
        "keywords": _STRINGS,
        "licenses": {"type": "array", "items": _LICENSE},
        "sources": {"type": "array", "items": _SOURCE},
        "contributors": {"type": "array", "items": _CONTRIBUTOR},
        "resources": {
            "type": "array",
            "minItems": 1,
            "items": _RESOURCE,
            "x-messages": {
                "type": '"resources" must be an array of resources',
                "minItems": '"resources" must list at least one resource',
            },
        },
    },
    "x-messages": {"type": "the descriptor must be a JSON object"},
    "x-required": {"resources": '"resources" is required and must list at least one resource'},
}

_validator = jsonschema.Draft202012Validator(PACKAGE_SCHEMA)

_TYPE_WORDS = {
    "string": "a string",
    "array": "an array",
    "object": "an object",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def pointer(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """The RFC 6901 JSON pointer of a path of keys and indexes ("" is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def parse_descriptor(raw: bytes | str) -> dict[str, Any]:
    """Parse a datapackage.json; raise ``InvalidDescriptor`` saying where the JSON breaks."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            _raise_unparsable(f"byte {exc.start}: the file is not UTF-8 text")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        _raise_unparsable(f"line {exc.lineno} column {exc.colno}: {exc.msg}")
    except ValueError as exc:
        _raise_unparsable(str(exc))
    except RecursionError:
        _raise_too_deep()
    problem = _unstorable(value)
    if problem is not None:
        _raise_unparsable(problem, summary="is not a Data Package descriptor")
    if not isinstance(value, dict):
        _raise_unparsable(
            f"the descriptor must be a JSON object, not {_json_kind(value)}",
            summary="is not a Data Package descriptor",
        )
    return value


def _unstorable(value: object) -> str | None:
    """What in a parsed descriptor the hub could not store and answer again as JSON: nesting
    deeper than ``MAX_DEPTH``, an integer beyond 64 bits, a number too large for a float (read
    as infinity). Walks without recursion."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -(2**63) <= item < 2**64:
            return f"the number {str(item)[:20]}... is larger than the hub keeps (64 bits)"
        if isinstance(item, float) and not math.isfinite(item):
            return "a number is larger than the hub keeps (it would read as infinity)"
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return f"arrays or objects are nested more than {MAX_DEPTH} levels deep"
        pending.extend((child, depth + 1) for child in children)
    return None


def _raise_too_deep() -> NoReturn:
    _raise_unparsable(
        f"arrays or objects are nested more than {MAX_DEPTH} levels deep",
        summary="is not a Data Package descriptor",
    )


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _raise_unparsable(message: str, *, summary: str = "is not valid JSON") -> NoReturn:
    problem = Problem("", message)
    raise InvalidDescriptor(
        f"{DESCRIPTOR_FILE} {summary}: {message}.", problems=[problem.to_dict()]
    )


def descriptor_problems(descriptor: object) -> list[Problem]:
    """Every way ``descriptor`` breaks the Data Package specification or the hub's rules."""
    errors = list(_validator.iter_errors(descriptor))
    # A value of the wrong type fails its other keywords too; its type error says all there is.
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    found: dict[tuple[str, str], Problem] = {}
    for error in errors:
        if error.validator != "type" and tuple(error.absolute_path) in mistyped:
            continue
        for problem in _problems_from_error(error):
            found.setdefault((problem.pointer, problem.message), problem)
    problems = list(found.values())
    if isinstance(descriptor, dict):
        problems.extend(_semantic_problems(descriptor))
    return sorted_problems(problems)


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """``problems`` in the order their places appear in the descriptor (a stable sort)."""
    return sorted(problems, key=lambda p: _sort_key(p.pointer))


def check_descriptor(descriptor: object) -> None:
    """Raise ``InvalidDescriptor`` listing every problem of ``descriptor``, if it has any."""
    problems = descriptor_problems(descriptor)
    if not problems:
        return
    first = problems[0]
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    raise InvalidDescriptor(
        f"{first.file} is not a valid Data Package: {first.pointer or '/'}: {first.message}{tail}",
        problems=[p.to_dict() for p in problems],
    )


def resource_paths(
    descriptor: dict[str, Any], *, keys: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """``(pointer, path)`` of every ``path`` of the resources (a string or a list of strings), and
    of the string values of ``keys`` (e.g. ``schema``), in descriptor order, URLs included."""
    found: list[tuple[str, str]] = []
    resources = descriptor.get("resources")
    if not isinstance(resources, list):
        return found
    for index, resource in enumerate(resources):
        if not isinstance(resource, dict):
            continue
        path = resource.get("path")
        if isinstance(path, str):
            found.append((pointer(["resources", index, "path"]), path))
        elif isinstance(path, list):
            found.extend(
                (pointer(["resources", index, "path", i]), item)
                for i, item in enumerate(path)
                if isinstance(item, str)
            )
        for key in keys:
            value = resource.get(key)
            if isinstance(value, str):
                found.append((pointer(["resources", index, key]), value))
    return found


def local_paths(descriptor: dict[str, Any]) -> list[tuple[str, str]]:
    """``(pointer, path)`` of every local file the resources name, in descriptor order.

    Covers a resource's ``path`` (a string or a list of strings) and a ``schema`` or ``dialect``
    given as the path of a JSON file; URLs and inline ``data`` name no local file. Paths are
    returned as written: run :func:`descriptor_problems` first to know they are safe.
    """
    found = resource_paths(descriptor, keys=("schema", "dialect"))
    return [(where, path) for where, path in found if not is_remote(path)]


def is_remote(path: str) -> bool:
    return path.lower().startswith(_REMOTE_PREFIXES)


def _semantic_problems(descriptor: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    name = descriptor.get("name")
    if isinstance(name, str):
        try:
            check_name(name, what="package name")
        except InvalidName as exc:
            problems.append(Problem("/name", exc.message.rstrip(".")))
    resources = descriptor.get("resources")
    if isinstance(resources, list):
        seen: dict[str, int] = {}
        for index, resource in enumerate(resources):
            if not isinstance(resource, dict) or not isinstance(resource.get("name"), str):
                continue
            rname = resource["name"]
            if rname in seen:
                problems.append(
                    Problem(
                        pointer(["resources", index, "name"]),
                        f"resource name {rname!r} is already used by /resources/{seen[rname]};"
                        " resource names must be unique",
                    )
                )
            else:
                seen[rname] = index
    for where, path in local_paths(descriptor):
        why = path_problem(path)
        if why is not None:
            problems.append(Problem(where, f"{path!r}: {why}"))
    return problems


def _problems_from_error(error: jsonschema.ValidationError) -> list[Problem]:
    parts = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required" and isinstance(error.instance, dict):
        custom = schema.get("x-required", {})
        return [
            Problem(pointer([*parts, key]), custom.get(key, f'"{key}" is required'))
            for key in error.validator_value
            if key not in error.instance
        ]
    message = schema.get("x-messages", {}).get(error.validator)
    if message is None:
        message = _default_message(error, parts)
    return [Problem(pointer(parts), message)]


def _default_message(error: jsonschema.ValidationError, parts: list[str | int]) -> str:
    what = _describe(parts)
    if error.validator == "type":
        expected = error.validator_value
        kinds = [expected] if isinstance(expected, str) else list(expected)
        words = " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
        return f"{what} must be {words}, not {_json_kind(error.instance)}"
    if error.validator == "minItems":
        return f"{what} must not be empty"
    if error.validator == "minimum":
        return f"{what} must be at least {error.validator_value}"
    return f"{what}: {error.message}"


def _describe(parts: list[str | int]) -> str:
    if not parts:
        return "the descriptor"
    last = parts[-1]
    if isinstance(last, int):
        parent = next((p for p in reversed(parts) if isinstance(p, str)), "list")
        return f'item {last} of "{parent}"'
    return f'"{last}"'


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _sort_key(where: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in where.split("/"))


def validate_data(root: Path, descriptor: dict[str, Any]) -> list[Problem]:
    """Check each local tabular resource's rows against its Table Schema (with frictionless).

    Resources whose paths are unsafe, remote or missing are skipped: :func:`descriptor_problems` and
    the file checks report those. At most ``MAX_DATA_PROBLEMS`` problems are reported per resource.
    """
    from frictionless import FrictionlessException, Resource

    problems: list[Problem] = []
    resources = descriptor.get("resources")
    if not isinstance(resources, list):
        return problems
    for index, spec in enumerate(resources):
        paths = _data_paths(spec)
        if not paths or not all((root / p).is_file() for p in paths):
            continue
        where = pointer(["resources", index])
        label = ", ".join(paths)
        try:
            resource = Resource(copy.deepcopy(spec), basepath=str(root))
            if not resource.tabular:
                continue
            report = resource.validate(limit_errors=MAX_DATA_PROBLEMS)
        except FrictionlessException as exc:
            problems.append(Problem(where, str(exc.error.message), file=label))
            continue
        messages = [e.message for e in report.errors]
        messages += [e.message for task in report.tasks for e in task.errors]
        problems.extend(Problem(where, str(m), file=label) for m in messages[:MAX_DATA_PROBLEMS])
    return problems


def _data_paths(spec: object) -> list[str]:
    if not isinstance(spec, dict):
        return []
    path = spec.get("path")
    paths = [path] if isinstance(path, str) else path if isinstance(path, list) else []
    if not paths or not all(isinstance(p, str) and not is_remote(p) for p in paths):
        return []
    if any(path_problem(p) is not None for p in paths):
        return []
    schema = spec.get("schema")
    if isinstance(schema, str) and not is_remote(schema) and path_problem(schema) is not None:
        return []
    return [str(p) for p in paths]
