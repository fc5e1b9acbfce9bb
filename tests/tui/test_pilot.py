"""Pilot tests: drive the app the way a user does and check what it shows and what it changed."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Tree

from cachescope.core import LayoutRef, RegistryRef, open_store, read_cache
from cachescope.core.stores.local import LocalStore
from cachescope.tui import recent
from cachescope.tui.app import CachescopeApp
from cachescope.tui.modals.confirm_plan import ConfirmPlan
from cachescope.tui.modals.help import HelpScreen
from cachescope.tui.screens.base import ErrorPanel
from cachescope.tui.screens.browser import RegistryScreen, TagsScreen
from cachescope.tui.screens.cache import CacheScreen
from cachescope.tui.screens.open import OpenScreen
from cachescope.tui.screens.ops import OperationScreen
from cachescope.tui.widgets.findings import FindingItem
from cachescope.tui.widgets.layer_table import LayerTable
from cachescope.tui.widgets.records_tree import RecordsTree
from tests.conftest import fixture_dir
from tests.registry_server import RunningRegistry, push_layout
from tests.tui.conftest import blob_files, no_temp_files, wait_until

SIZE = (100, 30)


def _errors(app: CachescopeApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


def _cache_loaded(app: CachescopeApp) -> Callable[[], bool]:
    return lambda: (
        isinstance(app.screen, CacheScreen)
        and app.screen.report is not None
        and (app.screen.query_one(LayerTable).row_count > 0)
    )


async def _open_operation(app: CachescopeApp, pilot: Any, key: str) -> OperationScreen:
    """From the cache view once it has loaded: press an operation's key, return its screen."""
    await wait_until(pilot, _cache_loaded(app))
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen))
    op_screen = app.screen
    assert isinstance(op_screen, OperationScreen)
    return op_screen


async def _recompress_and_confirm(app: CachescopeApp, pilot: Any) -> OperationScreen:
    """From the cache view: `c`, wait for the plan, `a`, confirm with `y`."""
    await wait_until(pilot, _cache_loaded(app))
    await pilot.press("c")
    await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen) and app.screen.state == "planned")
    op_screen = app.screen
    assert isinstance(op_screen, OperationScreen)
    await pilot.press("a")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmPlan))
    await pilot.press("y")
    return op_screen


async def test_no_argument_opens_the_bundled_sample_in_the_cache_view() -> None:
    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        assert screen.report is not None
        assert screen.query_one(LayerTable).row_count == len(screen.report.layers) == 9
        assert [type(s).__name__ for s in app.screen_stack] == ["LaunchScreen", "CacheScreen"]
        await pilot.press("y")
        assert app.clipboard.startswith("sha256:")
        await pilot.press("escape")  # back to the tags of the layout the cache lives in
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and bool(app.screen.tags))
        assert list(app.screen.tags) == ["latest"]
        await pilot.press("escape")
        assert isinstance(app.screen, OpenScreen)


