"""A package's life cycle and the hub's storage: soft delete and undelete, purge, garbage
collection of blobs nothing references, and per-publisher quotas with the usage they limit."""
