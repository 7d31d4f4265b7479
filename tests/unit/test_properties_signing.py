"""Properties of the signed upload forms and URLs: what the hub signed verifies and gives back the
same grant; any change to a signed field, the policy, the signature or the URL is refused with the
hub's own error, never another exception."""

from __future__ import annotations

import base64
import hashlib
import string
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from dphub.auth.accounts import create_user
from dphub.auth.principal import Principal
from dphub.auth.tokens import issue_token, read_token
from dphub.bitstore.signing import (
    EXPIRES_PARAM,
    POLICY_FIELD,
    SHA256_FIELD,
    SIGNATURE_FIELD,
    SIGNATURE_PARAM,
    SIZE_PARAM,
    PartSigner,
    UploadGrant,
    UploadSigner,
)
from dphub.errors import (
    DphubError,
    InvalidToken,
    InvalidUpload,
    PolicyExpired,
    SignatureMismatch,
    SizeMismatch,
)
from dphub.metastore.db import make_engine, make_sessionmaker, transaction, upgrade

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=150)
NOW = 1_700_000_000
EXPIRES = NOW + 3600
SIGNER = UploadSigner("a secret key of the hub, long enough")

digests = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
md5s = st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode())
keys = st.text(alphabet=string.ascii_lowercase + string.digits + "/-_.", min_size=1, max_size=80)
content_types = st.sampled_from(["text/csv", "application/json", "application/octet-stream"])
grants = st.builds(
    UploadGrant,
    key=keys,
    size=st.integers(min_value=0, max_value=2**40),
    content_type=content_types,
    md5_b64=st.one_of(st.none(), md5s),
    sha256_b64=st.one_of(st.none(), digests),
)
put_grants = st.builds(
    UploadGrant,
    key=keys,
    size=st.integers(min_value=0, max_value=2**40),
    content_type=content_types,
    sha256_b64=digests,
)
# any text a client may send in a field or query parameter, ASCII or not
field_text = st.text(max_size=100)


REFUSALS = (InvalidUpload, SignatureMismatch, PolicyExpired, SizeMismatch)


def _refused(call: Callable[[], object]) -> DphubError:
    """The hub's refusal of ``call``: one of the upload errors, a 400 or 403 with a sentence."""
    with pytest.raises(DphubError) as refused:
        call()
    assert isinstance(refused.value, REFUSALS)
    assert refused.value.status in (400, 403)
    assert refused.value.message
    return refused.value


@PROPERTY
@given(grants)
def test_a_signed_form_gives_back_its_grant(grant: UploadGrant) -> None:
    form = SIGNER.post_form(grant, expires_at=EXPIRES)
    assert SIGNER.check_post_form(form, now=NOW) == grant
    # with the file and the optional status field, as clients send them
    sent = {**form, "file": "", "success_action_status": "201"}
    assert SIGNER.check_post_form(sent, now=NOW) == grant


@PROPERTY
@given(grants, st.data())
def test_changing_one_character_of_a_signed_form_is_refused(
    grant: UploadGrant, data: st.DataObject
) -> None:
    form = SIGNER.post_form(grant, expires_at=EXPIRES)
    name = data.draw(st.sampled_from(sorted(form)), label="field")
    value = form[name]
    position = data.draw(st.integers(min_value=0, max_value=max(len(value) - 1, 0)))
    replacement = data.draw(st.characters(), label="replacement")
    changed = value[:position] + replacement + value[position + 1 :]
    if changed == value:
        return
    _refused(lambda: SIGNER.check_post_form({**form, name: changed}, now=NOW))


@PROPERTY
@given(grants, st.sampled_from(["key", "Content-Type", "Content-MD5", SHA256_FIELD, "acl"]))
def test_a_field_the_policy_does_not_name_or_fix_is_refused(grant: UploadGrant, name: str) -> None:
    form = SIGNER.post_form(grant, expires_at=EXPIRES)
    altered = {**form, name: form[name] + "x" if name in form else "public-read"}
    exc = _refused(lambda: SIGNER.check_post_form(altered, now=NOW))
    assert isinstance(exc, SignatureMismatch)
    missing = {k: v for k, v in form.items() if k != name}
    if name in form and name not in (POLICY_FIELD, SIGNATURE_FIELD):
        _refused(lambda: SIGNER.check_post_form(missing, now=NOW))


@PROPERTY
@given(grants)
def test_a_form_signed_by_another_hub_or_expired_is_refused(grant: UploadGrant) -> None:
    other = UploadSigner("another hub's secret key, long enough")
    form = other.post_form(grant, expires_at=EXPIRES)
    assert isinstance(_refused(lambda: SIGNER.check_post_form(form, now=NOW)), SignatureMismatch)
    mine = SIGNER.post_form(grant, expires_at=NOW - 1)
    assert isinstance(_refused(lambda: SIGNER.check_post_form(mine, now=NOW)), PolicyExpired)


@PROPERTY
@given(st.dictionaries(st.sampled_from([POLICY_FIELD, SIGNATURE_FIELD, "key", "x"]), field_text))
@example({POLICY_FIELD: "e30=", SIGNATURE_FIELD: "é"})
@example({POLICY_FIELD: "é", SIGNATURE_FIELD: "0" * 64})
def test_a_made_up_form_is_refused_with_the_hubs_error(fields: dict[str, str]) -> None:
    _refused(lambda: SIGNER.check_post_form(fields, now=NOW))


