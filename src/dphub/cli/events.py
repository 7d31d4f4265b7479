"""``dphub events``: what happened to packages (pushed, processed, failed, tagged, ...), newest
first."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, make_client, stdout
from dphub.names import is_valid_name

KIND_STYLES = {"processed": "green", "failed": "red", "deleted": "yellow", "purged": "yellow"}
MAX_DETAIL = 80


def register(app: typer.Typer) -> None:
    app.command("events")(events)


def parse_scope(scope: str | None) -> tuple[str | None, str | None]:
    """``OWNER`` or ``OWNER/NAME`` → owner and name (each ``None`` when not given)."""
    if scope is None:
        return None, None
    owner, sep, name = scope.strip("/").partition("/")
    if not is_valid_name(owner) or (sep and not is_valid_name(name)):
        fail(
            f"{scope!r} names no publisher or package: use OWNER or OWNER/NAME, e.g. core/gdp.",
            hint="Names use lowercase letters, digits, '_', '.' and '-'.",
        )
    return owner, name or None


def events(
    scope: Annotated[
        str | None,
        typer.Argument(
            metavar="[OWNER[/NAME]]",
            help="A publisher or one package (default: every package you see listed).",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="Only events of these kinds, comma separated, e.g. pushed,failed."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Events to show.")] = 20,
    before: Annotated[
        int | None, typer.Option(min=1, help="Only events older than this event id (next page).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hub's answer as JSON.")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Show the activity stream, newest first: of the hub, a publisher or one package."""
    owner, name = parse_scope(scope)
    with make_client(server) as client:
        answer = client.events(owner, name, kind=kind, limit=limit, before=before)
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    found = answer.get("events") or []
    if not found:
        stdout.print("No events.")
        return
    stdout.print(render(found))
    if answer.get("next") is not None:
        again = f"dphub events {scope + ' ' if scope else ''}--before {answer['next']}"
        stdout.print(f"[dim]Older events: {escape(again)}[/]")


def render(found: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "time (UTC)", "kind", "package", "revision", "actor", "detail"):
        table.add_column(column, no_wrap=column in ("id", "time (UTC)", "kind"))
    for item in found:
        kind = str(item.get("kind") or "")
        style = KIND_STYLES.get(kind, "")
        package = "/".join(str(p) for p in (item.get("owner"), item.get("name")) if p)
        revision = item.get("revision")
        table.add_row(
            str(item.get("id", "")),
            str(item.get("created_at") or "")[:19].replace("T", " "),
            f"[{style}]{escape(kind)}[/]" if style else escape(kind),
            escape(package),
            str(revision) if revision is not None else "-",
            escape(str(item.get("actor") or "-")),
            escape(_detail(item.get("detail"))),
        )
    return table


def _detail(detail: object) -> str:
    """``{"before": "published", "after": "private"}`` → ``before=published after=private``."""
    if not isinstance(detail, dict) or not detail:
        return "-"
    text = " ".join(f"{key}={value}" for key, value in detail.items())
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
