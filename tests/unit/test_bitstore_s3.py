"""Uploads straight to an S3 store (SeaweedFS on loopback) with the targets the S3 bitstore signs,
and what finalize's confirm then finds: the store refuses bad bytes, confirm never trusts them."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dphub.bitstore.s3 import S3BitStore, parse_storage_url
from dphub.bitstore.signing import UploadGrant
from dphub.errors import ConfigurationError, UploadMismatch

DATA = b"city,population\nParis,2102650\nLyon,522250\n"


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def grant(
    data: bytes = DATA, *, sha256: bool = True, staged: bool = False, **kw: Any
) -> UploadGrant:
    return UploadGrant(
        key=kw.get("key", "session1/data/cities.csv"),
        size=kw.get("size", len(data)),
        content_type="text/csv",
        md5_b64=b64(hashlib.md5(data, usedforsecurity=False).digest()),
        sha256_b64=b64(hashlib.sha256(data).digest()) if sha256 else None,
        staged=staged,
    )


@pytest.fixture
def store(s3_server: Any, s3_bucket: str) -> S3BitStore:
    return S3BitStore(client=s3_server.client(), bucket=s3_bucket, prefix="hub/")


def post(target: Any, data: bytes) -> httpx.Response:
    return httpx.post(target.upload_url, data=target.upload_query, files={"file": ("f", data)})


def staging(store: S3BitStore) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="hub/staging/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_storage_url_names_bucket_and_prefix() -> None:
    assert parse_storage_url("s3://bucket") == ("bucket", "")
    assert parse_storage_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    with pytest.raises(ConfigurationError):
        parse_storage_url("s3:///prefix")


def test_put_to_the_content_key_and_confirm(store: S3BitStore) -> None:
    g = grant()
    target = store.upload_target(g, expires_at=int(time.time()) + 60)
    assert target.put_url is not None
    assert target.upload_query["key"] == store.content_key(hashlib.sha256(DATA).hexdigest())
    assert store.confirm(g) is None  # nothing uploaded yet
    answer = httpx.put(target.put_url, content=DATA, headers=target.put_headers)
    assert answer.status_code == 200, answer.text
    blob = store.confirm(g)
    assert blob is not None
    assert (blob.sha256, blob.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert b"".join(store.read(blob.sha256)) == DATA


def test_the_store_refuses_wrong_bytes_and_confirm_finds_nothing(store: S3BitStore) -> None:
    g = grant()
    target = store.upload_target(g, expires_at=int(time.time()) + 60)
    forged = DATA.replace(b"Paris", b"Rome!")
    assert target.put_url is not None
    assert httpx.put(target.put_url, content=forged, headers=target.put_headers).status_code == 400
    assert post(target, forged).status_code == 400
    assert post(target, DATA + b"x").status_code == 400
    assert store.confirm(g) is None


def test_a_staged_form_upload_is_filed_under_its_hash(store: S3BitStore) -> None:
    g = grant(sha256=False, staged=True)
    target = store.upload_target(g, expires_at=int(time.time()) + 60)
    assert target.put_url is None
    assert target.upload_query["key"] == "hub/staging/session1/data/cities.csv"
    assert post(target, DATA).status_code == 204
    blob = store.confirm(g)
    assert blob is not None
    assert blob.sha256 == hashlib.sha256(DATA).hexdigest()
    assert store.size(blob.sha256) == len(DATA)
    assert staging(store) == []


def test_staged_bytes_that_break_the_md5_are_refused_at_confirm(store: S3BitStore) -> None:
    g = grant(sha256=False, staged=True)
    target = store.upload_target(g, expires_at=int(time.time()) + 60)
    forged = DATA.replace(b"Paris", b"Rome!")
    assert post(target, forged).status_code == 204  # the store does not check MD5 in forms
    with pytest.raises(UploadMismatch, match="MD5"):
        store.confirm(g)
    assert store.size(hashlib.sha256(forged).hexdigest()) is None


def test_a_staged_upload_with_a_sha256_checks_it(store: S3BitStore) -> None:
    g = grant(staged=True)
    target = store.upload_target(g, expires_at=int(time.time()) + 60)
    assert target.upload_query["key"].startswith("hub/staging/")
    assert target.put_url is not None
    assert httpx.put(target.put_url, content=DATA, headers=target.put_headers).status_code == 200
    blob = store.confirm(g)
    assert blob is not None
    assert b"".join(store.read(blob.sha256)) == DATA


def test_session_key_is_found_in_the_finalize_url(store: S3BitStore) -> None:
    g = grant(staged=True)
    target = store.upload_target(g, expires_at=int(time.time()) + 60)
    url = target.upload_url + "/" + target.upload_query["key"]
    assert store.session_key(urlsplit(url).path) == "session1/data/cities.csv"
    assert store.session_key("/elsewhere/session1/x") is None


def test_download_urls_serve_ranges_and_expire(store: S3BitStore) -> None:
    writer = store.writer(expected_size=len(DATA))
    writer.write(DATA)
    blob = writer.commit()
    url = store.download_url(blob.sha256, filename="cities.csv", media_type="text/csv", ttl=60)
    assert url is not None
    assert httpx.get(url).content == DATA
    part = httpx.get(url, headers={"Range": "bytes=0-3"})
    assert (part.status_code, part.content) == (206, DATA[:4])
    short = store.download_url(blob.sha256, filename="c.csv", media_type="text/csv", ttl=1)
    assert short is not None
    time.sleep(2.1)
    assert httpx.get(short).status_code == 403


def test_hub_side_writes_keep_a_whole_object_checksum(store: S3BitStore) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MiB: one object, not parts
    writer = store.writer(expected_size=len(data))
    writer.write(data)
    blob = writer.commit()
    head = store.client.head_object(
        Bucket=store.bucket, Key=store.content_key(blob.sha256), ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == b64(hashlib.sha256(data).digest())
