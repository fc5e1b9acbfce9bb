"""The `/` filter: an input under a list that narrows it as you type; Esc clears and hides it."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input


class FilterBar(Input):
    """Hidden until `open()`; the screen listens to Input.Changed and re-filters its rows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Clear filter", tooltip="Clear the filter and hide it", id="filter-close"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(placeholder="filter…", **kwargs)  # type: ignore[arg-type]
        self.display = False

    def open(self) -> None:
        self.display = True
        self.focus()

    def action_close(self) -> None:
        self.value = ""
        self.display = False
        self.screen.focus_next()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value:
            self.display = False
        self.screen.focus_next()
