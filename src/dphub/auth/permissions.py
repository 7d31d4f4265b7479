"""The one place that decides who may do what.

Routes and services name the action they need and call :func:`require` (or :func:`can`); nothing else
in dphub compares usernames to owners. A package that may not be read is reported as *not found*, so
its existence is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dphub.auth.principal import Principal
from dphub.errors import Forbidden, PackageNotFound, Unauthenticated


class Action(StrEnum):
    PACKAGE_READ = "package:read"
    PACKAGE_LIST_ALL = "package:list-all"
    PACKAGE_PUSH = "package:push"


@dataclass(frozen=True)
class PublisherRef:
    name: str


@dataclass(frozen=True)
class PackageRef:
    owner: str
    name: str
    findability: str


Resource = PublisherRef | PackageRef


def _acts_for(principal: Principal | None, publisher: str) -> bool:
    return principal is not None and (principal.is_admin or principal.username == publisher)


def can(principal: Principal | None, action: Action, resource: Resource) -> bool:
    if action is Action.PACKAGE_READ:
        assert isinstance(resource, PackageRef)
        return resource.findability != "private" or _acts_for(principal, resource.owner)
    if action is Action.PACKAGE_LIST_ALL:
        return _acts_for(principal, _publisher_of(resource))
    return _acts_for(principal, _publisher_of(resource))


def require(principal: Principal | None, action: Action, resource: Resource) -> None:
    """Raise the error the caller should see when ``principal`` may not do ``action``."""
    if can(principal, action, resource):
        return
    if action is Action.PACKAGE_READ:
        raise PackageNotFound()
    if principal is None:
        raise Unauthenticated()
    raise Forbidden(
        f"{principal.username} may not publish into the namespace of {_publisher_of(resource)!r}.",
    )


def readable_findabilities(principal: Principal | None, publisher: str) -> tuple[str, ...]:
    """The findabilities of ``publisher``'s packages that ``principal`` may see listed."""
    if can(principal, Action.PACKAGE_LIST_ALL, PublisherRef(publisher)):
        return ("published", "unlisted", "private")
    return ("published",)


def _publisher_of(resource: Resource) -> str:
    return resource.name if isinstance(resource, PublisherRef) else resource.owner
