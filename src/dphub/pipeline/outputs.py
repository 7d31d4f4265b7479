"""Files in and out of the pipeline: a blob as a local file to read, a local file stored as a blob,
and the zip of a whole package, all streamed (nothing large is held in memory)."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

from dphub.bitstore import BitStore, BlobInfo

CHUNK = 1024 * 1024


def materialize(bitstore: BitStore, sha256: str, *, workdir: Path, name: str) -> Path:
    """A local file holding the blob: the store's own file on local disk, else a download."""
    local = bitstore.local_path(sha256)
    if local is not None:
        return local
    target = workdir / f"source-{sha256[:16]}-{Path(name).name}"
    if not target.exists():
        partial = target.with_suffix(target.suffix + ".part")
        with partial.open("wb") as out:
            for chunk in bitstore.read(sha256):
                out.write(chunk)
        partial.replace(target)
    return target


def store_file(bitstore: BitStore, path: Path) -> BlobInfo:
    """Store a local file as a blob (content-addressed: storing it twice costs nothing more)."""
    writer = bitstore.writer(expected_size=path.stat().st_size)
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                writer.write(chunk)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def write_zip(bitstore: BitStore, members: Iterable[tuple[str, str]], target: Path) -> None:
    """Zip ``(path in the zip, sha256)`` members read from the bitstore into ``target``.

    Deflate at level 1: most of a package is CSV, which that level shrinks well at several times
    the speed of the default level.
    """
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for arcname, sha256 in members:
            # a fixed timestamp makes the same package zip to the same bytes (and blob) every time
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            _set_level(info, 1)
            with zf.open(info, "w") as out:
                local = bitstore.local_path(sha256)
                if local is not None:
                    with local.open("rb") as source:
                        shutil.copyfileobj(source, out, CHUNK)
                else:
                    for chunk in bitstore.read(sha256):
                        out.write(chunk)


def _set_level(info: zipfile.ZipInfo, level: int) -> None:
    # ZipFile.open(ZipInfo) takes the level from the entry: an attribute that is private before
    # Python 3.13 and public from then on
    name = "compress_level" if hasattr(info, "compress_level") else "_compresslevel"
    setattr(info, name, level)
