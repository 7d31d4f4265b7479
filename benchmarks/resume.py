"""Resume benchmark: a ``dphub push`` of one large file killed halfway, then run again.

    python benchmarks/resume.py [--storage local|s3] [--size-mib 512] [--kill-at 0.5]
                                [--workers N] [--metastore sqlite|postgres] [--workdir DIR] [--keep]

It generates a package holding one CSV file of ``--size-mib`` MiB (above the hub's multipart
threshold, so it goes in parts), starts a hub on loopback whose bitstore is its data dir
(``--storage local``) or a throwaway SeaweedFS (``--storage s3``), and then:

1. asks the hub's authorize for that file itself, before any push: the answer is the multipart plan
   (upload id, part size, parts). The hub hands a later authorize of the same bytes by the same
   user the same open upload, so this is the upload the push will use;
2. starts ``dphub push`` and polls ``GET /api/bitstore/multipart/<upload id>`` until the hub lists
   ``--kill-at`` of the parts as stored, then kills the push with SIGKILL;
3. runs the same ``dphub push`` again and reads what it sent.

The pushes run the installed CLI through _counted_cli.py, which counts every byte the process hands
to a socket (through a memory-mapped counter, so the killed run's count survives) and records the
PushResult. Targets: the second run sends no more than the parts the hub did not hold after the
kill, and none of the parts it held. Finally the hub must list the file with its SHA-256 and serve
bytes with that SHA-256. Exit code 1 on a failure or a wrong SHA-256; a missed target is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import push as bench
from push import MIB, PUBLISHER, BenchmarkFailed

PACKAGE = "resume-benchmark"
COUNTED_CLI = Path(__file__).resolve().parent / "_counted_cli.py"
POLL_S = 0.02
"""How often the hub is asked which parts it holds while the first push runs."""
SETTLE_S = 3.0
"""After the kill, the parts the hub lists must stay the same this long before they count: a store
may still be writing parts whose bytes all left the client before the kill (SeaweedFS took more
than a second here), and those are stored parts the second push must not send again."""
SETTLE_TIMEOUT_S = 60.0
PUSH_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Plan:
    upload_id: str
    part_size: int
    sizes: dict[int, int]
    """Part number: size."""


@dataclass(frozen=True)
class Killed:
    seconds: float
    """From the start of the push to the kill."""
    parts_at_kill: int
    held: dict[int, int]
    """The parts the hub listed once things settled: number: size."""
    wire_bytes: int


def hub_call(url: str, path: str, token: str, body: Any = None) -> Any:
    """A JSON request to the hub with the publisher's token; the answer's JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - our own loopback hub
        url + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def authorize_plan(url: str, token: str, name: str, size: int, sha256: str) -> Plan:
    """The multipart plan the hub answers for this file: the upload the push will resume."""
    answer = hub_call(
        url,
        "/api/datastore/authorize",
        token,
        {
            "metadata": {"owner": PUBLISHER, "name": PACKAGE},
            "filedata": {name: {"size": size, "sha256": sha256, "type": "text/csv"}},
        },
    )
    entry = answer.get("filedata", {}).get(name, {})
    plan = entry.get("multipart")
    if not isinstance(plan, dict):
        raise BenchmarkFailed(
            f"The hub answered no multipart plan for a {size / MIB:.0f} MiB file: {entry}"
        )
    if plan.get("uploaded"):
        raise BenchmarkFailed(f"A fresh hub already holds parts of the file: {plan['uploaded']}")
    sizes = {int(p["number"]): int(p["size"]) for p in plan["parts"]}
    return Plan(str(plan["upload_id"]), int(plan["part_size"]), sizes)


def parts_held(url: str, token: str, plan: Plan) -> dict[int, int]:
    """The parts the hub says the store holds, whole ones only: number: size."""
    status = hub_call(url, f"/api/bitstore/multipart/{plan.upload_id}", token)
    listed = {int(p["number"]): int(p["size"]) for p in status.get("parts", [])}
    return {n: s for n, s in listed.items() if plan.sizes.get(n) == s}


def counted_push(work: Path, label: str, push: list[str]) -> tuple[list[str], Path, Path]:
    """The command running ``dphub push`` through _counted_cli.py, its counter and report files."""
    counter = work / f"{label}.sent"
    counter.write_bytes(bytes(8))
    report = work / f"{label}.json"
    return [sys.executable, str(COUNTED_CLI), str(counter), str(report), *push], counter, report


