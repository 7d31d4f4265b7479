"""``dphub gc``: remove the blobs nothing references and uploads never filed (run on the server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._hub import human_size, plural
from dphub.cli._server import DataDirOption

out = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    grace_hours: Annotated[
        float | None,
        typer.Option(
            "--grace-hours",
            min=0,
            help="Spare blobs younger than this (default: DPHUB_GC_GRACE_HOURS, 24).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Remove stored files no revision, derived file or open upload uses any more.

    Safe while the hub runs: blobs younger than the grace period stay, and each blob is checked
    again right before it goes.
    """
    from dphub.config import load_settings
    from dphub.hub import open_hub
    from dphub.lifecycle.gc import Removal, collect_garbage

    hub = open_hub(load_settings(data_dir=data_dir))
    hours = hub.settings.gc_grace_hours if grace_hours is None else grace_hours
    verb = "Would remove" if dry_run else "Removed"
    now = datetime.now(UTC)

    def show(removal: Removal) -> None:
        age = now - removal.modified
        out.print(f"{verb} {removal.kind} {removal.key} ({removal.size} bytes, {_age(age)} old)")

    try:
        done = collect_garbage(
            hub.sessions,
            hub.bitstore,
            grace=timedelta(hours=hours),
            dry_run=dry_run,
            report=show,
        )
    finally:
        hub.close()
    out.print(
        f"{verb} {plural(done.blobs, 'blob')} ({human_size(done.blob_bytes)}, {done.blob_bytes}"
        f" bytes) and {plural(done.staged, 'staged upload')} ({done.staged_bytes} bytes);"
        f" {done.scanned} blobs listed, {done.young} younger than {hours:g} h spared"
        + (f", {done.kept} found in use on the last check" if done.kept else "")
        + "."
    )


def _age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
