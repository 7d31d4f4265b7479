"""What a file is before any row is read: its format, its text encoding, its CSV dialect.

Everything here looks at the first :data:`HEAD_BYTES` of the file only, so deciding costs the same
for a 1 KB file and a 1 GB one.

Format: a binary signature wins (``PAR1`` is Parquet, a zip is an XLSX workbook), then the
descriptor's ``format``/``mediatype``, then the file name's extension, then the content (``[`` starts
a JSON array, ``{`` NDJSON, anything else that is text is CSV). Text with NUL bytes and no UTF-16/32
byte order mark is binary and refused.

Encoding: a declared one (the request's, else the descriptor's) is used as declared; a byte order
mark names UTF-8, UTF-16 or UTF-32; otherwise the first :data:`HEAD_BYTES` decide: valid UTF-8 means
UTF-8, anything else means Windows-1252 (whose five undefined bytes are read as Latin-1, as the
pipeline reads them). Checking the whole file would cost a full read before the first byte is sent;
the rare file that is UTF-8 at the start and not further on gets U+FFFD for its bad bytes instead
(see ``_convert``).
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dphub.errors import InvalidRequest, UnsupportedMediaType
from dphub.pipeline._sources import table_format

HEAD_BYTES = 1 << 20

TEXT_FORMATS = ("csv", "tsv", "json", "ndjson")
_EXTENSIONS = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "xlsx": "xlsx",
    "xlsm": "xlsx",
    "json": "json",
    "ndjson": "ndjson",
    "jsonl": "ndjson",
    "parquet": "parquet",
    "pq": "parquet",
}
# Extensions that say nothing about the content: the bytes decide.
_NEUTRAL = {"", "txt", "text", "dat", "data", "asc", "psv"}
_PARQUET_TYPES = {"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"}
_UTF8_NAMES = ("utf-8", "utf-8-sig", "ascii")


@dataclass(frozen=True)
class Text:
    """How to turn the file's bytes into text: a Python codec, its error handler, a label to show."""

    codec: str
    errors: str
    label: str

    @property
    def is_utf8(self) -> bool:
        return self.codec in _UTF8_NAMES


UTF8 = Text("utf-8", "strict", "utf-8")
UTF8_LENIENT = Text("utf-8-sig", "replace", "utf-8")
WINDOWS_1252 = Text("cp1252", "dphub-latin-1", "windows-1252")  # handler registered by _sources


def read_head(source: Path) -> bytes:
    with source.open("rb") as f:
        return f.read(HEAD_BYTES)


def source_format(
    head: bytes, resource: Mapping[str, Any] | None, name: str, *, declared_text: bool
) -> str:
    """``csv``, ``tsv``, ``json``, ``ndjson``, ``xlsx`` or ``parquet``; 415 for anything else."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnsupportedMediaType(
            "This is an old binary Excel (.xls) workbook; the DataProxy reads .xlsx: save it as .xlsx."
        )
    declared = _declared_format(resource)
    if declared is None and resource is not None and _declares_other_format(resource):
        raise UnsupportedMediaType(
            f'The resource\'s format "{resource.get("format") or resource.get("mediatype")}" is not'
            " one the DataProxy reads (CSV, TSV, JSON, NDJSON, XLSX or Parquet)."
        )
    extension = name.rsplit("/", 1)[-1].rpartition(".")[2].lower() if "." in name else ""
    hinted = declared or _EXTENSIONS.get(extension)
    if hinted in ("xlsx", "parquet"):
        kind = "an XLSX workbook" if hinted == "xlsx" else "a Parquet file"
        raise InvalidRequest(f"The file is said to be {kind} but its bytes are not one.")
    if not declared_text and _looks_binary(head):
        raise UnsupportedMediaType(
            "The file is binary, not a table the DataProxy reads (CSV, TSV, JSON, NDJSON, XLSX or Parquet)."
        )
    if hinted is not None:
        return hinted
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return {b"[": "json", b"{": "ndjson"}.get(first, "csv")


def _declared_format(resource: Mapping[str, Any] | None) -> str | None:
    if resource is None:
        return None
    fmt, mediatype = resource.get("format"), resource.get("mediatype")
    if isinstance(fmt, str) and fmt.lower().lstrip(".") in ("parquet", "pq"):
        return "parquet"
    if isinstance(mediatype, str) and mediatype.lower().split(";")[0].strip() in _PARQUET_TYPES:
        return "parquet"
    # only format and mediatype: the path's extension is the stored file's, judged from ``name``
    return table_format({k: v for k, v in resource.items() if k in ("format", "mediatype")})


def _declares_other_format(resource: Mapping[str, Any]) -> bool:
    fmt, mediatype = resource.get("format"), resource.get("mediatype")
    if isinstance(fmt, str) and fmt.strip() and fmt.lower().lstrip(".") not in _NEUTRAL:
        return True
    if not isinstance(mediatype, str):
        return False
    mediatype = mediatype.lower().split(";")[0].strip()
    return not mediatype.startswith("text/") and mediatype != "application/octet-stream"


def _looks_binary(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False  # UTF-16 and UTF-32 text (their marks start the same way) holds NUL bytes
    return b"\x00" in head[: 1 << 16]


def text_encoding(head: bytes, declared: str | None, *, whole: bool) -> Text:
    """How to decode the file; ``whole`` says ``head`` is the entire file."""
    if declared is not None:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            raise InvalidRequest(f'"{declared}" is not an encoding the DataProxy knows.') from None
        if codec in _UTF8_NAMES:
            return UTF8 if _is_utf8(head, whole=whole) else UTF8_LENIENT
        if codec == "cp1252":
            return WINDOWS_1252
        return Text(codec, "replace", declared)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return Text("utf-32", "replace", "utf-32")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Text("utf-16", "replace", "utf-16")
    return UTF8 if _is_utf8(head, whole=whole) else WINDOWS_1252


def _is_utf8(head: bytes, *, whole: bool) -> bool:
    if head.isascii():
        return True
    try:
        # a character cut in two at the end of the head is not an error unless the file ends there
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError:
        return False
    return True


def decode_head(head: bytes, text: Text, *, whole: bool) -> str:
    """The head as text, without a byte order mark; a character cut at the end is dropped."""
    codec = "utf-8-sig" if text.codec in _UTF8_NAMES else text.codec
    errors = "replace" if text.errors == "strict" else text.errors
    return codecs.getincrementaldecoder(codec)(errors=errors).decode(head, final=whole)
