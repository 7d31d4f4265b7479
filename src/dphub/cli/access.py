"""``dphub org``, ``dphub collaborator`` and ``dphub findability``: who may read and write what."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from dphub.cli._hub import ServerOption, make_client, parse_ref, stdout

ROLES = ("owner", "editor", "viewer")
RoleOption = Annotated[
    str,
    typer.Option("--role", help="owner, editor or viewer.", case_sensitive=False),
]

org = typer.Typer(help="Organizations: create them and manage their members.", no_args_is_help=True)
collaborator = typer.Typer(
    help="A package's collaborators: users with a role on one package.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(org, name="org")
    app.add_typer(collaborator, name="collaborator")
    app.command("findability")(findability)


def _q(value: str) -> str:
    return quote(value, safe="")


def _members_table(title: str, members: list[dict[str, Any]]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("user")
    table.add_column("role")
    for member in members:
        table.add_row(str(member.get("username")), str(member.get("role")))
    stdout.print(table)


def _show(answer: dict[str, Any]) -> None:
    title = f" — {answer['title']}" if answer.get("title") else ""
    stdout.print(f"{answer.get('name')} ({answer.get('kind')}){title}")
    if "members" in answer:
        _members_table("members", answer["members"])


def _check_role(role: str) -> str:
    role = role.lower()
    if role not in ROLES:
        raise typer.BadParameter(f"use one of {', '.join(ROLES)}", param_hint="--role")
    return role


@org.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organization's name (a publisher name).")],
    title: Annotated[str | None, typer.Option(help="A human-readable title.")] = None,
    server: ServerOption = None,
) -> None:
    """Create an organization; you become its owner."""
    with make_client(server) as client:
        answer = client.call("POST", "/api/org", {"name": name, "title": title})
    _show(answer)


@org.command("show")
def org_show(
    name: Annotated[str, typer.Argument(help="An organization or user name.")],
    server: ServerOption = None,
) -> None:
    """Show a publisher, and its members if you are one."""
    with make_client(server) as client:
        _show(client.call("GET", f"/api/publisher/{_q(name)}"))


@org.command("add-member")
def org_add_member(
    name: Annotated[str, typer.Argument(help="The organization.")],
    username: Annotated[str, typer.Argument(help="The user to add (or whose role to change).")],
    role: RoleOption = "viewer",
    server: ServerOption = None,
) -> None:
    """Add a member to an organization, or change a member's role (owners only)."""
    role = _check_role(role)
    with make_client(server) as client:
        path = f"/api/org/{_q(name)}/members/{_q(username)}"
        _show(client.call("PUT", path, {"role": role}))


@org.command("remove-member")
def org_remove_member(
    name: Annotated[str, typer.Argument(help="The organization.")],
    username: Annotated[str, typer.Argument(help="The member to remove.")],
    server: ServerOption = None,
) -> None:
    """Remove a member from an organization (owners only; the last owner stays)."""
    with make_client(server) as client:
        _show(client.call("DELETE", f"/api/org/{_q(name)}/members/{_q(username)}"))


def _collaborators_path(ref: str, username: str | None = None) -> str:
    owner, name = parse_ref(ref)
    path = f"/api/package/{_q(owner)}/{_q(name)}/collaborators"
    return f"{path}/{_q(username)}" if username else path


@collaborator.command("list")
def collaborator_list(
    ref: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package.")],
    server: ServerOption = None,
) -> None:
    """List a package's collaborators."""
    with make_client(server) as client:
        answer = client.call("GET", _collaborators_path(ref))
    _members_table(f"collaborators on {ref}", answer.get("collaborators", []))


@collaborator.command("add")
def collaborator_add(
    ref: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package.")],
    username: Annotated[str, typer.Argument(help="The user.")],
    role: RoleOption = "viewer",
    server: ServerOption = None,
) -> None:
    """Give a user a role on one package (package owners only)."""
    role = _check_role(role)
    with make_client(server) as client:
        answer = client.call("PUT", _collaborators_path(ref, username), {"role": role})
    _members_table(f"collaborators on {ref}", answer.get("collaborators", []))


@collaborator.command("remove")
def collaborator_remove(
    ref: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package.")],
    username: Annotated[str, typer.Argument(help="The user.")],
    server: ServerOption = None,
) -> None:
    """Take a user's role on one package away."""
    with make_client(server) as client:
        answer = client.call("DELETE", _collaborators_path(ref, username))
    _members_table(f"collaborators on {ref}", answer.get("collaborators", []))


def findability(
    ref: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package.")],
    value: Annotated[
        str,
        typer.Argument(
            metavar="published|unlisted|private",
            help="published: listed; unlisted: readable by URL; private: members only.",
        ),
    ],
    server: ServerOption = None,
) -> None:
    """Change who can find and read a package (package owners only)."""
    owner, name = parse_ref(ref)
    with make_client(server) as client:
        answer = client.set_findability(owner, name, value)
    stdout.print(f"{owner}/{name} is now {answer.get('findability')}.")
