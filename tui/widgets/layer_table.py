"""The cache config's layer table as a sortable DataTable, filled in chunks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rich.console import JustifyMethod
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from cachescope.core import CacheReport, LayerRow
from cachescope.tui.widgets import humanized

FIRST_CHUNK = 60
"""Rows added before the first paint: a screenful on any terminal."""
CHUNK = 250
"""Rows added per event-loop turn after that; DataTable measures every new cell on idle."""


def _sort_key(name: str) -> Callable[[LayerRow], Any]:
    keys: dict[str, Callable[[LayerRow], Any]] = {
        "index": lambda r: r.index,
        "size": lambda r: r.size if r.size is not None else -1,
        "compression": lambda r: r.compression or "",
        "media-type": lambda r: r.media_type or "",
        "created": lambda r: r.created_at.timestamp() if r.created_at else 0.0,
        "digest": lambda r: str(r.digest),
        "uncompressed": lambda r: str(r.uncompressed_digest or ""),
        "used-by": lambda r: len(r.used_by),
    }
    return keys[name]


COLUMNS: tuple[tuple[str, str], ...] = (
    ("index", "#"),
    ("digest", "Digest"),
    ("size", "Size"),
    ("compression", "Compr."),
    ("media-type", "Media type"),
    ("created", "Created"),
    ("uncompressed", "Uncompressed digest"),
    ("used-by", "Used by"),
)
SORTABLE = tuple(key for key, _ in COLUMNS)


def _cell(text: str, justify: JustifyMethod | None = None) -> Text:
    return Text(text, justify=justify, no_wrap=True, end="")  # as DataTable formats a plain string


class LayerTable(DataTable[Any]):
    """One row per layer-table entry; the row key is the entry's index."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, tooltip="Next layer", id="layers-down"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="Previous layer", id="layers-up"),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by the next column", id="layers-sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the sort order", id="layers-reverse"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.report: CacheReport | None = None
        self._layers: Sequence[LayerRow] = ()
        """The rows shown: the report's layers, or a preview's first rows (`show_preview`)."""
        self.sort_column = "index"
        self.sort_reverse = False

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @staticmethod
    def row_cells(row: LayerRow) -> tuple[int | Text, ...]:
        """Text cells, not strings: DataTable parses strings as markup, which costs time and
        would misread a `[` in a media type. The index stays an int: sorting keys on it."""
        digest = humanized.short_digest(row.digest)
        return (
            row.index,
            _cell(f"{digest} ✖ missing" if row.present is False else digest),
            _cell(humanized.size(row.size), justify="right"),
            _cell(row.compression or "?"),
            _cell(humanized.short_media_type(row.media_type)),
            _cell(humanized.age(row.created_at)),
            _cell(humanized.short_digest(row.uncompressed_digest)),
            len(row.used_by),
        )

    async def show_preview(self, rows: Sequence[LayerRow]) -> None:
        """The first rows of a cache still being read (tui/preview.py); `load` completes them."""
        self.report = None
        self.clear()
        self._layers = tuple(rows)
        for row in rows:
            self.add_row(*self.row_cells(row), key=str(row.index))
        await self._painted()

    async def load(self, report: CacheReport) -> None:
        """Show every layer; yields between chunks so the UI stays live for large caches.

        Rows a preview already shows are kept when the report agrees with them (the cursor
        and scroll position stay where the user put them); otherwise the table starts over.
        """
        rows = report.layers
        shown = len(self._layers) if self.report is None else 0
        if not shown or tuple(rows[:shown]) != tuple(self._layers):
            self.clear()
            shown = 0
        self.report, self._layers = report, rows
        first_end = shown + CHUNK if shown else FIRST_CHUNK
        for start, end in itertools.pairwise([shown, *range(first_end, len(rows), CHUNK), len(rows)]):
            for row in rows[start:end]:
                self.add_row(*self.row_cells(row), key=str(row.index))
            await self._painted()
        self.apply_sort()

    async def _painted(self) -> None:
        """Wait until the rows added so far are measured and on screen, so each chunk gets a frame.

        Waiting on a fixed sleep instead let a fast producer (a cache read before the app
        started) add every chunk before the first paint, which then measured them all.
        """
        painted = asyncio.Event()
        self.call_after_refresh(painted.set)
        with contextlib.suppress(TimeoutError):  # not on screen (another tab): carry on filling
            await asyncio.wait_for(painted.wait(), timeout=0.25)

    def selected_row(self) -> LayerRow | None:
        if not self._layers or not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or clearing table has no cursor row
            return None
        if key.value is None:
            return None
        return self._layers[int(key.value)]

    def apply_sort(self) -> None:
        if not self._layers or not self.row_count:
            return
        layers = self._layers
        key = _sort_key(self.sort_column)
        self.sort("index", key=lambda index: key(layers[index]), reverse=self.sort_reverse)
        for column_key, label in COLUMNS:
            column = self.columns[column_key]  # type: ignore[index]
            arrow = (" ▼" if self.sort_reverse else " ▲") if column_key == self.sort_column else ""
            column.label = Text(label + arrow)
        self.refresh()

    def sort_by(self, column: str) -> None:
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, column in {"size", "created", "used-by"}
        self.apply_sort()

    def action_cycle_sort(self) -> None:
        position = SORTABLE.index(self.sort_column)
        self.sort_column = SORTABLE[(position + 1) % len(SORTABLE)]
        self.sort_reverse = self.sort_column in {"size", "created", "used-by"}
        self.apply_sort()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.apply_sort()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value:
            self.sort_by(event.column_key.value)
