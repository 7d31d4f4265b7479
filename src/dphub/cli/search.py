"""``dphub search``: find packages on the hub; ``dphub search reindex`` rebuilds the search index.

``dphub search WORDS...`` asks the hub (like every publisher command, through :mod:`dphub.client`);
``dphub search reindex`` runs on the server, against its metastore. To look for the word "reindex"
itself, write ``dphub search -- reindex``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from dphub.cli._hub import ServerOption, make_client, plural, stdout
from dphub.cli._server import DataDirOption

SEARCH = "find"
"""The hidden subcommand ``dphub search WORDS...`` runs."""
FACETS_SHOWN = 5


class _SearchGroup(TyperGroup):
    """Anything that is not a subcommand's name is a search: ``dphub search gdp --owner core``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [SEARCH, *args]
        return super().parse_args(ctx, args)


class _SearchCommand(TyperCommand):
    """Shows its usage as ``dphub search``, the way it is typed."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        path = ctx.parent.command_path if ctx.parent is not None else ctx.command_path
        formatter.write_usage(path, " ".join(self.collect_usage_pieces(ctx)))


app = typer.Typer(
    cls=_SearchGroup,
    help="Search the hub's packages: dphub search WORDS... (see dphub search --help).",
)


def _many(help: str) -> Any:
    return typer.Option(help=f"{help} Repeat for any of several.", show_default=False)


@app.command(SEARCH, cls=_SearchCommand, hidden=True)
def search(
    words: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="WORDS",
            help='Words to look for, all required; "a phrase", prefix*, -excluded, this OR that.'
            " None: every package you may see, newest first.",
            show_default=False,
        ),
    ] = None,
    owner: Annotated[list[str] | None, _many("Only this publisher's packages.")] = None,
    license: Annotated[list[str] | None, _many("Only packages under this license.")] = None,
    format: Annotated[
        list[str] | None, _many("Only packages with a resource in this format (csv, json, ...).")
    ] = None,
    keyword: Annotated[list[str] | None, _many("Only packages with this keyword.")] = None,
    findability: Annotated[
        list[str] | None,
        _many("Only your own packages that are published, unlisted or private."),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="relevance (default with words), updated (default without) or name."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Packages to show.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Packages to skip (paging).")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hub's answer as JSON.")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Search the hub's packages: full text over titles, descriptions, READMEs, keywords, resource
    and field names, with filters. `dphub search reindex` rebuilds the index (on the server)."""
    query = " ".join(words or []) or None
    with make_client(server) as client:
        answer = client.search_packages(
            query,
            owner=owner,
            license=license,
            format=format,
            keyword=keyword,
            findability=findability,
            sort=sort,
            limit=limit,
            offset=offset,
        )
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    _print(answer, offset)


def _print(answer: dict[str, Any], offset: int) -> None:
    items = answer.get("items") or []
    total = int(answer.get("total_count") or 0)
    if not items:
        stdout.print(
            f"No packages on this page ({plural(total, 'match')} in all)."
            if total
            else "No packages found."
        )
        return
    stdout.print(render(items))
    last = offset + len(items)
    line = f"{offset + 1}-{last} of {plural(total, 'package')}"
    if last < total:
        line += f"; next page: --offset {last}"
    stdout.print(line, markup=False)
    facets = answer.get("facets") or {}
    for facet, values in facets.items():
        shown = [f"{v.get('value')} ({v.get('count')})" for v in values[:FACETS_SHOWN]]
        if shown:
            more = ", ..." if len(values) > FACETS_SHOWN else ""
            stdout.print(f"[dim]{escape(facet)}:[/] {escape(', '.join(shown))}{more}")


def render(items: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("package", "title", "formats", "licenses", "updated"):
        table.add_column(column, no_wrap=column in ("package", "updated"))
    for item in items:
        name = f"{item.get('owner')}/{item.get('name')}"
        if item.get("findability") not in (None, "published"):
            name += f" ({item['findability']})"
        table.add_row(
            escape(name),
            escape(str(item.get("title") or "")),
            escape(", ".join(item.get("formats") or [])),
            escape(", ".join(item.get("licenses") or [])),
            str(item.get("updated") or "")[:10],
        )
    return table


@app.command("reindex")
def reindex(data_dir: DataDirOption = None) -> None:
    """Rebuild the search document of every package with a successful revision (run on the
    server; needed once for packages pushed before the hub had search, safe at any time)."""
    from dphub.config import load_settings
    from dphub.findability import reindex_all
    from dphub.hub import open_hub

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        count = reindex_all(hub.sessions)
    finally:
        hub.close()
    stdout.print(f"Indexed {plural(count, 'package')}.")
