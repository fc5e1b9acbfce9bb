"""What every cachescope screen shares: going back, an error panel, a subtitle."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker


class ErrorPanel(Static):
    """The one-line reason a load failed, shown where the data would be."""

    def show(self, message: str) -> None:
        self.update(
            Content.from_markup("[b]✖[/b] $message\n\n[dim]r retry · Esc back · Ctrl+P commands[/dim]", message=message)
        )
        self.display = True


class BaseScreen(Screen[None]):
    """A screen the user can leave with Esc or q; loads run in its workers and die with it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Go back to the previous screen", id="back"),
        Binding("q", "back", "Back", show=False, tooltip="Go back to the previous screen", id="back-q"),
    ]

    TITLE_TEXT: ClassVar[str] = "cachescope"

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        report = getattr(self.app, "report_worker_failure", None)
        if callable(report):
            report(event.worker, event.state)

    def show_error(self, message: str) -> None:
        """Called by the app's worker-failure handler for failed loads of this screen."""
        for panel in self.query(ErrorPanel):
            panel.show(message)

    def clear_error(self) -> None:
        for panel in self.query(ErrorPanel):
            panel.display = False
