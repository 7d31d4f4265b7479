"""``dphub user``: manage the hub's accounts directly in its metastore."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._server import DataDirOption

app = typer.Typer(help="Manage users of the hub (run on the server).", no_args_is_help=True)
err = Console(stderr=True, highlight=False)


@app.command()
def create(
    username: Annotated[str, typer.Argument(help="The new publisher name.")],
    email: Annotated[str, typer.Option(help="The user's email address.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from standard input.")
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user a site admin.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create a user and print a new API key (the secret) alone on the last line."""
    from dphub.auth.accounts import create_api_key, create_user
    from dphub.config import load_settings
    from dphub.hub import open_hub
    from dphub.metastore.db import transaction

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        with transaction(hub.sessions) as db:
            user = create_user(
                db, username=username, email=email, password=password, is_admin=admin
            )
            key = create_api_key(db, user=user, name="created with the user")
    finally:
        hub.close()
    err.print(f"Created user {username} <{email.strip().lower()}>. Their API key:")
    print(key)


@app.command("api-key")
def api_key(
    username: Annotated[str, typer.Argument(help="The user who gets the key.")],
    name: Annotated[str, typer.Option(help="A label to tell the key apart.")] = "cli",
    data_dir: DataDirOption = None,
) -> None:
    """Issue another API key for a user, printed alone on the last line."""
    from dphub.auth.accounts import create_api_key, find_user
    from dphub.config import load_settings
    from dphub.errors import NotFound
    from dphub.hub import open_hub
    from dphub.metastore.db import transaction

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        with transaction(hub.sessions) as db:
            user = find_user(db, username)
            if user is None:
                raise NotFound(f"No user {username!r}.")
            key = create_api_key(db, user=user, name=name)
    finally:
        hub.close()
    print(key)
