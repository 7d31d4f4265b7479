"""The one place that decides who may do what.

Every route declares the :class:`Action` it needs (``needs(...)`` in its decorator, visible in the
OpenAPI document as ``x-dphub-action``); services call :func:`require` or :func:`can` with that action
and the resource it touches. Nothing else in dphub compares users to owners. The caller's role on a
resource is a fact loaded by :mod:`dphub.auth.roles`; the decision is made here, from the table in
``docs/permissions.md``:

- Roles rank ``viewer`` < ``editor`` < ``owner``. A user owns the publisher of their own name; an
  organization's members hold the role of their membership; a package's collaborators hold their role
  on that package; the higher of a publisher role and a collaborator role counts. A site admin acts as
  owner everywhere.
- A credential's scope (``read`` < ``publish`` < ``admin``) caps what it may do, and a credential
  limited to one package or publisher acts as anonymous everywhere else.
- A package that may not be read is reported as *not found* to a signed-in caller, whatever the
  action, so its existence is not revealed; an anonymous caller is asked to log in (``401``) for
  anything but reading, whatever the package.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from dphub.auth.principal import Principal
from dphub.errors import (
    Forbidden,
    InsufficientScope,
    PackageNotFound,
    Unauthenticated,
)


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return ROLES.index(self)


ROLES = (Role.VIEWER, Role.EDITOR, Role.OWNER)


class Action(StrEnum):
    PUBLIC = "public"
    """Anyone: hub information, logging in, public keys."""
    SIGNED_UPLOAD = "upload:signed"
    """Carries a signature the hub issued after a ``package:push`` check; the signature decides."""
    UPLOAD_OWN = "upload:own"
    """The user who started the upload."""
    PACKAGE_READ = "package:read"
    PACKAGE_PUSH = "package:push"
    PACKAGE_MEMBERS = "package:members"
    """See a package's collaborators and trusted publishers."""
    PACKAGE_MANAGE = "package:manage"
    """Change findability, collaborators and trusted publishers."""
    PUBLISHER_READ = "publisher:read"
    PUBLISHER_MEMBERS = "publisher:members"
    PUBLISHER_MANAGE = "publisher:manage"
    ORG_CREATE = "org:create"
    ACCOUNT = "account:manage"
    """One's own API keys."""
    SITE_ADMIN = "site:admin"


SCOPE_OF: dict[Action, str] = {
    Action.PUBLIC: "read",
    Action.SIGNED_UPLOAD: "read",
    Action.PACKAGE_READ: "read",
    Action.PACKAGE_MEMBERS: "read",
    Action.PUBLISHER_READ: "read",
    Action.PUBLISHER_MEMBERS: "read",
    Action.PACKAGE_PUSH: "publish",
    Action.UPLOAD_OWN: "publish",
    Action.PACKAGE_MANAGE: "admin",
    Action.PUBLISHER_MANAGE: "admin",
    Action.ORG_CREATE: "admin",
    Action.ACCOUNT: "admin",
    Action.SITE_ADMIN: "admin",
}

MINIMUM_ROLE: dict[Action, Role] = {
    Action.PACKAGE_PUSH: Role.EDITOR,
    Action.PACKAGE_MEMBERS: Role.VIEWER,
    Action.PACKAGE_MANAGE: Role.OWNER,
    Action.PUBLISHER_MEMBERS: Role.VIEWER,
    Action.PUBLISHER_MANAGE: Role.OWNER,
}

PACKAGE_ACTIONS = frozenset(
    {Action.PACKAGE_READ, Action.PACKAGE_PUSH, Action.PACKAGE_MEMBERS, Action.PACKAGE_MANAGE}
)
OPEN_FINDABILITIES = ("published", "unlisted")


@dataclass(frozen=True)
class PublisherRef:
    name: str
    role: Role | None = None
    """The caller's role on this publisher."""


@dataclass(frozen=True)
class PackageRef:
    owner: str
    name: str
    findability: str | None
    """``None`` for a package that does not exist yet (its first push)."""
    role: Role | None = None
    """The caller's role on this package: the higher of publisher and collaborator roles."""


@dataclass(frozen=True)
class UploadRef:
    user_id: int


@dataclass(frozen=True)
class AccountRef:
    user_id: int


@dataclass(frozen=True)
class SiteRef:
    pass


Resource = PublisherRef | PackageRef | UploadRef | AccountRef | SiteRef

SITE = SiteRef()


def needs(action: Action, **openapi: Any) -> dict[str, Any]:
    """The ``openapi_extra`` of a route: the action it needs, shown in the API description."""
    return {"x-dphub-action": action.value, **openapi}


