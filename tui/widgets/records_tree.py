"""The build graph as a tree: final results at the top, each expanding to the records it was built from.

Children are created only when a node is expanded, and the top level is added in
chunks, so a config with 10,000 records opens as fast as one with ten.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from cachescope.core import CacheReport, RecordRow
from cachescope.tui.widgets import humanized

CHUNK = 500


def record_label(record: RecordRow, selector: str = "") -> Text:
    label = Text()
    label.append(f"#{record.index} ", style="bold")
    label.append(humanized.short_digest(record.digest))
    if record.is_root:
        label.append("  source", style="italic")
    if record.chains:
        chain = record.chains[0]
        shown = "→".join(str(i) for i in chain[-6:])
        more = "…" if len(chain) > 6 else ""
        label.append(f"  layers {more}{shown}")
        if len(record.chains) > 1:
            label.append(f" (+{len(record.chains) - 1} chains)")
    elif not record.is_root:
        label.append("  no result", style="dim")
    if selector:
        label.append(f"  sel {humanized.short_digest(selector, 8)}", style="dim")
    return label


class RecordsTree(Tree[int]):
    """Node data is the record index; expanding a node adds the records it depends on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, tooltip="Next record", id="records-down"),
        Binding("k", "cursor_up", "Up", show=False, tooltip="Previous record", id="records-up"),
        Binding(
            "l",
            "expand_node",
            "Expand",
            show=False,
            tooltip="Show the records this one was built from",
            id="records-expand",
        ),
        Binding(
            "h",
            "collapse_node",
            "Collapse",
            show=False,
            tooltip="Fold, or go to the parent record",
            id="records-collapse",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("records", **kwargs)
        self.show_root = False
        self.guide_depth = 3
        self.report: CacheReport | None = None

    async def load(self, report: CacheReport) -> None:
        """Top level: records nothing else builds on (final results), then orphans."""
        self.report = report
        self.clear()
        self.root.expand()
        tops = [record for record in report.records if record.is_leaf]
        if not tops:
            tops = list(report.records)
        for start in range(0, len(tops), CHUNK):
            for record in tops[start : start + CHUNK]:
                self._add(self.root, record)
            await asyncio.sleep(0)
        if self.root.children:
            self.move_cursor(self.root.children[0])

    def _add(self, parent: TreeNode[int], record: RecordRow, selector: str = "") -> TreeNode[int]:
        return parent.add(record_label(record, selector), data=record.index, allow_expand=bool(record.inputs))

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[int]) -> None:
        node = event.node
        if self.report is None or node.data is None or node.children:
            return
        record = self.report.records[node.data]
        for slot, alternatives in enumerate(record.inputs):
            for link, selector in alternatives:
                if 0 <= link < len(self.report.records):
                    child = self._add(node, self.report.records[link], selector)
                    if len(record.inputs) > 1:
                        child.label = Text(f"in{slot} ", style="dim") + child.label

    def selected_record(self) -> RecordRow | None:
        node = self.cursor_node
        if self.report is None or node is None or node.data is None:
            return None
        return self.report.records[node.data]

    def action_expand_node(self) -> None:
        if self.cursor_node is not None:
            self.cursor_node.expand()

    def action_collapse_node(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)
