"""CKAN dataset names for dphub packages, and back: one name per package, one package per name.

A CKAN name holds lowercase letters, digits, ``-`` and ``_``; a dphub owner or package name may
also hold ``.``, and either may hold ``--``. The name is ``<owner>--<name>`` with each part escaped
so that no part holds ``--`` or ends with ``-``, which makes the first ``--`` the separator:
``_`` is written ``__``, ``.`` is written ``_d``, and a ``-`` that follows another ``-`` or ends the
part is written ``_h``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dphub.names import is_valid_name

SEPARATOR = "--"
_CODES = {"_": "_", "d": ".", "h": "-"}


def _escape(part: str) -> str:
    out = []
    for index, char in enumerate(part):
        if char == "_":
            out.append("__")
        elif char == ".":
            out.append("_d")
        elif char == "-" and (index == len(part) - 1 or (index and part[index - 1] == "-")):
            out.append("_h")
        else:
            out.append(char)
    return "".join(out)


def _unescape(part: str) -> str | None:
    out = []
    chars = iter(part)
    for char in chars:
        if char != "_":
            out.append(char)
            continue
        code = next(chars, "")
        if code not in _CODES:
            return None
        out.append(_CODES[code])
    return "".join(out)


def ckan_name(owner: str, name: str) -> str:
    """The CKAN dataset name of the package ``owner/name``."""
    return f"{_escape(owner)}{SEPARATOR}{_escape(name)}"


def package_of(dataset: str) -> tuple[str, str] | None:
    """``(owner, name)`` of a CKAN dataset name (or of ``owner/name``); ``None`` when it names no
    package. Only the one spelling :func:`ckan_name` writes is accepted."""
    if "/" in dataset:
        owner, _, name = dataset.partition("/")
    else:
        left, separator, right = dataset.partition(SEPARATOR)
        owner, name = _unescape(left) or "", _unescape(right) or ""
        if not separator or ckan_name(owner, name) != dataset:
            return None
    if not (is_valid_name(owner) and is_valid_name(name)):
        return None
    return owner, name


def resource_id(owner: str, name: str, resource: Mapping[str, Any], index: int) -> str:
    """The datastore's id of a resource, ``owner/name/<resource name>``; the resource's index
    stands for a name that would read as an index or as more than one part of the id."""
    label = resource.get("name")
    if not isinstance(label, str) or not label or "/" in label or label.isdigit():
        label = str(index)
    return f"{owner}/{name}/{label}"
