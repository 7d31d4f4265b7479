"""Failpoints, the crash tests' aid: inert unless named, a bad value stops the start, and a named
point stops the first process to reach it until it is told to go on."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dphub import failpoints
from dphub.config import load_settings
from dphub.errors import ConfigurationError


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "failpoints"
    failpoints.arm("", folder=tmp_path / "failpoints")


def test_unarmed_points_do_nothing(folder: Path) -> None:
    failpoints.arm("", folder=folder)
    failpoints.hit("finalize.before_commit")
    assert not folder.exists()


@pytest.mark.parametrize(
    "spec", ["finalize", "finalize.before_commit=crash", "=pause", "a.b=pause,x"]
)
def test_a_malformed_value_stops_the_start(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DPHUB_FAILPOINTS"):
        load_settings({"DPHUB_FAILPOINTS": spec, "DPHUB_DATA_DIR": str(tmp_path)})


def test_a_point_pauses_the_first_arrival_until_resumed(folder: Path) -> None:
    failpoints.arm("finalize.before_commit=pause, gc.blob_deleted=pause", folder=folder)
    failpoints.hit("upload.in_flight")  # not named: passes
    first = threading.Thread(target=failpoints.hit, args=("finalize.before_commit",))
    first.start()
    marker = folder / "finalize.before_commit.paused"
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.read_text() == str(os.getpid())
    failpoints.hit("finalize.before_commit")  # fired already: the next arrival passes
    assert first.is_alive()
    (folder / "finalize.before_commit.resume").touch()
    first.join(timeout=10)
    assert not first.is_alive()
    assert sorted(p.name for p in folder.iterdir()) == [
        "finalize.before_commit.paused",
        "finalize.before_commit.resume",
    ]
