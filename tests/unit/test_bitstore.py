"""Contract of a bitstore backend, held against every backend: local disk and a real S3 server
(SeaweedFS on loopback).

A new backend joins by adding its name to the ``bitstore`` fixture's params, and a way to list what
is left in its temporary area to ``leftovers``.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from dphub.bitstore.interfaces import BitStore, BlobInfo
from dphub.bitstore.local import LocalBitStore, blob_relpath
from dphub.bitstore.s3 import S3BitStore
from dphub.bitstore.signing import UploadSigner
from dphub.errors import ChecksumMismatch, NotFound, SizeMismatch

DATA = b"year,value\n2020,1.5\n2021,2.25\n2022,3.125\n"
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()


def local_store(root: Path) -> LocalBitStore:
    return LocalBitStore(root, signer=UploadSigner("k" * 40), base_url="http://hub.test")


@pytest.fixture(params=["local", "s3"])
def bitstore(request: pytest.FixtureRequest, tmp_path: Path) -> BitStore:
    if request.param == "local":
        return local_store(tmp_path / "blobs")
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return S3BitStore(client=server.client(), bucket=bucket, prefix="hub/")


def leftovers(store: BitStore) -> list[str]:
    """What a writer left in the backend's temporary area (S3: its staging keys)."""
    if isinstance(store, S3BitStore):
        listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + "staging/")
        return sorted(item["Key"] for item in listed.get("Contents", []))
    assert isinstance(store, LocalBitStore)
    return sorted(p.name for p in (store.root / "tmp").iterdir())


def store_bytes(store: BitStore, data: bytes, *, chunk: int = 7) -> BlobInfo:
    writer = store.writer(expected_size=len(data), md5=True)
    for i in range(0, len(data), chunk):
        writer.write(data[i : i + chunk])
    return writer.commit()


def read_all(store: BitStore, sha256: str, *, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(sha256, start=start, end=end))


def test_write_and_commit_report_the_hashes_and_size(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA), md5=True)
    writer.write(DATA[:10])
    assert writer.size == 10
    writer.write(DATA[10:])
    assert writer.size == len(DATA)
    info = writer.commit(md5=MD5, sha256=SHA)
    assert info == BlobInfo(sha256=SHA, md5=MD5, size=len(DATA))
    assert bitstore.size(SHA) == len(DATA)
    assert read_all(bitstore, SHA) == DATA
    assert leftovers(bitstore) == []


def test_commit_without_expected_checksums_still_hashes(bitstore: BitStore) -> None:
    info = store_bytes(bitstore, DATA)
    assert (info.sha256, info.md5, info.size) == (SHA, MD5, len(DATA))


def test_an_empty_blob(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=0, md5=True)
    info = writer.commit(md5=EMPTY_MD5, sha256=EMPTY_SHA)
    assert info == BlobInfo(sha256=EMPTY_SHA, md5=EMPTY_MD5, size=0)
    assert bitstore.size(EMPTY_SHA) == 0
    assert read_all(bitstore, EMPTY_SHA) == b""


def test_an_empty_write_changes_nothing(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA), md5=True)
    writer.write(b"")
    writer.write(DATA)
    writer.write(b"")
    assert writer.commit(sha256=SHA).size == len(DATA)


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 4), (5, 15), (11, None), (len(DATA) - 1, None), (3, 3), (0, len(DATA))],
)
def test_read_a_range(bitstore: BitStore, start: int, end: int | None) -> None:
    store_bytes(bitstore, DATA)
    assert read_all(bitstore, SHA, start=start, end=end) == DATA[start:end]


def test_read_past_the_end_gives_what_there_is(bitstore: BitStore) -> None:
    store_bytes(bitstore, DATA)
    assert read_all(bitstore, SHA, start=len(DATA) - 3, end=len(DATA) + 100) == DATA[-3:]
    assert read_all(bitstore, SHA, start=len(DATA) + 10) == b""


