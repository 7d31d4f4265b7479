"""``dphub tag``, ``dphub tags`` and ``dphub diff``: name revisions, and see what changed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from dphub.cli._errors import fail
from dphub.cli._hub import ServerOption, human_size, make_client, parse_ref, plural, stdout
from dphub.names import tag_problem

PackageArgument = Annotated[
    str, typer.Argument(metavar="OWNER/NAME", help="The package, e.g. core/gdp.")
]
MAX_OPS_SHOWN = 20


def register(app: typer.Typer) -> None:
    app.command("tag")(tag)
    app.command("tags")(tags)
    app.command("diff")(diff)


def tag(
    package: PackageArgument,
    name: Annotated[
        str | None,
        typer.Argument(metavar="TAG", help="The tag, e.g. v1.0.", show_default=False),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            "-r",
            help="The revision to tag: a number or another tag (default: the latest successful).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move the tag if it names another revision (owners).")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", "-l", help="List the package's tags.")] = False,
    server: ServerOption = None,
) -> None:
    """Tag a revision of a package (tags are immutable unless forced), or list its tags."""
    owner, pkg = parse_ref(package)
    if list_:
        _list(owner, pkg, server)
        return
    if name is None:
        fail("Give the tag to create, or --list to see the package's tags.")
    problem = tag_problem(name)
    if problem is not None:
        fail(f"{name!r} is not a valid tag: {problem}.")
    ref: int | str | None = revision
    if revision is not None and revision.isascii() and revision.isdigit():
        ref = int(revision)
    with make_client(server) as client:
        answer = client.tag(owner, pkg, name, revision=ref, force=force)
    moved = answer.get("moved_from")
    how = f" (moved from revision {moved})" if moved is not None else ""
    stdout.print(
        f"{owner}/{pkg}@{answer.get('tag')} names revision {answer.get('revision')}{how}",
        markup=False,
    )


def tags(package: PackageArgument, server: ServerOption = None) -> None:
    """List a package's tags, newest revision first."""
    owner, name = parse_ref(package)
    _list(owner, name, server)


def _list(owner: str, name: str, server: str | None) -> None:
    with make_client(server) as client:
        found = client.tags(owner, name)
    if not found:
        stdout.print(f"{owner}/{name} has no tags.", markup=False)
        return
    table = Table(title=f"{owner}/{name}", title_justify="left")
    for column in ("tag", "revision", "created", "by"):
        table.add_column(column)
    for t in found:
        table.add_row(
            str(t.get("tag")),
            str(t.get("revision")),
            str(t.get("created_at") or "")[:19].replace("T", " "),
            str(t.get("created_by") or "-"),
        )
    stdout.print(table)


def diff(
    package: PackageArgument,
    from_ref: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="A revision number or tag (default: the one before --to).",
            show_default=False,
        ),
    ] = None,
    to_ref: Annotated[
        str | None,
        typer.Option(
            "--to", help="A revision number or tag (default: the latest).", show_default=False
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hub's answer as JSON.")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Show what changed between two revisions: files, descriptor, schemas and row counts."""
    owner, name = parse_ref(package)
    with make_client(server) as client:
        answer = client.diff(owner, name, from_ref=from_ref, to_ref=to_ref)
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    for line in summary(answer):
        stdout.print(line, markup=False)


def summary(answer: dict[str, Any]) -> list[str]:
    """The diff as lines a person reads: ``+`` added, ``-`` removed, ``~`` changed."""
    before, after = answer.get("from") or {}, answer.get("to") or {}
    start = f"revision {before.get('revision')}" if before else "nothing"
    lines = [f"{answer.get('package')}: {start} -> revision {after.get('revision')}"]
    lines.extend(_file_lines(answer.get("files") or {}))
    ops = answer.get("descriptor") or []
    more = "+" if answer.get("descriptor_truncated") else ""
    lines.append(f"Descriptor: {plural(len(ops), 'change')}{more}")
    for op in ops[:MAX_OPS_SHOWN]:
        lines.append(f"  {op.get('op')!s:<8} {op.get('path') or '/'}")
    if len(ops) > MAX_OPS_SHOWN:
        lines.append(f"  ... and {len(ops) - MAX_OPS_SHOWN}{more} more (see --json)")
    schemas = answer.get("schemas") or {}
    if schemas:
        lines.append("Schemas:")
    for resource, change in schemas.items():
        parts = [f"+{f}" for f in change.get("fields_added") or []]
        parts += [f"-{f}" for f in change.get("fields_removed") or []]
        parts += [
            f"~{t.get('field')} ({t.get('before')} -> {t.get('after')})"
            for t in change.get("type_changed") or []
        ]
        lines.append(f"  {resource}: {', '.join(parts)}")
    rows = answer.get("rows") or {}
    if rows:
        lines.append("Rows:")
    for resource, count in rows.items():
        was, now = count.get("before"), count.get("after")
        delta = f" ({now - was:+d})" if isinstance(was, int) and isinstance(now, int) else ""
        lines.append(f"  {resource}: {_count(was)} -> {_count(now)}{delta}")
    return lines


def _file_lines(files: dict[str, Any]) -> list[str]:
    added, removed = files.get("added") or [], files.get("removed") or []
    changed = files.get("changed") or []
    more = " (more than shown)" if files.get("truncated") else ""
    lines = [
        f"Files: {len(added)} added, {len(removed)} removed, {len(changed)} changed,"
        f" {files.get('unchanged', 0)} unchanged{more}"
    ]
    lines.extend(f"  + {f.get('path')} ({human_size(f.get('size'))})" for f in added)
    lines.extend(f"  - {f.get('path')}" for f in removed)
    for f in changed:
        was, now = f.get("before") or {}, f.get("after") or {}
        sizes = f"{human_size(was.get('size'))} -> {human_size(now.get('size'))}"
        lines.append(f"  ~ {f.get('path')} ({sizes})")
    return lines


def _count(value: object) -> str:
    return "-" if value is None else str(value)
