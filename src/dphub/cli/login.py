"""``dphub login``: exchange a password or API key for a token and save it for the next commands."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from dphub.cli._hub import stdout
from dphub.client import Client, ClientConfig, load_config, save_config


def register(app: typer.Typer) -> None:
    app.command("login")(login)


def login(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="URL of the hub (default: DPHUB_SERVER, else the saved one, else"
            " http://127.0.0.1:8000).",
            show_default=False,
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", "-u", help="Username or email (asked when left out)."),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="DPHUB_SECRET",
            help="Password or API key (asked, hidden, when left out).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Log in to a hub; the token is saved, readable by you only, for push and the others."""
    saved = load_config()
    chosen = (server or os.environ.get("DPHUB_SERVER") or saved.server).rstrip("/")
    if not username:
        same = chosen == saved.server.rstrip("/")
        username = typer.prompt("Username or email", default=saved.username if same else None)
    if not secret:
        secret = typer.prompt("Password or API key", hide_input=True)
    with Client(chosen) as client:
        token = client.login(username, secret)
        who = client.username or username
    path = save_config(ClientConfig(server=chosen, username=who, token=token))
    stdout.print(f"Logged in to {chosen} as {who}")
    stdout.print(f"[dim]Token saved in {path}[/]")
