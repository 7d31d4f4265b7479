"""Failpoints: named places in the code where a test can stop a process, to kill it exactly there.

A testing aid, inert unless ``DPHUB_FAILPOINTS`` names points (``name=pause``, comma separated).
Crash tests use it to kill an API process, a worker or ``dphub gc`` at a chosen line rather than
at a moment guessed with a timer. With the variable unset, :func:`hit` returns at once.

A point set to ``pause`` fires once per data directory: the first process to reach it creates
``<data dir>/failpoints/<name>.paused`` (holding its pid) and waits there until
``<name>.resume`` appears next to it, or until it is killed. Processes reaching the point while
``<name>.paused`` exists pass on: the point waits again only once that file is removed. Every
process sharing the data directory (API processes, workers, ``dphub gc``) thus takes part.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

from dphub.errors import ConfigurationError

log = logging.getLogger("dphub.failpoints")

ACTIONS = ("pause",)
NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
POLL_SECONDS = 0.02

_armed: dict[str, str] = {}
_folder: Path | None = None


def parse(spec: str) -> dict[str, str]:
    """``name=action,...`` as a mapping; a malformed entry is a configuration error."""
    points: dict[str, str] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        name, sep, action = (part.strip() for part in entry.partition("="))
        if not sep or not NAME.fullmatch(name) or action not in ACTIONS:
            raise ConfigurationError(
                f"DPHUB_FAILPOINTS: {entry!r} is not name=action (a dotted name such as"
                f" finalize.before_commit, and one of: {', '.join(ACTIONS)})."
            )
        points[name] = action
    return points


def arm(spec: str, *, folder: Path) -> None:
    """Arm the points ``spec`` names for this process; their marker files go in ``folder``."""
    global _folder
    points = parse(spec)
    _armed.clear()
    _armed.update(points)
    _folder = folder
    if points:
        folder.mkdir(parents=True, exist_ok=True)
        log.warning("failpoints armed (a testing aid): %s", ", ".join(sorted(points)))


def hit(name: str) -> None:
    """The code has reached the point ``name``: pause here when a test asked for it."""
    if not _armed or name not in _armed or _folder is None:
        return
    paused = _folder / f"{name}.paused"
    if paused.exists():
        return  # fired already: armed again once the marker is removed
    # written aside, then linked into place: a test never reads a marker without its pid
    draft = _folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
    draft.write_text(str(os.getpid()))
    try:
        os.link(draft, paused)
    except FileExistsError:
        return  # another process got there first
    finally:
        draft.unlink()
    log.warning("failpoint %s reached: pid %s paused", name, os.getpid())
    resume = _folder / f"{name}.resume"
    while not resume.exists():
        time.sleep(POLL_SECONDS)
    log.warning("failpoint %s: pid %s resumed", name, os.getpid())
