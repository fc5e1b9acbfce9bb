"""Snapshot tests: every screen at a fixed size, compared with the SVGs in __snapshots__.

After an intended UI change: `pytest tests/tui --snapshot-update`, review the SVG diff,
then `python -m tests.tui.export_screenshots` for the README pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cachescope.tui.screens import browser
from tests.tui.scenarios import REGISTRY_HOST, SCENARIOS, Scenario, fake_repository_pages

SNAPSHOTS = [s for s in SCENARIOS if s.snapshot]


@pytest.mark.parametrize("scenario", SNAPSHOTS, ids=[s.name for s in SNAPSHOTS])
def test_screen(scenario: Scenario, snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if scenario.registry:
        # The fake catalog is for this test only: a real registry has a new port every run and,
        # shared by the session, whatever other tests pushed. The screenshots and the pilot tests
        # browse a real registry (export_screenshots, test_pilot).
        monkeypatch.setattr(browser, "iter_repository_pages", fake_repository_pages)
    assert snap_compare(scenario.app(REGISTRY_HOST), terminal_size=scenario.size, run_before=scenario.steps)
