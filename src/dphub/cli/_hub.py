"""What the publisher's commands share: the client from the saved login, and how to show bytes."""

from __future__ import annotations

from types import TracebackType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from dphub.cli._errors import fail
from dphub.client import Client, ProgressEvent
from dphub.names import is_valid_name

stdout = Console(highlight=False, soft_wrap=True)

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="URL of the hub (default: DPHUB_SERVER, else the one `dphub login` saved).",
        show_default=False,
    ),
]
RevisionOption = Annotated[
    str | None,
    typer.Option(
        "--revision",
        "-r",
        help="A revision number or tag (default: the latest successful).",
        show_default=False,
    ),
]

_PHASE_LABELS = {"hash": "Hashing", "upload": "Uploading", "download": "Downloading"}


def make_client(server: str | None) -> Client:
    return Client.from_config(server=server)


def parse_ref(ref: str) -> tuple[str, str]:
    """``OWNER/NAME`` split in two, or a clear error."""
    owner, sep, name = ref.strip("/").partition("/")
    if not sep or not is_valid_name(owner) or not is_valid_name(name):
        fail(
            f"{ref!r} does not name a package: use OWNER/NAME, e.g. core/gdp.",
            hint="Names use lowercase letters, digits, '_', '.' and '-'.",
        )
    return owner, name


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class TransferBar:
    """A progress bar per phase (bytes, rate, time left), drawn only on a terminal.

    Used as the client's progress callback; rich's Progress is safe to update from worker threads.
    """

    def __init__(self, console: Console = stdout) -> None:
        self._progress: Progress | None = None
        if console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
        self._tasks: dict[str, TaskID] = {}
        self._resumed: dict[str, int] = {}

    def __enter__(self) -> TransferBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        if self._progress is None:
            return
        if event.kind == "start":
            if event.bytes > 0:
                label = f"{_PHASE_LABELS[event.phase]} {plural(event.files, 'file')}"
                self._tasks[event.phase] = self._progress.add_task(label, total=event.bytes)
        elif event.kind == "resume" and event.phase in self._tasks:
            # Bytes an interrupted push already stored: the bar starts further on, and resetting
            # the clock keeps them out of the transfer speed. Resumes come before any advance.
            self._resumed[event.phase] = self._resumed.get(event.phase, 0) + event.bytes
            self._progress.reset(self._tasks[event.phase], completed=self._resumed[event.phase])
        elif event.kind == "advance" and event.phase in self._tasks:
            self._progress.advance(self._tasks[event.phase], event.bytes)