def test_read_a_large_blob_in_chunks(bitstore: BitStore) -> None:
    # Larger than one read chunk, and not a multiple of it.
    data = bytes(range(256)) * 5000 + b"tail"
    info = store_bytes(bitstore, data, chunk=65536)
    chunks = list(bitstore.read(info.sha256))
    assert len(chunks) > 1
    assert b"".join(chunks) == data
    assert (
        read_all(bitstore, info.sha256, start=1_000_000, end=1_000_010) == data[1_000_000:1_000_010]
    )


def test_read_of_an_unknown_blob_is_not_found(bitstore: BitStore) -> None:
    with pytest.raises(NotFound):
        read_all(bitstore, SHA)


def test_writing_more_than_expected_fails_at_once_and_leaves_nothing(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA) - 1, md5=True)
    writer.write(DATA[:5])
    with pytest.raises(SizeMismatch) as caught:
        writer.write(DATA[5:])
    assert caught.value.details["expected"] == len(DATA) - 1
    assert leftovers(bitstore) == []
    assert bitstore.size(SHA) is None
    assert bitstore.size(hashlib.sha256(DATA[:-1]).hexdigest()) is None
    writer.abort()
    assert leftovers(bitstore) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"md5": hashlib.md5(b"other", usedforsecurity=False).hexdigest()},
        {"sha256": hashlib.sha256(b"other").hexdigest()},
        {"md5": MD5, "sha256": hashlib.sha256(b"other").hexdigest()},
        {"md5": hashlib.md5(b"other", usedforsecurity=False).hexdigest(), "sha256": SHA},
    ],
)
def test_commit_with_a_wrong_checksum_leaves_nothing(
    bitstore: BitStore, kwargs: dict[str, str]
) -> None:
    writer = bitstore.writer(expected_size=len(DATA), md5=True)
    writer.write(DATA)
    with pytest.raises(ChecksumMismatch):
        writer.commit(**kwargs)
    assert bitstore.size(SHA) is None
    assert bitstore.local_path(SHA) is None
    assert leftovers(bitstore) == []


def test_commit_of_a_short_upload_is_a_size_mismatch(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA) + 1, md5=True)
    writer.write(DATA)
    with pytest.raises(SizeMismatch) as caught:
        writer.commit(sha256=SHA)
    assert caught.value.details == {"expected": len(DATA) + 1, "received": len(DATA)}
    assert bitstore.size(SHA) is None
    assert leftovers(bitstore) == []


def test_a_blob_is_invisible_until_commit(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA), md5=True)
    writer.write(DATA)
    assert bitstore.size(SHA) is None
    assert bitstore.local_path(SHA) is None
    with pytest.raises(NotFound):
        read_all(bitstore, SHA)
    writer.commit()
    assert bitstore.size(SHA) == len(DATA)


def test_abort_discards_and_is_safe_twice(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA), md5=True)
    writer.write(DATA)
    if isinstance(bitstore, LocalBitStore):
        assert len(leftovers(bitstore)) == 1
    writer.abort()
    writer.abort()
    assert leftovers(bitstore) == []
    assert bitstore.size(SHA) is None


def test_abort_after_commit_keeps_the_blob(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA), md5=True)
    writer.write(DATA)
    writer.commit()
    writer.abort()
    assert read_all(bitstore, SHA) == DATA


def test_two_writers_of_the_same_bytes_end_with_one_blob(bitstore: BitStore) -> None:
    barrier = threading.Barrier(2)
    results: list[BlobInfo] = []
    failures: list[BaseException] = []

    def upload() -> None:
        writer = bitstore.writer(expected_size=len(DATA), md5=True)
        try:
            writer.write(DATA[:10])
            barrier.wait(timeout=10)  # both hold a half-written blob before either commits
            writer.write(DATA[10:])
            results.append(writer.commit(sha256=SHA))
        except BaseException as exc:
            writer.abort()
            failures.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert results == [BlobInfo(SHA, MD5, len(DATA))] * 2
    assert read_all(bitstore, SHA) == DATA
    assert leftovers(bitstore) == []
    if isinstance(bitstore, LocalBitStore):
        assert [p.name for p in (bitstore.root / "sha256").rglob("*") if p.is_file()] == [SHA]


