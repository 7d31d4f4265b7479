"""Package tags on SQLite and PostgreSQL: names, creation by editors, immutability, forced moves by
owners only, and every revision lookup accepting a tag."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.principal import Principal
from dphub.errors import (
    Forbidden,
    InvalidTag,
    NotProcessed,
    PackageNotFound,
    RevisionNotFound,
    TagExists,
    Unauthenticated,
)
from dphub.metastore.db import transaction
from dphub.metastore.models import (
    AuditEvent,
    Collaborator,
    Event,
    Package,
    PackageTag,
    Revision,
    User,
)
from dphub.metastore.packages import find_package, get_revision, pins_revision
from dphub.metastore.tags import create_tag, list_tags, tag_revision
from dphub.names import tag_problem


@dataclass
class World:
    owner: Principal
    editor: Principal
    viewer: Principal
    stranger: Principal


def _user(db: Session, name: str) -> Principal:
    user = User(username=name, email=f"{name}@example.org")
    db.add(user)
    db.flush()
    return Principal(user.id, user.username, user.email)


def _package(db: Session, name: str, findability: str, states: list[str]) -> Package:
    succeeded = [n for n, s in enumerate(states, 1) if s == "SUCCEEDED"]
    package = Package(
        owner="ann",
        name=name,
        findability=findability,
        latest_revision=len(states),
        successful_revision=max(succeeded) if succeeded else None,
    )
    db.add(package)
    db.flush()
    for number, state in enumerate(states, 1):
        db.add(
            Revision(
                package_id=package.id,
                number=number,
                state=state,
                descriptor={"name": name, "resources": []},
            )
        )
    db.flush()
    return package


@pytest.fixture
def world(db: sessionmaker[Session]) -> World:
    with transaction(db) as s:
        owner, editor, viewer, stranger = (_user(s, n) for n in ("ann", "ed", "vic", "sam"))
        rain = _package(s, "rain", "published", ["SUCCEEDED", "SUCCEEDED", "FAILED"])
        secret = _package(s, "secret", "private", ["SUCCEEDED"])
        _package(s, "other", "published", ["SUCCEEDED", "SUCCEEDED"])
        for package in (rain, secret):
            s.add(Collaborator(package_id=package.id, user_id=editor.user_id, role="editor"))
            s.add(Collaborator(package_id=package.id, user_id=viewer.user_id, role="viewer"))
    return World(owner, editor, viewer, stranger)


def _revision_of(db: sessionmaker[Session], name: str, ref: str | int | None) -> int:
    with db() as s:
        package = find_package(s, "ann", name)
        assert package is not None
        return get_revision(s, package, ref).number


@pytest.mark.parametrize(
    "tag", ["v1.0", "V2", "1.0", "2024-01-31", "v1.0+build.5", "release_candidate", "x" * 100]
)
def test_valid_tags(tag: str) -> None:
    assert tag_problem(tag) is None


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "1",
        "0042",
        "latest",
        "Successful",
        "LATEST",
        ".hidden",
        "-v1",
        "v 1",
        "v/1",
        "v1%2F",
        "x" * 101,
        "é1",
        "v1\n",
        "v1\x00",
        None,
        7,
    ],
)
def test_invalid_tags(tag: object) -> None:
    assert tag_problem(tag) is not None


def test_only_numbers_pin_a_revision() -> None:
    assert pins_revision(3)
    assert pins_revision("3")
    for ref in (None, "latest", "successful", "v1.0", "1.0", "٣"):
        assert not pins_revision(ref)


def test_a_tag_defaults_to_the_latest_successful_revision(
    db: sessionmaker[Session], world: World
) -> None:
    tagged = create_tag(db, world.editor, "ann", "rain", tag="v1.0")
    assert tagged.to_json() == {"package": "ann/rain", "tag": "v1.0", "revision": 2}
    assert tagged.created
    assert _revision_of(db, "rain", "v1.0") == 2
    with db() as s:
        event = s.scalars(select(Event).where(Event.kind == "tagged")).one()
        assert (event.owner, event.name, event.revision, event.actor) == ("ann", "rain", 2, "ed")
        assert event.detail == {"tag": "v1.0"}
        tag = s.scalars(select(PackageTag)).one()
        assert tag.created_by == world.editor.user_id


def test_tags_belong_to_one_package(db: sessionmaker[Session], world: World) -> None:
    create_tag(db, world.owner, "ann", "rain", tag="v1.0", revision=1)
    assert _revision_of(db, "rain", "v1.0") == 1
    with pytest.raises(RevisionNotFound, match=r"no revision or tag 'v1\.0'"):
        _revision_of(db, "other", "v1.0")
    create_tag(db, world.owner, "ann", "other", tag="v1.0", revision=2)
    assert (_revision_of(db, "rain", "v1.0"), _revision_of(db, "other", "v1.0")) == (1, 2)


def test_tags_are_case_sensitive(db: sessionmaker[Session], world: World) -> None:
    create_tag(db, world.owner, "ann", "rain", tag="v1", revision=1)
    create_tag(db, world.owner, "ann", "rain", tag="V1", revision=2)
    assert (_revision_of(db, "rain", "v1"), _revision_of(db, "rain", "V1")) == (1, 2)


@pytest.mark.parametrize(
    "ref", ["nope", "v1.0 ", "v1\x00", "x" * 5000, "9" * 5000, "../1", "Latest", "-1", "0"]
)
def test_unknown_refs_are_not_found(db: sessionmaker[Session], world: World, ref: str) -> None:
    with pytest.raises(RevisionNotFound):
        _revision_of(db, "rain", ref)


def test_tagging_the_same_revision_again_changes_nothing(
    db: sessionmaker[Session], world: World
) -> None:
    create_tag(db, world.owner, "ann", "rain", tag="v1", revision=1)
    again = create_tag(db, world.editor, "ann", "rain", tag="v1", revision="1", force=True)
    assert not again.created
    assert again.revision == 1
    with db() as s:
        assert len(s.scalars(select(Event).where(Event.kind == "tagged")).all()) == 1
        assert s.scalars(select(PackageTag)).one().created_by == world.owner.user_id


def test_tags_are_immutable(db: sessionmaker[Session], world: World) -> None:
    create_tag(db, world.owner, "ann", "rain", tag="v1", revision=1)
    with pytest.raises(TagExists) as refused:
        create_tag(db, world.owner, "ann", "rain", tag="v1", revision=2)
    assert refused.value.details == {"tag": "v1", "revision": 1}
    assert "already names revision 1" in refused.value.message
    assert _revision_of(db, "rain", "v1") == 1


def test_an_owner_moves_a_tag_with_force(db: sessionmaker[Session], world: World) -> None:
    create_tag(db, world.editor, "ann", "rain", tag="stable", revision=1)
    moved = create_tag(db, world.owner, "ann", "rain", tag="stable", revision=2, force=True)
    assert moved.to_json() == {
        "package": "ann/rain",
        "tag": "stable",
        "revision": 2,
        "moved_from": 1,
    }
    assert _revision_of(db, "rain", "stable") == 2
    with db() as s:
        audit = s.scalars(select(AuditEvent).where(AuditEvent.event == "package.tag-moved")).one()
        assert (audit.actor, audit.target) == ("ann", "ann/rain")
        assert audit.detail == {"tag": "stable", "before": 1, "after": 2}
        events = s.scalars(select(Event).where(Event.kind == "tagged").order_by(Event.id)).all()
        assert [(e.revision, e.detail) for e in events] == [
            (1, {"tag": "stable"}),
            (2, {"tag": "stable", "moved_from": 1}),
        ]


def test_an_editor_may_not_move_a_tag(db: sessionmaker[Session], world: World) -> None:
    create_tag(db, world.editor, "ann", "rain", tag="stable", revision=1)
    with pytest.raises(Forbidden, match="owner role"):
        create_tag(db, world.editor, "ann", "rain", tag="stable", revision=2, force=True)
    assert _revision_of(db, "rain", "stable") == 1
    with db() as s:
        assert s.scalars(select(AuditEvent)).all() == []


def test_who_may_tag(db: sessionmaker[Session], world: World) -> None:
    with pytest.raises(Forbidden, match="editor role"):
        create_tag(db, world.viewer, "ann", "rain", tag="v1")
    with pytest.raises(Forbidden):
        create_tag(db, world.stranger, "ann", "rain", tag="v1")
    with pytest.raises(PackageNotFound):
        create_tag(db, world.stranger, "ann", "secret", tag="v1")
    with pytest.raises(Unauthenticated):
        create_tag(db, None, "ann", "rain", tag="v1")
    with pytest.raises(PackageNotFound):
        create_tag(db, world.owner, "ann", "nothing-here", tag="v1")
    read_only = Principal(world.owner.user_id, "ann", "ann@example.org", scope="read")
    with pytest.raises(Forbidden, match="scope"):
        create_tag(db, read_only, "ann", "rain", tag="v1")
    assert create_tag(db, world.editor, "ann", "secret", tag="v1").revision == 1


def test_bad_tags_and_revisions_are_refused(db: sessionmaker[Session], world: World) -> None:
    with pytest.raises(InvalidTag, match="revision number"):
        create_tag(db, world.owner, "ann", "rain", tag="12")
    with pytest.raises(InvalidTag, match="already names a revision"):
        create_tag(db, world.owner, "ann", "rain", tag="latest")
    with pytest.raises(NotProcessed, match="failed processing"):
        create_tag(db, world.owner, "ann", "rain", tag="broken", revision=3)
    with pytest.raises(RevisionNotFound):
        create_tag(db, world.owner, "ann", "rain", tag="future", revision=4)
    with db() as s:
        assert s.scalars(select(PackageTag)).all() == []


def test_a_tag_may_name_the_revision_another_tag_names(
    db: sessionmaker[Session], world: World
) -> None:
    create_tag(db, world.owner, "ann", "rain", tag="v1.0", revision=1)
    assert create_tag(db, world.owner, "ann", "rain", tag="lts", revision="v1.0").revision == 1


def test_listing_tags(db: sessionmaker[Session], world: World) -> None:
    create_tag(db, world.owner, "ann", "rain", tag="b", revision=1)
    create_tag(db, world.editor, "ann", "rain", tag="a", revision=1)
    create_tag(db, world.owner, "ann", "rain", tag="c", revision=2)
    create_tag(db, world.owner, "ann", "other", tag="z", revision=1)
    with db() as s:
        listed = list_tags(s, world.stranger, "ann", "rain")
        assert [(t["tag"], t["revision"], t["created_by"]) for t in listed] == [
            ("c", 2, "ann"),
            ("a", 1, "ed"),
            ("b", 1, "ann"),
        ]
        assert all(isinstance(t["created_at"], str) for t in listed)
        with pytest.raises(PackageNotFound):
            list_tags(s, world.stranger, "ann", "secret")
        with pytest.raises(PackageNotFound):
            list_tags(s, None, "ann", "secret")
        assert list_tags(s, world.viewer, "ann", "secret") == []


def test_concurrent_taggings_of_one_name_agree(db: sessionmaker[Session], world: World) -> None:
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def tag() -> None:
        barrier.wait()
        try:
            outcomes.append(create_tag(db, world.owner, "ann", "rain", tag="race", revision=2))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=tag) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    created = [getattr(o, "created", None) for o in outcomes]
    assert sorted(created, key=str) == [False, False, False, True], outcomes
    with db() as s:
        assert len(s.scalars(select(PackageTag)).all()) == 1
        assert len(s.scalars(select(Event).where(Event.kind == "tagged")).all()) == 1


def test_tag_revision_joins_the_callers_transaction(
    db: sessionmaker[Session], world: World
) -> None:
    def tag_then_fail() -> None:
        with transaction(db) as s:
            tag_revision(s, world.owner, "ann", "rain", tag="v9")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        tag_then_fail()
    with db() as s:
        assert s.scalars(select(PackageTag)).all() == []
