"""docs/settings.md lists every setting of dphub.config, and names no variable the code lacks."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dphub.config import SETTINGS_HELP, Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DOC = ROOT / "docs" / "settings.md"
SRC = ROOT / "src" / "dphub"

# Read by the CLI and the client library, not by the server's Settings.
CLIENT_VARIABLES = frozenset(
    {
        "DPHUB_CONFIG",
        "DPHUB_CACHE_DIR",
        "DPHUB_DEBUG",
        "DPHUB_SERVER",
        "DPHUB_TOKEN",
        "DPHUB_SECRET",
    }
)

ROW = re.compile(r"^\|\s*`(DPHUB_[A-Z0-9_]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|")


@pytest.fixture(scope="module")
def doc() -> str:
    return SETTINGS_DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(doc: str) -> dict[str, tuple[str, str]]:
    """Variable → (type, default) for every table row of the page."""
    found: dict[str, tuple[str, str]] = {}
    for line in doc.splitlines():
        match = ROW.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} has two rows"
            found[match.group(1)] = (match.group(2), match.group(3))
    return found


@pytest.mark.parametrize("variable", sorted(SETTINGS_HELP))
def test_every_setting_has_a_row(variable: str, rows: dict[str, tuple[str, str]]) -> None:
    assert variable in rows, f"{variable} is missing from docs/settings.md"


@pytest.mark.parametrize("setting", dataclasses.fields(Settings), ids=lambda f: f.name)
def test_rows_give_the_type_and_default_of_the_code(
    setting: dataclasses.Field[object], rows: dict[str, tuple[str, str]]
) -> None:
    kind, default = rows[f"DPHUB_{setting.name.upper()}"]
    assert kind == setting.type
    if isinstance(setting.default, int | str) and setting.default != "":
        assert f"`{setting.default}`" in default


def test_every_variable_the_page_names_exists(doc: str) -> None:
    mentioned = set(re.findall(r"\bDPHUB_[A-Z0-9_]*[A-Z0-9]", doc))
    unknown = mentioned - set(SETTINGS_HELP) - CLIENT_VARIABLES
    assert not unknown, f"docs/settings.md names variables dphub does not read: {sorted(unknown)}"


def test_client_variables_are_documented_and_really_read(doc: str) -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py"))
    for variable in sorted(CLIENT_VARIABLES):
        assert f"`{variable}`" in doc, f"{variable} is not documented"
        assert f'"{variable}"' in source, f"{variable} is documented but no code reads it"


def test_settings_and_help_are_in_step() -> None:
    fields = {f"DPHUB_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert fields == set(SETTINGS_HELP)
    assert all(text.strip() for text in SETTINGS_HELP.values())
