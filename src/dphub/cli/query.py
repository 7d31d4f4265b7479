"""``dphub query``: read a datastore table, or run SQL over tables, without downloading files."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, make_client, stdout


def register(app: typer.Typer) -> None:
    app.command("query")(query)


def query(
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="OWNER/NAME[@REV][/RESOURCE]",
            help="The table: a package (its first table) or one resource of it.",
            show_default=False,
        ),
    ] = None,
    sql: Annotated[
        str | None,
        typer.Option("--sql", help='One SELECT; name tables as "owner/name/resource".'),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", "-f", help="COLUMN=VALUE, repeatable (rows must match all)."),
    ] = None,
    q: Annotated[str | None, typer.Option("--q", help="Text the row must contain.")] = None,
    sort: Annotated[str | None, typer.Option(help='Order, e.g. "year desc".')] = None,
    limit: Annotated[int, typer.Option(min=0, max=32000, help="Rows to show.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip.")] = 0,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    server: ServerOption = None,
) -> None:
    """Print rows of a datastore table, filtered and sorted, or the answer to a SELECT."""
    if output not in ("table", "csv", "json"):
        fail("--format must be table, csv or json.")
    if (ref is None) == (sql is None):
        fail("Give either a table (OWNER/NAME[/RESOURCE]) or --sql, not both.")
    with make_client(server) as client:
        if sql is not None:
            answer = client.sql(sql)
        else:
            assert ref is not None
            resource_id = _resource_id(ref)
            answer = client.search(
                resource_id,
                q=q,
                filters=_filters(filters or []),
                sort=sort,
                limit=limit,
                offset=offset,
            )
    _print(answer, output)


def _resource_id(ref: str) -> str:
    parts = ref.strip("/").split("/")
    if len(parts) == 2:
        return "/".join([*parts, "0"])
    if len(parts) == 3:
        return "/".join(parts)
    fail(f"{ref!r} does not name a table: use OWNER/NAME[@REV][/RESOURCE].")
    raise AssertionError


def _filters(pairs: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        column, sep, value = pair.partition("=")
        if not sep or not column:
            fail(f"--filter {pair!r} is not COLUMN=VALUE.")
        found.setdefault(column, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in found.items()}


def _print(answer: dict[str, Any], output: str) -> None:
    fields = [str(f.get("id")) for f in answer.get("fields") or [] if isinstance(f, dict)]
    records = answer.get("records") or []
    rows = [[r.get(f) for f in fields] if isinstance(r, dict) else list(r) for r in records]
    if output == "json":
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return
    table = Table(*fields, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(table)
    total = answer.get("total")
    shown = f"{len(rows)} of {total} rows" if isinstance(total, int) else f"{len(rows)} rows"
    if answer.get("truncated"):
        shown += " (cut at the row limit)"
    stdout.print(shown, markup=False)