def test_interleaved_writers_of_different_bytes_stay_apart(bitstore: BitStore) -> None:
    other = b"a completely different file\n"
    first = bitstore.writer(expected_size=len(DATA), md5=True)
    second = bitstore.writer(expected_size=len(other), md5=True)
    first.write(DATA[:3])
    second.write(other[:3])
    first.write(DATA[3:])
    second.write(other[3:])
    assert second.commit().sha256 == hashlib.sha256(other).hexdigest()
    assert first.commit().sha256 == SHA
    assert read_all(bitstore, SHA) == DATA
    assert read_all(bitstore, hashlib.sha256(other).hexdigest()) == other


def test_delete(bitstore: BitStore) -> None:
    store_bytes(bitstore, DATA)
    bitstore.delete(SHA)
    assert bitstore.size(SHA) is None
    assert bitstore.local_path(SHA) is None
    with pytest.raises(NotFound):
        read_all(bitstore, SHA)
    bitstore.delete(SHA)  # deleting what is gone is not an error
    assert bitstore.size(SHA) is None


def test_delete_keeps_other_blobs(bitstore: BitStore) -> None:
    store_bytes(bitstore, DATA)
    store_bytes(bitstore, b"")
    bitstore.delete(SHA)
    assert bitstore.size(EMPTY_SHA) == 0


@pytest.mark.parametrize(
    "key",
    [
        SHA.upper(),
        SHA[:-1],
        SHA + "0",
        "",
        "../" + SHA[3:],
        "g" * 64,
        f"sha256/{SHA[:2]}/{SHA[2:4]}/{SHA}",
    ],
)
def test_malformed_keys_name_no_blob(bitstore: BitStore, key: str) -> None:
    store_bytes(bitstore, DATA)
    assert bitstore.size(key) is None
    assert bitstore.local_path(key) is None
    with pytest.raises(NotFound):
        read_all(bitstore, key)


def test_local_path_of_an_unknown_blob_is_none(bitstore: BitStore) -> None:
    assert bitstore.local_path(SHA) is None


# local disk only


@pytest.fixture
def local(tmp_path: Path) -> LocalBitStore:
    return local_store(tmp_path / "blobs")


def test_local_blobs_live_under_their_sha256(local: LocalBitStore) -> None:
    store_bytes(local, DATA)
    path = local.local_path(SHA)
    assert path == local.root / "sha256" / SHA[:2] / SHA[2:4] / SHA
    assert path.read_bytes() == DATA
    assert blob_relpath(SHA) == f"sha256/{SHA[:2]}/{SHA[2:4]}/{SHA}"


def test_blob_relpath_refuses_what_is_not_a_sha256() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        blob_relpath("../../etc/passwd")


def test_a_new_store_reuses_the_blobs_on_disk(local: LocalBitStore) -> None:
    store_bytes(local, DATA)
    again = local_store(local.root)
    assert again.size(SHA) == len(DATA)


def test_deleting_a_malformed_or_unknown_key_is_a_no_op(bitstore: BitStore) -> None:
    bitstore.delete("not-a-hash")
    bitstore.delete("0" * 64)
    assert bitstore.size("0" * 64) is None


def test_md5_is_only_computed_when_asked(bitstore: BitStore) -> None:
    writer = bitstore.writer(expected_size=len(DATA))
    writer.write(DATA)
    info = writer.commit(sha256=hashlib.sha256(DATA).hexdigest())
    assert info.md5 is None
    assert info.sha256 == hashlib.sha256(DATA).hexdigest()
    checking = bitstore.writer(expected_size=len(DATA))
    checking.write(DATA)
    with pytest.raises(ValueError, match="md5=True"):
        checking.commit(md5="0" * 32)
