"""``dphub validate``: check a package folder as the hub will, without sending anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dphub.cli._hub import plural, stdout
from dphub.client import LocalPackage, package_problems


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    directory: Annotated[
        Path, typer.Argument(help="The package folder, holding datapackage.json.")
    ] = Path("."),
    data: Annotated[
        bool, typer.Option("--data", help="Also check every table's rows against its schema.")
    ] = False,
) -> None:
    """Check the descriptor, that every file it names exists, and (with --data) the data."""
    problems = package_problems(directory, check_data=data)
    if problems:
        for problem in problems:
            where = f"{problem.file} {problem.pointer}".rstrip()
            stdout.print(f"{where}: {problem.message}", markup=False)
        stdout.print(f"{plural(len(problems), 'problem')} found in {directory}.", markup=False)
        raise typer.Exit(1)
    package = LocalPackage.load(directory)
    resources = package.descriptor.get("resources") or []
    checked = "descriptor, files and data" if data else "descriptor and files"
    stdout.print(
        f"{directory}: valid ({checked}): {plural(len(resources), 'resource')},"
        f" {plural(len(package.files), 'file')}.",
        markup=False,
    )
