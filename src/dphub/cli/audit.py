"""``dphub audit``: the hub's security events (logins, failed logins, refusals), for site admins."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dphub.cli._hub import ServerOption, make_client, stdout

OUTCOME_STYLES = {"ok": "green", "failed": "red", "denied": "yellow"}


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    event: Annotated[
        str | None, typer.Option("--event", help="Only this event, e.g. login.failed.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only events of this actor.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Events to show.")] = 50,
    before: Annotated[
        int | None, typer.Option(min=1, help="Only events older than this event id (next page).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hub's answer as JSON.")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Show the audit log, newest first (needs a site admin's login)."""
    with make_client(server) as client:
        answer = client.audit(event=event, actor=actor, limit=limit, before=before)
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    events = answer.get("events") or []
    if not events:
        stdout.print("No events.")
        return
    stdout.print(render(events))
    if answer.get("next") is not None:
        stdout.print(f"[dim]Older events: dphub audit --before {answer['next']}[/]")


def render(events: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "time (UTC)", "event", "outcome", "actor", "ip", "target"):
        table.add_column(column, no_wrap=column in ("id", "time (UTC)", "ip"))
    for item in events:
        outcome = str(item.get("outcome") or "")
        style = OUTCOME_STYLES.get(outcome, "")
        table.add_row(
            str(item.get("id", "")),
            _time(item.get("created_at")),
            escape(str(item.get("event") or "")),
            f"[{style}]{escape(outcome)}[/]" if style else escape(outcome),
            escape(str(item.get("actor") or "-")),
            escape(str(item.get("ip") or "-")),
            escape(str(item.get("target") or "-")),
        )
    return table


def _time(value: object) -> str:
    """``2024-05-01T12:00:03.123456+00:00`` → ``2024-05-01 12:00:03``."""
    text = str(value or "")
    return text[:19].replace("T", " ")
