"""How the CLI reports a failure: one friendly line and what to try next, no traceback.

``DPHUB_DEBUG=1`` shows the traceback as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import httpx
import typer
from rich.console import Console

from dphub.errors import DphubError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, *, hint: str | None = None, code: int = 1) -> NoReturn:
    stderr.print(f"[bold red]Error:[/] {message}", markup=True)
    if hint:
        stderr.print(f"[dim]{hint}[/]")
    raise typer.Exit(code)


def run(app: typer.Typer) -> None:
    """Run the CLI; click reports usage errors itself, dphub's own failures are reported here."""
    debug = os.environ.get("DPHUB_DEBUG", "") not in ("", "0", "false")
    try:
        app()
    except DphubError as exc:
        if debug:
            traceback.print_exc()
        _report(exc.message, exc.hint, problems=exc.details.get("problems"))
        sys.exit(1)
    except httpx.HTTPError as exc:
        if debug:
            traceback.print_exc()
        _report(f"could not reach the hub: {exc}", "Check the server URL and that the hub runs.")
        sys.exit(1)
    except Exception as exc:  # the CLI's last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        _report(f"{type(exc).__name__}: {exc}", "Run again with DPHUB_DEBUG=1 for the traceback.")
        sys.exit(1)


def _report(message: str, hint: str | None, problems: object = None) -> None:
    stderr.print(f"[bold red]Error:[/] {message}", markup=True)
    if isinstance(problems, list):
        for problem in problems:
            if isinstance(problem, dict):
                where = f"{problem.get('file', 'datapackage.json')} {problem.get('pointer', '')}"
                stderr.print(f"  {where.rstrip()}: {problem.get('message', '')}", markup=False)
    if hint:
        stderr.print(f"[dim]{hint}[/]")
