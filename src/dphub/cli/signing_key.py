"""``dphub signing-key``: the keys that sign session tokens, listed and rotated in the metastore."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from dphub.cli._server import DataDirOption

app = typer.Typer(
    help="List and rotate the keys that sign the hub's tokens (run on the server).",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True)

ACTOR = "command line"


@app.command()
def rotate(data_dir: DataDirOption = None) -> None:
    """Sign new tokens with a new key; tokens signed before stay valid until they expire."""
    from dphub.auth import audit, signing
    from dphub.config import load_settings
    from dphub.hub import open_hub
    from dphub.metastore.db import transaction

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        with transaction(hub.sessions) as db:
            rotation = signing.rotate(db)
            audit.record(
                db,
                "signing-key.rotate",
                actor=ACTOR,
                target=rotation.key.kid,
                retired=rotation.retired,
            )
        grace = hub.settings.token_ttl
    finally:
        hub.close()
    out.print(f"New signing key {rotation.key.kid}.", markup=False)
    if rotation.retired:
        until = _moment(time.time() + grace)
        out.print(
            f"Retired {', '.join(rotation.retired)}: the tokens signed with"
            f" {'it' if len(rotation.retired) == 1 else 'them'} stay valid until about {until}.",
            markup=False,
        )
    out.print("API processes start signing with the new key within a few seconds.", markup=False)


@app.command("list")
def list_keys(data_dir: DataDirOption = None) -> None:
    """List the signing keys, newest first, with their state."""
    from dphub.auth import signing
    from dphub.config import load_settings
    from dphub.hub import open_hub

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        with hub.sessions() as db:
            keys = signing.list_keys(db)
        grace = hub.settings.token_ttl
    finally:
        hub.close()
    if not keys:
        out.print("No signing key yet: the hub makes one when it first signs a token.")
        return
    table = Table("kid", "algorithm", "created", "retired", "verifies until", "state")
    for key in keys:
        shown = signing.describe(key, grace=grace)
        table.add_row(
            key.kid,
            key.algorithm,
            _moment(key.created_at.timestamp()),
            _moment(key.retired_at.timestamp()) if key.retired_at else "-",
            _moment(shown["verifies_until"].timestamp()) if shown["verifies_until"] else "-",
            shown["state"],
        )
    out.print(table)


def _moment(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
