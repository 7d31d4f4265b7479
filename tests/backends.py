"""Pytest fixtures for the real backing services: PostgreSQL and an S3 store (SeaweedFS).

The servers start once per test session, on first use, and stop at its end; tests that use neither
start neither. Each test that asks for `postgres_url` gets its own empty database, dropped afterwards;
`s3_bucket` does the same for a bucket. See tests/services.py for what runs and where it logs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import PostgresServer, S3Server, start_postgres, start_seaweedfs


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: a throwaway cluster, or $DPHUB_TEST_DATABASE_URL's."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg://...) of a fresh, empty database for this test alone."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A SeaweedFS S3 gateway for the session, checking SigV4 signatures, with `s3_server.bucket`."""
    server = start_seaweedfs()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """The name of a fresh, empty bucket on the session's S3 server, emptied and removed after."""
    bucket = s3_server.create_bucket()
    yield bucket
    client = s3_server.client()
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
