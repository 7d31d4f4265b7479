"""``dphub worker``: process pushed revisions (run on any machine that reaches the metastore)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from dphub.cli._server import DataDirOption

out = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(worker)


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, help="Revisions processed at the same time (threads).")
    ] = 1,
    once: Annotated[
        bool, typer.Option("--once", help="Process the jobs waiting now, then exit.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Validate, derive and load pushed revisions, as jobs arrive in the metastore; deliver
    webhooks."""
    import logging.config

    from dphub.config import load_settings
    from dphub.events.delivery import deliver_once
    from dphub.hub import open_hub
    from dphub.logs import log_config
    from dphub.pipeline.worker import run, run_once

    settings = load_settings(data_dir=data_dir)
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    hub = open_hub(settings)
    try:
        if once:
            done = 0
            while run_once(hub):
                done += 1
            out.print(f"Processed {done} job{'s' if done != 1 else ''}.")
            tried = 0
            while deliver_once(hub):
                tried += 1
            if tried:
                out.print(f"Attempted {tried} webhook deliver{'ies' if tried != 1 else 'y'}.")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        out.print(f"dphub worker: {concurrency} thread(s), waiting for jobs (Ctrl-C to stop).")
        run(hub, concurrency=concurrency, stop=stop)
    finally:
        hub.close()
