"""``dphub bitstore``: upkeep of the hub's object storage (run on the server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._server import DataDirOption

app = typer.Typer(
    help="Upkeep of the hub's object storage (run on the server).", no_args_is_help=True
)
out = Console(highlight=False)


@app.command()
def cleanup(
    older_than_hours: Annotated[
        float, typer.Option(help="Abort multipart uploads started longer ago than this.")
    ] = 24.0,
    data_dir: DataDirOption = None,
) -> None:
    """Abort incomplete multipart uploads older than a day (or --older-than-hours)."""
    from dphub.config import load_settings
    from dphub.hub import open_hub
    from dphub.ingest.multipart import abort_stale

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        aborted = abort_stale(
            hub.sessions, bitstore=hub.bitstore, older_than=timedelta(hours=older_than_hours)
        )
    finally:
        hub.close()
    out.print(f"Aborted {aborted} incomplete multipart upload{'s' if aborted != 1 else ''}.")
