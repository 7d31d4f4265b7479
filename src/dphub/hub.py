"""The hub's services wired together from one Settings: metastore, bitstore, signer.

The web app, the CLI's server commands and (later) workers all start from :func:`open_hub`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dphub.bitstore import BitStore, open_bitstore
from dphub.bitstore.signing import UploadSigner
from dphub.config import Settings, ensure_data_dir
from dphub.metastore.db import make_engine, make_sessionmaker, upgrade


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bitstore: BitStore
    signer: UploadSigner

    def close(self) -> None:
        self.engine.dispose()


def open_hub(settings: Settings, *, migrate: bool = True) -> Hub:
    settings = ensure_data_dir(settings)
    engine = make_engine(settings.resolved_database_url)
    if migrate:
        upgrade(engine)
    signer = UploadSigner(settings.secret_key)
    return Hub(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        bitstore=open_bitstore(settings, signer),
        signer=signer,
    )
