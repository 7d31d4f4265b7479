"""A streaming reader for presigned-POST uploads: form fields first, then ``file`` straight to a blob.

The policy is checked when the ``file`` part starts, before any of its bytes are stored; the bytes then
go to a bitstore writer as they arrive, so a large upload never sits in memory or in a second temporary
file. It runs in a worker thread (hashing and disk writes are blocking work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from dphub.bitstore import BitStore, BlobInfo, BlobWriter
from dphub.bitstore.signing import UploadGrant, UploadSigner
from dphub.errors import InvalidRequest, InvalidUpload

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 50


class FormUpload:
    def __init__(
        self,
        *,
        boundary: bytes,
        signer: UploadSigner,
        bitstore: BitStore,
        check_key: Callable[[str], None],
    ) -> None:
        self._signer = signer
        self._bitstore = bitstore
        self._check_key = check_key
        self.fields: dict[str, str] = {}
        self.grant: UploadGrant | None = None
        self._writer: BlobWriter | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name: str | None = None
        self._part_value = bytearray()
        self._in_file = False
        self._file_done = False
        callbacks: dict[str, Any] = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(boundary, cast("Any", callbacks))

    def feed(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except MultipartParseError:
            raise InvalidRequest("The multipart/form-data body is malformed.") from None

    def finish(self) -> tuple[UploadGrant, BlobInfo]:
        self._parser.finalize()
        if self.grant is None or self._writer is None or not self._file_done:
            raise InvalidUpload("The form has no complete 'file' field (it must come last).")
        info = self._writer.commit(md5=self.grant.md5_hex, sha256=self.grant.sha256_hex)
        self._writer = None
        return self.grant, info

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    # parser callbacks; an error raised here ends the parse and reaches the caller of feed()

    def _part_begin(self) -> None:
        self._headers = {}
        self._part_name = None
        self._part_value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise InvalidRequest("A form part has no name.")
        self._part_name = name.decode("utf-8", errors="replace")
        if self._file_done:
            return
        if self._part_name != "file":
            if len(self.fields) >= MAX_FIELDS:
                raise InvalidRequest("The form has too many fields.")
            return
        self.grant = self._signer.check_post_form(self.fields)
        self._check_key(self.grant.key)
        self._writer = self._bitstore.writer(
            expected_size=self.grant.size, md5=self.grant.md5_b64 is not None
        )
        self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            assert self._writer is not None
            self._writer.write(data[start:end])
        elif not self._file_done:
            self._part_value += data[start:end]
            if len(self._part_value) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"The form field {self._part_name!r} is too long.")

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True
        elif not self._file_done and self._part_name is not None:
            self.fields[self._part_name] = self._part_value.decode("utf-8", errors="replace")


def boundary_of(content_type: str) -> bytes:
    media, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "Upload the file as multipart/form-data: every upload_query field, then 'file'."
        )
    return boundary
