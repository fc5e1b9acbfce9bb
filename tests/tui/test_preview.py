"""The forked reader's preview: what it carries, the child process itself, and the cache view
painting it before its own read completes it."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from benchmarks.gen_cache import generate_cache
from cachescope.core import CachescopeError, LayoutRef, analyze, read_cache
from cachescope.tui.app import CachescopeApp
from cachescope.tui.cli import CachePreload
from cachescope.tui.preview import PREVIEW_ROWS, CachePreview, header_facts, preview_of
from cachescope.tui.screens.cache import CacheScreen
from cachescope.tui.widgets.cache_header import CacheHeader
from cachescope.tui.widgets.layer_table import LayerTable
from tests.conftest import FIXTURES, fixture_dir
from tests.tui.conftest import wait_until

SIZE = (100, 30)


@pytest.fixture(scope="module")
def big_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More layers than a preview carries (generated the way the TUI benchmark does)."""
    return generate_cache(tmp_path_factory.mktemp("big") / "cache", 600, layers=150)


async def test_a_preview_is_the_header_and_the_first_rows_of_the_report(big_layout: Path) -> None:
    report = analyze(await read_cache(LayoutRef(big_layout, "latest")))
    preview = pickle.loads(pickle.dumps(preview_of(report)))  # noqa: S301 - what crosses the pipe
    assert preview.facts == header_facts(report)
    assert preview.facts.layers == len(report.layers) > PREVIEW_ROWS
    assert preview.facts.records == report.record_stats.count == 600
    assert len(preview.layers) == PREVIEW_ROWS
    assert preview.layers == report.layers[:PREVIEW_ROWS]  # equal rows: the cache view keeps them


def _run_child(script: str, *args: str) -> dict[str, object]:
    """Run `script` in a fresh interpreter, as `cachescope REF` starts: one thread, then the fork."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


FORK_SCRIPT = """
    import asyncio, json, os, sys
    from cachescope.tui.cli import start_preload
    from cachescope.tui.preview import header_facts, preview_of

    preload = start_preload(sys.argv[1], fork=True)
    forked = preload.preview is not None
    preview = asyncio.run(preload.preview.result()) if forked else None
    try:
        cache, report = asyncio.run(preload.result())
        own = preview_of(report)
        error = None
    except Exception as exc:
        own, error = None, type(exc).__name__
    try:
        os.waitpid(-1, os.WNOHANG)
        children_left = True
    except ChildProcessError:
        children_left = False
    print(json.dumps({
        "forked": forked,
        "preview": preview is not None,
        "same_as_own_read": preview == own if preview is not None else None,
        "rows": len(preview.layers) if preview is not None else 0,
        "facts": {
            "form": preview.facts.form,
            "manifest_digest": preview.facts.manifest_digest,
            "layer_count": preview.facts.layers,
            "record_count": preview.facts.records,
            "mode": preview.facts.mode,
        } if preview is not None else None,
        "error": error,
        "children_left": children_left,
    }))
