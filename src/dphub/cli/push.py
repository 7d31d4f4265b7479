"""``dphub push``: publish a package folder as a new revision on the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, TransferBar, human_size, make_client, plural, stdout
from dphub.cli.status import follow


def register(app: typer.Typer) -> None:
    app.command("push")(push)


def push(
    directory: Annotated[
        Path, typer.Argument(help="The package folder, holding datapackage.json.")
    ] = Path("."),
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Publisher to push to (default: you).", show_default=False),
    ] = None,
    published: Annotated[
        bool, typer.Option("--published", help="Listed in search, readable by anyone.")
    ] = False,
    unlisted: Annotated[
        bool, typer.Option("--unlisted", help="Readable by anyone with the URL, not listed.")
    ] = False,
    private: Annotated[bool, typer.Option("--private", help="Readable by members only.")] = False,
    server: ServerOption = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=32, help="Files or parts uploaded at once.")
    ] = 4,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Follow the hub's processing of the new revision (--no-wait returns at once).",
        ),
    ] = True,
) -> None:
    """Validate, upload what the hub does not hold yet, and create a new revision."""
    flags = {"published": published, "unlisted": unlisted, "private": private}
    chosen = [name for name, on in flags.items() if on]
    if len(chosen) > 1:
        fail("Choose one of --published, --unlisted and --private.")
    findability = chosen[0] if chosen else None
    with make_client(server) as client:
        try:
            with TransferBar() as bar:
                result = client.push(
                    directory, owner=owner, findability=findability, progress=bar, workers=workers
                )
        except KeyboardInterrupt:
            fail(
                "Interrupted: no new revision was made.",
                hint="Run the same dphub push again: it sends only what the hub does not hold yet.",
                code=130,
            )
        except httpx.TransportError as exc:
            fail(
                f"The push stopped: the connection to the hub broke off or could not be made"
                f" ({exc or type(exc).__name__}).",
                hint="Run the same dphub push again once the hub answers: it sends only what the"
                " hub does not hold yet, and makes no second revision of the same files.",
            )
        resumed = (
            f", {human_size(result.resumed_bytes)} already there from an interrupted push"
            if result.resumed_bytes
            else ""
        )
        stdout.print(
            f"{plural(len(result.uploaded_files), 'file')} uploaded"
            f" ({human_size(result.uploaded_bytes)} sent{resumed}),"
            f" {len(result.skipped_files)} already on the hub.",
            markup=False,
        )
        revision = f" revision {result.revision}" if result.revision is not None else ""
        verb = "Unchanged:" if result.unchanged else "Published"
        stdout.print(f"{verb} {result.owner}/{result.name}{revision}", markup=False)
        stdout.print(result.url, markup=False)
        if wait and result.revision is not None:
            status = follow(client, result.owner, result.name, result.revision)
            if status.get("state") == "FAILED":
                raise typer.Exit(1)
        elif result.revision is not None and not result.unchanged:
            stdout.print(
                f"Processing: {result.url}/v/{result.revision}/processing (a page that follows it)",
                markup=False,
            )
