"""Regenerate screenshots/*.svg (the README's pictures) from the snapshot scenarios.

    python -m tests.tui.export_screenshots [NAME ...]

Each scenario runs headless under `run_test` in a fresh temporary directory with the
clock frozen, exactly as the snapshot tests do; no terminal or tmux is needed. The
registry scenarios browse a real registry (Debian's docker-registry on 127.0.0.1,
`tests.registry_server.run_registry`) seeded with the BuildKit fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "screenshots"
REGISTRY_PORT = 5000
"""The registry's conventional port, so the pictures read the same in every run (when it is free)."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def seeded_registry(work: Path) -> Iterator[str]:
    """A real registry with REGISTRY_CONTENT pushed; yields its host (127.0.0.1:PORT)."""
    from tests import registry_server
    from tests.tui.scenarios import seed_registry

    original = registry_server._free_port
    if _port_free(REGISTRY_PORT):
        registry_server._free_port = lambda: REGISTRY_PORT
    try:
        with registry_server.run_registry(work) as registry:
            registry_server._free_port = original
            asyncio.run(seed_registry(registry.host))
            yield registry.host
    finally:
        registry_server._free_port = original


def mask_port(svg: str, host: str) -> str:
    """Show another port than REGISTRY_PORT (it was taken) as REGISTRY_PORT, padded to the same width."""
    shown = f"127.0.0.1:{REGISTRY_PORT}"
    if host == shown:
        return svg
    return re.sub(re.escape(host), shown + "&#160;" * (len(host) - len(shown)), svg)


async def export(name: str | None = None, registry_host: str | None = None) -> list[Path]:
    from cachescope.tui.widgets import humanized
    from tests.tui.conftest import FROZEN_NOW
    from tests.tui.scenarios import SCENARIOS

    humanized.clock = lambda: FROZEN_NOW
    written: list[Path] = []
    OUT.mkdir(exist_ok=True)
    start = Path.cwd()
    for scenario in SCENARIOS:
        if name is not None and scenario.name != name:
            continue
        if scenario.registry and registry_host is None:
            continue
        with tempfile.TemporaryDirectory(prefix="cachescope-shot-") as work:
            os.chdir(work)
            os.environ["XDG_CONFIG_HOME"] = str(Path(work) / "config")
            os.environ["CACHESCOPE_CACHE_DIR"] = str(Path(work) / "user-cache")
            try:
                app = scenario.app(registry_host or "")
                async with app.run_test(size=scenario.size) as pilot:
                    await scenario.steps(pilot)
                    svg = app.export_screenshot(title=f"cachescope · {scenario.description}")
            finally:
                os.chdir(start)
        if registry_host is not None:
            svg = mask_port(svg, registry_host)
        path = OUT / f"{scenario.name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
        print(f"wrote {path.relative_to(ROOT)}")
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
                async for chunk in chunks:  # 16 KiB every 0.15 s: the big layers take seconds
                    for start in range(0, len(chunk), 16384):
                        await asyncio.sleep(0.15)
                        yield chunk[start : start + 16384]

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
                await pilot.pause(0.5)  # the big layers are part way: their bars show it
                svg = app.export_screenshot(title="cachescope · Recompress: a progress bar per layer")
    finally:
        LocalStore.open_blob = original  # type: ignore[method-assign]
        os.chdir(start)
    path = OUT / "operation-progress.svg"
    path.write_text(svg, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def main() -> None:
    from tests.tui.scenarios import SCENARIOS

    names: list[str | None] = list(sys.argv[1:]) or [None]
    registry_names = {s.name for s in SCENARIOS if s.registry}
    if any(name is None or name in registry_names for name in names):
        with (
            tempfile.TemporaryDirectory(prefix="cachescope-shot-registry-") as work,
            seeded_registry(Path(work)) as host,
        ):
            for name in names:
                asyncio.run(export(name, host))
        return
    for name in names:
        asyncio.run(export(name))


if __name__ == "__main__":
    main()
