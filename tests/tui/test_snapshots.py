"""Snapshot tests: every screen at a fixed size, compared with the SVGs in __snapshots__.

After an intended UI change: `pytest tests/tui --snapshot-update`, review the SVG diff,
then `python -m tests.tui.export_screenshots` for the README pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cachescope.tui.screens import browser
from tests.tui.scenarios import SCENARIOS, Scenario, fake_list_repositories


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_screen(scenario: Scenario, snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if scenario.fake_registry:
        monkeypatch.setattr(browser, "list_repositories", fake_list_repositories)
    assert snap_compare(scenario.app(), terminal_size=scenario.size, run_before=scenario.steps)
