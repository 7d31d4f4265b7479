"""Processing one revision: validate, infer, derive, preview, zip, load; each step recorded.

Every step is safe to run twice: derived files are content-addressed blobs, datastore tables are
replaced whole, and the metastore rows are written in the one transaction that finishes the job.
A revision whose data is invalid is FAILED with its report; the package keeps serving its previous
successful revision. Only the finishing transaction moves ``successful_revision`` forward.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dphub import findability
from dphub.datastore import Datastore, Field, table_name
from dphub.events import stream as events
from dphub.hub import Hub
from dphub.metastore import references
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    DatastoreTable,
    Package,
    Revision,
    RevisionOutput,
)
from dphub.pipeline import jobs
from dphub.pipeline.outputs import materialize, store_file, write_zip
from dphub.pipeline.steps import STEPS
from dphub.pipeline.tables import (
    TableResult,
    export_csv,
    export_json,
    is_tabular,
    load_table,
    preview,
)

log = logging.getLogger("dphub.pipeline")

PREVIEW_ROWS = 1000
ZIP_NAME = "datapackage_zip"


class Superseded(Exception):
    """Another worker took this job over (this one missed its heartbeats)."""


@dataclass
class Table:
    index: int
    name: str
    duck: str
    result: TableResult


@dataclass
class Run:
    """What one processing run has made so far, written to the metastore when it finishes."""

    revision_id: int
    tables: list[Table] = field(default_factory=list)
    outputs: list[RevisionOutput] = field(default_factory=list)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Recorder:
    """Writes each step's state to the revision as it moves, so clients can follow along."""

    def __init__(self, sessions: sessionmaker[Session], run: Run, alive: Callable[[], bool]):
        self.sessions = sessions
        self.run = run
        self.alive = alive
        run.pipelines.update(
            {key: {"title": title, "status": "QUEUED"} for key, title in STEPS.items()}
        )
        self._save()

    def _save(self) -> None:
        if not self.alive():
            raise Superseded("Another worker took over this revision.")
        with transaction(self.sessions) as db:
            revision = db.get(Revision, self.run.revision_id)
            if revision is not None and revision.state in ("QUEUED", "INPROGRESS"):
                revision.pipelines = dict(self.run.pipelines)
                revision.state = "INPROGRESS"
                revision.modified_at = datetime.now(UTC)

    def step(self, key: str, work: Callable[[], dict[str, Any]]) -> None:
        entry = self.run.pipelines[key]
        entry.update(status="INPROGRESS", started=_now())
        self._save()
        began = time.perf_counter()
        try:
            stats = work()
        except Exception as exc:
            entry.update(
                status="FAILED",
                finished=_now(),
                seconds=round(time.perf_counter() - began, 3),
                error_log=[str(exc) or type(exc).__name__],
            )
            raise
        entry.update(
            status="SUCCEEDED",
            finished=_now(),
            seconds=round(time.perf_counter() - began, 3),
            stats=stats,
        )
        self._save()

    def skip_rest(self) -> None:
        for entry in self.run.pipelines.values():
            if entry["status"] == "QUEUED":
                entry["status"] = "SKIPPED"


def process(hub: Hub, claim: jobs.Claim, *, alive: Callable[[], bool] = lambda: True) -> str:
    """Process the claimed revision; returns its final state (SUCCEEDED or FAILED)."""
    with hub.sessions() as db:
        revision = db.get(Revision, claim.revision_id)
        if revision is None:
            return "FAILED"
        descriptor: dict[str, Any] = dict(revision.descriptor)
        files = {f.path: (f.sha256, f.size) for f in revision.files}
    run = Run(revision_id=claim.revision_id)
    recorder = Recorder(hub.sessions, run, alive)
    # one folder per job: holding the claim means any earlier holder is dead or superseded, so
    # whatever it left there is garbage
    work = hub.settings.data_dir / "work" / f"job-{claim.job_id}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        # an on-disk database with a memory cap: a table larger than memory is paged, not refused
        con = duckdb.connect(
            str(work / "job.duckdb"),
            config={
                "temp_directory": str(work / "spill"),
                "memory_limit": hub.settings.worker_memory,
                "preserve_insertion_order": True,
            },
        )
        try:
            recorder.step("validate", lambda: _validate(hub, con, run, descriptor, files, work))
            if not all(t.result.valid for t in run.tables):
                run.pipelines["validate"].update(
                    status="FAILED", error_log=_error_log(_report(run))
                )
                recorder.skip_rest()
                return _finish(hub, claim, run, descriptor, succeeded=False)
            recorder.step("derive", lambda: _derive(hub, con, run, work))
            recorder.step("preview", lambda: _preview(hub, con, run, work))
            recorder.step("zip", lambda: _zip(hub, run, descriptor, files, work))
            recorder.step("load", lambda: _load(hub.datastore, con, run, work))
        finally:
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _finish(hub, claim, run, descriptor, succeeded=True)


