"""``dphub delete``, ``dphub undelete`` and ``dphub purge``: a package's life cycle."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, human_size, make_client, parse_ref, plural, stdout

PackageArgument = Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package.")]


def register(app: typer.Typer) -> None:
    app.command("delete")(delete)
    app.command("undelete")(undelete)
    app.command("purge")(purge)


def _path(ref: str) -> str:
    owner, name = parse_ref(ref)
    return f"/api/package/{quote(owner, safe='')}/{quote(name, safe='')}"


def delete(ref: PackageArgument, server: ServerOption = None) -> None:
    """Delete a package: hidden at once from every page, file, table and list (owners only).

    Nothing is removed: `dphub undelete` brings it back, `dphub purge` removes it for good.
    """
    with make_client(server) as client:
        client.call("DELETE", _path(ref))
    stdout.print(
        f"Deleted {ref}: it is hidden everywhere. Bring it back with `dphub undelete {ref}`,"
        f" or remove it for good with `dphub purge {ref}`."
    )


def undelete(ref: PackageArgument, server: ServerOption = None) -> None:
    """Bring a deleted package back as it was (owners only)."""
    with make_client(server) as client:
        answer = client.call("POST", f"{_path(ref)}/undelete")
    stdout.print(f"Undeleted {ref}: it is {answer.get('findability')} again.")


def purge(
    ref: PackageArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOption = None,
) -> None:
    """Remove a package for good, deleted or not (owners only); this cannot be undone.

    Its revisions and datastore tables go, and every stored file no other package uses.
    """
    path = _path(ref)
    if not yes and not typer.confirm(
        f"Purge {ref} for good, with every revision and file? This cannot be undone", default=False
    ):
        fail("Nothing was purged.", code=1)
    with make_client(server) as client:
        answer = client.call("DELETE", f"{path}/purge")
    blobs = answer.get("blobs") or {}
    removed = int(blobs.get("removed") or 0)
    freed = int(blobs.get("bytes") or 0)
    kept = int(blobs.get("kept") or 0)
    stdout.print(
        f"Purged {ref}: {plural(int(answer.get('revisions') or 0), 'revision')},"
        f" {plural(int(answer.get('tables') or 0), 'datastore table')};"
        f" removed {plural(removed, 'stored file')} ({human_size(freed)}, {freed} bytes),"
        f" kept {kept} still used elsewhere."
    )
