"""Options shared by the operator's commands, which run against the configured hub directly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory of the hub (default: DPHUB_DATA_DIR or ~/.local/share/dphub).",
        show_default=False,
    ),
]
