"""Backup and restore of a whole hub: ``dphub admin export`` and ``dphub admin import``.

A backup is a folder: the metastore's rows as JSON Lines (every table, as of one moment), every
blob those rows reference, and a manifest with the hashes and counts that make it verifiable. It
does not depend on the backends: a backup of an embedded hub (SQLite, blobs on disk) imports into a
hub on PostgreSQL and S3, and the other way round. See docs/operations.md, "Back up and restore".
"""

from __future__ import annotations

from dphub.backup._export import export_hub
from dphub.backup._import import import_hub
from dphub.backup._layout import Manifest

__all__ = ["Manifest", "export_hub", "import_hub"]
