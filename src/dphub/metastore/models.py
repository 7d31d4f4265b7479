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
    scope: Mapped[str] = mapped_column(String(16), default="admin", server_default="admin")
    """``read``, ``publish`` or ``admin``: what the key may do, within what its user may do."""
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    """When set, the key acts on this package only."""
    publisher_id: Mapped[int | None] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE")
    )
    """When set, the key acts on this publisher's packages only."""

    user: Mapped[User] = relationship(back_populates="api_keys")
    package: Mapped[Package | None] = relationship()
    publisher: Mapped[Publisher | None] = relationship()


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
    retry_at: Mapped[datetime | None]
    """A job given back after a failed attempt is not claimed before this time."""


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


class Publisher(Base):
    """A name in the one namespace that users and organizations share."""

    __tablename__ = "publishers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``user`` or ``organization``."""
    title: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    """A user's role (owner, editor, viewer) in an organization."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("publisher_id", "user_id", name="uq_memberships_publisher_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("publishers.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Collaborator(Base):
    """A user's role on one package, on top of what the package's publisher grants."""

    __tablename__ = "collaborators"
    __table_args__ = (
        UniqueConstraint("package_id", "user_id", name="uq_collaborators_package_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SigningKey(Base):
    """A key pair that signs session tokens. The newest unretired key signs; every key not yet
    past its retirement grace still verifies, so rotating keys logs nobody out."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_key: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class AuditEvent(Base):
    """A security event: logins, failed logins, tokens, roles, findability, deletes."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    """``ok``, ``denied`` or ``failed``."""
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(320))
    ip: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(500))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RateCounter(Base):
    """Attempts by one key (an IP, an account) in one fixed window; shared by every API process."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class TrustedPublisher(Base):
    """An OIDC issuer and subject pattern (a CI workflow) allowed to push one package."""

    __tablename__ = "trusted_publishers"
    __table_args__ = (
        UniqueConstraint(
            "owner", "name", "issuer", "subject", name="uq_trusted_publishers_identity"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    """A subject, or a pattern with ``*`` wildcards."""
    audience: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OidcIdentity(Base):
    """A user's account at an OIDC provider, linked to their dphub user."""

    __tablename__ = "oidc_identities"
    __table_args__ = (
        UniqueConstraint("issuer", "subject", name="uq_oidc_identities_issuer_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OidcLogin(Base):
    """One started OIDC login: its state, nonce and PKCE verifier, used at most once."""

    __tablename__ = "oidc_logins"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(100))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    """The user the provider vouched for, once the callback has run."""
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """SHA-256 of the one-time code a command-line login redeems for its token."""


class PackageTag(Base):
    """A name for one revision of a package (``v1.0``), usable wherever a revision number is."""

    __tablename__ = "package_tags"
    __table_args__ = (UniqueConstraint("package_id", "tag", name="uq_package_tags_package_tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(100))
    revision: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PublisherQuota(Base):
    """Limits an admin set on one publisher; a missing row or a null limit means no limit."""

    __tablename__ = "publisher_quotas"

    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), primary_key=True
    )
    max_public_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_private_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_packages: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """One thing that happened to a package: pushed, processed, failed, tagged, deleted, ..."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_owner_id", "owner", "id"),
        Index("ix_events_owner_name_id", "owner", "name", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(100))
    revision: Mapped[int | None] = mapped_column(Integer)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Webhook(Base):
    """A URL a publisher wants told of its events, with the secret that signs each delivery."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publisher_id: Mapped[int] = mapped_column(
        ForeignKey("publishers.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    """Kept as given: HMAC needs it; shown once, at creation."""
    kinds: Mapped[list[str] | None] = mapped_column(Document)
    """The event kinds to deliver; ``None`` for all."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event owed to one webhook: tried until delivered or out of attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """``pending``, ``delivered`` or ``failed``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class SearchDocument(Base):
    """What package search reads of one package: its latest successful revision's words, rewritten
    when a revision succeeds. Findability and deletion stay on ``packages``, which every search joins.

    The full-text index over these columns belongs to the database engine and lives outside the
    models (:mod:`dphub.findability.engines`): an FTS5 table kept in step by triggers on SQLite, a
    generated ``tsvector`` column with a GIN index on PostgreSQL.
    """

    __tablename__ = "package_search"
    __table_args__ = (
        Index("ix_package_search_updated", "updated"),
        Index("ix_package_search_name_owner", "name", "owner"),
    )

    package_id: Mapped[int] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    revision: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    readme: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(Document)
    licenses: Mapped[list[str]] = mapped_column(Document)
    formats: Mapped[list[str]] = mapped_column(Document)
    resources: Mapped[list[str]] = mapped_column(Document)
    """Resource names."""
    fields: Mapped[list[str]] = mapped_column(Document)
    """Field names of every resource's Table Schema."""
    updated: Mapped[datetime]
    """When the revision the document was built from finished processing."""


class SearchTerm(Base):
    """One facet value of one package (``owner``, ``license``, ``format``, ``keyword``): what the
    search filters and counts facets on."""

    __tablename__ = "package_search_terms"
    __table_args__ = (
        Index("ix_package_search_terms_package_id", "package_id"),
        {"sqlite_with_rowid": False},
    )

    facet: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    package_id: Mapped[int] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
