"""Regenerate screenshots/*.svg (the README's pictures) from the snapshot scenarios.

    python -m tests.tui.export_screenshots [NAME ...]

Each scenario runs headless under `run_test` in a fresh temporary directory with the
clock frozen, exactly as the snapshot tests do; no terminal or tmux is needed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "screenshots"


async def export(name: str | None = None) -> list[Path]:
    from cachescope.tui.screens import browser
    from cachescope.tui.widgets import humanized
    from tests.tui.conftest import FROZEN_NOW
    from tests.tui.scenarios import SCENARIOS, fake_list_repositories

    humanized.clock = lambda: FROZEN_NOW
    written: list[Path] = []
    OUT.mkdir(exist_ok=True)
    original_list = browser.list_repositories
    start = Path.cwd()
    for scenario in SCENARIOS:
        if name is not None and scenario.name != name:
            continue
        with tempfile.TemporaryDirectory(prefix="cachescope-shot-") as work:
            os.chdir(work)
            os.environ["XDG_CONFIG_HOME"] = str(Path(work) / "config")
            os.environ["CACHESCOPE_CACHE_DIR"] = str(Path(work) / "user-cache")
            browser.list_repositories = fake_list_repositories if scenario.fake_registry else original_list  # type: ignore[assignment]
            try:
                app = scenario.app()
                async with app.run_test(size=scenario.size) as pilot:
                    await scenario.steps(pilot)
                    svg = app.export_screenshot(title=f"cachescope · {scenario.description}")
            finally:
                os.chdir(start)
        path = OUT / f"{scenario.name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
        print(f"wrote {path.relative_to(ROOT)}")
    browser.list_repositories = original_list
    if name in (None, "operation-progress"):
        written.append(await export_progress())
    return written


async def export_progress() -> Path:
    """A recompress caught mid-run (reads slowed down so there is something to see)."""
    from contextlib import asynccontextmanager

    from cachescope.core.stores.local import LocalStore
    from tests.tui.scenarios import cache_ready, copy_layout, op_state, until

    original = LocalStore.open_blob

    @asynccontextmanager
    async def slow_open_blob(self: LocalStore, desc: object, *, offset: int = 0):  # type: ignore[no-untyped-def]
        async with original(self, desc, offset=offset) as chunks:  # type: ignore[arg-type]

            async def slow():  # type: ignore[no-untyped-def]
                async for chunk in chunks:
                    await asyncio.sleep(0.4)
                    yield chunk

            yield slow()

    start = Path.cwd()
    LocalStore.open_blob = slow_open_blob  # type: ignore[assignment,method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="cachescope-shot-") as work:
            os.chdir(work)
            from cachescope.tui.app import CachescopeApp

            app = CachescopeApp(copy_layout("max-default", "cache") + ":latest")
            async with app.run_test(size=(100, 30)) as pilot:
                await cache_ready(pilot)
                await pilot.press("c")
                await op_state(pilot, "planned")
                await pilot.press("a")
                await until(pilot, lambda: type(app.screen).__name__ == "ConfirmPlan")
                await pilot.press("y")
                await until(pilot, lambda: len(app.screen.query(".layer-bar.-created")) >= 2, timeout=30)
                svg = app.export_screenshot(title="cachescope · Recompress: a progress bar per layer")
    finally:
        LocalStore.open_blob = original  # type: ignore[method-assign]
        os.chdir(start)
    path = OUT / "operation-progress.svg"
    path.write_text(svg, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def main() -> None:
    names = sys.argv[1:] or [None]
    for name in names:
        asyncio.run(export(name))


if __name__ == "__main__":
    main()