def read_counter(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def kill_halfway(
    command: list[str],
    env: dict[str, str],
    url: str,
    token: str,
    plan: Plan,
    threshold: int,
    counter: Path,
    log: Path,
) -> Killed:
    """Start the push, kill it once the hub lists ``threshold`` parts; what the hub then holds."""
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                raise BenchmarkFailed(
                    f"The first push ended (exit code {process.returncode}) before the hub held"
                    f" {threshold} parts; try a larger --size-mib.\n{_tail(log)}"
                )
            held = parts_held(url, token, plan)
            if len(held) >= threshold:
                process.send_signal(signal.SIGKILL)
                seconds = time.perf_counter() - started
                break
            if time.perf_counter() - started > PUSH_TIMEOUT_S:
                raise BenchmarkFailed(f"The first push made no progress:\n{_tail(log)}")
            time.sleep(POLL_S)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    if process.returncode != -signal.SIGKILL:
        raise BenchmarkFailed(
            f"The first push ended by itself (exit code {process.returncode}) before the kill."
        )
    parts_at_kill = len(held)
    return Killed(seconds, parts_at_kill, settled_parts(url, token, plan), read_counter(counter))


def settled_parts(url: str, token: str, plan: Plan) -> dict[int, int]:
    """The parts the hub lists once the list has stopped changing for SETTLE_S."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    held = parts_held(url, token, plan)
    since = time.monotonic()
    while time.monotonic() - since < SETTLE_S:
        if time.monotonic() > deadline:
            raise BenchmarkFailed("The parts the hub lists kept changing after the kill.")
        time.sleep(0.25)
        now = parts_held(url, token, plan)
        if now != held:
            held, since = now, time.monotonic()
    return held


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-2000:]
    return "(no output)"


def served_sha256(url: str, name: str) -> str:
    """The SHA-256 of the bytes the hub serves for the file (following a redirect to the store)."""
    digest = hashlib.sha256()
    file_url = f"{url}/{PUBLISHER}/{PACKAGE}/files/{name}"
    with urllib.request.urlopen(file_url, timeout=60) as response:  # noqa: S310 - loopback
        while chunk := response.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


# The run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--storage",
        choices=bench.STORAGES,
        default="local",
        help="the hub's bitstore: its data dir (default) or a SeaweedFS S3 server on loopback",
    )
    parser.add_argument(
        "--metastore",
        choices=bench.METASTORES,
        default="sqlite",
        help="the hub's metastore: SQLite in its data dir (default) or a throwaway PostgreSQL",
    )
    parser.add_argument(
        "--volume-mb",
        type=int,
        default=bench.STORE_VOLUME_MB,
        help=f"SeaweedFS volume size limit (default {bench.STORE_VOLUME_MB}; 0: the tests')",
    )
    parser.add_argument("--size-mib", type=int, default=512, help="file size (default 512)")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="kill the first push when the hub holds this share of the parts (default 0.5)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="passed to `dphub push --workers`"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to put the package and the hub"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    args = parser.parse_args(argv)
    if args.size_mib < 1 or not 0 < args.kill_at < 1:
        parser.error("--size-mib must be at least 1 and --kill-at between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    total = args.size_mib * MIB
    # The file, the hub's parts and blob (or SeaweedFS's), plus some room.
    needed = 3 * total + 256 * MIB
    return bench.in_workdir(
        args, prefix="dphub-resume-bench-", needed=needed, run=partial(run, total=total)
    )


def run(args: argparse.Namespace, work: Path, total: int) -> None:
    package = work / "package"
    home = work / "home"
    home.mkdir()
    env = bench.isolated_env(home)
    progress = sys.stderr

    print(f"generating one file of {args.size_mib} MiB ...", file=progress)
    (data,) = bench.make_package(
        package, total_bytes=total, count=1, name=PACKAGE, title="dphub resume benchmark"
    )
    bench.settle()
    generated = time.time()
    size = data.stat().st_size
    sha256 = sha256_of(data)
    descriptor = (package / "datapackage.json").read_bytes()
    expected = {data.name: sha256, "datapackage.json": hashlib.sha256(descriptor).hexdigest()}

    push = ["push", str(package)]
    if args.workers is not None:
        push += ["--workers", str(args.workers)]

    with contextlib.ExitStack() as stack:
        backing = stack.enter_context(
            bench.backing_services(args.storage, args.metastore, volume_mb=args.volume_mb)
        )
        hub_env = bench.hub_environment(env, backing)
        url = stack.enter_context(bench.running_hub(work / "hub", hub_env, work / "server.log"))
        bench.create_publisher(work / "hub", hub_env, url)
        token = bench.saved_token(home)
        plan = authorize_plan(url, token, data.name, size, sha256)
        count = len(plan.sizes)
        threshold = min(count - 1, max(1, math.ceil(args.kill_at * count)))
        # Let the hash cache take the file, as it would for a user's re-run.
        time.sleep(max(0.0, generated + bench.RACY_WINDOW_S - time.time()))

        print(f"first push, killed at {threshold} of {count} parts ...", file=progress)
        first_command, first_counter, _ = counted_push(work, "first", push)
        killed = kill_halfway(
            first_command,
            env,
            url,
            token,
            plan,
            threshold,
            first_counter,
            work / "first.log",
        )
        print("second push ...", file=progress)
        second_command, second_counter, second_report = counted_push(work, "second", push)
        second = bench.run_timed(second_command, env=env)
        second_wire = read_counter(second_counter)
        try:
            result = json.loads(second_report.read_text())
        except (OSError, ValueError) as exc:
            raise BenchmarkFailed(f"The second push left no result: {exc}") from exc

        bench.verify(url, expected, package=PACKAGE)
        served = served_sha256(url, data.name)
        if served != sha256:
            raise BenchmarkFailed(
                f"The hub serves {data.name} with SHA-256 {served}, not {sha256}."
            )
        if backing.s3 is not None:
            sizes = {data.name: size, "datapackage.json": len(descriptor)}
            bench.verify_store(backing.s3, bench.HUB_BUCKET, expected, sizes)

    held_bytes = sum(killed.held.values())
    missing = sorted(set(plan.sizes) - set(killed.held))
    missing_bytes = sum(plan.sizes[n] for n in missing)
    other_bytes = len(descriptor) if "datapackage.json" in result["uploaded_files"] else 0
    file_sent = int(result["uploaded_bytes"]) - other_bytes
    resent_stored = max(0, file_sent - missing_bytes)
    summary = next((line for line in second.output.splitlines() if "uploaded" in line), "")

    print(bench.machine_line(work))
    print(f"store:                  {backing.store}")
    print(f"metastore:              {backing.metastore}")
    print(
        f"file:                   {size / MIB:.1f} MiB ({size} B), one CSV file: {count} parts"
        f" of {plan.part_size / MIB:.0f} MiB, {args.workers or bench.DEFAULT_WORKERS} at a time"
    )
    print(
        f"run 1, killed:          SIGKILL at {killed.seconds:.2f} s, when the hub listed"
        f" {killed.parts_at_kill} of {count} parts"
    )
    held_mib, sent_mib = held_bytes / MIB, killed.wire_bytes / MIB
    print(
        f"after the kill:         the hub holds {len(killed.held)} parts ({held_mib:.1f} MiB);"
        f" run 1 had sent {sent_mib:.1f} MiB: {sent_mib - held_mib:.1f} MiB cut off in flight"
    )
    print(f'run 2, resumed:         {second.seconds:.2f} s: "{summary.strip()}"')
    missed_sent = file_sent > missing_bytes
    print(
        f"file bytes sent, run 2: {file_sent} B; the {len(missing)} missing parts:"
        f" {missing_bytes} B  (target <= missing parts){bench._miss(missed_sent)}"
    )
    resumed = int(result["resumed_bytes"])
    print(
        f"stored parts re-sent:   {resent_stored} B (run 2 found {resumed} B already there;"
        f" the hub held {held_bytes} B)  (target 0)"
        f"{bench._miss(resent_stored > 0 or resumed != held_bytes)}"
    )
    print(
        f"on the wire, run 2:     {second_wire} B: {second_wire - file_sent} B beyond the file's"
        " bytes (requests, headers, datapackage.json)"
    )
    print("hub lists the file with its SHA-256 and serves bytes with it: OK")


if __name__ == "__main__":
    sys.exit(main())
