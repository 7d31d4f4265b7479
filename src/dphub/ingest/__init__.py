"""The Meta Ingestor: upload sessions (authorize, receive) and finalize."""
