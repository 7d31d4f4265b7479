"""``dphub trust``: which CI jobs may push a package with their own OIDC token (trusted publishing),
and ``dphub trust exchange`` for the CI job's side."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, make_client, parse_ref, stdout

trust = typer.Typer(
    help="Trusted publishing: let a CI job push a package with its OIDC token, no secret stored.",
    no_args_is_help=True,
)
PackageArgument = Annotated[str, typer.Argument(help="The package, OWNER/NAME.")]


def register(app: typer.Typer) -> None:
    app.add_typer(trust, name="trust")


@trust.command("add")
def add(
    package: PackageArgument,
    issuer: Annotated[
        str,
        typer.Option(
            help="The CI's OIDC issuer, e.g. https://token.actions.githubusercontent.com.",
            show_default=False,
        ),
    ],
    subject: Annotated[
        str,
        typer.Option(
            help="The token subject to trust; '*' matches any run of characters after the first"
            " two ':' fields, e.g. repo:ORG/REPO:ref:refs/heads/*.",
            show_default=False,
        ),
    ],
    audience: Annotated[
        str | None,
        typer.Option(
            help="The audience the token must carry (default: the hub's URL or 'dphub').",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
) -> None:
    """Trust a CI issuer and subject to push a package (which need not exist yet)."""
    owner, name = parse_ref(package)
    with make_client(server) as client:
        added = client.add_trusted_publisher(
            owner, name, issuer=issuer, subject=subject, audience=audience
        )
    stdout.print(
        f"{owner}/{name} now trusts {added.get('issuer')} for {added.get('subject')}"
        f" (id {added.get('id')})",
        markup=False,
    )


@trust.command("list")
def list_(package: PackageArgument, server: ServerOption = None) -> None:
    """List the CI issuers and subjects trusted to push a package."""
    owner, name = parse_ref(package)
    with make_client(server) as client:
        trusts = client.trusted_publishers(owner, name)
    if not trusts:
        stdout.print(f"{owner}/{name} trusts no CI issuer.")
        return
    table = Table(title=f"{owner}/{name}", title_justify="left")
    for column in ("id", "issuer", "subject", "audience", "added by"):
        table.add_column(column)
    for t in trusts:
        table.add_row(
            str(t.get("id")),
            str(t.get("issuer")),
            str(t.get("subject")),
            str(t.get("audience") or "(default)"),
            str(t.get("created_by") or "-"),
        )
    stdout.print(table)


@trust.command("remove")
def remove(
    package: PackageArgument,
    trust_id: Annotated[int, typer.Argument(help="The id `dphub trust list` shows.", min=1)],
    server: ServerOption = None,
) -> None:
    """Stop trusting one CI issuer and subject."""
    owner, name = parse_ref(package)
    with make_client(server) as client:
        client.remove_trusted_publisher(owner, name, trust_id)
    stdout.print(f"{owner}/{name} no longer trusts #{trust_id}.")


@trust.command("exchange")
def exchange(
    variable: Annotated[
        str,
        typer.Option(
            "--token-env",
            help="The environment variable holding the CI's OIDC token.",
        ),
    ] = "OIDC_TOKEN",
    package: Annotated[
        str | None,
        typer.Option(
            help="OWNER/NAME, when the token is trusted by several packages.", show_default=False
        ),
    ] = None,
    server: ServerOption = None,
) -> None:
    """Exchange a CI's OIDC token for a 15-minute hub token and print it (for DPHUB_TOKEN)."""
    oidc_token = os.environ.get(variable, "").strip()
    if not oidc_token:
        fail(
            f"${variable} holds no OIDC token.",
            hint="Ask your CI for one (see the 'Trusted publishing' section of docs/deploy.md).",
        )
    with make_client(server) as client:
        token = client.exchange_oidc_token(oidc_token, package=package)
    typer.echo(token)
