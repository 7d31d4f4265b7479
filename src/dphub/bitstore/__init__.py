"""Bitstore: content-addressed blob storage and the signed upload forms that feed it."""

from __future__ import annotations

from dphub.bitstore.interfaces import BitStore, BlobInfo, BlobWriter
from dphub.bitstore.local import LocalBitStore
from dphub.config import Settings

__all__ = ["BitStore", "BlobInfo", "BlobWriter", "LocalBitStore", "open_bitstore"]


def open_bitstore(settings: Settings) -> BitStore:
    return LocalBitStore(settings.blob_dir)
