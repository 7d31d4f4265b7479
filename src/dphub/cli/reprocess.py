"""``dphub reprocess``: queue revisions for processing again (run on the server)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._errors import fail
from dphub.cli._server import DataDirOption

out = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("reprocess")(reprocess)


def reprocess(
    ref: Annotated[
        str | None,
        typer.Argument(metavar="[OWNER/NAME[@REV]]", help="A package (its latest revision)."),
    ] = None,
    unprocessed: Annotated[
        bool,
        typer.Option(
            "--unprocessed",
            help="Every revision that has never been processed (pushed before an upgrade).",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Queue a revision (or every unprocessed one) for the workers to process again."""
    from dphub.config import load_settings
    from dphub.errors import DphubError
    from dphub.hub import open_hub
    from dphub.metastore.db import transaction
    from dphub.metastore.packages import find_package, get_revision
    from dphub.pipeline import jobs

    if (ref is None) == (not unprocessed):
        fail("Name one package (OWNER/NAME[@REV]) or give --unprocessed.")
    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        with transaction(hub.sessions) as db:
            if unprocessed:
                revisions = jobs.unprocessed(db)
            else:
                assert ref is not None
                package_ref, _, number = ref.partition("@")
                owner, _, name = package_ref.partition("/")
                package = find_package(db, owner, name)
                if package is None:
                    fail(f"No package {package_ref!r} on this hub.")
                try:
                    revisions = [get_revision(db, package, number or "latest")]
                except DphubError as exc:
                    fail(str(exc))
            for revision in revisions:
                try:
                    jobs.enqueue(db, revision)
                except ValueError as exc:
                    fail(f"Revision {revision.number}: {exc}.")
        out.print(f"Queued {len(revisions)} revision{'s' if len(revisions) != 1 else ''}.")
    finally:
        hub.close()
