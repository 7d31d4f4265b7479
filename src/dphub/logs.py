"""Logging that never writes a secret: tokens and signatures in URLs are redacted from every line."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

# Any parameter whose name ends in one of these words (access_token, X-Amz-Signature, ...), and the
# authorization code a sign-on provider sends back (``?code=``).
SECRET_PARAMS = re.compile(
    r"(?i)\b([\w-]*(?:jwt|token|secret|password|api_key|apikey|signature|credential|code))"
    r"=[^&\s\"']+"
)
SCHEMES = re.compile(r"(?i)\b(bearer|basic|auth-token:)\s*[A-Za-z0-9._~+/=-]+")
JSON_SECRETS = re.compile(
    r"(?i)(\"[\w-]*(?:jwt|token|secret|password|signature)\"\s*:\s*\")[^\"]*(\")"
)


def redact(text: str) -> str:
    text = SECRET_PARAMS.sub(r"\1=[REDACTED]", text)
    text = JSON_SECRETS.sub(r"\1[REDACTED]\2", text)
    return SCHEMES.sub(r"\1 [REDACTED]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``request_id``,
    ``message`` and, for an exception, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging setup with the redacting filter on every handler."""
    fmt = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact": {"()": RedactingFilter},
            "request_id": {"()": "dphub.api.requestid.RequestIdFilter"},
        },
        "formatters": {"plain": {"format": fmt}, "json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json" if log_format == "json" else "plain",
                "filters": ["redact", "request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "dphub": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            # the SQL guard parses what users send: the parser's warnings about it are not news
            "sqlglot": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        },
    }
