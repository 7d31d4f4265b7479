"""Trusted publishing: a CI job pushes a package with its own OIDC token instead of a stored secret.

A package's owner registers which tokens to trust: an issuer (``https://token.actions.
githubusercontent.com`` for GitHub Actions), a subject pattern (``repo:org/repo:ref:refs/heads/*``)
and optionally an audience. The job asks its CI for an OIDC token and exchanges it
(:func:`exchange`) for a hub token that may push that one package for 15 minutes, acting as the user
who registered the trust (with that user's role at the time of each push).

The exchange only fetches keys from issuers some package has registered; the token's signature,
issuer, expiry, issue time, audience and subject are all checked. The audience a token must carry
is the trust's own, or else the hub's base URL or ``dphub``.

Subject patterns: ``*`` matches any run of characters, but not in the first two ``:``-separated
fields (``repo:ORG/REPO`` on GitHub, ``project_path:GROUP/PROJECT`` on GitLab), so that a pattern
never trusts somebody else's repository.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth import audit, oidc
from dphub.auth.accounts import principal_of
from dphub.auth.permissions import Action, require
from dphub.auth.principal import Principal
from dphub.auth.providers import url_problem
from dphub.auth.roles import new_package_ref
from dphub.auth.tokens import issue_token
from dphub.errors import AlreadyExists, DphubError, InvalidRequest, InvalidToken, NotFound
from dphub.metastore.db import transaction
from dphub.metastore.models import TrustedPublisher, User
from dphub.metastore.packages import find_package
from dphub.names import check_name, check_publisher_name

TOKEN_TTL = 15 * 60
DEFAULT_AUDIENCE = "dphub"
MAX_PER_PACKAGE = 20
MAX_FIELD = 500
MAX_TOKEN = 16 * 1024


# Registering trust


@dataclass(frozen=True)
class TrustRequest:
    issuer: str
    subject: str
    audience: str | None = None


def subject_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be a subject pattern, or ``None``."""
    if not pattern:
        return "it is empty"
    if len(pattern) > MAX_FIELD:
        return f"it is longer than {MAX_FIELD} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in pattern):
        return "it contains control characters"
    if "*" in ":".join(pattern.split(":")[:2]):
        return (
            "'*' may not appear in its first two ':'-separated fields (e.g. repo:ORG/REPO), so"
            " that it never matches another repository"
        )
    return None


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches ``pattern`` (``*``: any run of characters, all else literal)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, subject, flags=re.DOTALL) is not None


def _check_request(request: TrustRequest, *, allow_insecure: bool) -> TrustRequest:
    issuer = request.issuer.strip()
    problem = url_problem(issuer, allow_insecure=allow_insecure) if issuer else "it is empty"
    if problem is None and len(issuer) > MAX_FIELD:
        problem = f"it is longer than {MAX_FIELD} characters"
    if problem is not None:
        raise InvalidRequest(f"The issuer {issuer[:200]!r} is refused: {problem}.", field="issuer")
    problem = subject_problem(request.subject)
    if problem is not None:
        raise InvalidRequest(
            f"The subject {request.subject[:200]!r} is refused: {problem}.", field="subject"
        )
    audience = request.audience.strip() if request.audience else None
    if audience is not None and (len(audience) > MAX_FIELD or any(ord(ch) < 32 for ch in audience)):
        raise InvalidRequest(
            f"The audience must be at most {MAX_FIELD} printable characters.", field="audience"
        )
    return TrustRequest(issuer, request.subject, audience or None)


def _describe(db: Session, trust: TrustedPublisher) -> dict[str, Any]:
    creator = db.get(User, trust.created_by) if trust.created_by is not None else None
    return {
        "id": trust.id,
        "package": f"{trust.owner}/{trust.name}",
        "issuer": trust.issuer,
        "subject": trust.subject,
        "audience": trust.audience,
        "created_by": creator.username if creator is not None else None,
        "created_at": trust.created_at,
    }


def _package(
    db: Session, principal: Principal | None, owner: str, name: str, action: Action
) -> None:
    check_publisher_name(owner)
    check_name(name, what="package name")
    require(
        principal,
        action,
        new_package_ref(db, principal, owner, name, find_package(db, owner, name)),
    )


