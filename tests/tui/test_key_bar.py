"""The footer's key bar: the focused widget's and the screen's shown keys, clickable."""

from __future__ import annotations

from textual.widgets import TabbedContent

from cachescope.tui.app import CachescopeApp
from cachescope.tui.screens.cache import CacheScreen
from cachescope.tui.widgets.key_bar import KeyBar
from tests.tui.conftest import wait_until


def _cache_view_ready(app: CachescopeApp) -> bool:
    return isinstance(app.screen, CacheScreen) and app.screen.report is not None


async def test_the_bar_follows_the_focus_and_a_click_presses_the_key() -> None:
    app = CachescopeApp(None)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: _cache_view_ready(app))
        bar = app.screen.query_one(KeyBar)
        line = bar.render().plain
        assert line.startswith(" s Sort ")  # the layer table's key first, then the screen's
        assert " d Diagnose " in line
        assert line.endswith("│ ^p palette ")
        assert len(line) == 120

        await pilot.press("2")  # the records tree takes the focus: the table's sort key goes
        await wait_until(pilot, lambda: " s Sort " not in bar.render().plain)
        assert " d Diagnose " in bar.render().plain

        x = bar.render().plain.index("Diagnose")
        await pilot.click(KeyBar, offset=(x, 0))
        tabs = app.screen.query_one(TabbedContent)
        await wait_until(pilot, lambda: tabs.active == "diagnose")


async def test_keys_that_do_not_fit_are_left_out_whole() -> None:
    app = CachescopeApp(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: _cache_view_ready(app))
        line = app.screen.query_one(KeyBar).render().plain
        assert len(line) == 80
        assert line.endswith("│ ^p palette ")
        left = line[: line.index("│")].rstrip()
        assert left.endswith("Diagnose")  # "c Recompress" would not fit: it is dropped, not cut
        assert "Recomp" not in left
