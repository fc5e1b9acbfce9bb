"""`?`/F1: every key of the screen underneath, with what it does."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

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
            table: DataTable[str] = DataTable(cursor_type="row", show_cursor=False, id="help-table")
            table.add_columns("Key", "Action", "What it does")
            yield table
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
        table = self.query_one(DataTable)
        for key, action, tooltip in self.rows():
            table.add_row(key, action, tooltip or action)

    def action_dismiss_help(self) -> None:
        self.dismiss()
