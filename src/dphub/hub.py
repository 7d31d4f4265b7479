"""The hub's services wired together from one Settings: metastore, bitstore, datastore, signer.

The web app, the CLI's server commands and the workers all start from :func:`open_hub`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dphub import failpoints
from dphub.bitstore import BitStore, open_bitstore
from dphub.bitstore.signing import UploadSigner
from dphub.config import Settings, ensure_data_dir
from dphub.datastore import Datastore, open_datastore
from dphub.metastore.db import make_engine, make_sessionmaker, upgrade


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bitstore: BitStore
    signer: UploadSigner
    datastore: Datastore

    def close(self) -> None:
        self.engine.dispose()
        engine = getattr(self.datastore, "engine", None)
        if engine is not None and engine is not self.engine:
            engine.dispose()


def open_hub(settings: Settings, *, migrate: bool = True) -> Hub:
    settings = ensure_data_dir(settings)
    failpoints.arm(settings.failpoints, folder=settings.data_dir / "failpoints")
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
        datastore=open_datastore(settings),
    )
