"""UploadSigner: presigned POST forms and PUT URLs bind key, size, checksums, type and expiry."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from dphub.bitstore.signing import (
    EXPIRES_PARAM,
    POLICY_FIELD,
    SHA256_FIELD,
    SIGNATURE_FIELD,
    SIGNATURE_PARAM,
    SIZE_PARAM,
    UploadGrant,
    UploadSigner,
    hex_to_b64,
    md5_b64_to_hex,
)
from dphub.errors import InvalidUpload, PolicyExpired, SignatureMismatch, SizeMismatch

SECRET = "k" * 48
OTHER_SECRET = "z" * 48
BODY = b"id,name\n1,alpha\n2,beta\n"
UPLOAD_URL = "http://127.0.0.1:8000/api/bitstore/upload"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@pytest.fixture
def signer() -> UploadSigner:
    return UploadSigner(SECRET)


@pytest.fixture
def grant() -> UploadGrant:
    return UploadGrant(
        key="sessions/abc123/data/table.csv",
        size=len(BODY),
        content_type="text/csv",
        md5_b64=_b64(hashlib.md5(BODY, usedforsecurity=False).digest()),
        sha256_b64=_b64(hashlib.sha256(BODY).digest()),
    )


@pytest.fixture
def expires_at() -> int:
    return int(time.time()) + 600


@pytest.fixture
def form(signer: UploadSigner, grant: UploadGrant, expires_at: int) -> dict[str, str]:
    return signer.post_form(grant, expires_at=expires_at)


# presigned POST


def test_post_form_round_trips_to_the_same_grant(
    signer: UploadSigner, grant: UploadGrant, form: dict[str, str]
) -> None:
    assert signer.check_post_form(form) == grant


def test_post_form_carries_the_fields_the_client_must_send(
    grant: UploadGrant, form: dict[str, str]
) -> None:
    assert form["key"] == grant.key
    assert form["Content-Type"] == "text/csv"
    assert form["Content-MD5"] == grant.md5_b64
    assert form[SHA256_FIELD] == grant.sha256_b64
    assert set(form) == {
        "key",
        "Content-Type",
        "Content-MD5",
        SHA256_FIELD,
        POLICY_FIELD,
        SIGNATURE_FIELD,
    }


def test_grant_exposes_hex_checksums(grant: UploadGrant) -> None:
    assert grant.md5_hex == hashlib.md5(BODY, usedforsecurity=False).hexdigest()
    assert grant.sha256_hex == hashlib.sha256(BODY).hexdigest()


def test_post_form_without_optional_checksums_round_trips(
    signer: UploadSigner, expires_at: int
) -> None:
    bare = UploadGrant(key="sessions/x/readme.md", size=0, content_type="text/markdown")
    form = signer.post_form(bare, expires_at=expires_at)
    assert "Content-MD5" not in form
    assert SHA256_FIELD not in form
    checked = signer.check_post_form(form)
    assert checked == bare
    assert checked.md5_hex is None
    assert checked.sha256_hex is None


def test_success_action_status_and_file_fields_are_free(
    signer: UploadSigner, grant: UploadGrant, form: dict[str, str]
) -> None:
    assert signer.check_post_form({**form, "success_action_status": "204", "file": "x"}) == grant


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", "sessions/abc123/data/other.csv"),
        ("Content-MD5", _b64(hashlib.md5(b"other bytes", usedforsecurity=False).digest())),
        ("Content-Type", "application/octet-stream"),
        (SHA256_FIELD, _b64(hashlib.sha256(b"other bytes").digest())),
    ],
)
def test_changing_a_bound_field_is_refused(
    signer: UploadSigner, form: dict[str, str], field: str, value: str
) -> None:
    with pytest.raises(SignatureMismatch) as caught:
        signer.check_post_form({**form, field: value})
    assert caught.value.details == {"field": field}
    assert caught.value.status == 403
    assert caught.value.code == "signature-mismatch"


@pytest.mark.parametrize("field", ["key", "Content-MD5", "Content-Type", SHA256_FIELD])
def test_dropping_a_bound_field_is_refused(
    signer: UploadSigner, form: dict[str, str], field: str
) -> None:
    tampered = {k: v for k, v in form.items() if k != field}
    with pytest.raises(SignatureMismatch):
        signer.check_post_form(tampered)


def test_changing_the_policy_bytes_is_refused(signer: UploadSigner, form: dict[str, str]) -> None:
    policy = base64.b64decode(form[POLICY_FIELD])
    # Widen the size range: exactly what an attacker would want to do.
    larger = policy.replace(f"{len(BODY)}]".encode(), b"999999999]")
    assert larger != policy
    with pytest.raises(SignatureMismatch):
        signer.check_post_form({**form, POLICY_FIELD: base64.b64encode(larger).decode()})


def test_a_policy_that_is_not_the_signed_one_is_refused_even_if_equivalent(
    signer: UploadSigner, form: dict[str, str]
) -> None:
    padded = form[POLICY_FIELD] + "\n"
    with pytest.raises(SignatureMismatch):
        signer.check_post_form({**form, POLICY_FIELD: padded})


def test_changing_the_signature_is_refused(signer: UploadSigner, form: dict[str, str]) -> None:
    signature = form[SIGNATURE_FIELD]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    with pytest.raises(SignatureMismatch):
        signer.check_post_form({**form, SIGNATURE_FIELD: flipped})


def test_an_extra_unsigned_field_is_refused(signer: UploadSigner, form: dict[str, str]) -> None:
    with pytest.raises(SignatureMismatch, match="acl"):
        signer.check_post_form({**form, "acl": "public-read"})


@pytest.mark.parametrize("missing", [POLICY_FIELD, SIGNATURE_FIELD])
def test_a_form_without_policy_or_signature_is_invalid(
    signer: UploadSigner, form: dict[str, str], missing: str
) -> None:
    partial = {k: v for k, v in form.items() if k != missing}
    with pytest.raises(InvalidUpload) as caught:
        signer.check_post_form(partial)
    assert caught.value.code == "invalid-upload"
    assert caught.value.status == 400


def test_an_expired_form_is_refused(
    signer: UploadSigner, grant: UploadGrant, expires_at: int
) -> None:
    form = signer.post_form(grant, expires_at=expires_at)
    assert signer.check_post_form(form, now=expires_at) == grant
    with pytest.raises(PolicyExpired) as caught:
        signer.check_post_form(form, now=expires_at + 1)
    assert caught.value.code == "policy-expired"
    assert caught.value.status == 403


def test_a_form_signed_with_another_secret_is_refused(
    grant: UploadGrant, expires_at: int, signer: UploadSigner
) -> None:
    foreign = UploadSigner(OTHER_SECRET).post_form(grant, expires_at=expires_at)
    with pytest.raises(SignatureMismatch):
        signer.check_post_form(foreign)


# presigned PUT


def _split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    prefix = urlsplit(UPLOAD_URL).path + "/"
    assert parts.path.startswith(prefix)
    return unquote(parts.path[len(prefix) :]), dict(parse_qsl(parts.query))


@pytest.fixture
def put(signer: UploadSigner, grant: UploadGrant, expires_at: int) -> tuple[str, dict[str, str]]:
    return signer.put_url(grant, upload_url=UPLOAD_URL, expires_at=expires_at)


def test_put_url_names_key_size_and_expiry(
    grant: UploadGrant, expires_at: int, put: tuple[str, dict[str, str]]
) -> None:
    url, headers = put
    key, query = _split(url)
    assert key == grant.key
    assert query[SIZE_PARAM] == str(len(BODY))
    assert query[EXPIRES_PARAM] == str(expires_at)
    assert len(query[SIGNATURE_PARAM]) == 64
    assert headers == {"Content-Type": "text/csv", SHA256_FIELD: grant.sha256_b64}


def test_put_url_needs_a_sha256(signer: UploadSigner, expires_at: int) -> None:
    no_sha = UploadGrant(key="k", size=1, content_type="text/plain", md5_b64="AAAA")
    with pytest.raises(ValueError, match="SHA-256"):
        signer.put_url(no_sha, upload_url=UPLOAD_URL, expires_at=expires_at)


def test_check_put_accepts_the_exact_url_and_headers(
    signer: UploadSigner, grant: UploadGrant, put: tuple[str, dict[str, str]]
) -> None:
    url, headers = put
    key, query = _split(url)
    # Headers arrive case-insensitively, as a web framework hands them over.
    checked = signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=len(BODY))
    assert checked == UploadGrant(
        key=grant.key, size=grant.size, content_type="text/csv", sha256_b64=grant.sha256_b64
    )


def test_check_put_without_content_length_still_checks_the_signature(
    signer: UploadSigner, grant: UploadGrant, put: tuple[str, dict[str, str]]
) -> None:
    url, headers = put
    key, query = _split(url)
    checked = signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=None)
    assert checked.size == grant.size


@pytest.mark.parametrize("size", [len(BODY) - 1, len(BODY) + 1, 0])
def test_check_put_refuses_a_wrong_content_length(
    signer: UploadSigner, put: tuple[str, dict[str, str]], size: int
) -> None:
    url, headers = put
    key, query = _split(url)
    with pytest.raises(SizeMismatch) as caught:
        signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=size)
    assert caught.value.details == {"expected": len(BODY), "received": size}


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (SHA256_FIELD, _b64(hashlib.sha256(b"other bytes").digest())),
        ("Content-Type", "text/plain"),
    ],
)
def test_check_put_refuses_altered_headers(
    signer: UploadSigner, put: tuple[str, dict[str, str]], header: str, value: str
) -> None:
    url, headers = put
    key, query = _split(url)
    altered = httpx.Headers({**headers, header: value})
    with pytest.raises(SignatureMismatch):
        signer.check_put(key=key, query=query, headers=altered, size=len(BODY))


@pytest.mark.parametrize("header", [SHA256_FIELD, "Content-Type"])
def test_check_put_refuses_missing_headers(
    signer: UploadSigner, put: tuple[str, dict[str, str]], header: str
) -> None:
    url, headers = put
    key, query = _split(url)
    fewer = httpx.Headers({k: v for k, v in headers.items() if k != header})
    with pytest.raises(SignatureMismatch):
        signer.check_put(key=key, query=query, headers=fewer, size=len(BODY))


def test_check_put_refuses_another_key(
    signer: UploadSigner, put: tuple[str, dict[str, str]]
) -> None:
    url, headers = put
    _, query = _split(url)
    with pytest.raises(SignatureMismatch):
        signer.check_put(
            key="sessions/abc123/data/other.csv",
            query=query,
            headers=httpx.Headers(headers),
            size=len(BODY),
        )


@pytest.mark.parametrize(
    ("param", "delta"), [(EXPIRES_PARAM, 3600), (EXPIRES_PARAM, -1), (SIZE_PARAM, 1)]
)
def test_check_put_refuses_an_altered_expiry_or_size(
    signer: UploadSigner, put: tuple[str, dict[str, str]], param: str, delta: int
) -> None:
    url, headers = put
    key, query = _split(url)
    query[param] = str(int(query[param]) + delta)
    with pytest.raises(SignatureMismatch):
        signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=None)


def test_check_put_refuses_an_expired_url(
    signer: UploadSigner, grant: UploadGrant, put: tuple[str, dict[str, str]], expires_at: int
) -> None:
    url, headers = put
    key, query = _split(url)
    hdrs = httpx.Headers(headers)
    at_expiry = signer.check_put(key=key, query=query, headers=hdrs, size=None, now=expires_at)
    assert at_expiry.key == grant.key
    with pytest.raises(PolicyExpired):
        signer.check_put(key=key, query=query, headers=hdrs, size=None, now=expires_at + 1)


def test_check_put_refuses_a_url_signed_with_another_secret(
    signer: UploadSigner, grant: UploadGrant, expires_at: int
) -> None:
    url, headers = UploadSigner(OTHER_SECRET).put_url(
        grant, upload_url=UPLOAD_URL, expires_at=expires_at
    )
    key, query = _split(url)
    with pytest.raises(SignatureMismatch):
        signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=len(BODY))


@pytest.mark.parametrize("missing", [EXPIRES_PARAM, SIZE_PARAM, SIGNATURE_PARAM])
def test_check_put_refuses_missing_query_params(
    signer: UploadSigner, put: tuple[str, dict[str, str]], missing: str
) -> None:
    url, headers = put
    key, query = _split(url)
    del query[missing]
    with pytest.raises(SignatureMismatch):
        signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=len(BODY))


@pytest.mark.parametrize("param", [EXPIRES_PARAM, SIZE_PARAM])
def test_check_put_refuses_non_numeric_params(
    signer: UploadSigner, put: tuple[str, dict[str, str]], param: str
) -> None:
    url, headers = put
    key, query = _split(url)
    query[param] = "soon"
    with pytest.raises(SignatureMismatch):
        signer.check_put(key=key, query=query, headers=httpx.Headers(headers), size=len(BODY))


def test_upload_signatures_differ_between_secrets_and_grants(
    grant: UploadGrant, expires_at: int
) -> None:
    ours = UploadSigner(SECRET).post_form(grant, expires_at=expires_at)[SIGNATURE_FIELD]
    theirs = UploadSigner(OTHER_SECRET).post_form(grant, expires_at=expires_at)[SIGNATURE_FIELD]
    later = UploadSigner(SECRET).post_form(grant, expires_at=expires_at + 1)[SIGNATURE_FIELD]
    assert len({ours, theirs, later}) == 3


# checksum helpers


def test_hex_and_base64_checksums_convert_both_ways() -> None:
    digest = hashlib.md5(BODY, usedforsecurity=False).hexdigest()
    assert md5_b64_to_hex(hex_to_b64(digest)) == digest


@pytest.mark.parametrize("value", ["not base64!", _b64(b"too short"), ""])
def test_md5_b64_to_hex_rejects_what_is_not_an_md5(value: str) -> None:
    assert md5_b64_to_hex(value) is None


def test_a_grant_with_bad_base64_checksum_reports_invalid_upload() -> None:
    bad = UploadGrant(key="k", size=1, content_type="text/plain", md5_b64="@@@")
    with pytest.raises(InvalidUpload):
        _ = bad.md5_hex


def test_put_headers_are_accepted_as_a_plain_dict_in_any_case(
    signer: UploadSigner, grant: UploadGrant, expires_at: int
) -> None:
    url, headers = signer.put_url(grant, upload_url="http://hub/up", expires_at=expires_at)
    query = dict(parse_qsl(urlsplit(url).query))
    for given in (dict(headers), {name.upper(): value for name, value in headers.items()}):
        checked = signer.check_put(key=grant.key, query=query, headers=given, size=grant.size)
        assert (checked.key, checked.size, checked.content_type, checked.sha256_b64) == (
            grant.key,
            grant.size,
            grant.content_type,
            grant.sha256_b64,
        )
