"""A Data Package folder on disk: its descriptor, the files it names, and what is wrong with it."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dphub.datapackage import (
    DESCRIPTOR_FILE,
    Problem,
    descriptor_problems,
    local_paths,
    parse_descriptor,
    sorted_problems,
    validate_data,
)
from dphub.errors import InvalidDescriptor
from dphub.names import path_problem

README_FILES = ("README.md", "README")


@dataclass(frozen=True)
class LocalFile:
    path: str
    """Relative to the package folder, with '/' separators: the name the hub stores it under."""
    absolute: Path
    size: int

    @property
    def mimetype(self) -> str:
        if self.path == DESCRIPTOR_FILE:
            return "application/json"
        guessed, _ = mimetypes.guess_type(self.path, strict=False)
        return guessed or "application/octet-stream"


@dataclass(frozen=True)
class LocalPackage:
    root: Path
    descriptor: dict[str, Any]
    files: tuple[LocalFile, ...]
    """datapackage.json first, then each resource file once, then the README if there is one."""

    @property
    def name(self) -> str | None:
        name = self.descriptor.get("name")
        return name if isinstance(name, str) else None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def load(cls, directory: Path | str, *, check_data: bool = False) -> LocalPackage:
        """Read and check the package in ``directory``; raise ``InvalidDescriptor`` listing every
        problem (with its file and JSON pointer) if there is any."""
        root = Path(directory)
        if not (root / DESCRIPTOR_FILE).is_file():
            raise InvalidDescriptor(_not_a_package(root))
        problems, descriptor = _inspect(root, check_data=check_data)
        if problems or descriptor is None:
            raise _invalid(root, problems)
        return cls(root=root, descriptor=descriptor, files=tuple(_files(root, descriptor)))


def package_problems(directory: Path | str, *, check_data: bool = False) -> list[Problem]:
    """Everything wrong with the package in ``directory``; an empty list when it is fine."""
    problems, _ = _inspect(Path(directory), check_data=check_data)
    return problems


def _inspect(root: Path, *, check_data: bool) -> tuple[list[Problem], dict[str, Any] | None]:
    descriptor_file = root / DESCRIPTOR_FILE
    if not descriptor_file.is_file():
        return [Problem("", _not_a_package(root))], None
    try:
        descriptor = parse_descriptor(descriptor_file.read_bytes())
    except InvalidDescriptor as exc:
        found = exc.details.get("problems") or []
        return [Problem(p["pointer"], p["message"], p["file"]) for p in found], None
    problems = descriptor_problems(descriptor)
    unsafe = {p.pointer for p in problems}
    for pointer, path in local_paths(descriptor):
        if pointer in unsafe or path_problem(path) is not None:
            continue
        target = root / path
        if not target.exists():
            problems.append(Problem(pointer, f"{path} does not exist in {root}", file=path))
        elif not target.is_file():
            problems.append(Problem(pointer, f"{path} is not a regular file", file=path))
    if check_data and not problems:
        problems.extend(validate_data(root, descriptor))
    return sorted_problems(problems), descriptor


def _files(root: Path, descriptor: dict[str, Any]) -> list[LocalFile]:
    paths = [DESCRIPTOR_FILE, *(path for _, path in local_paths(descriptor))]
    paths += [name for name in README_FILES if (root / name).is_file()]
    files: list[LocalFile] = []
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        absolute = (root / path).absolute()
        files.append(LocalFile(path=path, absolute=absolute, size=absolute.stat().st_size))
    return files


def _not_a_package(root: Path) -> str:
    if root.is_dir():
        return f"{root} holds no {DESCRIPTOR_FILE}: it is not a Data Package folder"
    return f"{root} is not a folder"


def _invalid(root: Path, problems: list[Problem]) -> InvalidDescriptor:
    first = problems[0]
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = f"{first.file} {first.pointer}".rstrip()
    return InvalidDescriptor(
        f"The package in {root} is not valid: {where}: {first.message}{tail}",
        problems=[p.to_dict() for p in problems],
    )
