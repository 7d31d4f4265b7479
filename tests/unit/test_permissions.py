"""The permission decisions themselves: roles, findability, scopes and limits, no database."""

from __future__ import annotations

import pytest

from dphub.auth.permissions import (
    SITE,
    AccountRef,
    Action,
    PackageRef,
    PublisherRef,
    Role,
    UploadRef,
    can,
    listed,
    require,
)
from dphub.auth.principal import Principal
from dphub.errors import Forbidden, InsufficientScope, PackageNotFound, Unauthenticated

ANN = Principal(1, "ann", "ann@example.org")
BOB = Principal(2, "bob", "bob@example.org")
ADMIN = Principal(3, "root", "root@example.org", is_admin=True)


def pkg(findability: str | None, role: Role | None = None) -> PackageRef:
    return PackageRef("ann", "gdp", findability, role)


@pytest.mark.parametrize("findability", ["published", "unlisted"])
@pytest.mark.parametrize("who", [None, BOB, ADMIN], ids=["anonymous", "other", "admin"])
def test_everyone_reads_published_and_unlisted(findability: str, who: Principal | None) -> None:
    assert can(who, Action.PACKAGE_READ, pkg(findability))


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_a_private_package(role: Role) -> None:
    assert can(BOB, Action.PACKAGE_READ, pkg("private", role))
    assert can(ADMIN, Action.PACKAGE_READ, pkg("private"))


@pytest.mark.parametrize(
    "action", [Action.PACKAGE_READ, Action.PACKAGE_PUSH, Action.PACKAGE_MANAGE]
)
def test_a_private_package_is_not_found_whatever_the_action(action: Action) -> None:
    with pytest.raises(PackageNotFound) as caught:
        require(BOB, action, pkg("private"))
    assert caught.value.status == 404


def test_anonymous_callers_are_asked_to_log_in_for_anything_but_reading() -> None:
    with pytest.raises(PackageNotFound):
        require(None, Action.PACKAGE_READ, pkg("private"))
    for findability in ("published", "private"):
        with pytest.raises(Unauthenticated):
            require(None, Action.PACKAGE_PUSH, pkg(findability))


@pytest.mark.parametrize(
    ("role", "push", "manage"),
    [(Role.VIEWER, False, False), (Role.EDITOR, True, False), (Role.OWNER, True, True)],
)
def test_roles_rank(role: Role, push: bool, manage: bool) -> None:
    assert can(BOB, Action.PACKAGE_PUSH, pkg("published", role)) is push
    assert can(BOB, Action.PACKAGE_MANAGE, pkg("published", role)) is manage
    assert can(BOB, Action.PACKAGE_MEMBERS, pkg("published", role))


def test_a_refusal_on_a_readable_package_is_403_naming_the_role() -> None:
    with pytest.raises(Forbidden) as caught:
        require(BOB, Action.PACKAGE_MANAGE, pkg("published", Role.EDITOR))
    assert caught.value.status == 403
    assert "owner role on ann/gdp" in caught.value.message


def test_a_new_package_needs_the_editor_role_on_its_publisher() -> None:
    assert can(ANN, Action.PACKAGE_PUSH, pkg(None, Role.OWNER))
    with pytest.raises(Forbidden) as caught:
        require(BOB, Action.PACKAGE_PUSH, pkg(None))
    assert "'ann'" in caught.value.message
    with pytest.raises(Unauthenticated):
        require(None, Action.PACKAGE_PUSH, pkg(None))


def test_scopes_cap_what_a_key_may_do() -> None:
    read = Principal(1, "ann", "a@x", scope="read", via="api-key")
    publish = Principal(1, "ann", "a@x", scope="publish", via="api-key")
    owned = pkg("private", Role.OWNER)
    assert can(read, Action.PACKAGE_READ, owned)
    with pytest.raises(InsufficientScope) as caught:
        require(read, Action.PACKAGE_PUSH, owned)
    assert caught.value.code == "insufficient-scope"
    assert can(publish, Action.PACKAGE_PUSH, owned)
    assert not can(publish, Action.PACKAGE_MANAGE, owned)
    assert not can(publish, Action.ACCOUNT, AccountRef(1))


def test_a_limited_key_is_anonymous_outside_its_package() -> None:
    key = Principal(1, "ann", "a@x", scope="publish", package=("ann", "gdp"), via="api-key")
    assert can(key, Action.PACKAGE_PUSH, pkg("private", Role.OWNER))
    other = PackageRef("ann", "other", "private", Role.OWNER)
    with pytest.raises(PackageNotFound):
        require(key, Action.PACKAGE_READ, other)
    assert can(key, Action.PACKAGE_READ, PackageRef("ann", "other", "published", Role.OWNER))
    with pytest.raises(Forbidden) as caught:
        require(key, Action.PACKAGE_PUSH, PackageRef("ann", "other", "published", Role.OWNER))
    assert "limited to the package ann/gdp" in caught.value.message
    assert not can(key, Action.ORG_CREATE, SITE)


def test_a_publisher_limit_covers_its_packages_only() -> None:
    key = Principal(1, "ann", "a@x", scope="publish", publisher="ann", via="api-key")
    assert can(key, Action.PACKAGE_PUSH, pkg(None, Role.OWNER))
    assert not can(key, Action.PACKAGE_PUSH, PackageRef("org", "x", None, Role.OWNER))


def test_site_admin_acts_as_owner_everywhere_within_scope() -> None:
    assert can(ADMIN, Action.PACKAGE_MANAGE, pkg("private"))
    assert can(ADMIN, Action.PUBLISHER_MANAGE, PublisherRef("org"))
    assert can(ADMIN, Action.SITE_ADMIN, SITE)
    reader = Principal(3, "root", "r@x", is_admin=True, scope="read", via="api-key")
    assert can(reader, Action.PACKAGE_READ, pkg("private"))
    assert not can(reader, Action.SITE_ADMIN, SITE)
    with pytest.raises(Forbidden):
        require(BOB, Action.SITE_ADMIN, SITE)


def test_uploads_and_accounts_belong_to_their_user() -> None:
    assert can(ANN, Action.UPLOAD_OWN, UploadRef(1))
    assert not can(BOB, Action.UPLOAD_OWN, UploadRef(1))
    assert can(ANN, Action.ACCOUNT, AccountRef(1))
    assert not can(BOB, Action.ACCOUNT, AccountRef(1))


@pytest.mark.parametrize(
    ("who", "role", "findability", "expected"),
    [
        (None, None, "published", True),
        (None, None, "unlisted", False),
        (BOB, None, "unlisted", False),
        (BOB, Role.VIEWER, "unlisted", True),
        (BOB, Role.VIEWER, "private", True),
        (ADMIN, None, "private", True),
    ],
)
def test_lists_show_published_packages_and_those_one_holds_a_role_on(
    who: Principal | None, role: Role | None, findability: str, expected: bool
) -> None:
    assert listed(who, pkg(findability, role)) is expected
