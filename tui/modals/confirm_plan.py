"""The last question before a plan that deletes or moves a tag is applied."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmPlan(ModalScreen[bool]):
    """True to apply; Cancel is focused first so a stray Enter changes nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "Cancel", tooltip="Do not apply the plan", id="confirm-no"),
        Binding("y", "answer(True)", "Apply", tooltip="Apply the plan now", id="confirm-yes"),
    ]

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Content.from_markup("[b]$title[/b]", title=self.title_text), id="confirm-title")
            yield Static(Content("\n".join(self.lines)), id="confirm-body")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel (n)", id="confirm-cancel")
                yield Button("Apply (y)", variant="error", id="confirm-apply")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    @on(Button.Pressed, "#confirm-apply")
    def _apply(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-cancel")
    def _cancel(self) -> None:
        self.dismiss(False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