def list_trusted(
    db: Session, principal: Principal | None, owner: str, name: str
) -> list[dict[str, Any]]:
    _package(db, principal, owner, name, Action.PACKAGE_MEMBERS)
    trusts = db.scalars(
        select(TrustedPublisher)
        .where(TrustedPublisher.owner == owner, TrustedPublisher.name == name)
        .order_by(TrustedPublisher.id)
    )
    return [_describe(db, t) for t in trusts]


def add_trusted(
    db: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    request: TrustRequest,
    *,
    allow_insecure: bool,
    ip: str | None = None,
) -> dict[str, Any]:
    """Register a trust; the package may not exist yet (its first push can come from CI)."""
    _package(db, principal, owner, name, Action.PACKAGE_MANAGE)
    assert principal is not None
    request = _check_request(request, allow_insecure=allow_insecure)
    where = (TrustedPublisher.owner == owner, TrustedPublisher.name == name)
    count = db.scalar(select(func.count()).select_from(TrustedPublisher).where(*where)) or 0
    if count >= MAX_PER_PACKAGE:
        raise InvalidRequest(
            f"{owner}/{name} already has {MAX_PER_PACKAGE} trusted publishers; remove one first."
        )
    existing = db.scalar(
        select(TrustedPublisher.id).where(
            *where,
            TrustedPublisher.issuer == request.issuer,
            TrustedPublisher.subject == request.subject,
        )
    )
    if existing is not None:
        raise AlreadyExists(
            f"{owner}/{name} already trusts this issuer and subject (id {existing}).", id=existing
        )
    trust = TrustedPublisher(
        owner=owner,
        name=name,
        issuer=request.issuer,
        subject=request.subject,
        audience=request.audience,
        created_by=principal.user_id,
    )
    db.add(trust)
    db.flush()
    audit.record(
        db,
        "trusted-publishing.add",
        principal=principal,
        ip=ip,
        target=f"{owner}/{name}",
        id=trust.id,
        issuer=trust.issuer,
        subject=trust.subject,
    )
    return _describe(db, trust)


def remove_trusted(
    db: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    trust_id: int,
    *,
    ip: str | None = None,
) -> None:
    _package(db, principal, owner, name, Action.PACKAGE_MANAGE)
    trust = db.get(TrustedPublisher, trust_id)
    if trust is None or (trust.owner, trust.name) != (owner, name):
        raise NotFound(f"{owner}/{name} has no trusted publisher with id {trust_id}.")
    db.delete(trust)
    audit.record(
        db,
        "trusted-publishing.remove",
        principal=principal,
        ip=ip,
        target=f"{owner}/{name}",
        id=trust_id,
        issuer=trust.issuer,
        subject=trust.subject,
    )


# Exchanging a CI token


@dataclass(frozen=True)
class Candidate:
    trust_id: int
    owner: str
    name: str
    subject: str
    audience: str | None
    created_by: int | None


