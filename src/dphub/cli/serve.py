"""``dphub serve``: run the hub on one process, with embedded defaults unless configured."""

from __future__ import annotations

import os
import secrets
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from dphub.cli._server import DataDirOption

out = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDirOption = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Public URL of the hub (default: DPHUB_BASE_URL or http://HOST:PORT)."),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create a 'demo' publisher and print its credentials.")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes serving the port (they share no state).")
    ] = 1,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Process pushed revisions in this process too"
            " (default: yes on a SQLite metastore; run `dphub worker` otherwise).",
        ),
    ] = None,
) -> None:
    """Start the hub: the API, the bitstore endpoint and the read routes on one port."""
    import uvicorn

    from dphub.api.app import create_app
    from dphub.config import load_settings
    from dphub.hub import open_hub
    from dphub.logs import log_config

    settings = load_settings(data_dir=data_dir, base_url=base_url)
    if not settings.base_url:
        wildcard = host in ("0.0.0.0", "::", "")  # noqa: S104
        settings = settings.with_base_url(f"http://{'127.0.0.1' if wildcard else host}:{port}")
        if wildcard:
            out.print(
                "[yellow]Listening on all addresses, but links and upload URLs will name"
                f" {settings.base_url}: set --base-url (or DPHUB_BASE_URL) to the URL clients use.[/]"
            )
    hub = open_hub(settings)
    if demo:
        _demo_publisher(hub, settings.base_url)
    out.print(f"dphub {settings.base_url}  (data: {hub.settings.data_dir})")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": log_config(settings.log_level, settings.log_format),
        # X-Forwarded-For and -Proto are believed only from the proxies the operator listed:
        # anyone else could claim any client address (and walk past per-address rate limits).
        "proxy_headers": bool(settings.trusted_proxies_list),
        "forwarded_allow_ips": list(settings.trusted_proxies_list) or None,
        "server_header": False,
        # Room for the request line and the headers; the app answers 431 past
        # DPHUB_MAX_HEADER_BYTES with a JSON error, the parser closes the connection past this.
        "h11_max_incomplete_event_size": settings.max_header_bytes + 16 * 1024,
        "timeout_keep_alive": settings.keepalive_timeout,
    }
    if worker is None:
        worker = hub.settings.resolved_database_url.startswith("sqlite")
    stop = _start_worker(hub) if worker else None
    try:
        if workers == 1:
            uvicorn.run(create_app(hub.settings, hub=hub), **options)
            return
        # Each process builds its own app from the environment; the schema is migrated (above) once.
        os.environ["DPHUB_DATA_DIR"] = str(hub.settings.data_dir)
        os.environ["DPHUB_BASE_URL"] = hub.settings.base_url
        uvicorn.run("dphub.api.app:app_from_environment", factory=True, workers=workers, **options)
    finally:
        if stop is not None:
            stop.set()
        hub.close()


def _start_worker(hub: Any) -> threading.Event:
    from dphub.pipeline.worker import run

    stop = threading.Event()
    threading.Thread(
        target=run, args=(hub,), kwargs={"stop": stop}, name="dphub-worker", daemon=True
    ).start()
    out.print("Processing pushed revisions in this process (--no-worker to leave it to others).")
    return stop


def _demo_publisher(hub: object, base_url: str) -> None:
    from dphub.auth.accounts import create_api_key, create_user, find_user
    from dphub.hub import Hub
    from dphub.metastore.db import transaction

    assert isinstance(hub, Hub)
    password = None
    with transaction(hub.sessions) as db:
        user = find_user(db, "demo")
        if user is None:
            password = secrets.token_urlsafe(12)
            user = create_user(db, username="demo", email="demo@example.org", password=password)
        key = create_api_key(db, user=user, name="demo")
    out.print("Demo publisher: [bold]demo[/]" + (f"  password: {password}" if password else ""))
    out.print(f"API key (secret): {key}")
    out.print(f"Log in with:  dphub login --server {base_url} --username demo --secret {key}")
