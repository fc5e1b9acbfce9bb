"""The cache view: header, layers, records graph, raw JSON, diagnosis and a detail pane."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Select, Static, TabbedContent, TabPane, Tree

from cachescope.core import CacheReport, LayoutRef, LoadedCache, Ref, RegistryRef, analyze, read_cache
from cachescope.tui.messages import CacheLoaded, FindingsReady
from cachescope.tui.preview import CachePreview, HeaderFacts, header_facts
from cachescope.tui.screens.base import BaseScreen, ErrorPanel
from cachescope.tui.widgets import humanized
from cachescope.tui.widgets.cache_header import CacheHeader
from cachescope.tui.widgets.detail import DetailPane
from cachescope.tui.widgets.findings import FindingsView
from cachescope.tui.widgets.json_view import JsonView
from cachescope.tui.widgets.key_bar import KeyBar
from cachescope.tui.widgets.layer_table import LayerTable
from cachescope.tui.widgets.records_tree import RecordsTree

if TYPE_CHECKING:
    from cachescope.tui.cli import CachePreload

TAB_LABELS = {
    "layers": "Layers",
    "records": "Records",
    "manifest": "Manifest",
    "config": "Config",
    "diagnose": "Diagnose",
}
TABS = tuple(TAB_LABELS)
PREVIEW_WAIT = 0.5
"""Seconds the cache view waits for a forked reader's preview before reading for itself."""


def _diagnosis() -> ModuleType:
    """The diagnose pane's module, loaded with the pane: it brings core's rules and
    operations (~35 ms of imports) that the first paint of a cache view does not need."""
    from cachescope.tui.widgets import diagnosis  # noqa: PLC0415

    return diagnosis


class DiagnosePane(Vertical):
    """The target registry chooser over the findings list."""

    def __init__(self, target: str) -> None:
        super().__init__(id="diagnose-pane")
        self.target = target

    def compose(self) -> ComposeResult:
        with Horizontal(id="target-bar"):
            yield Static("target registry", id="target-label")
            yield Select(_diagnosis().target_options(), value=self.target, allow_blank=False, id="target-select")
        yield FindingsView(id="findings")


