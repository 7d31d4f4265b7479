"""One typed Settings object, read once from ``DPHUB_*`` environment variables.

Every setting has a name, a type, a default and one line of help (``SETTINGS_HELP``); ``docs/settings.md``
lists them all and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dphub.errors import ConfigurationError

FINDABILITIES = ("published", "unlisted", "private")
REFERRER_POLICIES = (
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Values that look like secrets but are not: refused outside development mode.
PLACEHOLDER_SECRETS = frozenset(
    {"", "secret", "changeme", "change-me", "changethis", "dev", "development", "test", "dphub"}
)
MIN_SECRET_LENGTH = 32
# What a browser sends as Origin: scheme://host[:port], nothing after.
CORS_ORIGIN = re.compile(r"^https?://[^/\s?#@]+$")
# Rate-limit windows are at most a day: counters older than that are swept away.
MAX_RATE_WINDOW = 24 * 3600


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dphub"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata={
            "help": "Folder for the embedded metastore, the blobs and the secret key (made on start)."
        },
    )
    database_url: str = _setting(
        "", "SQLAlchemy URL of the metastore; default: SQLite file metastore.db in the data dir."
    )
    base_url: str = _setting(
        "",
        "Public URL of the hub, used in links and signed upload URLs; default: the bind address.",
    )
    storage_url: str = _setting(
        "",
        "Where blobs live: s3://BUCKET[/PREFIX] for an S3-compatible store; default: the data dir.",
    )
    s3_endpoint_url: str = _setting(
        "", "Endpoint of an S3-compatible store (SeaweedFS, MinIO, Ceph); default: AWS S3."
    )
    s3_addressing_style: str = _setting(
        "", "'path' or 'virtual' bucket addressing; default: path with an endpoint, else virtual."
    )
    s3_region: str = _setting("us-east-1", "Region of the S3 bucket (used in signatures).")
    download_ttl: int = _setting(300, "Lifetime of a presigned download URL, in seconds.")
    secret_key: str = _setting(
        "", "Key that signs upload forms; default: generated once into the data dir."
    )
    env: str = _setting("production", "'production' or 'development' (allows placeholder secrets).")
    default_findability: str = _setting(
        "published", "Findability of a new package when the push names none."
    )
    token_ttl: int = _setting(7 * 24 * 3600, "Lifetime of a login token, in seconds.")
    upload_ttl: int = _setting(3600, "Lifetime of a signed upload form or URL, in seconds.")
    session_ttl: int = _setting(24 * 3600, "How long an upload session stays open, in seconds.")
    gc_grace_hours: float = _setting(
        24.0,
        "Blobs younger than this, and upload sessions expired less long ago, are never collected"
        " by dphub gc or purge, in hours.",
    )
    max_descriptor_bytes: int = _setting(
        10 * 1024 * 1024, "Largest datapackage.json (and README) finalize reads, in bytes."
    )
    max_upload_bytes: int = _setting(5 * 1024**4, "Largest single file the hub accepts, in bytes.")
    max_open_uploads: int = _setting(
        100,
        "Pushes one publisher may have in progress at once (authorized within DPHUB_UPLOAD_TTL and"
        " not finalized); 0: no limit.",
    )
    max_body_bytes: int = _setting(
        16 * 1024 * 1024,
        "Largest request body the API reads, in bytes; file uploads to the hub's own bitstore are"
        " bounded by their upload grant instead.",
    )
    max_header_bytes: int = _setting(
        16 * 1024, "Largest total size of a request's header fields, in bytes (431 beyond)."
    )
    upload_idle_timeout: float = _setting(
        60.0,
        "Seconds a request body may stall, no byte arriving, before the hub answers 408 and keeps"
        " nothing of it.",
    )
    download_idle_timeout: float = _setting(
        60.0,
        "Seconds a client may go without taking a byte of an answer before the hub closes the"
        " connection.",
    )
    keepalive_timeout: float = _setting(
        75.0,
        "Seconds an idle client connection stays open; longer than a load balancer's own idle"
        " timeout (60 s in nginx and AWS), so it never sends a request on a connection the hub"
        " is closing.",
    )
    hsts_max_age: int = _setting(
        365 * 24 * 3600,
        "max-age of the Strict-Transport-Security header sent when the hub is reached over HTTPS,"
        " in seconds; 0: no header.",
    )
    referrer_policy: str = _setting(
        "no-referrer", "Referrer-Policy header of API answers (web pages send same-origin)."
    )
    multipart_threshold: int = _setting(
        64 * 1024 * 1024, "Files larger than this, in bytes, are uploaded in parts (resumable)."
    )
    multipart_part_size: int = _setting(
        16 * 1024 * 1024, "Size of each part of a multipart upload, in bytes (at least 5 MiB)."
    )
    log_level: str = _setting("info", "Log level of the server: debug, info, warning, error.")
    log_format: str = _setting(
        "text",
        "Log lines as plain text (`text`), or one JSON object a line (`json`: time, level, logger,"
        " request_id, message) for a log collector.",
    )
    datastore_url: str = _setting(
        "",
        "Where tables are loaded: 'duckdb' (files in the data dir) or a postgresql:// URL;"
        " default: the metastore's PostgreSQL when it has one, else duckdb.",
    )
    query_timeout: float = _setting(5.0, "Longest a datastore query may run, in seconds.")
    query_max_rows: int = _setting(32000, "Most rows one datastore query answers.")
    job_timeout: int = _setting(
        60, "Seconds without a heartbeat after which a job is given to another worker."
    )
    job_attempts: int = _setting(3, "How many times a revision is processed before it fails.")
    job_retry_delay: float = _setting(
        5.0,
        "Seconds before a revision whose processing stopped on an error is tried again; each next"
        " wait is 4 times longer.",
    )
    dataproxy_allowed_hosts: str = _setting(
        "",
        "Outside hosts the DataProxy may fetch, comma separated (*.example.org for subdomains);"
        " default: none, only the hub's own files.",
    )
    dataproxy_max_bytes: int = _setting(
        1024**3, "Largest outside file the DataProxy fetches, in bytes."
    )
    dataproxy_timeout: float = _setting(
        60.0, "Longest the DataProxy spends fetching an outside file, in seconds."
    )
    worker_memory: str = _setting(
        "512MB", "Memory one processing job may use (DuckDB's memory_limit); beyond it, it pages."
    )
    oidc_providers: str = _setting(
        "",
        "Single sign-on providers, a JSON list of {name, kind: github|google|oidc, client_id,"
        " client_secret, issuer?, ...}; default: none (password and API key logins only).",
    )
    oidc_allow_insecure_issuers: bool = _setting(
        False,
        "Accept http:// issuers on loopback for single sign-on and trusted publishing"
        " (tests and development only).",
    )
    login_ip_limit: int = _setting(
        30, "Login attempts one client address may make per login IP window; 0: no limit."
    )
    login_ip_window: int = _setting(60, "The window of DPHUB_LOGIN_IP_LIMIT, in seconds.")
    login_failure_limit: int = _setting(
        10,
        "Failed logins one account name may have per window before even the right secret is"
        " refused; 0: no limit.",
    )
    login_failure_window: int = _setting(
        900, "The window of DPHUB_LOGIN_FAILURE_LIMIT, in seconds."
    )
    exchange_ip_limit: int = _setting(
        30,
        "Single sign-on starts and OIDC token exchanges one client address may make per window;"
        " 0: no limit.",
    )
    exchange_ip_window: int = _setting(60, "The window of DPHUB_EXCHANGE_IP_LIMIT, in seconds.")
    trusted_proxies: str = _setting(
        "",
        "Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names the client,"
        " comma separated; default: none, the connecting address is the client.",
    )
    cors_origins: str = _setting(
        "",
        "Origins of browser apps that may call the API from their pages, comma separated"
        " (https://app.example.org), or * for any; default: none, no CORS headers.",
    )
    webhook_attempts: int = _setting(
        8, "How many times a webhook delivery is tried before it is marked failed."
    )
    webhook_retry_delay: float = _setting(
        30.0,
        "Seconds before the first retry of a failed webhook delivery; each next wait is 4 times"
        " longer (at most 6 hours).",
    )
    webhook_timeout: float = _setting(
        10.0, "Longest one webhook delivery attempt may take, connecting included, in seconds."
    )
    webhook_allow_http: bool = _setting(
        False, "Accept http:// webhook URLs (tests and development only); default: https only."
    )
    webhook_allow_private: bool = _setting(
        False,
        "Deliver webhooks to private, loopback and link-local addresses (tests and development"
        " only); default: public addresses only.",
    )
    failpoints: str = _setting(
        "",
        "Testing aid: points where a process pauses so a crash test can kill it there"
        " (name=pause, comma separated); never set in production.",
    )

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'metastore.db'}"

    @property
    def dataproxy_allowed_hosts_list(self) -> tuple[str, ...]:
        hosts = (h.strip().lower() for h in self.dataproxy_allowed_hosts.split(","))
        return tuple(h for h in hosts if h)

    @property
    def trusted_proxies_list(self) -> tuple[str, ...]:
        proxies = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(p for p in proxies if p)

    @property
    def cors_origins_list(self) -> tuple[str, ...]:
        # Browsers send the scheme and host in lower case, and the match is exact.
        origins = (o.strip().lower() for o in self.cors_origins.split(","))
        return tuple(o for o in origins if o)

    @property
    def resolved_datastore_url(self) -> str:
        if self.datastore_url:
            return self.datastore_url
        if self.resolved_database_url.startswith("postgresql"):
            return self.resolved_database_url
        return "duckdb"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def with_base_url(self, base_url: str) -> Settings:
        return dataclasses.replace(self, base_url=base_url.rstrip("/"))


SETTINGS_HELP: dict[str, str] = {
    f"DPHUB_{f.name.upper()}": f.metadata["help"] for f in dataclasses.fields(Settings)
}


def _convert(name: str, raw: str, kind: Any) -> Any:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(
                f"DPHUB_{name.upper()} must be a whole number, not {raw!r}."
            ) from None
    if kind in (float, "float"):
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(
                f"DPHUB_{name.upper()} must be a number, not {raw!r}."
            ) from None
    if kind in (Path, "Path"):
        return Path(raw).expanduser()
    if kind in (bool, "bool"):
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"DPHUB_{name.upper()} must be true or false, not {raw!r}.")
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment; ``overrides`` (from CLI flags) win when not ``None``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(f"DPHUB_{f.name.upper()}")
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, raw, f.type)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["data_dir"] = (
        Path(values.get("data_dir") or default_data_dir(environ)).expanduser().resolve()
    )
    if "base_url" in values:
        values["base_url"] = str(values["base_url"]).rstrip("/")
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if settings.env not in ("production", "development"):
        raise ConfigurationError("DPHUB_ENV must be 'production' or 'development'.")
    if settings.default_findability not in FINDABILITIES:
        raise ConfigurationError(
            "DPHUB_DEFAULT_FINDABILITY must be one of " + ", ".join(FINDABILITIES) + "."
        )
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ConfigurationError("DPHUB_LOG_LEVEL must be one of " + ", ".join(LOG_LEVELS) + ".")
    if settings.log_format not in ("text", "json"):
        raise ConfigurationError("DPHUB_LOG_FORMAT must be 'text' or 'json'.")
    if settings.storage_url and not settings.storage_url.startswith("s3://"):
        raise ConfigurationError("DPHUB_STORAGE_URL must look like s3://BUCKET[/PREFIX].")
    if settings.s3_addressing_style not in ("", "path", "virtual"):
        raise ConfigurationError("DPHUB_S3_ADDRESSING_STYLE must be 'path' or 'virtual'.")
    url = settings.datastore_url
    if url and url != "duckdb" and not url.startswith(("postgresql://", "postgresql+psycopg://")):
        raise ConfigurationError("DPHUB_DATASTORE_URL must be 'duckdb' or a postgresql:// URL.")
    if settings.multipart_part_size < 5 * 1024 * 1024:
        raise ConfigurationError("DPHUB_MULTIPART_PART_SIZE must be at least 5 MiB (5242880).")
    for name in (
        "multipart_threshold",
        "download_ttl",
        "token_ttl",
        "upload_ttl",
        "session_ttl",
        "max_descriptor_bytes",
        "max_upload_bytes",
        "max_body_bytes",
        "max_header_bytes",
        "upload_idle_timeout",
        "download_idle_timeout",
        "keepalive_timeout",
        "query_timeout",
        "query_max_rows",
        "job_timeout",
        "job_attempts",
        "dataproxy_max_bytes",
        "dataproxy_timeout",
        "webhook_attempts",
        "webhook_timeout",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"DPHUB_{name.upper()} must be positive.")
    for name in ("max_open_uploads", "hsts_max_age"):
        if getattr(settings, name) < 0:
            raise ConfigurationError(f"DPHUB_{name.upper()} must be 0 or more.")
    if settings.referrer_policy not in REFERRER_POLICIES:
        raise ConfigurationError(
            "DPHUB_REFERRER_POLICY must be one of " + ", ".join(REFERRER_POLICIES) + "."
        )
    if settings.gc_grace_hours < 0:
        raise ConfigurationError("DPHUB_GC_GRACE_HOURS must be 0 or more.")
    if settings.job_retry_delay < 0:
        raise ConfigurationError("DPHUB_JOB_RETRY_DELAY must be 0 or more.")
    if settings.webhook_retry_delay < 0:
        raise ConfigurationError("DPHUB_WEBHOOK_RETRY_DELAY must be 0 or more.")
    for name in ("login_ip_limit", "login_failure_limit", "exchange_ip_limit"):
        if getattr(settings, name) < 0:
            raise ConfigurationError(f"DPHUB_{name.upper()} must be 0 (no limit) or more.")
    for name in ("login_ip_window", "login_failure_window", "exchange_ip_window"):
        if not 1 <= getattr(settings, name) <= MAX_RATE_WINDOW:
            raise ConfigurationError(
                f"DPHUB_{name.upper()} must be between 1 and {MAX_RATE_WINDOW} seconds (a day)."
            )
    for proxy in settings.trusted_proxies_list:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigurationError(
                f"DPHUB_TRUSTED_PROXIES: {proxy!r} is not an IP address or network (CIDR)."
            ) from None
    for origin in settings.cors_origins_list:
        if origin != "*" and not CORS_ORIGIN.match(origin):
            raise ConfigurationError(
                f"DPHUB_CORS_ORIGINS: {origin!r} is not an origin: give scheme://host[:port] with no"
                " path or trailing slash (https://app.example.org), or * alone for any origin."
            )
    if "*" in settings.cors_origins_list and len(settings.cors_origins_list) > 1:
        raise ConfigurationError("DPHUB_CORS_ORIGINS: * allows every origin; list no others.")
    if settings.failpoints:
        from dphub.failpoints import parse

        parse(settings.failpoints)
    if settings.oidc_providers:
        from dphub.auth.providers import parse_providers

        parse_providers(
            settings.oidc_providers, allow_insecure=settings.oidc_allow_insecure_issuers
        )
    if settings.secret_key and not settings.development:
        weak = settings.secret_key.lower() in PLACEHOLDER_SECRETS
        if weak or len(settings.secret_key) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"DPHUB_SECRET_KEY looks like a placeholder: use at least {MIN_SECRET_LENGTH} random"
                " characters (python -c 'import secrets; print(secrets.token_urlsafe(48))'),"
                " or leave it unset to let the hub generate one in its data dir."
            )


def ensure_data_dir(settings: Settings) -> Settings:
    """Create the data dir and, when no secret key is configured, load or create its own."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.secret_key:
        return settings
    key_file = settings.data_dir / "secret_key"
    if not key_file.exists():
        # Written aside then linked into place: two hubs starting at once agree on one key,
        # and neither ever reads a half-written file.
        draft = settings.data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = key_file.read_text().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigurationError(f"{key_file} holds a key that is too short; delete it to renew.")
    return dataclasses.replace(settings, secret_key=key)
