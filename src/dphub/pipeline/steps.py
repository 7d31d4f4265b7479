"""The processing steps of a revision, in the order they run."""

from __future__ import annotations

from typing import Any

STEPS = {
    "validate": "Validate tables against their schemas",
    "derive": "Derive CSV and JSON",
    "preview": "Preview the first rows",
    "zip": "Zip the package",
    "load": "Load the datastore",
}


def in_order(pipelines: dict[str, Any] | None) -> dict[str, Any] | None:
    """A revision's per-step states in the order the steps run (PostgreSQL's JSONB keeps keys in
    an order of its own), any step this release does not know last."""
    if not pipelines:
        return pipelines
    rank = {key: index for index, key in enumerate(STEPS)}
    return dict(sorted(pipelines.items(), key=lambda item: rank.get(item[0], len(rank))))
