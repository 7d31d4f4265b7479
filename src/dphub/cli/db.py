"""``dphub db``: the metastore's schema migrations."""

from __future__ import annotations

import typer
from rich.console import Console

from dphub.cli._server import DataDirOption

app = typer.Typer(help="Manage the metastore's schema (run on the server).", no_args_is_help=True)
out = Console(highlight=False)


@app.command()
def upgrade(data_dir: DataDirOption = None) -> None:
    """Migrate the metastore to the newest schema (safe to run twice)."""
    from dphub.config import ensure_data_dir, load_settings
    from dphub.metastore.db import current_revision, make_engine
    from dphub.metastore.db import upgrade as run_upgrade

    settings = ensure_data_dir(load_settings(data_dir=data_dir))
    engine = make_engine(settings.resolved_database_url)
    try:
        run_upgrade(engine)
        out.print(f"Metastore schema at revision {current_revision(engine)}.")
    finally:
        engine.dispose()


@app.command()
def current(data_dir: DataDirOption = None) -> None:
    """Print the metastore's schema revision."""
    from dphub.config import ensure_data_dir, load_settings
    from dphub.metastore.db import current_revision, make_engine

    settings = ensure_data_dir(load_settings(data_dir=data_dir))
    engine = make_engine(settings.resolved_database_url)
    try:
        out.print(current_revision(engine) or "empty")
    finally:
        engine.dispose()