async def test_registry_browse_tag_cache_records_diagnose(registry: RunningRegistry) -> None:
    repo = "tui/browse-multi-tag"
    for tag in ("main", "feature"):
        async with open_store(RegistryRef(registry.host, repo, tag, plain_http=True)) as store:
            await push_layout(fixture_dir("multi-tag"), store, tag)
    app = CachescopeApp(registry.host, plain_http=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RegistryScreen) and repo in app.screen.repositories)
        await pilot.press("slash", *"browse-multi", "enter")
        table = app.screen.query_one("#list-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and len(app.screen.tags) == 2)
        tags_screen = app.screen
        assert isinstance(tags_screen, TagsScreen)
        # Columns fill in the background: form and mode come from each tag's cache.
        await wait_until(pilot, lambda: len(tags_screen.reports) == 2)
        assert {r.form for r in tags_screen.reports.values()} == {"image-manifest"}
        await pilot.press("enter")
        await wait_until(pilot, _cache_loaded(app))
        cache_screen = app.screen
        assert isinstance(cache_screen, CacheScreen)
        assert cache_screen.report is not None
        assert cache_screen.report.store_kind == "registry"
        await pilot.press("2")
        tree = cache_screen.query_one(RecordsTree)
        await wait_until(pilot, lambda: bool(tree.root.children))
        node = tree.root.children[0]
        assert not node.children  # lazily expanded
        await pilot.press("l")
        await wait_until(pilot, lambda: bool(node.children))
        await pilot.press("d")
        await wait_until(pilot, lambda: bool(cache_screen.query(FindingItem)))
        codes = [item.finding.code for item in cache_screen.query(FindingItem)]
        assert "CS-TARGET-UNDETECTED" in codes  # a loopback registry is not a known product
        assert not _errors(app)


async def test_local_dir_prune_plan_confirm_result(layout: Callable[..., str], tmp_path: Path) -> None:
    ref = layout("multi-tag", extra_blob=True)
    root = tmp_path / "cache"
    before = blob_files(root)
    app = CachescopeApp(ref)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and app.screen.unreferenced is not None)
        tags_screen = app.screen
        assert isinstance(tags_screen, TagsScreen)
        assert tags_screen.unreferenced is not None
        assert len(tags_screen.unreferenced) == 1
        orphan = next(iter(tags_screen.unreferenced)).removeprefix("sha256:")
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen) and app.screen.state == "planned")
        op_screen = app.screen
        assert isinstance(op_screen, OperationScreen)
        assert op_screen.planned is not None
        assert [s.action for s in op_screen.planned.steps] == ["delete-blob"]
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmPlan))
        await pilot.press("y")
        await wait_until(pilot, lambda: op_screen.state == "finished")
        assert blob_files(root) == before - {orphan}
        await pilot.press("escape")
        assert app.screen is tags_screen
        await wait_until(pilot, lambda: tags_screen.unreferenced == {})
    for tag in ("main", "feature"):
        await read_cache(LayoutRef(root, tag))  # every tag still reads, every blob verified


async def test_declining_the_confirmation_changes_nothing(layout: Callable[..., str], tmp_path: Path) -> None:
    ref = layout("multi-tag", extra_blob=True)
    before = blob_files(tmp_path / "cache")
    app = CachescopeApp(ref)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and app.screen.unreferenced is not None)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen) and app.screen.state == "planned")
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmPlan))
        await pilot.press("n")
        assert isinstance(app.screen, OperationScreen)
        assert app.screen.state == "planned"
    assert blob_files(tmp_path / "cache") == before