def _validate(
    hub: Hub,
    con: duckdb.DuckDBPyConnection,
    run: Run,
    descriptor: dict[str, Any],
    files: dict[str, tuple[str, int]],
    work: Path,
) -> dict[str, Any]:
    rows = errors = 0
    empty = []
    for index, resource in enumerate(descriptor.get("resources") or []):
        path = resource.get("path")
        if not (isinstance(path, str) and path in files and is_tabular(resource)):
            continue
        sha256, size = files[path]
        name = str(resource.get("name") or index)
        if size == 0:
            empty.append(name)  # a placeholder file: nothing to check, derive or load
            continue
        source = materialize(hub.bitstore, sha256, workdir=work, name=path)
        if not is_tabular(resource, source=source):
            continue
        result = load_table(con, source, resource, table=f"res{index}", workdir=work)
        run.tables.append(Table(index, name, f"res{index}", result))
        rows += result.rows
        errors += int(result.report.get("stats", {}).get("errors", 0))
    stats: dict[str, Any] = {"tables": len(run.tables), "rows": rows, "errors": errors}
    if empty:
        stats["empty"] = ", ".join(empty)
    return stats


def _derive(hub: Hub, con: duckdb.DuckDBPyConnection, run: Run, work: Path) -> dict[str, Any]:
    made = 0
    for table in run.tables:
        for kind, export, media_type in (
            ("csv", export_csv, "text/csv"),
            ("json", export_json, "application/json"),
        ):
            target = work / f"{table.duck}.{kind}"
            export(con, table.duck, target)
            blob = store_file(hub.bitstore, target)
            run.outputs.append(
                RevisionOutput(
                    name=f"{table.name}_{kind}",
                    kind=kind,
                    resource_index=table.index,
                    sha256=blob.sha256,
                    size=blob.size,
                    media_type=media_type,
                )
            )
            made += 1
    return {"files": made}


def _preview(hub: Hub, con: duckdb.DuckDBPyConnection, run: Run, work: Path) -> dict[str, Any]:
    for table in run.tables:
        target = work / f"{table.duck}.preview.json"
        rows = preview(con, table.duck, rows=PREVIEW_ROWS)
        target.write_bytes(
            orjson.dumps(
                {"fields": table.result.schema.get("fields", []), "rows": rows},
                default=str,
            )
        )
        blob = store_file(hub.bitstore, target)
        run.outputs.append(
            RevisionOutput(
                name=f"{table.name}_preview",
                kind="preview",
                resource_index=table.index,
                sha256=blob.sha256,
                size=blob.size,
                media_type="application/json",
            )
        )
    shown = sum(min(PREVIEW_ROWS, t.result.rows) for t in run.tables)
    return {"tables": len(run.tables), "rows": shown}


def _zip(
    hub: Hub,
    run: Run,
    descriptor: dict[str, Any],
    files: dict[str, tuple[str, int]],
    work: Path,
) -> dict[str, Any]:
    target = work / "datapackage.zip"
    write_zip(hub.bitstore, ((path, sha) for path, (sha, _) in sorted(files.items())), target)
    blob = store_file(hub.bitstore, target)
    run.outputs.append(
        RevisionOutput(
            name=ZIP_NAME,
            kind="zip",
            resource_index=None,
            sha256=blob.sha256,
            size=blob.size,
            media_type="application/zip",
        )
    )
    return {"files": len(files), "bytes": blob.size}


def _fields(table: Table) -> list[Field]:
    return [
        Field(str(f["name"]), str(f.get("type") or "string"))
        for f in table.result.schema.get("fields", [])
    ]


def _load(
    datastore: Datastore, con: duckdb.DuckDBPyConnection, run: Run, work: Path
) -> dict[str, Any]:
    rows = 0
    for table in run.tables:
        datastore.load(
            con,
            table.duck,
            table=table_name(run.revision_id, table.index),
            fields=_fields(table),
            csv_path=work / f"{table.duck}.csv",
        )
        rows += table.result.rows
    return {"tables": len(run.tables), "rows": rows}


