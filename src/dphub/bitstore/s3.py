"""Bitstore on any S3-compatible store (AWS S3, SeaweedFS, MinIO, Ceph): ``s3://BUCKET[/PREFIX]``.

Blobs live under ``PREFIX/sha256/ab/cd/<hex>``. Clients upload straight to the store with presigned
forms and URLs that bind size and checksum, so the store itself refuses bytes that do not match;
finalize then checks each object with a HEAD. Uploads without a SHA-256 (older clients) land under
``PREFIX/staging/<session key>`` and are filed under their hash when finalize confirms them.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from dphub.bitstore._writer import SpoolingWriter
from dphub.bitstore.interfaces import BlobInfo, PartTarget, StoredObject, UploadTarget
from dphub.bitstore.local import SHA256_HEX, blob_relpath
from dphub.bitstore.signing import SHA256_FIELD, UploadGrant
from dphub.config import Settings
from dphub.errors import (
    ConfigurationError,
    NotFound,
    UploadIncomplete,
    UploadMismatch,
)

CHUNK = 1024 * 1024
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
# Above this, S3 takes an object only in parts, and its checksum becomes one of the parts' checksums.
SINGLE_PUT_LIMIT = 5 * 1024**3


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix/")``."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigurationError("DPHUB_STORAGE_URL names no bucket: use s3://BUCKET[/PREFIX].")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def whole_sha256(head: dict[str, Any]) -> str | None:
    """The object's SHA-256 (base64) when the store kept one of the whole object: a multipart
    object carries a checksum of its parts' checksums instead ("...-N", type COMPOSITE)."""
    stored = head.get("ChecksumSHA256")
    if not stored or "-" in str(stored) or head.get("ChecksumType") == "COMPOSITE":
        return None
    return str(stored)


class S3BlobWriter(SpoolingWriter):
    """Spools to a local temporary file while hashing, then puts the verified blob in the store."""

    def __init__(self, store: S3BitStore, expected_size: int, md5: bool) -> None:
        self._store = store
        super().__init__(tempfile.TemporaryFile(), expected_size, md5)  # noqa: SIM115

    def _publish(self, spool: IO[bytes], info: BlobInfo) -> None:
        try:
            if self._store.size(info.sha256) != info.size:
                spool.seek(0)
                self._store.put(info.sha256, info.size, spool)
        finally:
            spool.close()


