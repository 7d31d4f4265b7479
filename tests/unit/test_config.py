"""Settings: read once from DPHUB_* variables, checked, with embedded defaults."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dphub.config import (
    MIN_SECRET_LENGTH,
    PLACEHOLDER_SECRETS,
    Settings,
    ensure_data_dir,
    load_settings,
)
from dphub.errors import ConfigurationError

STRONG_SECRET = "s3cr3t-" + "x" * 40


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_DATA_HOME, so no test reads or writes the real one."""
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def test_defaults_with_an_empty_environment(xdg: Path) -> None:
    settings = load_settings({"XDG_DATA_HOME": str(xdg)})
    assert settings.data_dir == (xdg / "dphub").resolve()
    assert settings.data_dir.is_absolute()
    assert settings.database_url == ""
    assert settings.resolved_database_url == f"sqlite:///{settings.data_dir / 'metastore.db'}"
    assert settings.blob_dir == settings.data_dir / "blobs"
    assert settings.env == "production"
    assert not settings.development
    assert settings.default_findability == "published"
    assert settings.secret_key == ""
    assert settings.base_url == ""
    assert settings.token_ttl == 7 * 24 * 3600
    assert settings.upload_ttl == 3600
    assert settings.session_ttl == 24 * 3600
    assert settings.log_level == "info"


def test_data_dir_default_follows_the_given_environ(tmp_path: Path, xdg: Path) -> None:
    # The process environment (the xdg fixture) points elsewhere: the mapping must win.
    given = tmp_path / "given-xdg"
    settings = load_settings({"XDG_DATA_HOME": str(given)})
    assert settings.data_dir == (given / "dphub").resolve()


def test_data_dir_falls_back_to_local_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings({})
    assert settings.data_dir == (tmp_path / ".local" / "share" / "dphub").resolve()


def test_data_dir_is_expanded_and_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings({"DPHUB_DATA_DIR": "~/hub"}).data_dir == (tmp_path / "hub").resolve()
    monkeypatch.chdir(tmp_path)
    assert load_settings({"DPHUB_DATA_DIR": "rel/dir"}).data_dir == tmp_path.resolve() / "rel/dir"


def test_an_explicit_database_url_wins(xdg: Path) -> None:
    url = "postgresql://hub@db.internal/dphub"
    settings = load_settings({"DPHUB_DATABASE_URL": url})
    assert settings.resolved_database_url == url


def test_values_are_read_and_converted(tmp_path: Path, xdg: Path) -> None:
    settings = load_settings(
        {
            "DPHUB_DATA_DIR": str(tmp_path / "data"),
            "DPHUB_BASE_URL": "https://hub.example.org/",
            "DPHUB_SECRET_KEY": STRONG_SECRET,
            "DPHUB_DEFAULT_FINDABILITY": "private",
            "DPHUB_TOKEN_TTL": "60",
            "DPHUB_UPLOAD_TTL": " 120 ",
            "DPHUB_MAX_UPLOAD_BYTES": "1048576",
            "DPHUB_LOG_LEVEL": "debug",
            "NOT_DPHUB": "ignored",
        }
    )
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.base_url == "https://hub.example.org"
    assert settings.secret_key == STRONG_SECRET
    assert settings.default_findability == "private"
    assert settings.token_ttl == 60
    assert settings.upload_ttl == 120
    assert settings.max_upload_bytes == 1048576
    assert settings.log_level == "debug"


def test_empty_variables_mean_the_default(xdg: Path) -> None:
    settings = load_settings({"DPHUB_TOKEN_TTL": "", "DPHUB_ENV": ""})
    assert settings.token_ttl == 7 * 24 * 3600
    assert settings.env == "production"


def test_overrides_win_over_the_environment_unless_none(tmp_path: Path, xdg: Path) -> None:
    settings = load_settings(
        {"DPHUB_DATA_DIR": str(tmp_path / "env"), "DPHUB_BASE_URL": "http://env:1"},
        data_dir=tmp_path / "flag",
        base_url=None,
    )
    assert settings.data_dir == (tmp_path / "flag").resolve()
    assert settings.base_url == "http://env:1"
    flagged = load_settings({}, base_url="http://flag:2/")
    assert flagged.base_url == "http://flag:2"


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "ten"])
def test_a_non_integer_is_a_configuration_error(raw: str, xdg: Path) -> None:
    with pytest.raises(
        ConfigurationError, match="DPHUB_TOKEN_TTL must be a whole number"
    ) as caught:
        load_settings({"DPHUB_TOKEN_TTL": raw})
    assert caught.value.code == "configuration-error"