class CacheScreen(BaseScreen):
    """One cache, read once; every pane is a view of the same CacheReport."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", tooltip="Read the cache again", id="refresh"),
        Binding(
            "y", "copy_digest", "Copy digest", tooltip="Copy the selected digest to the clipboard", id="copy-digest"
        ),
        Binding("d", "diagnose", "Diagnose", tooltip="Findings for a target registry", id="diagnose"),
        Binding("c", "operation('recompress')", "Recompress", tooltip="Plan recompressing to zstd", id="recompress"),
        Binding("e", "operation('reexport')", "Re-export", tooltip="Plan copying the cache elsewhere", id="reexport"),
        Binding("p", "operation('prune')", "Prune", show=False, tooltip="Plan deleting unreferenced blobs", id="prune"),
        Binding("t", "operation('trim')", "Trim", show=False, tooltip="Plan trimming records to fit", id="trim"),
        Binding("i", "toggle_detail", "Detail", show=False, tooltip="Show or hide the detail pane", id="toggle-detail"),
        Binding("1", "show_tab('layers')", "Layers", show=False, tooltip="Layer table", id="tab-layers"),
        Binding("2", "show_tab('records')", "Records", show=False, tooltip="Records tree", id="tab-records"),
        Binding("3", "show_tab('manifest')", "Manifest", show=False, tooltip="Manifest JSON", id="tab-manifest"),
        Binding("4", "show_tab('config')", "Config", show=False, tooltip="Cache config JSON", id="tab-config"),
        Binding("5", "show_tab('diagnose')", "Findings", show=False, tooltip="Diagnose pane", id="tab-diagnose"),
    ]

    def __init__(
        self, ref: Ref, *, tab: str = "layers", browser_below: bool = False, preload: CachePreload | None = None
    ) -> None:
        super().__init__(classes=f"-tab-{tab}")  # set now: setting it once mounted restyles the whole screen
        self.browser_below = browser_below
        self.ref = ref
        self._preload = preload
        self.initial_tab = tab
        self.cache: LoadedCache | None = None
        self.report: CacheReport | None = None
        self.facts: HeaderFacts | None = None
        """What the header shows: from the report, or from a preview until the report is read."""
        self._json_shown: set[str] = set()
        self._tree_loaded = False

    def compose(self) -> ComposeResult:
        yield CacheHeader(id="cache-header")
        yield ErrorPanel(id="error-panel")
        with Horizontal(id="cache-body"):
            with TabbedContent(id="cache-tabs", initial=self.initial_tab):
                for tab, label in TAB_LABELS.items():
                    # Only the layers pane is built up front; the others on first view (_ensure_pane),
                    # which keeps the first paint of a large cache fast.
                    with TabPane(label, id=tab):
                        if tab == "layers":
                            yield LayerTable(id="layer-table")
            yield DetailPane(id="detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = str(self.ref)
        self.query_one(CacheHeader).show_loading(str(self.ref))
        self.query_one(DetailPane).show_nothing()
        self.query_one(ErrorPanel).display = False
        self.load()

    def action_back(self) -> None:
        if self.browser_below and isinstance(self.ref, (RegistryRef, LayoutRef)):
            from cachescope.tui.screens.browser import TagsScreen  # noqa: PLC0415 - cycle

            self.app.switch_screen(TagsScreen(self.ref.with_tag(None)))
            return
        super().action_back()

    # -- loading ------------------------------------------------------------------------------

    @work(exclusive=True, group="load", exit_on_error=False)
    async def load(self) -> None:
        # No LoadingIndicator here: its animation competes for the GIL with the read and the
        # analysis of a large cache; the header says "reading…" instead.
        preload, self._preload = self._preload, None
        if preload is not None:
            # Read before Textual was imported (cli.start_preload); a failure raises here, like a read.
            cache, report = await self._take_preload(preload)
        else:
            cache = await read_cache(self.ref)
            report = await asyncio.to_thread(analyze, cache)
        self.post_message(CacheLoaded(cache, report))

    async def _take_preload(self, preload: CachePreload) -> tuple[LoadedCache, CacheReport]:
        """The preloaded cache; a forked reader's preview is painted first when it comes in time.

        The read in this process starts once the preview is on screen (both compete for the
        one interpreter lock), or after PREVIEW_WAIT if the child is slow (a very large cache),
        in which case the preview is still shown if it beats the read.
        """
        if preload.preview is None:
            return await preload.result()
        preview = asyncio.wrap_future(preload.preview.future())
        done, _ = await asyncio.wait({preview}, timeout=PREVIEW_WAIT)
        if done and (first := preview.result()) is not None:
            await self._show_preview(first)
            return await preload.result()
        result: asyncio.Future[tuple[LoadedCache, CacheReport]] = asyncio.ensure_future(preload.result())
        try:
            either: list[asyncio.Future[Any]] = [preview, result]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not result.done() and (first := preview.result()) is not None:
                await self._show_preview(first)
            return await result
        finally:
            result.cancel()  # the worker was cancelled: stop waiting (a running read finishes unseen)

    async def _show_preview(self, preview: CachePreview) -> None:
        if self.report is not None:
            return
        self.facts = preview.facts
        self.query_one(CacheHeader).show_facts(preview.facts)
        table = self.query_one(LayerTable)
        await table.show_preview(preview.layers)
        row = table.selected_row()
        if row is not None:
            self.query_one(DetailPane).show_layer(row)

    async def on_cache_loaded(self, message: CacheLoaded) -> None:
        self.cache, self.report = message.cache, message.report
        self.facts = facts = header_facts(message.report)
        self._json_shown.clear()
        self.clear_error()
        self.query_one(CacheHeader).show_facts(facts)
        self.fill(message.report)

    @work(exclusive=True, group="fill", exit_on_error=False)
    async def fill(self, report: CacheReport) -> None:
        table = self.query_one(LayerTable)
        await table.load(report)
        row = table.selected_row()
        if row is not None:
            self.query_one(DetailPane).show_layer(row)
        self._tree_loaded = False
        await self._show_tab_content(self.query_one(TabbedContent).active)

    def show_error(self, message: str) -> None:
        super().show_error(message)
        self.query_one(CacheHeader).show_failed(str(self.ref), message)

    # -- tabs -------------------------------------------------------------------------------

    @on(TabbedContent.TabActivated)
    async def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or ""
        await self._show_tab_content(tab)
        self._focus_tab(tab)

    async def _ensure_pane(self, tab: str) -> None:
        pane = self.query_one(f"TabPane#{tab}", TabPane)
        if pane.children or tab == "layers":
            return
        widget: Widget
        if tab == "records":
            widget = RecordsTree(id="records-tree")
        elif tab in {"manifest", "config"}:
            widget = JsonView(id=f"{tab}-json")
        else:
            widget = DiagnosePane(_diagnosis().detect(self.ref))
        await pane.mount(widget)

    async def _show_tab_content(self, tab: str) -> None:
        for name in TABS:
            self.set_class(name == tab, f"-tab-{name}")
        await self._ensure_pane(tab)
        if self.cache is None:
            return
        if tab in {"manifest", "config"} and tab not in self._json_shown:
            self._json_shown.add(tab)
            raw = self.cache.document.encode() if tab == "manifest" else self.cache.config.encode()
            self.show_json(tab, raw)
        elif tab == "diagnose":
            self.run_diagnose()
        elif tab == "records":
            if not self._tree_loaded and self.report is not None:
                self._tree_loaded = True
                self.load_tree(self.report)
                return
            record = self.query_one(RecordsTree).selected_record()
            if record is not None and self.report is not None:
                self.query_one(DetailPane).show_record(record, self.report)
        elif tab == "layers":
            row = self.query_one(LayerTable).selected_row()
            if row is not None:
                self.query_one(DetailPane).show_layer(row)

    @work(exclusive=True, group="tree", exit_on_error=False)
    async def load_tree(self, report: CacheReport) -> None:
        """The records tree is built the first time its tab is shown (10,000 records cost time)."""
        tree = self.query_one(RecordsTree)
        await tree.load(report)
        record = tree.selected_record()
        if record is not None and self.query_one(TabbedContent).active == "records":
            self.query_one(DetailPane).show_record(record, report)

    @work(group="json", exit_on_error=False)
    async def show_json(self, tab: str, raw: bytes) -> None:
        await self.query_one(f"#{tab}-json", JsonView).show(raw)

    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == tab:
            self._focus_tab(tab)
        tabs.active = tab

    def _focus_tab(self, tab: str) -> None:
        targets = {"layers": "#layer-table", "records": "#records-tree", "diagnose": "#findings"}
        selector = targets.get(tab)
        if selector is not None:
            for widget in self.query(selector):
                widget.focus()

    # -- selection -> detail ---------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#layer-table")
    def _layer_highlighted(self, _: DataTable.RowHighlighted) -> None:
        row = self.query_one(LayerTable).selected_row()
        if row is not None:
            self.query_one(DetailPane).show_layer(row)

    @on(DataTable.RowSelected, "#layer-table")
    def _layer_selected(self, _: DataTable.RowSelected) -> None:
        self.query_one(DetailPane).display = True

    @on(Tree.NodeHighlighted, "#records-tree")
    def _record_highlighted(self, _: Tree.NodeHighlighted[int]) -> None:
        if self.query_one(TabbedContent).active != "records":
            return
        record = self.query_one(RecordsTree).selected_record()
        if record is not None and self.report is not None:
            self.query_one(DetailPane).show_record(record, self.report)

    def action_toggle_detail(self) -> None:
        detail = self.query_one(DetailPane)
        detail.display = not detail.display

    def selected_digest(self) -> str | None:
        """What `y` copies: the highlighted layer or record, else the manifest."""
        active = self.query_one(TabbedContent).active
        if active == "layers":
            row = self.query_one(LayerTable).selected_row()
            if row is not None:
                return str(row.digest)
        if active == "records" and self.query(RecordsTree):
            record = self.query_one(RecordsTree).selected_record()
            if record is not None:
                return record.digest
        if active == "config" and self.report is not None and self.report.config_digest is not None:
            return str(self.report.config_digest)
        return str(self.report.manifest_digest) if self.report is not None else None

    def action_copy_digest(self) -> None:
        digest = self.selected_digest()
        if digest is None:
            self.notify("nothing to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(digest)
        self.notify(f"copied {humanized.short_digest(digest, 24)}", title="Clipboard")

    def action_refresh(self) -> None:
        self.query_one(CacheHeader).show_loading(str(self.ref))
        self.clear_error()
        self.load()

    # -- diagnose ---------------------------------------------------------------------------

    def action_diagnose(self) -> None:
        self.action_show_tab("diagnose")

    @on(Select.Changed, "#target-select")
    def _target_changed(self, _: Select.Changed) -> None:
        if self.query_one(TabbedContent).active == "diagnose":
            self.run_diagnose()

    @work(exclusive=True, group="diagnose", exit_on_error=False)
    async def run_diagnose(self) -> None:
        if self.report is None:
            return
        target = self.query_one("#target-select", Select).value
        target_name = target if isinstance(target, str) else ""
        findings = await asyncio.to_thread(_diagnosis().findings, self.report, target_name)
        self.post_message(FindingsReady(target_name, findings))

    async def on_findings_ready(self, message: FindingsReady) -> None:
        await self.query_one(FindingsView).show(message.findings)

    # -- operations --------------------------------------------------------------------------

    def action_operation(self, name: str) -> None:
        from cachescope.tui.screens.ops import start_operation  # noqa: PLC0415 - ops screens load on first use

        if name == "prune":
            start_operation(self, name, self.ref.with_tag(None), None)
            return
        tag = self.report.reference if self.report is not None else self.ref.tag
        start_operation(self, name, self.ref, tag)
