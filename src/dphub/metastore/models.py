"""The metastore's tables: publishers' accounts, packages, their revisions and files, upload sessions.

A revision maps each file path of a package to a blob (by SHA-256) in the bitstore; the bitstore itself
knows nothing of packages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# JSON documents (descriptors, reports): JSONB on PostgreSQL, so they can be indexed and queried.
Document = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the metastore")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: Document,
    }


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="user")


class ApiKey(Base):
    """A secret a publisher scripts with; only its SHA-256 is stored (keys carry 256 bits of entropy)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="api_keys")


class Package(Base):
    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_packages_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    findability: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(default=utcnow)
    latest_revision: Mapped[int] = mapped_column(Integer, default=0)
    successful_revision: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None]


class Revision(Base):
    """One immutable push of a package, numbered 1, 2, ... per package."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("package_id", "number", name="uq_revisions_package_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    descriptor: Mapped[dict[str, Any]]
    readme: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(default=utcnow)
    pipelines: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report: Mapped[dict[str, Any] | None] = mapped_column(Document)
    """The Frictionless-format validation report the pipeline wrote (``None`` before it ran)."""

    files: Mapped[list[RevisionFile]] = relationship(
        back_populates="revision", order_by="RevisionFile.path"
    )


class RevisionFile(Base):
    __tablename__ = "revision_files"
    __table_args__ = (
        UniqueConstraint("revision_id", "path", name="uq_revision_files_revision_path"),
        Index("ix_revision_files_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(255))

    revision: Mapped[Revision] = relationship(back_populates="files")


class UploadSession(Base):
    """What an authorize call promised: the files expected before finalize may create a revision."""

    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(100))
    findability: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    revision: Mapped[int | None] = mapped_column(Integer)

    files: Mapped[list[UploadSessionFile]] = relationship(
        back_populates="session", order_by="UploadSessionFile.path"
    )


class UploadSessionFile(Base):
    __tablename__ = "upload_session_files"
    __table_args__ = (
        UniqueConstraint("session_id", "path", name="uq_upload_session_files_session_path"),
        Index("ix_upload_session_files_sha256", "received_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("upload_sessions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str | None] = mapped_column(String(32))
    sha256: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(255))
    staged: Mapped[bool] = mapped_column(Boolean, default=False)
    """Uploaded to a key of the session, then filed under its hash when finalize confirms it."""
    received_sha256: Mapped[str | None] = mapped_column(String(64))
    received_md5: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime | None]

    session: Mapped[UploadSession] = relationship(back_populates="files")


class MultipartUpload(Base):
    """A large file sent in parts straight to the store; found again by a re-run of the same push
    (same user, same bytes), which then sends only the parts still missing."""

    __tablename__ = "multipart_uploads"
    __table_args__ = (Index("ix_multipart_uploads_lookup", "user_id", "sha256", "size"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    store_upload_id: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class Job(Base):
    """Processing of one revision, recorded in the transaction that creates the revision.

    A worker claims a job by setting ``state`` to running; while it works it moves ``heartbeat_at``
    forward, so a job whose worker died is seen as stale and claimed again.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(
        ForeignKey("revisions.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class RevisionOutput(Base):
    """A file the pipeline derived from a revision (CSV, JSON, preview, zip), stored as a blob."""

    __tablename__ = "revision_outputs"
    __table_args__ = (
        UniqueConstraint("revision_id", "name", name="uq_revision_outputs_revision_name"),
        Index("ix_revision_outputs_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    resource_index: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(255))


class DatastoreTable(Base):
    """The datastore table loaded from one tabular resource of one revision."""

    __tablename__ = "datastore_tables"
    __table_args__ = (
        UniqueConstraint(
            "revision_id", "resource_index", name="uq_datastore_tables_revision_resource"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id", ondelete="CASCADE"))
    resource_index: Mapped[int] = mapped_column(Integer)
    resource_name: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(100), unique=True)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(Document)
    rows: Mapped[int] = mapped_column(BigInteger)
