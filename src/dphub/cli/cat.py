"""``dphub cat``: a resource as CSV, JSON or NDJSON on stdout, converted by the hub as it streams."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dphub.cli._errors import fail
from dphub.cli._hub import RevisionOption, ServerOption, make_client


def register(app: typer.Typer) -> None:
    app.command("cat")(cat)


def cat(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="OWNER/NAME[/RESOURCE]",
            help="The resource, by name or index (default: the first).",
        ),
    ],
    output: Annotated[str, typer.Option("--format", help="csv, json or ndjson.")] = "csv",
    limit: Annotated[int | None, typer.Option(min=0, help="Rows to print (default: all).")] = None,
    revision: RevisionOption = None,
    server: ServerOption = None,
) -> None:
    """Print a resource's rows, converted on the hub (nothing is downloaded whole)."""
    if output not in ("csv", "json", "ndjson"):
        fail("--format must be csv, json or ndjson.")
    parts = ref.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        fail(f"{ref!r} does not name a resource: use OWNER/NAME[/RESOURCE].")
    owner, name = parts[0], parts[1]
    resource = parts[2] if len(parts) == 3 else "0"
    out = sys.stdout.buffer
    with make_client(server) as client:
        try:
            for chunk in client.cat(
                owner, name, resource, format=output, limit=limit, revision=revision
            ):
                out.write(chunk)
        except BrokenPipeError:  # `dphub cat ... | head`
            return
    out.flush()
