"""The dphub Python client: publish Data Packages to a hub and read them back.

    from dphub.client import Client

    with Client.from_config() as hub:
        result = hub.push("my-package/")
        print(result.url, result.revision)
        hub.get("someone", "their-package", "downloads/their-package")

It needs only httpx: none of the server's dependencies are imported. Failures raise the classes of
:mod:`dphub.errors` (re-exported here), the same ones the hub raised on its side.
"""

from __future__ import annotations

from dphub.client._client import FINDABILITIES, Client
from dphub.client._config import (
    DEFAULT_SERVER,
    ClientConfig,
    cache_dir,
    config_path,
    load_config,
    save_config,
)
from dphub.client._hashing import FileHashes, HashCache, hash_file
from dphub.client._http import raise_for_status
from dphub.client._package import LocalFile, LocalPackage, package_problems
from dphub.client._progress import ProgressCallback, ProgressEvent
from dphub.client._push import PushResult
from dphub.datapackage import Problem
from dphub.errors import (
    AlreadyExists,
    ChecksumMismatch,
    Conflict,
    DphubError,
    Forbidden,
    InvalidCredentials,
    InvalidDescriptor,
    InvalidName,
    InvalidPath,
    InvalidRequest,
    InvalidToken,
    InvalidUpload,
    NotFound,
    PackageNotFound,
    RevisionNotFound,
    SizeMismatch,
    TokenExpired,
    Unauthenticated,
)

__all__ = [
    "DEFAULT_SERVER",
    "FINDABILITIES",
    "AlreadyExists",
    "ChecksumMismatch",
    "Client",
    "ClientConfig",
    "Conflict",
    "DphubError",
    "FileHashes",
    "Forbidden",
    "HashCache",
    "InvalidCredentials",
    "InvalidDescriptor",
    "InvalidName",
    "InvalidPath",
    "InvalidRequest",
    "InvalidToken",
    "InvalidUpload",
    "LocalFile",
    "LocalPackage",
    "NotFound",
    "PackageNotFound",
    "Problem",
    "ProgressCallback",
    "ProgressEvent",
    "PushResult",
    "RevisionNotFound",
    "SizeMismatch",
    "TokenExpired",
    "Unauthenticated",
    "cache_dir",
    "config_path",
    "hash_file",
    "load_config",
    "package_problems",
    "raise_for_status",
    "save_config",
]
