"""``dphub admin check``: verify the invariants of a whole hub (run on the server)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._hub import human_size, plural
from dphub.cli._server import DataDirOption

out = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="The hub is in service: jobs queued or running within their lease are fine;"
            " only a job running past its lease (DPHUB_JOB_TIMEOUT) counts.",
        ),
    ] = False,
    sizes_only: Annotated[
        bool,
        typer.Option(
            "--sizes-only",
            help="Check that each blob is there with its size, without reading it back.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object (described above).")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Check the whole hub's integrity; exit status 1 when anything is wrong.

    \b
    Checks:
      blobs      every file and derived file of every revision is in the bitstore with its
                 recorded size and SHA-256 (each blob read back once, streamed)
      revisions  revisions numbered 1, 2, ... per package without a gap; the package's
                 latest and successful revisions exist; every revision holds all its files
      jobs       every revision has its processing job, and every job has finished
      uploads    no upload session names a revision without being closed onto it
      tables     every recorded datastore table exists with its rows, for succeeded
                 revisions only

    \b
    --json prints (keys stay; new ones may be added, "format" changes if one changes meaning):
      {"format": 1, "ok": true|false, "live": bool, "read_blobs": bool,
       "checked": {"packages", "revisions", "files", "derived_files", "blobs",
                   "bytes_read", "jobs", "tables"},
       "violations": [{"check": "blobs|revisions|jobs|uploads|tables",
                       "code": "blob-missing|blob-size|blob-corrupt|package-empty|
                                revision-gap|latest-revision|successful-revision|
                                revision-incomplete|job-missing|job-queued|job-running|
                                job-lease-expired|revision-unsettled|upload-half-closed|
                                table-missing|table-rows|table-unexpected|tables-missing",
                       "message": "<sentence>", "package": "owner/name"|null,
                       "revision": n|null, "path": "<file, derived file or table>"|null,
                       "sha256": "<hex>"|null}]}
    """
    from dphub.config import load_settings
    from dphub.hub import open_hub
    from dphub.lifecycle.integrity import Violation, check_hub

    def show(violation: Violation) -> None:
        out.print(f"{violation.code}: {violation.message}", markup=False)

    hub = open_hub(load_settings(data_dir=data_dir))
    try:
        report = check_hub(
            hub.sessions,
            hub.bitstore,
            hub.datastore,
            job_timeout=hub.settings.job_timeout,
            live=live,
            read_blobs=not sizes_only,
            found=None if as_json else show,
        )
    finally:
        hub.close()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        read = f", {human_size(report.bytes_read)} read back" if report.read_blobs else ""
        out.print(
            f"Checked {plural(report.packages, 'package')}, {plural(report.revisions, 'revision')},"
            f" {plural(report.files, 'file')} and {plural(report.derived_files, 'derived file')}"
            f" ({plural(report.blobs, 'blob')}{read}), {plural(report.jobs, 'job')} and"
            f" {plural(report.tables, 'datastore table')}.",
            markup=False,
        )
        if report.ok:
            out.print("No violation found.")
        else:
            out.print(f"{plural(len(report.violations), 'violation')} found.", markup=False)
    if not report.ok:
        raise typer.Exit(1)
