"""Bitstore: content-addressed blob storage and the signed upload forms that feed it."""

from __future__ import annotations

from dphub.bitstore.interfaces import BitStore, BlobInfo, BlobWriter, UploadTarget
from dphub.bitstore.local import LocalBitStore
from dphub.bitstore.signing import UploadGrant, UploadSigner
from dphub.config import Settings

__all__ = [
    "BitStore",
    "BlobInfo",
    "BlobWriter",
    "LocalBitStore",
    "UploadGrant",
    "UploadTarget",
    "open_bitstore",
]


def open_bitstore(settings: Settings, signer: UploadSigner) -> BitStore:
    """The backend ``DPHUB_STORAGE_URL`` names: ``s3://bucket[/prefix]``, else the data dir."""
    if settings.storage_url.startswith("s3://"):
        from dphub.bitstore.s3 import S3BitStore

        return S3BitStore.from_settings(settings)
    return LocalBitStore(settings.blob_dir, signer=signer, base_url=settings.base_url)
