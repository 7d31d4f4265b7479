"""``dphub webhook``: URLs a publisher's events are POSTed to, signed, and their delivery log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, make_client, stdout
from dphub.names import is_valid_name

webhook = typer.Typer(
    help="Webhooks: the hub POSTs each event of a publisher's packages to a URL, signed.",
    no_args_is_help=True,
)
PublisherArgument = Annotated[
    str, typer.Argument(help="The publisher: an organization or your user name.")
]
IdArgument = Annotated[int, typer.Argument(help="The id `dphub webhook list` shows.", min=1)]
STATE_STYLES = {"delivered": "green", "failed": "red", "pending": "yellow"}


def register(app: typer.Typer) -> None:
    app.add_typer(webhook, name="webhook")


def _publisher(name: str) -> str:
    if not is_valid_name(name):
        fail(f"{name!r} is not a publisher name.")
    return name


@webhook.command("add")
def add(
    publisher: PublisherArgument,
    url: Annotated[str, typer.Argument(help="The https URL to POST events to.")],
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="Deliver only this kind of event (repeat for more); default: every kind.",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
) -> None:
    """Register a webhook and print its signing secret (shown this once, on the last line)."""
    with make_client(server) as client:
        added = client.add_webhook(_publisher(publisher), url, kinds=kind or None)
    kinds = ", ".join(added.get("kinds") or []) or "every kind of event"
    stdout.print(f"Webhook {added.get('id')} of {publisher}: {added.get('url')}", markup=False)
    stdout.print(f"Delivers: {kinds}", markup=False)
    stdout.print(
        "Each delivery carries X-Dphub-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with"
        " this secret>. Keep it: it is not shown again.",
        markup=False,
    )
    typer.echo(str(added.get("secret")))


@webhook.command("list")
def list_(publisher: PublisherArgument, server: ServerOption = None) -> None:
    """List a publisher's webhooks."""
    with make_client(server) as client:
        hooks = client.webhooks(_publisher(publisher))
    if not hooks:
        stdout.print(f"{publisher} has no webhooks.")
        return
    table = Table(title=publisher, title_justify="left")
    for column in ("id", "url", "kinds", "added by", "added (UTC)"):
        table.add_column(column)
    for hook in hooks:
        table.add_row(
            str(hook.get("id")),
            escape(str(hook.get("url"))),
            escape(", ".join(hook.get("kinds") or []) or "(all)"),
            escape(str(hook.get("created_by") or "-")),
            str(hook.get("created_at") or "")[:19].replace("T", " "),
        )
    stdout.print(table)


@webhook.command("remove")
def remove(
    publisher: PublisherArgument, webhook_id: IdArgument, server: ServerOption = None
) -> None:
    """Remove a webhook; deliveries it is still owed are dropped."""
    with make_client(server) as client:
        client.remove_webhook(_publisher(publisher), webhook_id)
    stdout.print(f"Removed webhook {webhook_id} of {publisher}.", markup=False)


@webhook.command("deliveries")
def deliveries(
    publisher: PublisherArgument,
    webhook_id: IdArgument,
    state: Annotated[
        str | None, typer.Option(help="Only pending, delivered or failed deliveries.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Deliveries to show.")] = 20,
    before: Annotated[
        int | None, typer.Option(min=1, help="Only deliveries older than this id (next page).")
    ] = None,
    server: ServerOption = None,
) -> None:
    """Show a webhook's delivery log, newest first."""
    with make_client(server) as client:
        answer = client.webhook_deliveries(
            _publisher(publisher), webhook_id, state=state, limit=limit, before=before
        )
    found = answer.get("deliveries") or []
    if not found:
        stdout.print(f"No deliveries for webhook {webhook_id}.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "event", "state", "attempts", "status", "error", "next try / done (UTC)"):
        table.add_column(column, no_wrap=column not in ("error",))
    for item in found:
        event = item.get("event") or {}
        package = "/".join(str(p) for p in (event.get("owner"), event.get("name")) if p)
        state_text = str(item.get("state") or "")
        style = STATE_STYLES.get(state_text, "")
        when = item.get("delivered_at") or item.get("next_attempt_at") or ""
        table.add_row(
            str(item.get("id")),
            escape(f"{event.get('kind')} {package}"),
            f"[{style}]{escape(state_text)}[/]" if style else escape(state_text),
            str(item.get("attempts")),
            str(item.get("last_status") if item.get("last_status") is not None else "-"),
            escape(str(item.get("last_error") or "-")),
            str(when)[:19].replace("T", " "),
        )
    stdout.print(table)
    if answer.get("next") is not None:
        stdout.print(
            f"[dim]Older deliveries: dphub webhook deliveries {escape(publisher)} {webhook_id}"
            f" --before {answer['next']}[/]"
        )
