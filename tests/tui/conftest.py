"""TUI test fixtures: an isolated config dir, a frozen clock, writable fixture layouts."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cachescope.tui.sample import SAMPLE_CACHE
from cachescope.tui.widgets import humanized
from tests.conftest import fixture_dir

if TYPE_CHECKING:
    from textual.pilot import Pilot

FROZEN_NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
"""A day after the fixtures were built: every age on screen reads the same in every run."""


@pytest.fixture(autouse=True)
def isolated_tui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recent refs and variant memos go to tmp_path; ages are computed against FROZEN_NOW."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("CACHESCOPE_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setattr(humanized, "clock", lambda: FROZEN_NOW)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Copy a fixture (or the bundled sample) to tmp_path/NAME and return `oci:NAME`, cwd = tmp_path.

    Relative references keep machine paths out of snapshots. `extra_blob` adds a blob no
    tag references (what prune reclaims).
    """
    monkeypatch.chdir(tmp_path)

    def make(source: str = "sample", name: str = "cache", *, extra_blob: bool = False) -> str:
        origin = SAMPLE_CACHE if source == "sample" else fixture_dir(source)
        dest = tmp_path / name
        shutil.copytree(origin, dest)
        for path in dest.rglob("*"):
            path.chmod(0o644 if path.is_file() else 0o755)
        if extra_blob:
            data = b"an orphaned blob left behind by an earlier export\n" * 100
            (dest / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
        return f"oci:{name}"

    return make


async def wait_until(pilot: Pilot[object], predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Pause until `predicate()` holds (workers post messages; the screen updates after)."""
    loop_time = 0.0
    while not predicate():
        if loop_time > timeout:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.05)
        loop_time += 0.05


def blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs" / "sha256").iterdir()}


def no_temp_files(root: Path) -> bool:
    from cachescope.core.stores.local import TEMP_PREFIX

    return not [p for p in root.rglob("*") if p.is_file() and p.name.startswith(TEMP_PREFIX)]


os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