def _reaches(principal: Principal, resource: Resource) -> bool:
    if isinstance(resource, PackageRef):
        return principal.reaches(resource.owner, resource.name)
    if isinstance(resource, PublisherRef):
        return principal.reaches(resource.name)
    if isinstance(resource, UploadRef):
        # The user's own upload: the package it is for was checked (package:push) when it was
        # authorized and is checked again at finalize, so a credential limited to that package
        # may see it through.
        return True
    return not principal.limited


def _effective(principal: Principal | None, resource: Resource) -> Principal | None:
    """The principal as the resource sees it: a limited credential is anonymous outside its limit."""
    if principal is None or not _reaches(principal, resource):
        return None
    return principal


def _role(principal: Principal, resource: Resource) -> Role | None:
    if principal.is_admin:
        return Role.OWNER
    if isinstance(resource, PackageRef | PublisherRef):
        return resource.role
    return None


def _readable(principal: Principal | None, resource: PackageRef) -> bool:
    if resource.findability in OPEN_FINDABILITIES:
        return True
    return principal is not None and _role(principal, resource) is not None


def can(principal: Principal | None, action: Action, resource: Resource) -> bool:
    if action in (Action.PUBLIC, Action.SIGNED_UPLOAD, Action.PUBLISHER_READ):
        return True
    caller = _effective(principal, resource)
    if action is Action.PACKAGE_READ:
        assert isinstance(resource, PackageRef)
        return _readable(caller, resource)
    if caller is None or not caller.has_scope(SCOPE_OF[action]):
        return False
    if action is Action.UPLOAD_OWN:
        return isinstance(resource, UploadRef) and resource.user_id == caller.user_id
    if action is Action.ACCOUNT:
        return isinstance(resource, AccountRef) and resource.user_id == caller.user_id
    if action is Action.ORG_CREATE:
        return True
    if action is Action.SITE_ADMIN:
        return caller.is_admin
    role = _role(caller, resource)
    return role is not None and role.rank >= MINIMUM_ROLE[action].rank


def require(principal: Principal | None, action: Action, resource: Resource) -> None:
    """Raise the error the caller should see when ``principal`` may not do ``action``."""
    if can(principal, action, resource):
        return
    if action is Action.PACKAGE_READ:
        raise _hidden()
    if principal is None:
        raise Unauthenticated()
    if (
        action in PACKAGE_ACTIONS
        and isinstance(resource, PackageRef)
        and resource.findability is not None
        and not can(principal, Action.PACKAGE_READ, resource)
    ):
        raise _hidden()
    caller = _effective(principal, resource)
    if caller is None:
        raise Forbidden(_outside_limit(principal), action=action.value)
    if not caller.has_scope(SCOPE_OF[action]):
        raise InsufficientScope(
            f"This credential has the {caller.scope!r} scope; {action.value} needs"
            f" {SCOPE_OF[action]!r}.",
            action=action.value,
        )
    raise Forbidden(_refusal(caller, action, resource), action=action.value)


def _hidden() -> PackageNotFound:
    """Not found, to the caller; a refusal, to the hub's log."""
    error = PackageNotFound()
    error.refused = True
    return error


def _outside_limit(principal: Principal) -> str:
    if principal.package is not None:
        return f"This credential is limited to the package {'/'.join(principal.package)}."
    if principal.publisher is not None:
        return f"This credential is limited to the packages of {principal.publisher!r}."
    return "This credential may not act on accounts or the site."


def _refusal(principal: Principal, action: Action, resource: Resource) -> str:
    who = principal.username
    if isinstance(resource, PackageRef):
        target = f"{resource.owner}/{resource.name}"
        if action is Action.PACKAGE_PUSH and resource.findability is None:
            return f"{who} may not publish into the namespace of {resource.owner!r}."
        needed = MINIMUM_ROLE.get(action, Role.OWNER)
        return f"{who} needs the {needed} role on {target} to do this ({action.value})."
    if isinstance(resource, PublisherRef):
        needed = MINIMUM_ROLE.get(action, Role.OWNER)
        return f"{who} needs the {needed} role in {resource.name!r} to do this ({action.value})."
    if action is Action.SITE_ADMIN:
        return "Only site administrators may do this."
    return f"{who} may not do this ({action.value})."


def as_deleted(resource: PackageRef) -> PackageRef:
    """A deleted package as every action sees it: private, and known only to those who could
    manage it (its owners and site admins); to anyone else it is not found."""
    role = resource.role
    if role is not None and role.rank < MINIMUM_ROLE[Action.PACKAGE_MANAGE].rank:
        role = None
    return replace(resource, findability="private", role=role)


def listed(principal: Principal | None, resource: PackageRef) -> bool:
    """Whether a package shows in lists: published ones, and any the caller holds a role on."""
    caller = _effective(principal, resource)
    if resource.findability == "published":
        return True
    return caller is not None and _role(caller, resource) is not None
