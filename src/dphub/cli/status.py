"""``dphub status``: how the hub's processing of a revision went, step by step."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, make_client, stdout
from dphub.client import Client
from dphub.names import is_valid_name

STATE_STYLES = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "INPROGRESS": "yellow",
    "QUEUED": "dim",
    "SKIPPED": "dim",
}
MAX_ERRORS_SHOWN = 20


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def parse_revision_ref(ref: str) -> tuple[str, str, str]:
    """``OWNER/NAME[@REV]`` → owner, name, revision (``latest`` when not given)."""
    package, _, revision = ref.strip("/").partition("@")
    owner, sep, name = package.partition("/")
    if not sep or not is_valid_name(owner) or not is_valid_name(name):
        fail(f"{ref!r} does not name a package: use OWNER/NAME or OWNER/NAME@REVISION.")
    return owner, name, revision or "latest"


def status(
    ref: Annotated[
        str, typer.Argument(metavar="OWNER/NAME[@REV]", help="The package, e.g. core/gdp@3.")
    ],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the processing until it ends.")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Show a revision's state (QUEUED, INPROGRESS, SUCCEEDED, FAILED) and each step."""
    owner, name, revision = parse_revision_ref(ref)
    with make_client(server) as client:
        answer = (
            follow(client, owner, name, revision)
            if wait
            else client.revision_status(owner, name, revision)
        )
    if not wait:
        stdout.print(render(answer))
    if answer.get("state") == "FAILED":
        raise typer.Exit(1)


def follow(client: Client, owner: str, name: str, revision: int | str) -> dict[str, Any]:
    """Poll until the revision is processed, showing its steps live; returns the last answer."""
    if not stdout.is_terminal:  # a log or a pipe: the outcome once, not every frame
        answer = client.wait(owner, name, revision)
        stdout.print(render(answer))
        return answer
    with Live(console=stdout, auto_refresh=False, transient=False) as live:

        def show(answer: dict[str, Any]) -> None:
            live.update(render(answer), refresh=True)

        return client.wait(owner, name, revision, on_status=show)


def render(answer: dict[str, Any]) -> Group:
    state = str(answer.get("state") or "UNKNOWN")
    style = STATE_STYLES.get(state, "")
    heading = f"Revision {answer.get('revision')} of {answer.get('package')}: [{style}]{state}[/]"
    steps = Table(show_header=False, box=None, padding=(0, 2))
    pipelines = answer.get("pipelines")
    for key, step in pipelines.items() if isinstance(pipelines, dict) else []:
        if not isinstance(step, dict):
            continue
        step_state = str(step.get("status") or "")
        seconds = step.get("seconds")
        took = f"{seconds:.2f} s" if isinstance(seconds, int | float) else ""
        steps.add_row(
            f"[{STATE_STYLES.get(step_state, '')}]{step_state or '-'}[/]",
            str(step.get("title") or key),
            took,
            _stats(step.get("stats")),
        )
    parts: list[Any] = [heading, steps]
    parts.extend(_errors(answer))
    return Group(*parts)


def _stats(stats: Any) -> str:
    if not isinstance(stats, dict):
        return ""
    return ", ".join(f"{k} {v}" for k, v in stats.items() if isinstance(v, int | float | str))


def _errors(answer: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    errors = answer.get("errors")
    log = errors.get("error_log") if isinstance(errors, dict) else None
    for line in (log if isinstance(log, list) else [])[:MAX_ERRORS_SHOWN]:
        lines.append(f"  [red]x[/] {_escape(str(line))}")
    return lines


def _escape(text: str) -> str:
    return text.replace("[", "\\[")