def exchange(
    sessions: sessionmaker[Session],
    token: str,
    *,
    base_url: str,
    allow_insecure: bool,
    package: str | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    """A 15-minute publish token for the one package that trusts ``token``'s issuer and subject.

    ``package`` (``OWNER/NAME``) chooses when the token matches trusts of several packages.
    Every refusal is :class:`InvalidToken` (401) and is audited.
    """
    claims: dict[str, Any] = {}
    try:
        if not token or len(token) > MAX_TOKEN:
            raise InvalidToken('Send the CI\'s OIDC token (a JWT) in "token".', reason="format")
        claims = oidc.unverified_claims(token)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise InvalidToken("The token names no issuer (iss).", reason="issuer")
        candidates = _candidates(sessions, issuer)
        if not candidates:
            raise InvalidToken(
                f"No package trusts tokens from the issuer {issuer[:200]!r}.",
                reason="issuer-not-trusted",
            )
        problem = url_problem(issuer, allow_insecure=allow_insecure)
        if problem is not None:
            raise InvalidToken(
                f"The issuer {issuer[:200]!r} is refused: {problem}.", reason="issuer"
            )
        verified = oidc.issuer_token(
            token, issuer=issuer, fetch=oidc.vetted_fetcher(allow_insecure=allow_insecure)
        ).claims
        chosen = _choose(candidates, verified, base_url=base_url, package=package)
        return _issue(sessions, chosen, verified, ip=ip)
    except DphubError as exc:
        audit.record_apart(
            sessions,
            "trusted-publishing.exchange",
            outcome="denied",
            ip=ip,
            target=package[:200] if package else None,
            reason=str(exc.details.get("reason", exc.code)),
            issuer=str(claims.get("iss", ""))[:MAX_FIELD] or None,
            subject=str(claims.get("sub", ""))[:MAX_FIELD] or None,
        )
        if isinstance(exc, InvalidToken):
            raise
        raise InvalidToken(exc.message, reason=exc.code) from None


def _candidates(sessions: sessionmaker[Session], issuer: str) -> list[Candidate]:
    with sessions() as db:
        rows = db.scalars(
            select(TrustedPublisher)
            .where(TrustedPublisher.issuer == issuer)
            .order_by(TrustedPublisher.id)
        )
        return [Candidate(t.id, t.owner, t.name, t.subject, t.audience, t.created_by) for t in rows]


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


def _choose(
    candidates: list[Candidate],
    claims: dict[str, Any],
    *,
    base_url: str,
    package: str | None,
) -> Candidate:
    subject = claims.get("sub")
    assert isinstance(subject, str)
    audiences = _audiences(claims)
    default = {base_url.rstrip("/"), DEFAULT_AUDIENCE} if base_url else {DEFAULT_AUDIENCE}
    by_subject = [c for c in candidates if subject_matches(c.subject, subject)]
    if not by_subject:
        raise InvalidToken(
            f"No trusted publisher of this issuer matches the subject {subject[:200]!r}.",
            reason="subject",
        )
    matched = [
        c
        for c in by_subject
        if any(a in ({c.audience} if c.audience else default) for a in audiences)
    ]
    if not matched:
        wanted = sorted({c.audience for c in by_subject if c.audience} or default)
        raise InvalidToken(
            "The token's audience (aud) is not one the trusted publisher expects: ask your CI"
            f" for a token with the audience {' or '.join(repr(w) for w in wanted)}.",
            reason="audience",
        )
    if package is not None:
        matched = [c for c in matched if f"{c.owner}/{c.name}" == package]
        if not matched:
            raise InvalidToken(
                f"{package[:200]} does not trust this token's issuer and subject.",
                reason="package",
            )
    packages = sorted({f"{c.owner}/{c.name}" for c in matched})
    if len(packages) > 1:
        raise InvalidToken(
            'This token is trusted by several packages; name the one to push in "package"'
            f" ({', '.join(packages)}).",
            reason="ambiguous",
            packages=packages,
        )
    return matched[0]


def _issue(
    sessions: sessionmaker[Session],
    chosen: Candidate,
    claims: dict[str, Any],
    *,
    ip: str | None,
) -> dict[str, Any]:
    target = f"{chosen.owner}/{chosen.name}"
    with transaction(sessions) as db:
        user = db.get(User, chosen.created_by) if chosen.created_by is not None else None
        if user is None:
            raise InvalidToken(
                f"The user who registered this trust for {target} no longer exists; register"
                " it again.",
                reason="no-user",
            )
        principal = dataclasses.replace(
            principal_of(user),
            scope="publish",
            package=(chosen.owner, chosen.name),
            via="trusted-publisher",
        )
        token, expires_at = issue_token(db, principal, ttl=TOKEN_TTL)
        audit.record(
            db,
            "trusted-publishing.exchange",
            principal=principal,
            ip=ip,
            target=target,
            trust_id=chosen.trust_id,
            issuer=str(claims.get("iss"))[:MAX_FIELD],
            subject=str(claims.get("sub"))[:MAX_FIELD],
        )
    return {"token": token, "expires_at": expires_at, "package": target}
