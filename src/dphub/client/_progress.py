"""Progress events, so a caller (the CLI's progress bar) can follow hashing and transfers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Phase = Literal["hash", "upload", "download"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a phase.

    ``kind="start"``: the phase begins; ``bytes`` is what it will move in all, ``files`` how many.
    ``kind="resume"``: ``bytes`` of ``path`` were already in storage, left by an earlier push that
    was interrupted: they count towards the total without being sent. Comes right after ``start``,
    before any ``advance``.
    ``kind="advance"``: ``bytes`` of ``path`` were just moved (negative when a retry starts over).
    ``kind="done"``: ``path`` is finished; ``bytes`` is its size.
    Events of a phase may come from several worker threads at once.
    """

    phase: Phase
    kind: Literal["start", "resume", "advance", "done"]
    path: str = ""
    bytes: int = 0
    files: int = 0


ProgressCallback = Callable[[ProgressEvent], None]


class Reporter:
    """Sends events to an optional callback, so the transfer code never checks for ``None``."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback

    def start(self, phase: Phase, *, total: int, files: int) -> None:
        if self._callback is not None:
            self._callback(ProgressEvent(phase, "start", bytes=total, files=files))

    def resume(self, phase: Phase, path: str, amount: int) -> None:
        if self._callback is not None and amount:
            self._callback(ProgressEvent(phase, "resume", path=path, bytes=amount))

    def advance(self, phase: Phase, path: str, amount: int) -> None:
        if self._callback is not None and amount:
            self._callback(ProgressEvent(phase, "advance", path=path, bytes=amount))

    def done(self, phase: Phase, path: str, size: int) -> None:
        if self._callback is not None:
            self._callback(ProgressEvent(phase, "done", path=path, bytes=size))