def _report(run: Run) -> dict[str, Any]:
    tasks = []
    for table in run.tables:
        task = dict(table.result.report)
        task["resource"] = {"name": table.name, "index": table.index}
        tasks.append(task)
    errors = sum(int(t.get("stats", {}).get("errors", 0)) for t in tasks)
    return {
        "valid": all(t.get("valid", False) for t in tasks),
        "stats": {"tasks": len(tasks), "errors": errors},
        "tasks": tasks,
    }


def _with_schemas(descriptor: dict[str, Any], run: Run) -> dict[str, Any]:
    inferred = {t.index: t.result.schema for t in run.tables if t.result.inferred}
    if not inferred:
        return descriptor
    resources = []
    for index, resource in enumerate(descriptor.get("resources") or []):
        if index in inferred:
            resource = {**resource, "schema": inferred[index]}
        resources.append(resource)
    return {**descriptor, "resources": resources}


def _error_log(report: dict[str, Any]) -> list[str]:
    lines = []
    for task in report["tasks"]:
        for error in task.get("errors", [])[:20]:
            lines.append(f"{task['resource']['name']}: {error.get('message')}")
    return lines


def _finish(
    hub: Hub,
    claim: jobs.Claim,
    run: Run,
    descriptor: dict[str, Any],
    *,
    succeeded: bool,
) -> str:
    report = _report(run)
    state = "SUCCEEDED" if succeeded else "FAILED"
    now = datetime.now(UTC)
    with transaction(hub.sessions) as db:
        if not jobs.still_mine(db, claim):
            raise Superseded("Another worker took over this revision.")
        revision = db.get(Revision, claim.revision_id)
        assert revision is not None
        db.execute(delete(RevisionOutput).where(RevisionOutput.revision_id == revision.id))
        db.execute(delete(DatastoreTable).where(DatastoreTable.revision_id == revision.id))
        if succeeded:
            # The derived files are recorded under their blobs' locks, and checked still stored:
            # a purge or gc may have taken an identical blob away since it was made.
            references.hold(db, (output.sha256 for output in run.outputs))
            gone = [o.name for o in run.outputs if hub.bitstore.size(o.sha256) != o.size]
            if gone:
                raise RuntimeError(
                    f"derived files left the bitstore before they were recorded: {', '.join(gone)}"
                )
            for output in run.outputs:
                output.revision_id = revision.id
                db.add(output)
            for table in run.tables:
                db.add(
                    DatastoreTable(
                        revision_id=revision.id,
                        resource_index=table.index,
                        resource_name=table.name,
                        table_name=table_name(revision.id, table.index),
                        columns=[{"name": f.name, "type": f.type} for f in _fields(table)],
                        rows=table.result.rows,
                    )
                )
            revision.descriptor = _with_schemas(descriptor, run)
            package = db.scalar(
                select(Package).where(Package.id == revision.package_id).with_for_update()
            )
            assert package is not None
            if (package.successful_revision or 0) < revision.number:
                package.successful_revision = revision.number
        revision.state = state
        revision.report = report
        revision.pipelines = dict(run.pipelines)
        revision.errors = {"error_log": _error_log(report)} if not succeeded else {}
        revision.stats = {
            **revision.stats,
            "tables": len(run.tables),
            "rows": sum(t.result.rows for t in run.tables),
        }
        revision.modified_at = now
        if succeeded:
            findability.reindex(db, revision.package_id)
        _event(db, revision, "processed" if succeeded else "failed", rows=revision.stats["rows"])
        jobs.mark(db, claim, jobs.DONE)
    log.info("revision %s processed: %s", claim.revision_id, state)
    return state


def fail(hub: Hub, claim: jobs.Claim, message: str) -> None:
    """The last attempt failed for a reason that is not the data's: mark the revision FAILED."""
    now = datetime.now(UTC)
    with transaction(hub.sessions) as db:
        if not jobs.still_mine(db, claim):
            return
        revision = db.get(Revision, claim.revision_id)
        if revision is not None:
            steps = {key: dict(step) for key, step in (revision.pipelines or {}).items()}
            for step in steps.values():
                if step.get("status") == "INPROGRESS":
                    step.update(status="FAILED", error_log=[message])
                elif step.get("status") == "QUEUED":
                    step["status"] = "SKIPPED"
            revision.pipelines = steps
            revision.state = "FAILED"
            revision.errors = {"error_log": [message]}
            revision.modified_at = now
            _event(db, revision, "failed", error=message)
        jobs.mark(db, claim, jobs.FAILED, message)


def _event(db: Session, revision: Revision, kind: str, **detail: Any) -> None:
    package = db.get(Package, revision.package_id)
    assert package is not None
    events.record(
        db, kind, owner=package.owner, name=package.name, revision=revision.number, **detail
    )