@PROPERTY
@given(put_grants, st.integers(min_value=0, max_value=2**40))
def test_a_signed_put_url_gives_back_its_grant(grant: UploadGrant, other_size: int) -> None:
    url, headers = SIGNER.put_url(
        grant, upload_url="http://hub/api/bitstore/upload", expires_at=EXPIRES
    )
    query = _query(url)
    checked = SIGNER.check_put(
        key=grant.key, query=query, headers=headers, size=grant.size, now=NOW
    )
    assert checked == grant
    assert (
        SIGNER.check_put(key=grant.key, query=query, headers=headers, size=None, now=NOW) == grant
    )
    if other_size != grant.size:
        exc = _refused(
            lambda: SIGNER.check_put(
                key=grant.key, query=query, headers=headers, size=other_size, now=NOW
            )
        )
        assert isinstance(exc, SizeMismatch)
        assert exc.details == {"expected": grant.size, "received": other_size}


def _query(url: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in url.split("?", 1)[1].split("&"))


@PROPERTY
@given(put_grants, st.data())
def test_changing_a_signed_put_is_refused(grant: UploadGrant, data: st.DataObject) -> None:
    url, headers = SIGNER.put_url(grant, upload_url="http://hub/up", expires_at=EXPIRES)
    query, key = _query(url), grant.key
    where = data.draw(st.sampled_from(["key", "Content-Type", SHA256_FIELD, *sorted(query)]))
    replacement = data.draw(field_text, label="replacement")
    if where == "key":
        key = replacement
    elif where in query:
        query = {**query, where: replacement}
    else:
        headers = {**headers, where: replacement}
    # only a change that leaves every signed value as it was passes (X-Dphub-Size=007 is 7)
    signed = SIGNER.put_url(grant, upload_url="", expires_at=EXPIRES)[1]
    same = (
        key == grant.key
        and headers == signed
        and query[SIGNATURE_PARAM] == _query(url)[SIGNATURE_PARAM]
        and _number(query[SIZE_PARAM]) == grant.size
        and _number(query[EXPIRES_PARAM]) == EXPIRES
    )
    check = partial(SIGNER.check_put, key=key, query=query, headers=headers, size=None, now=NOW)
    if same:
        assert check() == grant
    else:
        assert isinstance(_refused(check), SignatureMismatch | PolicyExpired)


def _number(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


@PROPERTY
@given(
    st.text(alphabet=string.hexdigits, min_size=1, max_size=40),
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=0, max_value=2**33),
    st.sampled_from([EXPIRES_PARAM, SIZE_PARAM, SIGNATURE_PARAM]),
    field_text,
)
@example("abc", 1, 5, SIGNATURE_PARAM, "é")
def test_a_part_url_verifies_and_any_change_is_refused(
    upload_id: str, number: int, size: int, changed: str, replacement: str
) -> None:
    parts = PartSigner(SIGNER)
    query = _query(parts.url("http://hub/parts", upload_id, number, size, expires_at=EXPIRES))
    assert parts.check(upload_id, number, query=query, size=size, now=NOW) == size
    _refused(lambda: parts.check(upload_id, number + 1, query=query, size=None, now=NOW))
    _refused(lambda: parts.check(upload_id + "0", number, query=query, size=None, now=NOW))
    tampered = {**query, changed: replacement}
    check = partial(parts.check, upload_id, number, query=tampered, size=None, now=NOW)
    if changed == SIGNATURE_PARAM:
        same = replacement == query[changed]
    else:
        same = _number(replacement) == int(query[changed])
    if same:
        assert check() == size
    else:
        assert isinstance(_refused(check), SignatureMismatch | PolicyExpired)


def test_the_signature_binds_the_exact_bytes_of_the_policy() -> None:
    grant = UploadGrant(
        "k", 3, "text/csv", sha256_b64=base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    )
    form = SIGNER.post_form(grant, expires_at=EXPIRES)
    # the same policy, re-encoded without padding or with whitespace, is another message
    for policy in (form[POLICY_FIELD].rstrip("="), form[POLICY_FIELD] + "\n"):
        if policy != form[POLICY_FIELD]:
            _refused(
                lambda policy=policy: SIGNER.check_post_form(
                    {**form, POLICY_FIELD: policy}, now=NOW
                )
            )


@pytest.fixture(scope="module")
def metastore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite metastore holding the hub's signing key and one user."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('tokens') / 'metastore.db'}")
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def token(metastore: sessionmaker[Session]) -> str:
    with transaction(metastore) as db:
        user = create_user(db, username="ann", email="ann@example.org", password="a long password")
        issued, _ = issue_token(db, Principal(user.id, user.username, user.email), ttl=3600)
    return issued


@PROPERTY
@given(st.data())
def test_changing_one_character_of_a_token_is_refused(
    metastore: sessionmaker[Session], token: str, data: st.DataObject
) -> None:
    with transaction(metastore) as db:
        signed = read_token(db, token, grace=3600)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    replacement = data.draw(st.characters(), label="replacement")
    changed = token[:position] + replacement + token[position + 1 :]
    assume(changed != token)
    with transaction(metastore) as db:
        try:
            claims = read_token(db, changed, grace=3600)
        except DphubError:
            claims = None
    if claims is None:
        with transaction(metastore) as db, pytest.raises(InvalidToken):
            read_token(db, changed, grace=3600)
    else:
        # base64url's last character of a part carries bits no byte uses: a change there decodes
        # to the same bytes, so the same signed claims
        assert claims == signed
        assert position + 1 == len(token) or token[position + 1] == "."
