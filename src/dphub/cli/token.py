"""``dphub token``: your API keys on the hub: create one for a script or CI, list them, revoke one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from dphub.cli._hub import ServerOption, make_client, parse_ref, stdout

app = typer.Typer(
    help="Create, list and revoke your API keys (uses the login `dphub login` saved).",
    no_args_is_help=True,
)

SCOPES = ("read", "publish", "admin")
STATE_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}


@app.command()
def create(
    name: Annotated[
        str | None, typer.Option("--name", help="A label to tell the key apart.")
    ] = None,
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="What the key may do: read, publish (read and push) or admin (also manage"
            " keys, members and settings).",
        ),
    ] = "read",
    package: Annotated[
        str | None,
        typer.Option("--package", metavar="OWNER/NAME", help="Limit the key to this package."),
    ] = None,
    publisher: Annotated[
        str | None,
        typer.Option("--publisher", help="Limit the key to this publisher's packages."),
    ] = None,
    expires: Annotated[
        int | None,
        typer.Option("--expires", metavar="DAYS", help="Expire after this many days.", min=1),
    ] = None,
    server: ServerOption = None,
) -> None:
    """Create an API key; it is printed once, alone on the last line."""
    if scope not in SCOPES:
        raise typer.BadParameter(f"use one of {', '.join(SCOPES)}", param_hint="--scope")
    if package is not None:
        package = "/".join(parse_ref(package))
    with make_client(server) as client:
        made = client.create_api_key(
            name=name,
            scope=scope,
            package=package,
            publisher=publisher,
            expires_in_days=expires,
        )
    stdout.print(f"Created API key {made.get('id')} ({describe(made)}).", markup=False)
    stdout.print("Copy it now: the hub keeps only its hash and cannot show it again.")
    print(made.get("key"))


@app.command("list")
def list_keys(server: ServerOption = None) -> None:
    """List your API keys: their scope, limit, dates and state (never the secrets)."""
    with make_client(server) as client:
        keys = client.api_keys()
    if not keys:
        stdout.print("No API keys yet: make one with `dphub token create`.", markup=False)
        return
    table = Table(
        "id", "name", "prefix", "scope", "limit", "created", "expires", "last used", "state"
    )
    for key in keys:
        state = key_state(key)
        table.add_row(
            str(key.get("id")),
            str(key.get("name")),
            f"dph_{key.get('prefix')}",
            str(key.get("scope")),
            limit_of(key) or "-",
            _day(key.get("created_at")),
            _day(key.get("expires_at")) if key.get("expires_at") else "never",
            _day(key.get("last_used_at")) if key.get("last_used_at") else "never",
            f"[{STATE_STYLES.get(state, 'default')}]{state}[/]",
        )
    stdout.print(table)


@app.command()
def revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (dphub token list).")],
    server: ServerOption = None,
) -> None:
    """Revoke an API key: it and every token made with it stop working at once."""
    with make_client(server) as client:
        revoked = client.revoke_api_key(key_id)
    stdout.print(
        f"Revoked API key {revoked.get('id')} ({revoked.get('name')}, dph_{revoked.get('prefix')}).",
        markup=False,
    )


def limit_of(key: dict[str, Any]) -> str | None:
    if key.get("package"):
        return f"package {key['package']}"
    if key.get("publisher"):
        return f"publisher {key['publisher']}"
    return None


def key_state(key: dict[str, Any]) -> str:
    if key.get("revoked_at"):
        return "revoked"
    return "expired" if key.get("expired") else "active"


def describe(key: dict[str, Any]) -> str:
    parts = [f"{key.get('name')!r}", f"scope {key.get('scope')}"]
    limit = limit_of(key)
    if limit:
        parts.append(f"limited to {limit}")
    expires = key.get("expires_at")
    parts.append(f"expires {_day(expires)}" if expires else "no expiry")
    return ", ".join(parts)


def _day(value: Any) -> str:
    """An ISO 8601 moment from the hub as a short UTC date and time."""
    if not isinstance(value, str):
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return value