@pytest.fixture
def slow_blob_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blob reads from a layout never finish, so an operation is surely still running when cancelled.

    (A sleep per chunk raced on a loaded machine: small layers were all read before the test
    looked.) Reading only the first chunk would also do; blocking before it is simplest.
    """
    original = LocalStore.open_blob

    @asynccontextmanager
    async def slow_open_blob(self: LocalStore, desc: Any, *, offset: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        async with original(self, desc, offset=offset) as chunks:

            async def slow() -> AsyncIterator[bytes]:
                await asyncio.Event().wait()  # until the operation is cancelled
                async for chunk in chunks:
                    yield chunk

            yield slow()

    monkeypatch.setattr(LocalStore, "open_blob", slow_open_blob)


@pytest.mark.usefixtures("slow_blob_reads")
async def test_cancelling_a_recompress_midway_leaves_the_source_intact(
    layout: Callable[..., str], tmp_path: Path
) -> None:
    ref = layout("max-default")
    root = tmp_path / "cache"
    index_before = (root / "index.json").read_bytes()
    app = CachescopeApp(f"{ref}:latest")
    async with app.run_test(size=SIZE) as pilot:
        op_screen = await _recompress_and_confirm(app, pilot)
        await wait_until(pilot, lambda: op_screen.state == "running")
        await pilot.pause(0.3)
        assert op_screen.state == "running"
        await pilot.press("escape")
        await wait_until(pilot, lambda: op_screen.state == "finished")
        assert "cancelled" in str(op_screen.query_one("#op-result").render())
        await app.workers.wait_for_complete()
    assert (root / "index.json").read_bytes() == index_before
    assert no_temp_files(root)
    cache = await read_cache(LayoutRef(root, "latest"))
    assert {str(d) for d in cache.layer_descriptors}  # the old layers are all still there and verify


async def test_a_bad_reference_is_an_error_not_a_crash() -> None:
    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        await pilot.press("o")
        assert isinstance(app.screen, OpenScreen)
        field = app.screen.query_one("#ref-input", Input)
        assert field.has_focus
        await pilot.press(*"HTTP://bad ref::")
        hint = str(app.screen.query_one("#ref-hint").render())
        assert hint.startswith("✖")
        await pilot.press("enter")
        assert isinstance(app.screen, OpenScreen)
        assert _errors(app)
    assert app.return_code in (None, 0)


async def test_a_missing_layout_shows_the_error_panel(tmp_path: Path) -> None:
    app = CachescopeApp(f"oci:{tmp_path / 'nowhere'}:latest")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(_errors(app)))
        assert isinstance(app.screen, (CacheScreen, TagsScreen))
        assert app.screen.query_one(ErrorPanel).display


async def test_an_unreachable_registry_shows_an_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = CachescopeApp(f"127.0.0.1:{port}", plain_http=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(_errors(app)), timeout=30)
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        panel = screen.query_one(ErrorPanel)
        assert panel.display
        assert "Traceback" not in str(panel.render())
        await pilot.press("r")  # retry fails the same way, still no crash
        await wait_until(pilot, lambda: len(_errors(app)) >= 2, timeout=30)


async def test_recent_references_are_remembered_in_the_config_dir(layout: Callable[..., str], tmp_path: Path) -> None:
    ref = layout("max-default")
    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        await pilot.press("o", *ref, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen))
    saved = json.loads((tmp_path / "config" / "cachescope" / "recent.json").read_text())
    assert saved["recent"] == [ref]
    assert recent.load_recent() == [ref]


async def test_help_lists_the_screen_bindings_and_the_palette_every_action() -> None:
    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = {str(row[0]) for row in app.screen.rows()}
        for key in ("y", "d", "c", "e", "p", "r", "?"):
            assert key in keys
        await pilot.press("escape")
        assert isinstance(app.screen, CacheScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        from cachescope.tui.commands import ScreenCommands

        provider = ScreenCommands(app.screen)
        titles = {title for title, _, _ in provider._commands()}
        assert {"Diagnose", "Recompress", "Re-export", "Prune", "Trim", "Copy digest", "Refresh"} <= titles


async def test_the_layer_table_sorts_by_size() -> None:
    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        table = app.screen.query_one(LayerTable)
        table.sort_by("size")
        sizes = [table.report.layers[int(str(key.value))].size for key in table.rows] if table.report else []
        assert table.report is not None
        ordered = [
            table.report.layers[int(str(table.coordinate_to_cell_key((i, 0)).row_key.value))].size
            for i in range(table.row_count)
        ]
        assert ordered == sorted((s or 0 for s in sizes), reverse=True)


@pytest.mark.slow
async def test_a_10000_record_cache_opens_and_fills_incrementally(tmp_path: Path) -> None:
    from benchmarks.gen_cache import generate_cache

    generate_cache(tmp_path / "big", 10_000)
    app = CachescopeApp(f"oci:{tmp_path / 'big'}:latest")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app), timeout=60)
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        assert screen.report is not None
        assert screen.report.record_stats.count == 10_000
        await app.workers.wait_for_complete()
        assert screen.query_one(LayerTable).row_count == len(screen.report.layers)
        await pilot.press("2")
        tree = screen.query_one(Tree)
        await wait_until(pilot, lambda: bool(tree.root.children))
        await pilot.press("end", "j", "k")


async def test_reexport_to_another_directory(layout: Callable[..., str], tmp_path: Path) -> None:
    ref = layout("max-index")
    app = CachescopeApp(f"{ref}:latest")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen) and app.screen.state == "planned")
        op_screen = app.screen
        assert isinstance(op_screen, OperationScreen)
        destination = op_screen.query_one("#op-destination", Input)
        assert destination.value == "oci:cache:latest-copy"
        destination.value = "oci:copy:converted"
        destination.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: op_screen.state == "planned" and op_screen.planned is not None)
        assert op_screen.planned is not None
        assert op_screen.planned.target == "oci:copy:converted"
        assert not op_screen.planned.needs_confirmation  # a new tag in a new directory
        await pilot.press("a")
        await wait_until(pilot, lambda: op_screen.state == "finished")
        assert "finished" in str(op_screen.query_one("#op-result").render())
    copy = await read_cache(LayoutRef(tmp_path / "copy", "converted"))
    assert copy.form == "image-manifest"


async def test_trim_asks_for_a_size_before_planning(layout: Callable[..., str]) -> None:
    ref = layout("max-default")
    app = CachescopeApp(f"{ref}:latest")
    async with app.run_test(size=SIZE) as pilot:
        op_screen = await _open_operation(app, pilot, "t")
        assert op_screen.planned is None
        assert op_screen.query_one("#op-max-size", Input).has_focus
        await pilot.press(*"200KiB", "enter")
        await wait_until(pilot, lambda: op_screen.state == "planned")
        assert op_screen.planned is not None
        assert op_screen.planned.needs_confirmation  # trimming in place moves the tag
        await pilot.press("escape")
        assert isinstance(app.screen, CacheScreen)


async def test_diagnose_from_the_tags_list_opens_the_findings(layout: Callable[..., str]) -> None:
    ref = layout("multi-tag")
    app = CachescopeApp(ref)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and bool(app.screen.tags))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, CacheScreen) and bool(app.screen.query(FindingItem)))
        assert app.screen.query_one("#cache-tabs").active == "diagnose"


async def test_the_bundled_sample_is_never_changed() -> None:
    from cachescope.tui.sample import SAMPLE_CACHE

    index_before = (SAMPLE_CACHE / "index.json").read_bytes()
    blobs_before = blob_files(SAMPLE_CACHE)
    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        op_screen = await _recompress_and_confirm(app, pilot)
        await wait_until(pilot, lambda: op_screen.state == "finished")
        assert "read-only" in str(op_screen.query_one(ErrorPanel).render())
    assert (SAMPLE_CACHE / "index.json").read_bytes() == index_before
    assert blob_files(SAMPLE_CACHE) == blobs_before


async def test_the_registry_catalog_arrives_page_by_page_and_filters(
    registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cachescope.tui.messages import RepositoriesListed
    from cachescope.tui.screens import browser

    repos = [f"tui/paged-{n}" for n in range(5)]
    for repo in repos:
        async with open_store(RegistryRef(registry.host, repo, "latest", plain_http=True)) as store:
            await push_layout(fixture_dir("min-default"), store, "latest")
    monkeypatch.setattr(browser, "CATALOG_PAGE_SIZE", 2)  # more repositories than one page
    seen: list[Any] = []
    app = CachescopeApp(registry.host, plain_http=True)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RegistryScreen) and app.screen.complete)
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        pages = [m for m in seen if isinstance(m, RepositoriesListed) and m.names]
        assert len(pages) >= 3
        assert all(len(m.names) <= 2 for m in pages)
        assert set(repos) <= set(screen.repositories)
        assert screen.repositories == sorted(screen.repositories)
        table = screen.query_one("#list-table", DataTable)
        assert table.row_count == len(screen.repositories)
        await pilot.press("slash", *"paged-3", "enter")
        await wait_until(pilot, lambda: table.row_count == 1)
        await pilot.press("r")  # a reload keeps the filter while the pages come in again
        await wait_until(pilot, lambda: screen.complete and table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and list(app.screen.tags) == ["latest"])
        assert not _errors(app)


async def test_the_catalog_fetches_the_next_page_only_when_it_is_wanted(
    registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cachescope.tui.messages import RepositoriesListed
    from cachescope.tui.screens import browser

    for n in range(8):
        async with open_store(RegistryRef(registry.host, f"tui/lazy-{n}", "latest", plain_http=True)) as store:
            await push_layout(fixture_dir("min-default"), store, "latest")
    monkeypatch.setattr(browser, "CATALOG_PAGE_SIZE", 2)
    monkeypatch.setattr(browser, "CATALOG_PREFETCH_ROWS", 3)
    seen: list[Any] = []
    app = CachescopeApp(registry.host, plain_http=True)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:

        def pages() -> int:
            # (the hook sees a message again as it bubbles up to the app)
            return len({id(m) for m in seen if isinstance(m, RepositoriesListed) and m.names})

        await wait_until(pilot, lambda: isinstance(app.screen, RegistryScreen) and pages() == 2)
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        await pilot.pause(0.3)
        # Two pages give 4 rows, 3 below the cursor: enough, so the loader waits.
        assert pages() == 2
        assert not screen.complete
        assert not screen.table.loading  # a paused catalog shows its rows, not a spinner
        assert "more as you scroll" in str(screen.query_one("#list-title").render())
        screen.table.focus()
        await pilot.press("j", "j")  # 1 row left below the cursor: the next page comes
        await wait_until(pilot, lambda: pages() == 3)
        assert len(screen.repositories) == 6
        await pilot.press("slash", *"lazy-7")  # a filter needs every name
        await wait_until(pilot, lambda: screen.complete)
        assert screen.table.row_count == 1
        assert not _errors(app)


async def test_a_preloaded_cache_opens_without_reading_it_again(
    layout: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cachescope.tui.cli import start_preload
    from cachescope.tui.screens import cache as cache_module

    ref = layout("max-default") + ":latest"
    preload = start_preload(ref)  # what `cachescope REF` starts before importing the app
    assert preload is not None

    async def read_again(*_: object, **__: object) -> None:
        raise AssertionError("the cache view read the preloaded cache again")

    monkeypatch.setattr(cache_module, "read_cache", read_again)
    app = CachescopeApp(ref, preload=preload)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        assert screen.report is not None
        assert screen.query_one(LayerTable).row_count == len(screen.report.layers)
        assert not _errors(app)


async def test_a_failed_preload_shows_the_error_panel(tmp_path: Path) -> None:
    from cachescope.tui.cli import start_preload

    ref = f"oci:{tmp_path / 'nowhere'}:latest"
    app = CachescopeApp(ref, preload=start_preload(ref))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(_errors(app)))
        assert isinstance(app.screen, CacheScreen)
        assert app.screen.query_one(ErrorPanel).display


def test_only_a_named_cache_is_preloaded() -> None:
    from cachescope.tui.cli import start_preload

    assert start_preload("127.0.0.1:5000") is None  # the registry browser
    assert start_preload("oci:somewhere") is None  # a layout's tags
    assert start_preload("HTTP://bad ref::") is None  # the app reports it
    preload = start_preload(None)  # the bundled sample
    assert preload is not None
    assert isinstance(preload.ref, LayoutRef)


async def test_registry_prune_asks_which_tags_then_deletes_only_those(registry: RunningRegistry) -> None:
    repo = "tui/prune-registry"
    for tag in ("main", "feature"):
        async with open_store(RegistryRef(registry.host, repo, tag, plain_http=True)) as store:
            await push_layout(fixture_dir("multi-tag"), store, tag)
    app = CachescopeApp(f"{registry.host}/{repo}", plain_http=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and len(app.screen.tags) == 2)
        tags_screen = app.screen
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen) and app.screen.state == "finished")
        op_screen = app.screen
        assert isinstance(op_screen, OperationScreen)
        assert op_screen.planned is None  # nothing is planned until the user says which tags go
        assert op_screen.query_one("#op-keep", Input).has_focus
        await pilot.press("tab", "tab", *"feat*", "enter")  # the tags glob
        await wait_until(pilot, lambda: op_screen.state == "planned")
        assert op_screen.planned is not None
        assert [(s.action, s.detail.split(":")[0]) for s in op_screen.planned.steps] == [
            ("delete-manifest", "tag feature")
        ]
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmPlan))
        await pilot.press("y")
        await wait_until(pilot, lambda: op_screen.state == "finished")
        assert not _errors(app)
        await pilot.press("escape")
        assert app.screen is tags_screen
        await wait_until(pilot, lambda: list(tags_screen.tags) == ["main"])
    async with open_store(RegistryRef(registry.host, repo, plain_http=True)) as store:
        assert await store.list_tags() == ["main"]
    await read_cache(RegistryRef(registry.host, repo, "main", plain_http=True))  # the kept tag still verifies


async def test_trim_by_age_and_a_bad_age_is_an_error_not_a_crash(layout: Callable[..., str]) -> None:
    ref = layout("max-default")
    app = CachescopeApp(f"{ref}:latest")
    async with app.run_test(size=SIZE) as pilot:
        op_screen = await _open_operation(app, pilot, "t")
        await pilot.press("tab", *"soon", "enter")
        await wait_until(pilot, lambda: op_screen.state == "finished" and op_screen.query_one(ErrorPanel).display)
        assert op_screen.planned is None
        newer = op_screen.query_one("#op-keep-newer-than", Input)
        newer.value = ""
        newer.focus()
        await pilot.press(*"36500d", "enter")  # every layer is younger than a century: nothing to drop
        await wait_until(pilot, lambda: op_screen.state == "planned")
        assert op_screen.planned is not None
        assert op_screen.request.keep_newer_than == "36500d"
        assert op_screen.planned.is_empty


async def test_layout_prune_can_drop_tags_it_is_told_not_to_keep(layout: Callable[..., str], tmp_path: Path) -> None:
    ref = layout("multi-tag")
    app = CachescopeApp(ref)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TagsScreen) and app.screen.unreferenced is not None)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, OperationScreen) and app.screen.state == "planned")
        op_screen = app.screen
        assert isinstance(op_screen, OperationScreen)
        assert op_screen.planned is not None
        assert op_screen.planned.is_empty  # no orphans, no tag criteria: nothing to do
        keep = op_screen.query_one("#op-tags", Input)
        keep.focus()
        await pilot.press(*"main", "enter")
        await wait_until(pilot, lambda: op_screen.state == "planned" and op_screen.request.tags == "main")
        planned = op_screen.planned
        assert planned is not None
        assert [s.subject for s in planned.steps if s.action == "delete-tag"] == ["feature"]
        keep.value = ""
        older = op_screen.query_one("#op-older-than", Input)
        older.focus()
        await pilot.press(*"36500d", "enter")  # no tag is a century old: none goes
        await wait_until(pilot, lambda: op_screen.state == "planned" and op_screen.request.older_than == "36500d")
        assert op_screen.planned is not None
        assert op_screen.planned.is_empty
    assert {
        e["annotations"]["org.opencontainers.image.ref.name"]
        for e in json.loads((tmp_path / "cache" / "index.json").read_text())["manifests"]
    } == {"main", "feature"}  # only planned


def test_plan_subjects_keep_their_tag_when_shortened() -> None:
    from cachescope.tui.screens.ops import SUBJECT_WIDTH, _short_subject

    long_ref = "registry.example.com:5000/team/a-rather-long-repository-name:feature-branch"
    short = _short_subject(long_ref)
    assert len(short) == SUBJECT_WIDTH
    assert short.endswith(":feature-branch")
    assert _short_subject("oci:cache:main") == "oci:cache:main"
    assert _short_subject("sha256:" + "ab" * 32) == "sha256:" + "ab" * 8


async def test_the_open_screen_is_built_only_when_reached_and_leaving_it_quits() -> None:
    from cachescope.tui.app import LaunchScreen

    app = CachescopeApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, _cache_loaded(app))
        assert not any(isinstance(s, OpenScreen) for s in app.screen_stack)  # nothing built underneath
        assert isinstance(app.screen_stack[0], LaunchScreen)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, OpenScreen))
        assert [type(s).__name__ for s in app.screen_stack] == ["LaunchScreen", "OpenScreen"]
        assert app.screen.query_one("#ref-input", Input).has_focus
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.is_running)
