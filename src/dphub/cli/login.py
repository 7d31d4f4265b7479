"""``dphub login``: exchange a password or API key for a token, or log in through a single sign-on
provider in the browser (``--browser``), and save the token for the next commands."""

from __future__ import annotations

import os
import webbrowser
from typing import Annotated

import typer

from dphub.cli._errors import fail
from dphub.cli._hub import stdout
from dphub.client import Client, ClientConfig, load_config, save_config
from dphub.errors import Unauthenticated


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
    browser: Annotated[
        bool,
        typer.Option(
            "--browser",
            help="Log in through the hub's single sign-on (GitHub, Google, ...) in a browser.",
        ),
    ] = False,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help="With --browser: the sign-on provider to use (default: the hub's only one).",
            show_default=False,
        ),
    ] = None,
    open_browser: Annotated[
        bool,
        typer.Option(
            "--open/--no-open",
            help="With --browser: open the login page (--no-open only prints its address, to"
            " open on any browser of this machine).",
        ),
    ] = True,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1, help="With --browser: seconds to wait for the login to finish."
        ),
    ] = 300,
) -> None:
    """Log in to a hub; the token is saved, readable by you only, for push and the others."""
    saved = load_config()
    chosen = (server or os.environ.get("DPHUB_SERVER") or saved.server).rstrip("/")
    if browser:
        if username or secret:
            fail("--browser logs in through the sign-on provider: leave out --username/--secret.")
        token, who = _browser_login(chosen, provider, open_browser=open_browser, timeout=timeout)
    else:
        if provider is not None:
            fail("--provider goes with --browser.")
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


def _browser_login(
    server: str, provider: str | None, *, open_browser: bool, timeout: float
) -> tuple[str, str]:
    def show(url: str) -> None:
        stdout.print("Log in in your browser at this address (it works once):")
        stdout.print(url, markup=False, highlight=False, soft_wrap=True)
        if open_browser and not webbrowser.open(url):
            stdout.print("[dim]No browser could be opened here: open the address yourself.[/]")
        stdout.print(f"[dim]Waiting up to {timeout:g} seconds for the login to finish...[/]")
        stdout.file.flush()

    with Client(server) as client:
        try:
            token = client.browser_login(provider, show=show, timeout=timeout)
        except Unauthenticated as exc:
            fail(
                exc.message,
                hint="Run `dphub login --browser` again; with --no-open, open the printed address"
                " in a browser on this machine (the login comes back to 127.0.0.1).",
            )
        who = client.username or ""
    return token, who
