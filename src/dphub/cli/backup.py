"""``dphub admin export`` and ``dphub admin import``: a whole hub to a backup folder and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._hub import human_size, plural
from dphub.cli._server import DataDirOption

out = Console(highlight=False, soft_wrap=True)

BackupDir = Annotated[
    Path, typer.Argument(help="The backup folder.", show_default=False, file_okay=False)
]


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_backup)


def export(directory: BackupDir, data_dir: DataDirOption = None) -> None:
    """Back up the whole hub into a new folder: every metastore row and every stored file.

    Safe while the hub runs: the rows are read as of one moment. The folder appears only once
    the backup is complete. It holds password hashes, API key hashes and the keys that sign
    tokens, so it is made readable by you only: keep it that way.
    """
    from dphub.backup import export_hub
    from dphub.config import load_settings
    from dphub.hub import open_hub

    hub = open_hub(load_settings(data_dir=data_dir), migrate=False)
    try:
        manifest = export_hub(hub, directory, say=_step)
    finally:
        hub.close()
    out.print(
        f"Exported {plural(manifest.rows(), 'row')} of {plural(len(manifest.tables), 'table')}"
        f" and {plural(manifest.blob_list.lines, 'file')} ({human_size(manifest.blob_bytes)})"
        f" to {directory}."
    )
    out.print("It holds password hashes and signing keys: keep it private (it is mode 0700).")


def import_backup(
    directory: BackupDir,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Verify every hash and count, and that this hub can take the backup; import"
            " nothing.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Restore a backup made by `dphub admin export` into this hub, which must be empty.

    Every file's SHA-256 and every table's row count is checked against the backup's manifest;
    the rows go in in one transaction at the end, so a failed import leaves nothing visible.
    Works across backends: a backup of an embedded hub imports into PostgreSQL and S3.
    """
    from dphub.backup import import_hub
    from dphub.config import load_settings
    from dphub.hub import open_hub

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        manifest = import_hub(hub, directory, check_only=check, say=_step)
    finally:
        hub.close()
    what = (
        f"{plural(manifest.rows(), 'row')} and {plural(manifest.blob_list.lines, 'file')}"
        f" ({human_size(manifest.blob_bytes)})"
    )
    if check:
        out.print(f"The backup in {directory} verifies: {what}. This hub can take it.")
    else:
        out.print(f"Imported {what} from {directory}.")


def _step(line: str) -> None:
    out.print(f"  {line}")
