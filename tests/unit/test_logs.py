"""Secrets never reach a log line: tokens in URLs, signatures, Bearer headers are redacted."""

from __future__ import annotations

import io
import logging

import pytest
from uvicorn.logging import AccessFormatter

from dphub.logs import RedactingFilter, log_config, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVl"
SIGNATURE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"GET /core/gdp/datapackage.json?jwt={JWT} HTTP/1.1",
            "GET /core/gdp/datapackage.json?jwt=[REDACTED] HTTP/1.1",
        ),
        (f"/x?limit=5&jwt={JWT}&offset=10", "/x?limit=5&jwt=[REDACTED]&offset=10"),
        (f"/x?JWT={JWT}", "/x?JWT=[REDACTED]"),
        (
            f"PUT /api/bitstore/upload/k?X-Dphub-Size=3&X-Dphub-Expires=1700000000"
            f"&X-Dphub-Signature={SIGNATURE}",
            "PUT /api/bitstore/upload/k?X-Dphub-Size=3&X-Dphub-Expires=1700000000"
            "&X-Dphub-Signature=[REDACTED]",
        ),
        (f"x-dphub-signature={SIGNATURE} done", "x-dphub-signature=[REDACTED] done"),
        ("token=abc123", "token=[REDACTED]"),
        ("secret=hunter2 and more", "secret=[REDACTED] and more"),
        ("password=p%40ss&user=ann", "password=[REDACTED]&user=ann"),
        ("api_key=dph_0a1b2c3d_xyz", "api_key=[REDACTED]"),
        (f"X-Amz-Signature={SIGNATURE}", "X-Amz-Signature=[REDACTED]"),
        ("X-Amz-Security-Token=FwoGZXIvYXdzEJr", "X-Amz-Security-Token=[REDACTED]"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [REDACTED]"),
        (f"authorization: bearer {JWT}", "authorization: bearer [REDACTED]"),
        (f"Auth-Token: {JWT}", "Auth-Token: [REDACTED]"),
        (f"'secret={JWT}'", "'secret=[REDACTED]'"),
    ],
)
def test_redact_removes_secret_values(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_redact_removes_every_occurrence() -> None:
    line = f"jwt={JWT} then token={JWT} then Bearer {JWT}"
    out = redact(line)
    assert JWT not in out
    assert out.count("[REDACTED]") == 3


@pytest.mark.parametrize(
    "line",
    [
        "GET /core/gdp/r/data.csv?limit=10&offset=20 HTTP/1.1",
        "tokens=5 signatures=2",
        "a package named token-bucket",
        "POST /api/auth/token 200",
    ],
)
def test_redact_keeps_lines_without_secrets(line: str) -> None:
    assert redact(line) == line


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("/callback?access_token=abc123secret&state=s", "abc123secret"),
        ("refresh_token=abc123secret", "abc123secret"),
        ("id_token=abc123secret", "abc123secret"),
        ("Authorization: Basic YWxpY2U6aHVudGVyMg==", "YWxpY2U6aHVudGVyMg=="),
    ],
)
def test_redact_removes_other_common_credentials(line: str, secret: str) -> None:
    out = redact(line)
    assert secret not in out
    assert "[REDACTED]" in out


def _handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    return handler, stream


def _access_record(path: str) -> logging.LogRecord:
    """A record shaped as uvicorn's h11/httptools protocols log each request."""
    return logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:52100", "GET", path, "1.1", 200),
        None,
    )


def test_filter_redacts_uvicorn_access_log_args_with_a_plain_formatter() -> None:
    handler, stream = _handler(logging.Formatter("%(name)s: %(message)s"))
    handler.handle(_access_record(f"/core/gdp/datapackage.json?jwt={JWT}"))
    assert stream.getvalue() == (
        'uvicorn.access: 127.0.0.1:52100 - "GET /core/gdp/datapackage.json?jwt=[REDACTED]'
        ' HTTP/1.1" 200\n'
    )


def test_filter_redacts_through_uvicorns_access_formatter() -> None:
    formatter = AccessFormatter(
        '%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    handler, stream = _handler(formatter)
    handler.handle(_access_record(f"/api/package/core/gdp?jwt={JWT}&revision=2"))
    assert stream.getvalue() == (
        '127.0.0.1:52100 - "GET /api/package/core/gdp?jwt=[REDACTED]&revision=2 HTTP/1.1" 200 OK\n'
    )


def test_filter_redacts_the_message_and_mapping_args() -> None:
    handler, stream = _handler(logging.Formatter("%(message)s"))
    logger = logging.getLogger("dphub.test_logs")
    plain = logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, f"refused Bearer {JWT}", (), None
    )
    mapped = logger.makeRecord(
        logger.name,
        logging.WARNING,
        __file__,
        1,
        "url %(url)s",
        ({"url": f"/x?token={JWT}"},),
        None,
    )
    handler.handle(plain)
    handler.handle(mapped)
    assert stream.getvalue() == "refused Bearer [REDACTED]\nurl /x?token=[REDACTED]\n"


def test_filter_leaves_non_string_args_alone() -> None:
    handler, stream = _handler(logging.Formatter("%(message)s"))
    record = logging.getLogger("dphub.test_logs").makeRecord(
        "dphub.test_logs", logging.INFO, __file__, 1, "%d rows in %.1fs", (42, 0.25), None
    )
    handler.handle(record)
    assert stream.getvalue() == "42 rows in 0.2s\n"


def test_log_config_puts_the_filter_on_every_handler() -> None:
    config = log_config("warning")
    assert config["filters"]["redact"]["()"] is RedactingFilter
    assert config["handlers"]
    for handler in config["handlers"].values():
        assert "redact" in handler["filters"]
    for name in ("uvicorn", "uvicorn.access", "dphub"):
        logger = config["loggers"][name]
        assert logger["level"] == "WARNING"
        assert logger["propagate"] is False
        assert set(logger["handlers"]) <= set(config["handlers"])
