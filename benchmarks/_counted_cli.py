"""The ``dphub`` command, counting what it sends: a helper of ``benchmarks/resume.py``.

    python benchmarks/_counted_cli.py COUNTER REPORT dphub-arguments...

Runs the installed CLI (``dphub.cli.main``) unchanged in this process, with two additions:

- every byte the process hands to a socket (``send``/``sendall``: request lines, headers and bodies,
  to the hub and to the object store alike) is added to a counter kept in the 8-byte file COUNTER
  through a shared memory map, so the count survives a SIGKILL at any moment;
- the :class:`~dphub.client.PushResult` that ``Client.push`` returns (bytes sent, bytes resumed,
  files uploaded and skipped) is written to REPORT as JSON when the push returns.
"""

from __future__ import annotations

import json
import mmap
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any

COUNTER = struct.Struct("<Q")


def count_socket_sends(counter: Path) -> None:
    """Patch socket.socket so that each send adds its bytes to the mapped counter file."""
    with counter.open("r+b") as file:
        shared = mmap.mmap(file.fileno(), COUNTER.size)
    lock = threading.Lock()
    original_send = socket.socket.send
    original_sendall = socket.socket.sendall

    def add(amount: int) -> None:
        with lock:
            (total,) = COUNTER.unpack_from(shared, 0)
            COUNTER.pack_into(shared, 0, total + amount)

    def send(self: socket.socket, data: Any, *args: Any) -> int:
        sent = original_send(self, data, *args)
        add(sent)
        return sent

    def sendall(self: socket.socket, data: Any, *args: Any) -> None:
        original_sendall(self, data, *args)
        add(memoryview(data).nbytes)

    socket.socket.send = send  # type: ignore[method-assign,assignment]
    socket.socket.sendall = sendall  # type: ignore[method-assign,assignment]


def record_push_result(report: Path) -> None:
    from dphub.client import _client

    original = _client.Client.push

    def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        report.write_text(
            json.dumps(
                {
                    "uploaded_bytes": result.uploaded_bytes,
                    "resumed_bytes": result.resumed_bytes,
                    "uploaded_files": list(result.uploaded_files),
                    "skipped_files": list(result.skipped_files),
                    "revision": result.revision,
                }
            )
        )
        return result

    _client.Client.push = push


def main() -> None:
    counter, report, *arguments = sys.argv[1:]
    count_socket_sends(Path(counter))
    record_push_result(Path(report))
    from dphub.cli import main as dphub_main

    sys.argv = ["dphub", *arguments]
    dphub_main()


if __name__ == "__main__":
    main()
