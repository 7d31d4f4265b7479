"""Where the CLI keeps the hub address and the login token, and where it caches file hashes.

The config file holds a token, so it is created readable by its owner only (0600, in a 0700 folder)
and replaced atomically: a crash never leaves half a file, and a reader never sees one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dphub.errors import ConfigurationError

DEFAULT_SERVER = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER
    username: str | None = None
    token: str | None = None


def config_path() -> Path:
    explicit = os.environ.get("DPHUB_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dphub" / "config.json"


def cache_dir() -> Path:
    explicit = os.environ.get("DPHUB_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dphub"


def load_config(path: Path | None = None) -> ClientConfig:
    """The saved config, or the defaults when there is none yet."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ClientConfig()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{path} is not valid JSON ({exc}); fix it or delete it and run `dphub login`."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{path} must hold a JSON object; delete it and run `dphub login`."
        )
    return ClientConfig(
        server=_text(data.get("server")) or DEFAULT_SERVER,
        username=_text(data.get("username")),
        token=_text(data.get("token")),
    )


def save_config(config: ClientConfig, path: Path | None = None) -> Path:
    """Write ``config`` readable by its owner only; return where it went."""
    path = path or config_path()
    write_private(path, json.dumps(asdict(config), indent=2).encode() + b"\n")
    return path


def write_private(path: Path, content: bytes) -> None:
    """Atomically replace ``path`` with ``content``, mode 0600, its folder made 0700 if new."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp already creates 0600; fchmod keeps it so whatever the platform default.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
