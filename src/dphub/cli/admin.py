"""``dphub admin``: the operator's tools for a whole hub (run on the server, against its data dir)."""

from __future__ import annotations

import typer

from dphub.cli import backup, check

app = typer.Typer(
    help="Operator tools for a whole hub: back up, restore and check it (run on the server).",
    no_args_is_help=True,
)
backup.register(app)
check.register(app)