@pytest.mark.parametrize(
    "variable",
    ["DPHUB_TOKEN_TTL", "DPHUB_UPLOAD_TTL", "DPHUB_SESSION_TTL", "DPHUB_MAX_DESCRIPTOR_BYTES"],
)
@pytest.mark.parametrize("raw", ["0", "-5"])
def test_lifetimes_and_limits_must_be_positive(variable: str, raw: str, xdg: Path) -> None:
    with pytest.raises(ConfigurationError, match=f"{variable} must be positive"):
        load_settings({variable: raw})


@pytest.mark.parametrize("value", ["public", "Published", "hidden"])
def test_an_unknown_findability_is_refused(value: str, xdg: Path) -> None:
    with pytest.raises(ConfigurationError, match="DPHUB_DEFAULT_FINDABILITY"):
        load_settings({"DPHUB_DEFAULT_FINDABILITY": value})


@pytest.mark.parametrize("value", ["published", "unlisted", "private"])
def test_known_findabilities_are_accepted(value: str, xdg: Path) -> None:
    assert load_settings({"DPHUB_DEFAULT_FINDABILITY": value}).default_findability == value


@pytest.mark.parametrize("value", ["dev", "prod", "staging", "Development"])
def test_an_unknown_env_is_refused(value: str, xdg: Path) -> None:
    with pytest.raises(ConfigurationError, match="DPHUB_ENV"):
        load_settings({"DPHUB_ENV": value})


@pytest.mark.parametrize(
    "secret",
    [
        *sorted(PLACEHOLDER_SECRETS - {""}),
        "CHANGEME",
        "x" * (MIN_SECRET_LENGTH - 1),
    ],
)
def test_weak_secret_keys_are_refused_in_production(secret: str, xdg: Path) -> None:
    with pytest.raises(ConfigurationError, match="DPHUB_SECRET_KEY"):
        load_settings({"DPHUB_SECRET_KEY": secret})


@pytest.mark.parametrize("secret", ["changeme", "dev", "short"])
def test_weak_secret_keys_are_allowed_in_development(secret: str, xdg: Path) -> None:
    settings = load_settings({"DPHUB_SECRET_KEY": secret, "DPHUB_ENV": "development"})
    assert settings.development
    assert settings.secret_key == secret


def test_a_secret_key_of_the_minimum_length_is_accepted(xdg: Path) -> None:
    secret = "k" * MIN_SECRET_LENGTH
    assert load_settings({"DPHUB_SECRET_KEY": secret}).secret_key == secret


def test_ensure_data_dir_generates_a_private_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    settings = Settings(data_dir=data_dir)
    first = ensure_data_dir(settings)
    key_file = data_dir / "secret_key"
    assert data_dir.is_dir()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.secret_key == key_file.read_text().strip()
    assert len(first.secret_key) >= MIN_SECRET_LENGTH
    assert first.data_dir == settings.data_dir
    before = key_file.stat()

    second = ensure_data_dir(settings)
    assert second.secret_key == first.secret_key
    after = key_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_ensure_data_dir_keys_differ_between_data_dirs(tmp_path: Path) -> None:
    one = ensure_data_dir(Settings(data_dir=tmp_path / "one"))
    two = ensure_data_dir(Settings(data_dir=tmp_path / "two"))
    assert one.secret_key != two.secret_key


def test_ensure_data_dir_keeps_a_configured_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=STRONG_SECRET)
    assert ensure_data_dir(settings).secret_key == STRONG_SECRET
    assert not (tmp_path / "data" / "secret_key").exists()


def test_ensure_data_dir_refuses_a_short_key_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secret_key").write_text("short\n")
    with pytest.raises(ConfigurationError, match="too short"):
        ensure_data_dir(Settings(data_dir=data_dir))


def test_with_base_url_strips_the_trailing_slash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path).with_base_url("http://127.0.0.1:8000/")
    assert settings.base_url == "http://127.0.0.1:8000"


def test_an_unknown_log_level_is_refused(xdg: Path) -> None:
    with pytest.raises(ConfigurationError, match="DPHUB_LOG_LEVEL"):
        load_settings({"DPHUB_LOG_LEVEL": "loud"})
    assert load_settings({"DPHUB_LOG_LEVEL": "WARNING"}).log_level == "WARNING"


def test_hubs_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = load_settings({}, data_dir=tmp_path / "shared")
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: ensure_data_dir(settings).secret_key, range(16)))
    assert len(keys) == 1
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["secret_key"]
