"""``dphub get``: download a package, each file checked against the hash the hub recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dphub.cli._hub import (
    RevisionOption,
    ServerOption,
    TransferBar,
    make_client,
    parse_ref,
    stdout,
)


def register(app: typer.Typer) -> None:
    app.command("get")(get)


def get(
    ref: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package, e.g. core/gdp.")],
    dest: Annotated[
        Path | None,
        typer.Argument(help="Folder to write into (default: ./NAME).", show_default=False),
    ] = None,
    revision: RevisionOption = None,
    server: ServerOption = None,
) -> None:
    """Download a package with its original layout and a datapackage.json."""
    owner, name = parse_ref(ref)
    target = dest or Path(name)
    with make_client(server) as client, TransferBar() as bar:
        written = client.get(owner, name, target, revision=revision, progress=bar)
    stdout.print(f"Wrote {owner}/{name} to {written}", markup=False)
