"""Shared fixtures: the genuine BuildKit fixtures and their catalog, and the real registry plugin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.registry_server"]

DATA = Path(__file__).parent / "data"
BUILDKIT = DATA / "buildkit"
CATALOG: dict[str, Any] = json.loads((BUILDKIT / "catalog.json").read_text())
FIXTURES: dict[str, dict[str, Any]] = {f["name"]: f for f in CATALOG["fixtures"]}


def fixture_dir(name: str) -> Path:
    return BUILDKIT / FIXTURES[name]["dir"]


@pytest.fixture
def copy_fixture(tmp_path: Path):
    """Copy a fixture layout into tmp_path (writable) and return its path."""

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(fixture_dir(name), dest)
        for p in dest.rglob("*"):
            p.chmod(0o644 if p.is_file() else 0o755)
        return dest

    return copy
