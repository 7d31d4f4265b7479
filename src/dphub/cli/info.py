"""``dphub info``: what a package on the hub holds."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from dphub.cli._hub import RevisionOption, ServerOption, human_size, make_client, parse_ref, stdout


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def info(
    ref: Annotated[str, typer.Argument(metavar="OWNER/NAME", help="The package, e.g. core/gdp.")],
    revision: RevisionOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hub's answer as JSON.")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Show a package's title, revision, findability and resources."""
    owner, name = parse_ref(ref)
    with make_client(server) as client:
        show = client.info(owner, name, revision)
    if as_json:
        typer.echo(json.dumps(show, indent=2, ensure_ascii=False))
        return
    for line in summary(show):
        stdout.print(line, markup=False)


def summary(show: dict[str, Any]) -> list[str]:
    descriptor = show.get("descriptor") if isinstance(show.get("descriptor"), dict) else {}
    assert isinstance(descriptor, dict)
    ident = f"{show.get('owner') or show.get('publisher')}/{show.get('name')}"
    title = show.get("title") or descriptor.get("title")
    lines = [f"{title} ({ident})" if title else ident]
    state = f" ({show['state']})" if show.get("state") else ""
    lines.append(f"Revision:    {show.get('revision')}{state}")
    lines.append(f"Findability: {show.get('findability', '-')}")
    if show.get("url"):
        lines.append(f"URL:         {show['url']}")
    if isinstance(descriptor.get("description"), str):
        lines.append(f"Description: {descriptor['description']}")
    resources = show.get("resources")
    if not isinstance(resources, list):
        resources = descriptor.get("resources") or []
    lines.append(f"Resources ({len(resources)}):")
    for index, resource in enumerate(resources):
        if not isinstance(resource, dict):
            continue
        rname = resource.get("name") or str(index)
        path = resource.get("path")
        where = path if isinstance(path, str) else ", ".join(map(str, path or [])) or "inline data"
        size = human_size(resource["size"]) if isinstance(resource.get("size"), int) else "-"
        lines.append(f"  {rname:<24} {size:>10}  {where}")
    files = show.get("files")
    if isinstance(files, list):
        total = sum(f.get("size") or 0 for f in files if isinstance(f, dict))
        lines.append(f"Files:       {len(files)}, {human_size(total)} in all")
    return lines