class S3BitStore:
    def __init__(self, *, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BitStore:
        bucket, prefix = parse_storage_url(settings.storage_url)
        style = settings.s3_addressing_style or ("path" if settings.s3_endpoint_url else "virtual")
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            retries={"max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            config=config,
        )
        return cls(client=client, bucket=bucket, prefix=prefix)

    # keys

    def content_key(self, sha256: str) -> str:
        return self.prefix + blob_relpath(sha256)

    def staging_key(self, session_key: str) -> str:
        return f"{self.prefix}staging/{session_key}"

    def session_key(self, url: str) -> str | None:
        marker = f"/{self.prefix}staging/"
        return url.split(marker, 1)[1] if marker in url else None

    # blobs

    def _head(self, key: str, *, checksum: bool = False) -> dict[str, Any] | None:
        extra = {"ChecksumMode": "ENABLED"} if checksum else {}
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND:
                return None
            raise
        return head

    def size(self, sha256: str) -> int | None:
        try:
            head = self._head(self.content_key(sha256))
        except ValueError:
            return None
        return int(head["ContentLength"]) if head is not None else None

    def read(self, sha256: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            key = self.content_key(sha256)
        except ValueError:
            raise NotFound("The blob is not in the bitstore.") from None
        return self._read_key(key, start=start, end=end)

    def _read_key(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in NOT_FOUND:
                raise NotFound("The blob is not in the bitstore.") from None
            if code == "InvalidRange":
                return  # the range starts past the end: nothing to read
            raise
        body = answer["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def local_path(self, sha256: str) -> Path | None:
        return None

    def delete(self, sha256: str) -> None:
        try:
            key = self.content_key(sha256)
        except ValueError:
            return
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def _listed(self, prefix: str) -> Iterator[StoredObject]:
        """Objects under ``prefix`` (relative to the store's), one listing page at a time."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"]).removeprefix(self.prefix)
                yield StoredObject(key, int(item["Size"]), item["LastModified"])

    def list_blobs(self) -> Iterator[StoredObject]:
        for found in self._listed("sha256/"):
            sha256 = found.key.rsplit("/", 1)[-1]
            if SHA256_HEX.fullmatch(sha256) and found.key == blob_relpath(sha256):
                yield StoredObject(found.key, found.size, found.modified, sha256=sha256)

    def list_staged(self) -> Iterator[StoredObject]:
        for found in self._listed("staging/"):
            session_key = found.key.removeprefix("staging/")
            if session_key.startswith("mp/"):
                continue  # parts of multipart uploads: see multipart_uploads
            session_id = session_key.split("/", 1)[0]
            yield StoredObject(found.key, found.size, found.modified, session_id=session_id)

    def delete_staged(self, key: str) -> None:
        if not key.startswith("staging/") or key.startswith("staging/mp/") or ".." in key:
            raise ValueError(f"{key!r} is not a staged object of this store")
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def writer(self, *, expected_size: int, md5: bool = False) -> S3BlobWriter:
        return S3BlobWriter(self, expected_size, md5)

    def put(self, sha256: str, size: int, source: IO[bytes]) -> None:
        """Store verified bytes under their hash; the store checks the SHA-256 once more."""
        key = self.content_key(sha256)
        if size > SINGLE_PUT_LIMIT:
            self.client.upload_fileobj(source, self.bucket, key)
            return
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=source, ContentLength=size, ChecksumSHA256=checksum
        )

    # uploads straight to the store

    def upload_target(self, grant: UploadGrant, *, expires_at: int) -> UploadTarget:
        sha256 = grant.sha256_hex
        key = self.staging_key(grant.key) if grant.staged or sha256 is None else None
        key = key or self.content_key(str(sha256))
        expires_in = max(1, expires_at - int(time.time()))
        fields = {"Content-Type": grant.content_type}
        conditions: list[Any] = [
            {"Content-Type": grant.content_type},
            ["content-length-range", grant.size, grant.size],
        ]
        if grant.sha256_b64:
            fields[SHA256_FIELD] = grant.sha256_b64
            conditions.append({SHA256_FIELD: grant.sha256_b64})
        post = self.client.generate_presigned_post(
            self.bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        target = UploadTarget(post["url"].rstrip("/"), dict(post["fields"]))
        if not grant.sha256_b64:
            return target
        put_url = self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": grant.content_type,
                "ChecksumSHA256": grant.sha256_b64,
            },
            ExpiresIn=expires_in,
        )
        headers = {"Content-Type": grant.content_type, SHA256_FIELD: grant.sha256_b64}
        return UploadTarget(target.upload_url, target.upload_query, put_url, headers)

    def confirm(self, grant: UploadGrant) -> BlobInfo | None:
        sha256 = grant.sha256_hex
        if not grant.staged and sha256 is not None:
            head = self._head(self.content_key(sha256), checksum=True)
            if head is None:
                return None
            self._check(head, grant)
            return BlobInfo(sha256, None, grant.size)
        staged = self.staging_key(grant.key)
        head = self._head(staged, checksum=True)
        if head is None:
            return None
        self._check(head, grant)
        stored = whole_sha256(head)
        # Without a whole-object checksum from the store, the bytes are read once to hash them.
        actual = _b64_to_hex(stored) if stored else self._hash(staged)
        if sha256 is not None and actual != sha256:
            raise UploadMismatch("The stored bytes do not match the authorized SHA-256.")
        if self.size(actual) != grant.size:
            source = {"Bucket": self.bucket, "Key": staged}
            target = self.content_key(actual)
            if grant.size > SINGLE_PUT_LIMIT:
                self.client.copy(source, self.bucket, target)
            else:
                self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=target)
        self.client.delete_object(Bucket=self.bucket, Key=staged)
        return BlobInfo(actual, grant.md5_hex, grant.size)

    def _check(self, head: dict[str, Any], grant: UploadGrant) -> None:
        if int(head["ContentLength"]) != grant.size:
            raise UploadMismatch(
                f"The store holds {head['ContentLength']} bytes, not the {grant.size} authorized."
            )
        stored = whole_sha256(head)
        if stored and grant.sha256_b64 and stored != grant.sha256_b64:
            raise UploadMismatch("The stored bytes do not match the authorized SHA-256.")
        etag = str(head.get("ETag", "")).strip('"')
        md5 = grant.md5_hex
        if md5 is not None and "-" not in etag and etag != md5:
            raise UploadMismatch("The stored bytes do not match the authorized MD5.")

    def _hash(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self._read_key(key):
            digest.update(chunk)
        return digest.hexdigest()

    # multipart: parts go to PREFIX/staging/mp/<upload id>; complete checks the whole SHA-256
    # before anything reaches the content address, since the store keeps only part checksums

    def _multipart_key(self, upload_id: str) -> str:
        return f"{self.prefix}staging/mp/{upload_id}"

    def start_multipart(self, upload_id: str, *, content_type: str) -> str:
        answer = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self._multipart_key(upload_id), ContentType=content_type
        )
        return str(answer["UploadId"])

    def part_targets(
        self, upload_id: str, store_upload_id: str, sizes: list[int], *, expires_at: int
    ) -> list[PartTarget]:
        expires_in = max(1, expires_at - int(time.time()))
        targets = []
        for number, size in enumerate(sizes, start=1):
            url = self.client.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._multipart_key(upload_id),
                    "UploadId": store_upload_id,
                    "PartNumber": number,
                    "ContentLength": size,
                },
                ExpiresIn=expires_in,
            )
            targets.append(PartTarget(number, size, url))
        return targets

    def _listed_parts(self, upload_id: str, store_upload_id: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=self._multipart_key(upload_id), UploadId=store_upload_id
        )
        try:
            for page in pages:
                parts.extend(page.get("Parts", []))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchUpload", *NOT_FOUND):
                return []
            raise
        return parts

    def uploaded_parts(self, upload_id: str, store_upload_id: str) -> dict[int, int]:
        listed = self._listed_parts(upload_id, store_upload_id)
        return {int(p["PartNumber"]): int(p["Size"]) for p in listed}

    def complete_multipart(
        self, upload_id: str, store_upload_id: str, *, sizes: list[int], sha256: str
    ) -> BlobInfo:
        listed = {int(p["PartNumber"]): p for p in self._listed_parts(upload_id, store_upload_id)}
        wanted = dict(enumerate(sizes, start=1))
        missing = sorted(
            n for n, size in wanted.items() if int(listed.get(n, {}).get("Size", -1)) != size
        )
        if missing:
            raise UploadIncomplete(
                f"Parts {', '.join(map(str, missing[:20]))} are missing or incomplete.",
                parts=missing,
            )
        key = self._multipart_key(upload_id)
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=store_upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": listed[n]["ETag"]} for n in wanted]
            },
        )
        try:
            if self._hash(key) != sha256:
                raise UploadMismatch(
                    "The joined parts do not have the authorized SHA-256; upload the file again."
                )
            total = sum(sizes)
            if self.size(sha256) != total:
                target = self.content_key(sha256)
                self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, target)
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return BlobInfo(sha256, None, total)

    def abort_multipart(self, upload_id: str, store_upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._multipart_key(upload_id), UploadId=store_upload_id
            )
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("NoSuchUpload", *NOT_FOUND):
                raise

    def multipart_uploads(self) -> list[tuple[str, str, datetime]]:
        found = []
        marker = f"{self.prefix}staging/mp/"
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=marker
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                upload_id = str(upload["Key"]).removeprefix(marker)
                found.append((upload_id, str(upload["UploadId"]), upload["Initiated"]))
        return found

    def download_url(self, sha256: str, *, filename: str, media_type: str, ttl: int) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.content_key(sha256),
                "ResponseContentType": media_type,
                "ResponseContentDisposition": f"inline; filename*=UTF-8''{quote(filename)}",
            },
            ExpiresIn=ttl,
        )
        return url
