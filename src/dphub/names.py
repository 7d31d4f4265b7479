"""Names and paths: the strict patterns every publisher, package and file path must follow.

Shared by the server (which enforces them) and the client (which checks before any network call).
"""

from __future__ import annotations

import re

from dphub.errors import InvalidName, InvalidPath

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")

# Words used by top-level routes of the hub (or kept for them): never a publisher name.
RESERVED_NAMES = frozenset(
    {
        "about",
        "account",
        "admin",
        "api",
        "assets",
        "auth",
        "bitstore",
        "dashboard",
        "datastore",
        "dataproxy",
        "docs",
        "favicon.ico",
        "healthz",
        "help",
        "login",
        "logout",
        "metastore",
        "metrics",
        "new",
        "openapi.json",
        "org",
        "orgs",
        "rawstore",
        "readyz",
        "redoc",
        "resolver",
        "robots.txt",
        "search",
        "settings",
        "signup",
        "source",
        "static",
        "user",
        "users",
        "well-known",
    }
)

MAX_PATH_LENGTH = 1024


def is_valid_name(value: object) -> bool:
    """The pattern, and no trailing '.' (it would vanish from URLs on some platforms)."""
    return (
        isinstance(value, str)
        and NAME_PATTERN.fullmatch(value) is not None
        and not value.endswith(".")
    )


def check_name(value: object, *, what: str = "name") -> str:
    """Return ``value`` if it is a valid package or publisher name, else raise ``InvalidName``."""
    if not is_valid_name(value):
        raise InvalidName(
            f"{what} {value!r} is not valid: use 1 to 100 characters, lowercase letters, digits,"
            " '_', '.' or '-', starting with a letter or digit and not ending with '.'.",
            field=what,
        )
    assert isinstance(value, str)
    return value


def check_publisher_name(value: object) -> str:
    name = check_name(value, what="publisher")
    if name in RESERVED_NAMES:
        raise InvalidName(
            f"publisher {name!r} is a reserved word of the hub's URLs; choose another name.",
            field="publisher",
        )
    return name


def path_problem(path: object) -> str | None:
    """Why ``path`` may not name a file inside a package, or ``None`` when it is fine."""
    if not isinstance(path, str):
        return "a path must be a string"
    if not path:
        return "the path is empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"the path is longer than {MAX_PATH_LENGTH} characters"
    if "\\" in path:
        return "the path contains a backslash; use '/' between folders"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "the path is absolute; it must be relative to the datapackage.json"
    if "://" in path:
        return "the path is a URL, not a file of the package"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return "the path contains control characters"
    parts = path.split("/")
    if any(part == ".." for part in parts):
        return "the path contains '..' and would leave the package folder"
    if any(part in ("", ".") for part in parts):
        return "the path contains an empty or '.' segment"
    return None


def check_path(path: object) -> str:
    """Return ``path`` if it is a safe relative file path, else raise ``InvalidPath``."""
    problem = path_problem(path)
    if problem is not None:
        raise InvalidPath(f"{path!r}: {problem}.", path=path if isinstance(path, str) else None)
    assert isinstance(path, str)
    return path


TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
REVISION_WORDS = frozenset({"latest", "successful"})
"""Words that name a revision of every package: a tag may not shadow them."""


def tag_problem(value: object) -> str | None:
    """Why ``value`` may not be a tag of a package, or ``None`` when it is fine.

    Tags stand wherever a revision number does (``/v/v1.0/``), so they never look like one.
    """
    if not isinstance(value, str) or not value:
        return "a tag must be a non-empty string"
    if TAG_PATTERN.fullmatch(value) is None:
        return (
            "use 1 to 100 characters: letters, digits, '.', '_', '-' or '+', starting with a"
            " letter or digit"
        )
    if value.isdigit():
        return "a tag of digits only would read as a revision number"
    if value.lower() in REVISION_WORDS:
        return f"{value!r} already names a revision of every package"
    return None


def is_valid_tag(value: object) -> bool:
    return tag_problem(value) is None
