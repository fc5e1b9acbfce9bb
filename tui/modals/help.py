"""`?`/F1: every key of the screen underneath, with what it does."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GENERAL = [
    ("ctrl+p", "Palette", "Command palette: every action, searchable"),
    ("arrows j k", "Move", "Move the cursor"),
    ("enter", "Open", "Open the selected tag, repository or record"),
    ("esc q", "Back", "Back; quits on the open screen"),
    ("ctrl+q", "Quit", "Leave cachescope"),
]


class HelpScreen(ModalScreen[None]):
    """Reads `active_bindings` of the screen it was opened over, so it is always current."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "dismiss_help", "Close", tooltip="Close help", id="help-close"),
    ]

    def __init__(self, over: Screen[object]) -> None:
        super().__init__()
        self.over = over

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            name = type(self.over).__name__.removesuffix("Screen").lower()
            yield Static(f"[b]Keys[/b] · {name} screen", id="help-title")
            with VerticalScroll(id="help-table"):
                yield Static(id="help-rows")
            yield Static("[dim]Esc or ? closes[/dim]", id="help-footer")

    def rows(self) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for key, active in self.over.active_bindings.items():
            binding = active.binding
            if not binding.description:
                continue
            display = self.app.get_key_display(binding)
            if (display, binding.action) in seen:
                continue
            seen.add((display, binding.action))
            rows.append((display or key, binding.description, binding.tooltip))
        # cachescope's own keys (they carry a tooltip) first; Textual's built-ins after them.
        rows.sort(key=lambda row: not row[2])
        listed = {row[0] for row in rows}
        rows += [(key, action, text) for key, action, text in GENERAL if key not in listed]
        return rows

    def on_mount(self) -> None:
        # A rich Table wraps the last column to the box, so nothing is cut off at 80 columns.
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("Key", no_wrap=True, style="bold")
        table.add_column("Action", no_wrap=True)
        table.add_column("What it does", ratio=1)
        for key, action, tooltip in self.rows():
            table.add_row(key, action, tooltip or action)
        self.query_one("#help-rows", Static).update(table)
        self.query_one("#help-table").focus()

    def action_dismiss_help(self) -> None:
        self.dismiss()
