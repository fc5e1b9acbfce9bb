"""Browsers: a registry's repositories, and the tags of a repository or OCI layout directory.

Names arrive first; the columns that need the cache itself (form, media types,
compression mix, size, age, mode) are filled in the background, a few tags at a time,
and only while the screen is on top.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Input, Static

from cachescope.core import (
    CacheReport,
    CachescopeError,
    LayoutRef,
    RegistryHost,
    RegistryRef,
    TagSummary,
    analyze,
    iter_repository_pages,
    list_tags,
    read_cache,
)
from cachescope.tui import ops_bridge
from cachescope.tui.messages import ReclaimableFound, RepositoriesListed, TagDetailed, TagsListed
from cachescope.tui.screens.base import BaseScreen, ErrorPanel
from cachescope.tui.widgets import humanized
from cachescope.tui.widgets.filter_bar import FilterBar
from cachescope.tui.widgets.key_bar import KeyBar

DETAIL_CONCURRENCY = 4
CATALOG_PAGE_SIZE = 100
"""Repositories asked for per catalog request; each page is shown as it arrives."""
CATALOG_PREFETCH_ROWS = 150
"""The next catalog page is fetched while fewer rows than this lie below the cursor (or a
filter is typed, which needs every name): a registry with thousands of repositories costs
one request until the user scrolls."""

NAV_BINDINGS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False, tooltip="Next row", id="down"),
    Binding("k", "cursor_up", "Up", show=False, tooltip="Previous row", id="up"),
    Binding("slash", "filter", "Filter", key_display="/", tooltip="Filter the list as you type", id="filter"),
    Binding("r", "refresh", "Refresh", tooltip="Load the list again", id="refresh"),
]


class ListScreen(BaseScreen):
    """A filterable DataTable of named rows, loaded when the screen first comes to the top."""

    loaded = False

    def compose_list(self, title: str, columns: list[tuple[str, str]]) -> ComposeResult:
        yield Static(title, id="list-title", classes="screen-title")
        yield ErrorPanel(id="error-panel")
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True, id="list-table")
        for key, label in columns:
            table.add_column(label, key=key)
        yield table
        yield FilterBar(id="filter")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#list-table", DataTable)

    def on_mount(self) -> None:
        self.query_one(ErrorPanel).display = False
        self.table.loading = True

    def on_screen_resume(self) -> None:
        # A browser pushed underneath a cache view (`cachescope REF`) is resumed and at once
        # suspended; it loads only once the user actually comes back to it.
        self.call_after_refresh(self._resumed)

    def _resumed(self) -> None:
        if self.app.screen is not self:
            return
        if not self.loaded:
            self.loaded = True
            self.load()
        else:
            self.resume()

    def on_screen_suspend(self) -> None:
        self.workers.cancel_group(self, "details")

    def load(self) -> Any:
        """Start the (exclusive) worker that fills the list."""
        raise NotImplementedError

    def resume(self) -> None:
        """Restart background work the suspension cancelled."""

    def visible_rows(self) -> list[str]:
        raise NotImplementedError

    def row_cells(self, name: str) -> tuple[Any, ...]:
        raise NotImplementedError

    def repopulate(self) -> None:
        """Rebuild the rows for the current filter, keeping the cursor on the same name."""
        table = self.table
        current = self.selected_name()
        table.clear()
        names = self.visible_rows()
        for name in names:
            table.add_row(*self.row_cells(name), key=name)
        if current in names:
            table.move_cursor(row=names.index(current))

    def matches(self, name: str) -> bool:
        needle = self.query_one(FilterBar).value.strip().lower()
        return not needle or needle in name.lower()

    def selected_name(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or clearing table has no cursor row
            return None
        return key.value

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self.repopulate()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    def action_refresh(self) -> None:
        self.clear_error()
        self.table.loading = True
        self.load()


class RegistryScreen(ListScreen):
    """The catalog of one registry: Enter opens a repository's tags."""

    BINDINGS: ClassVar[list[BindingType]] = NAV_BINDINGS

    def __init__(self, host: RegistryHost) -> None:
        super().__init__()
        self.host = host
        self.repositories: list[str] = []
        self.complete = False
        self._more = asyncio.Event()
        """Set when the list wants the next catalog page (see CATALOG_PREFETCH_ROWS)."""

    def compose(self) -> ComposeResult:
        yield from self.compose_list(f"Registry {self.host.host} · repositories", [("name", "Repository")])
        yield KeyBar()

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = self.host.host

    @work(exclusive=True, group="load", exit_on_error=False)
    async def load(self) -> None:
        """The catalog page by page, each on screen at once; the next only when it is wanted."""
        self.complete = False
        first = True
        try:
            async with aclosing(iter_repository_pages(self.host, page_size=CATALOG_PAGE_SIZE)) as pages:
                async for names in pages:
                    self._more.clear()
                    self.post_message(RepositoriesListed(names, done=False, first=first))
                    first = False
                    await self._more.wait()  # set by the handler, the cursor or the filter
        finally:
            self.table.loading = False
        self.post_message(RepositoriesListed([], done=True, first=first))

    def _want_more(self) -> None:
        """Let the loader fetch the next page if the user is near the end or filtering."""
        if self.complete or self._more.is_set():
            return
        table = self.table
        below = table.row_count - table.cursor_row - 1
        if self.query_one(FilterBar).value.strip() or below < CATALOG_PREFETCH_ROWS:
            self._more.set()

    def on_repositories_listed(self, message: RepositoriesListed) -> None:
        self.table.loading = False  # the loader may now wait for the user to scroll
        if message.first:
            self.repositories = []
        known = set(self.repositories)
        new = sorted(name for name in set(message.names) if name not in known)
        self.complete = message.done
        if self.repositories and new and new[0] < self.repositories[-1]:
            self.repositories = sorted(known | set(new))
            self.repopulate()
        elif message.first:
            self.repositories = new
            self.repopulate()
        else:
            # The registry lists the catalog in lexical order, so a page normally extends the table.
            self.repositories += new
            for name in new:
                if self.matches(name):
                    self.table.add_row(*self.row_cells(name), key=name)
        self._show_count()
        self._want_more()

    @on(DataTable.RowHighlighted, "#list-table")
    def _cursor_moved(self) -> None:
        self._want_more()

    @on(Input.Changed, "#filter")
    def _filter_wants_everything(self) -> None:
        self._want_more()

    def _show_count(self) -> None:
        count = len(self.repositories)
        if not self.complete:
            text = f"{count}+ repositories · more as you scroll"
        elif not count:
            text = "0 repositories (the catalog is empty or not listed by this registry)"
        else:
            text = f"{count} repositor{'y' if count == 1 else 'ies'}"
        self.query_one("#list-title", Static).update(f"Registry {self.host.host} · {text}")

    def visible_rows(self) -> list[str]:
        return [name for name in self.repositories if self.matches(name)]

    def row_cells(self, name: str) -> tuple[Any, ...]:
        return (name,)

    @on(DataTable.RowSelected, "#list-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        if name:
            self.app.push_screen(TagsScreen(RegistryRef(self.host.host, name, plain_http=self.host.plain_http)))


TAG_COLUMNS = [
    ("tag", "Tag"),
    ("digest", "Digest"),
    ("form", "Form"),
    ("media", "Media"),
    ("compression", "Compression"),
    ("size", "Size"),
    ("age", "Age"),
    ("mode", "Mode"),
    ("status", "Status"),
]


class TagsScreen(ListScreen):
    """Tags of a repository or layout; for a layout also the blobs no tag references."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *NAV_BINDINGS,
        Binding("y", "copy_digest", "Copy digest", tooltip="Copy the tag's manifest digest", id="copy-digest"),
        Binding("d", "diagnose", "Diagnose", tooltip="Open the tag's findings", id="diagnose"),
        Binding("c", "operation('recompress')", "Recompress", tooltip="Plan recompressing the tag", id="recompress"),
        Binding("e", "operation('reexport')", "Re-export", tooltip="Plan copying the tag", id="reexport"),
        Binding("p", "operation('prune')", "Prune", tooltip="Plan deleting unreferenced blobs", id="prune"),
        Binding("t", "operation('trim')", "Trim", show=False, tooltip="Plan trimming the tag", id="trim"),
    ]

    def __init__(self, ref: RegistryRef | LayoutRef) -> None:
        super().__init__()
        self.ref = ref
        self.tags: dict[str, TagSummary] = {}
        self.reports: dict[str, CacheReport] = {}
        self.errors: dict[str, str] = {}
        self.unreferenced: dict[str, int] | None = None

    @property
    def is_layout(self) -> bool:
        return isinstance(self.ref, LayoutRef)

    def compose(self) -> ComposeResult:
        yield from self.compose_list(self._title(), TAG_COLUMNS)
        if self.is_layout:
            with Vertical(id="reclaim-box"):
                yield Static("unreferenced blobs: counting…", id="reclaim-title")
                table: DataTable[Any] = DataTable(cursor_type="row", id="reclaim-table")
                table.add_column("Unreferenced blob", key="digest")
                table.add_column("Size", key="size")
                yield table
        yield KeyBar()

    def _title(self) -> str:
        where = f"OCI layout {self.ref.path}" if isinstance(self.ref, LayoutRef) else f"Repository {self.ref}"
        count = f" · {len(self.tags)} tag{'s' * (len(self.tags) != 1)}" if self.tags else ""
        return where + count

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = str(self.ref)

    # -- loading ----------------------------------------------------------------------------

    @work(exclusive=True, group="load", exit_on_error=False)
    async def load(self) -> None:
        try:
            tags = await list_tags(self.ref, details=self.is_layout)
        finally:
            self.table.loading = False
        self.post_message(TagsListed(tags))
        if isinstance(self.ref, LayoutRef):
            self.find_reclaimable(self.ref)

    def on_tags_listed(self, message: TagsListed) -> None:
        self.tags = {tag.name: tag for tag in message.tags}
        self.reports.clear()
        self.errors.clear()
        self.query_one("#list-title", Static).update(self._title())
        self.repopulate()
        if not self.tags:
            self.show_error(f"{self.ref} has no tags")
        self.fill_details()

    def resume(self) -> None:
        self.fill_details()

    @work(exclusive=True, group="details", exit_on_error=False)
    async def fill_details(self) -> None:
        """Read each tag's cache (without checking blobs) for the columns, visible rows first."""
        pending = [name for name in self.visible_rows() if name not in self.reports and name not in self.errors]
        pending += [name for name in self.tags if name not in pending and name not in self.reports]
        semaphore = asyncio.Semaphore(DETAIL_CONCURRENCY)

        async def one(name: str) -> None:
            async with semaphore:
                summary = self.tags[name]
                try:
                    cache = await read_cache(self.ref.with_tag(name), check_blobs=False)
                    report = await asyncio.to_thread(analyze, cache)
                except CachescopeError as exc:
                    self.post_message(TagDetailed(name, summary, error=humanized.one_line(exc)))
                    return
                self.post_message(TagDetailed(name, summary, report=report))

        await asyncio.gather(*(one(name) for name in pending if name in self.tags))

    def on_tag_detailed(self, message: TagDetailed) -> None:
        if message.name not in self.tags:
            return
        if message.report is not None:
            self.reports[message.name] = message.report
        if message.error is not None:
            self.errors[message.name] = message.error
        table = self.table
        if message.name not in table.rows:
            return
        for (key, _), value in zip(TAG_COLUMNS, self.row_cells(message.name), strict=True):
            # Widen the column: it was sized for the "…" placeholders the row started with.
            table.update_cell(message.name, key, value, update_width=True)

    def visible_rows(self) -> list[str]:
        return [name for name in self.tags if self.matches(name)]

    def row_cells(self, name: str) -> tuple[Any, ...]:
        summary = self.tags[name]
        report = self.reports.get(name)
        error = self.errors.get(name) or summary.error
        if report is None:
            size = humanized.size(summary.size) if summary.size else "…"
            return (
                name,
                humanized.digest_id(summary.digest),
                summary.form or "…",
                # The family, as the report will say it: the column keeps its width (DataTable
                # widens columns but never narrows them, so a longer placeholder would stay).
                humanized.media_family(summary.media_type),
                "…",
                Text(size, justify="right"),
                "…",
                "…",
                Text("✖ " + error) if error else "…",
            )
        mix = ", ".join(f"{share.compression} {share.layers}" for share in report.compression_mix)
        worst = report.worst_severity
        status = {"error": "✖ errors", "warning": "▲ warnings", "info": "ok"}.get(worst or "", "ok")
        newest = humanized.newest([layer.created_at for layer in report.layers])
        return (
            name,
            humanized.digest_id(report.manifest_digest),
            report.form,
            "OCI" if report.mediatypes == "oci" else "Docker",
            mix or "\N{EN DASH}",
            Text(humanized.size(report.compressed_size), justify="right"),
            humanized.compact_age(newest),
            report.mode.value,
            status,
        )

    # -- reclaimable (layouts) ---------------------------------------------------------------------

    @work(exclusive=True, group="reclaim", exit_on_error=False)
    async def find_reclaimable(self, ref: LayoutRef) -> None:
        blobs = await ops_bridge.reclaimable_blobs(ref)
        self.post_message(ReclaimableFound(blobs))

    def on_reclaimable_found(self, message: ReclaimableFound) -> None:
        self.unreferenced = message.blobs
        total = sum(message.blobs.values())
        title = self.query_one("#reclaim-title", Static)
        if not message.blobs:
            title.update("✔ no unreferenced blobs: nothing to reclaim")
            title.set_class(False, "-reclaimable")
        else:
            title.update(
                Content.from_markup(
                    "[b]$count unreferenced blob(s)[/b] · [b]$size reclaimable[/b] · p plans a prune",
                    count=str(len(message.blobs)),
                    size=humanized.size(total),
                )
            )
            title.set_class(True, "-reclaimable")
        table = self.query_one("#reclaim-table", DataTable)
        table.clear()
        for digest, size in sorted(message.blobs.items(), key=lambda item: -item[1]):
            table.add_row(digest, Text(humanized.size(size), justify="right"), key=digest)
        table.display = bool(message.blobs)

    # -- actions -----------------------------------------------------------------------------

    def selected_ref(self) -> RegistryRef | LayoutRef | None:
        name = self.selected_name()
        return self.ref.with_tag(name) if name else None

    @on(DataTable.RowSelected, "#list-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        from cachescope.tui.screens.cache import CacheScreen  # noqa: PLC0415 - cycle

        name = event.row_key.value
        if name:
            self.app.push_screen(CacheScreen(self.ref.with_tag(name)))

    def action_diagnose(self) -> None:
        from cachescope.tui.screens.cache import CacheScreen  # noqa: PLC0415 - cycle

        ref = self.selected_ref()
        if ref is not None:
            self.app.push_screen(CacheScreen(ref, tab="diagnose"))

    def action_copy_digest(self) -> None:
        name = self.selected_name()
        summary = self.tags.get(name or "")
        report = self.reports.get(name or "")
        digest = report.manifest_digest if report else (summary.digest if summary else None)
        if digest is None:
            self.notify("no digest known for this tag yet", severity="warning")
            return
        self.app.copy_to_clipboard(str(digest))
        self.notify(f"copied {humanized.short_digest(digest, 24)}", title="Clipboard")

    def action_operation(self, name: str) -> None:
        from cachescope.tui.screens.ops import start_operation  # noqa: PLC0415 - ops screens load on first use

        if name == "prune":
            start_operation(self, name, self.ref.with_tag(None), None)
            return
        tag = self.selected_name()
        if tag is None:
            self.notify("select a tag first", severity="warning")
            return
        start_operation(self, name, self.ref, tag)
