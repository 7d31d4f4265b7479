"""``dphub quota``: a publisher's storage, public and private apart, and the limits on it."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from dphub.cli._hub import ServerOption, human_size, make_client, stdout

app = typer.Typer(
    help="Storage a publisher uses, and the limits site admins set on it.", no_args_is_help=True
)

UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
NO_LIMIT = ("none", "unlimited")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="quota")


def parse_limit(value: str, *, option: str, sizes: bool = True) -> int | None:
    """``10GB``, ``512MiB``, ``1000`` → a number; ``none`` → ``None`` (no limit)."""
    if value.strip().lower() in NO_LIMIT:
        return None
    match = SIZE.fullmatch(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in UNITS or (unit and not sizes):
        what = "a size such as 500MB, 10GiB or 1000000 (bytes)" if sizes else "a whole number"
        raise typer.BadParameter(f"use {what}, or none for no limit", param_hint=option)
    number = float(match.group(1)) * UNITS[unit]
    if not number.is_integer() and unit == "":
        raise typer.BadParameter("use a whole number", param_hint=option)
    return int(number)


def _show(answer: dict[str, Any]) -> None:
    quota = answer.get("quota") or {}
    table = Table(title=f"storage of {answer.get('owner')}", title_justify="left")
    table.add_column("class")
    table.add_column("bytes", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("packages", justify="right")
    for cls in ("public", "private"):
        used = answer.get(cls) or {}
        limit = quota.get(f"max_{cls}_bytes")
        table.add_row(
            cls,
            f"{human_size(used.get('bytes'))} ({used.get('bytes')})",
            "none" if limit is None else f"{human_size(limit)} ({limit})",
            str(used.get("packages")),
        )
    stdout.print(table)
    total = sum(int((answer.get(c) or {}).get("packages") or 0) for c in ("public", "private"))
    limit = quota.get("max_packages")
    stdout.print(f"packages: {total} of {'no limit' if limit is None else limit}")


@app.command("show")
def show(
    owner: Annotated[str, typer.Argument(help="A user or organization.")],
    server: ServerOption = None,
) -> None:
    """Show what a publisher stores and its limits (its members and site admins)."""
    with make_client(server) as client:
        _show(client.call("GET", f"/api/storage/{quote(owner, safe='')}"))


@app.command("set")
def set_quota(
    owner: Annotated[str, typer.Argument(help="A user or organization.")],
    public_bytes: Annotated[
        str | None,
        typer.Option("--public-bytes", help="Limit on published and unlisted data, or none."),
    ] = None,
    private_bytes: Annotated[
        str | None, typer.Option("--private-bytes", help="Limit on private data, or none.")
    ] = None,
    packages: Annotated[
        str | None, typer.Option("--packages", help="Limit on the number of packages, or none.")
    ] = None,
    server: ServerOption = None,
) -> None:
    """Set a publisher's limits (site admins); limits not given stay as they are."""
    given = (
        ("max_public_bytes", public_bytes, "--public-bytes"),
        ("max_private_bytes", private_bytes, "--private-bytes"),
        ("max_packages", packages, "--packages"),
    )
    body = {
        key: parse_limit(value, option=option, sizes=key != "max_packages")
        for key, value, option in given
        if value is not None
    }
    if not body:
        raise typer.BadParameter("give --public-bytes, --private-bytes or --packages")
    with make_client(server) as client:
        _show(client.call("PUT", f"/api/storage/{quote(owner, safe='')}/quota", body))
