"""Queries over packages, revisions and their files."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dphub.auth.principal import Principal
from dphub.auth.roles import listed_clause
from dphub.errors import PackageNotFound, RevisionNotFound
from dphub.metastore.models import (
    Package,
    PackageTag,
    Revision,
    RevisionFile,
    UploadSession,
    UploadSessionFile,
)
from dphub.names import is_valid_tag

REVISION_STATES = ("QUEUED", "INPROGRESS", "SUCCEEDED", "FAILED")
MAX_REVISION = 2**31 - 1


def find_package(session: Session, owner: str, name: str) -> Package | None:
    return session.scalar(
        select(Package).where(
            Package.owner == owner, Package.name == name, Package.deleted_at.is_(None)
        )
    )


def list_packages(session: Session, owner: str, principal: Principal | None) -> Sequence[Package]:
    """``owner``'s processed packages that ``principal`` sees listed."""
    query = (
        select(Package)
        .where(
            Package.owner == owner,
            Package.deleted_at.is_(None),
            listed_clause(principal),
            Package.successful_revision.is_not(None),
        )
        .order_by(Package.name)
    )
    return session.scalars(query).all()


def pins_revision(ref: str | int | None) -> bool:
    """Whether ``ref`` always names the same revision: a number does; ``latest``, ``successful``
    and tags (which a forced tag moves) may name another one tomorrow."""
    return isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit())


def get_revision(session: Session, package: Package, ref: str | int | None) -> Revision:
    """A revision by number, ``latest`` / ``successful`` or a tag of the package; ``None`` means
    the latest successful."""
    if ref is None or ref == "successful":
        number = package.successful_revision
    elif ref == "latest":
        number = package.latest_revision or None
    elif pins_revision(ref):
        number = int(ref) if len(str(ref)) <= 10 else None  # longer: past MAX_REVISION
    else:
        number = _tagged(session, package, str(ref))
    revision = None
    if number is not None and 0 < number <= MAX_REVISION:
        revision = session.scalar(
            select(Revision).where(Revision.package_id == package.id, Revision.number == number)
        )
    if revision is None and ref in (None, "successful"):
        raise RevisionNotFound(
            f"Package {package.owner}/{package.name} has no successfully processed revision yet:"
            " its latest revision is queued, in progress or failed (see its revisions/latest)."
        )
    if revision is None:
        raise RevisionNotFound(f"Package {package.owner}/{package.name} has no revision {ref}.")
    return revision


def _tagged(session: Session, package: Package, tag: str) -> int:
    number = None
    if is_valid_tag(tag):
        number = session.scalar(
            select(PackageTag.revision).where(
                PackageTag.package_id == package.id, PackageTag.tag == tag
            )
        )
    if number is None:
        raise RevisionNotFound(
            f"Package {package.owner}/{package.name} has no revision or tag {tag[:100]!r}: use a"
            " number, latest, successful or one of its tags."
        )
    return number


def list_revisions(session: Session, package: Package) -> Sequence[Revision]:
    query = (
        select(Revision).where(Revision.package_id == package.id).order_by(Revision.number.desc())
    )
    return session.scalars(query).all()


def visible_files_query(sha256: str, principal: Principal) -> Select[int]:
    """Revision files with these bytes in a package ``principal`` sees listed (published, or one it
    holds a role on)."""
    readable = listed_clause(principal)
    return (
        select(RevisionFile.id)
        .join(Revision, Revision.id == RevisionFile.revision_id)
        .join(Package, Package.id == Revision.package_id)
        .where(RevisionFile.sha256 == sha256, Package.deleted_at.is_(None), readable)
    )


def blob_readable_by(session: Session, sha256: str, principal: Principal) -> bool:
    """Whether ``principal`` can already read the blob: a package of its own or a published one,
    or an upload of its own that the hub received and verified."""
    if session.scalar(select(exists(visible_files_query(sha256, principal)))):
        return True
    own_upload = (
        select(UploadSessionFile.id)
        .join(UploadSession, UploadSession.id == UploadSessionFile.session_id)
        .where(
            UploadSessionFile.received_sha256 == sha256,
            UploadSession.user_id == principal.user_id,
        )
    )
    return bool(session.scalar(select(exists(own_upload))))


def known_md5(session: Session, sha256: str) -> str | None:
    """The MD5 the hub recorded for these bytes, if it has seen them."""
    md5 = session.scalar(
        select(RevisionFile.md5)
        .where(RevisionFile.sha256 == sha256, RevisionFile.md5.is_not(None))
        .limit(1)
    )
    if md5 is None:
        md5 = session.scalar(
            select(UploadSessionFile.received_md5)
            .where(
                UploadSessionFile.received_sha256 == sha256,
                UploadSessionFile.received_md5.is_not(None),
            )
            .limit(1)
        )
    return md5


def claim_next_revision(
    session: Session, *, owner: str, name: str, findability: str
) -> tuple[Package, int]:
    """Create the package if needed and reserve its next revision number.

    Both statements write, so the transaction holds the write lock from its first statement and two
    finalizes of one package are serialised instead of racing for the same number.
    """
    now = datetime.now(UTC)
    insert = (
        postgresql.insert if session.bind and session.bind.dialect.name == "postgresql" else None
    )
    stmt = (insert or sqlite.insert)(Package).values(
        owner=owner,
        name=name,
        findability=findability,
        latest_revision=0,
        created_at=now,
        modified_at=now,
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["owner", "name"]))
    row = session.execute(
        update(Package)
        .where(Package.owner == owner, Package.name == name)
        .values(latest_revision=Package.latest_revision + 1, modified_at=now)
        .returning(Package.id, Package.latest_revision)
    ).one()
    package = session.get(Package, row.id, populate_existing=True)
    if package is None:
        raise PackageNotFound()
    return package, int(row.latest_revision)