"""


def test_the_forked_reader_sends_what_the_apps_own_read_finds(big_layout: Path) -> None:
    result = _run_child(FORK_SCRIPT, f"oci:{big_layout}:latest")
    assert result.pop("facts") is not None
    assert result == {
        "forked": True,
        "preview": True,
        "same_as_own_read": True,
        "rows": PREVIEW_ROWS,
        "error": None,
        "children_left": False,  # the child was reaped
    }


async def test_a_cache_the_child_cannot_read_gives_no_preview_and_the_apps_read_reports_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (broken / "index.json").write_text("{not json")
    with pytest.raises(CachescopeError) as raised:
        await read_cache(LayoutRef(broken, "latest"))
    result = _run_child(FORK_SCRIPT, f"oci:{broken}:latest")
    assert result["forked"] is True
    assert result["preview"] is False
    assert result["error"] == type(raised.value).__name__  # the app's own read, as without a preview
    assert result["children_left"] is False


def test_a_stopped_child_is_reaped_and_gives_no_preview(big_layout: Path) -> None:
    script = """
        import asyncio, json, os, sys
        from cachescope.tui.cli import start_preload

        preload = start_preload(sys.argv[1], fork=True)
        preload.close()  # at once: the child is still reading
        preview = asyncio.run(preload.preview.result())
        try:
            os.waitpid(-1, os.WNOHANG)
            children_left = True
        except ChildProcessError:
            children_left = False
        print(json.dumps({"preview": preview is not None, "children_left": children_left}))
    """
    assert _run_child(script, f"oci:{big_layout}:latest") == {"preview": False, "children_left": False}


def test_no_fork_in_a_process_with_threads_or_for_a_registry(big_layout: Path) -> None:
    from cachescope.tui.cli import start_preload

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        preload = start_preload(f"oci:{big_layout}:latest", fork=True)
        assert preload is not None
        assert preload.preview is None  # forking copies one thread of several: unsafe, so the thread read
    finally:
        stop.set()
        helper.join()
    registry = start_preload("127.0.0.1:1/some/cache:tag", fork=True)
    assert registry is not None
    assert registry.preview is None


class _HeldPreload(CachePreload):
    """A preload whose own read waits for the test, with a preview handed in as the child would send it."""

    def __init__(self, ref: LayoutRef, preview: CachePreview | None) -> None:
        self.release = threading.Event()
        self.read_started = threading.Event()
        future: Future[CachePreview | None] = Future()
        future.set_result(preview)
        self.preview_future = future
        super().__init__(ref, preview=self)  # type: ignore[arg-type] - duck-typed ForkedPreview

    def future(self) -> Future[CachePreview | None]:
        return self.preview_future

    def stop(self) -> None:
        self.release.set()

    def _run(self) -> None:
        self.read_started.set()
        self.release.wait(timeout=30)
        super()._run()


async def test_the_cache_view_paints_the_preview_then_completes_it_with_its_own_read(big_layout: Path) -> None:
    ref = LayoutRef(big_layout, "latest")
    report = analyze(await read_cache(ref))
    preload = _HeldPreload(ref, preview_of(report))
    app = CachescopeApp(f"oci:{big_layout}:latest", preload=preload)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, CacheScreen) and app.screen.facts is not None)
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        table = screen.query_one(LayerTable)
        await wait_until(pilot, preload.read_started.is_set)  # asked for once the preview was painted
        assert screen.report is None
        assert table.row_count == PREVIEW_ROWS
        header = " ".join(str(line.render()) for line in screen.query_one(CacheHeader).query(".header-line"))
        assert f"{len(report.layers)} layers" in header
        await pilot.press("down", "down")  # the user moves before the read is done
        assert table.cursor_row == 2
        preload.release.set()
        await wait_until(pilot, lambda: screen.report is not None and table.row_count == len(report.layers))
        assert table.cursor_row == 2  # the preview's rows were kept, not redrawn
        selected = table.selected_row()
        assert selected is not None
        assert selected.index == 2


async def test_a_preview_that_disagrees_with_the_read_is_replaced(big_layout: Path) -> None:
    ref = LayoutRef(big_layout, "latest")
    report = analyze(await read_cache(ref))
    stale = preview_of(report)
    stale = dataclasses.replace(stale, layers=(dataclasses.replace(stale.layers[0], size=1), *stale.layers[1:]))
    preload = _HeldPreload(ref, stale)
    preload.release.set()
    app = CachescopeApp(f"oci:{big_layout}:latest", preload=preload)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, CacheScreen) and app.screen.report is not None)
        table = app.screen.query_one(LayerTable)
        await wait_until(pilot, lambda: table.row_count == len(report.layers))
        first = table.selected_row()
        assert first is not None
        assert first.size == report.layers[0].size != 1


async def test_without_a_preview_the_cache_view_reads_at_once(big_layout: Path) -> None:
    ref = LayoutRef(big_layout, "latest")
    preload = _HeldPreload(ref, None)  # the child failed
    preload.release.set()
    app = CachescopeApp(f"oci:{big_layout}:latest", preload=preload)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, CacheScreen) and app.screen.report is not None)
        assert app.screen.query_one(LayerTable).row_count > 0


@pytest.mark.parametrize(
    ("fixture", "tag"),
    [("max-index", "latest"), ("max-image-manifest", "latest"), ("max-docker", "latest"), ("multi-tag", "feature")],
)
def test_genuine_caches_of_each_form_preview_as_the_app_reads_them(fixture: str, tag: str) -> None:
    result = _run_child(FORK_SCRIPT, f"oci:{fixture_dir(fixture)}:{tag}")
    assert result["forked"] is True
    assert result["same_as_own_read"] is True
    expected = FIXTURES[fixture]["expected"]
    expected = {**expected, **expected.get("by_tag", {}).get(tag, {})}
    facts = result["facts"]
    assert isinstance(facts, dict)
    assert facts == {key: expected[key] for key in facts}
    assert result["rows"] == expected["layer_count"]
