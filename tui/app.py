"""CachescopeApp: global bindings, navigation between screens, and the one worker-failure handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from cachescope.core import InvalidReference, LayoutRef, RegistryHost, RegistryRef
from cachescope.tui import recent
from cachescope.tui.cli import normalize_target, resolve_location
from cachescope.tui.commands import ScreenCommands
from cachescope.tui.sample import SAMPLE_CACHE
from cachescope.tui.screens.base import BaseScreen
from cachescope.tui.widgets.humanized import one_line

if TYPE_CHECKING:
    from cachescope.tui.cli import CachePreload

Location = RegistryHost | RegistryRef | LayoutRef

SAMPLE_LABEL = "sample (bundled BuildKit cache)"


class LaunchScreen(Screen[None]):
    """The bottom of the stack until the user gets there; only then is the open screen built.

    `cachescope REF` shows the cache view first, so composing and styling an open screen
    underneath it would only delay the first paint (~0.15 s for a large cache here).
    """

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self._become_open_screen)

    def _become_open_screen(self) -> None:
        if self.app.screen is self and isinstance(self.app, CachescopeApp):
            self.app.show_open_screen()


class CachescopeApp(App[int]):
    """Screens are pushed as the user drills down (registry → repository → tag → cache); Esc pops."""

    CSS_PATH = "styles/app.tcss"
    TITLE = "cachescope"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide"), (140, "-huge")]  # noqa: RUF012 - Textual declares it an instance var
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", key_display="?", tooltip="Every key of this screen", id="help"),
        Binding("o", "open", "Open", show=False, tooltip="Open another reference", id="open"),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False, tooltip="Switch light/dark theme", id="toggle-theme"),
        Binding("ctrl+q", "quit", "Quit", show=False, tooltip="Leave cachescope", id="quit", priority=True),
    ]

    def __init__(
        self,
        target: str | None = None,
        *,
        plain_http: bool = False,
        theme: str | None = None,
        preload: CachePreload | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.plain_http = plain_http
        self.preload = preload
        """The first cache, already being read (`cli.start_preload`); the first cache view takes it."""
        if theme:
            self.theme = theme

    def get_default_screen(self) -> Screen[None]:
        return LaunchScreen()

    def show_open_screen(self) -> None:
        """Put the open screen over the launcher (once; leaving it quits)."""
        from cachescope.tui.screens.open import OpenScreen  # noqa: PLC0415 - loaded when first shown

        if not any(isinstance(screen, OpenScreen) for screen in self.screen_stack):
            self.push_screen(OpenScreen(recent=recent.load_recent(), sample_label=SAMPLE_LABEL))

    def on_mount(self) -> None:
        if self.target is None:
            self.open_sample()
        else:
            self.open_text(self.target)

    # -- navigation -----------------------------------------------------------------------------

    def open_sample(self) -> None:
        self.open_location(LayoutRef(SAMPLE_CACHE), direct=True)

    def open_text(self, text: str) -> bool:
        """Open what the user typed; a bad reference becomes a notification, never a crash."""
        try:
            location = resolve_location(text, plain_http=self.plain_http)
        except InvalidReference as exc:
            self.notify(one_line(exc), title="Invalid reference", severity="error")
            return False
        recent.remember(text)
        self.open_location(location)
        return True

    def open_location(self, location: Location, *, direct: bool = False) -> None:
        """Push the browser for the location's store, and the cache view on top when a cache is named.

        `direct` opens the cache view even for an untagged layout (the sample: its one tag).
        """
        # Imported here: a cycle, and a cache view opened from the command line need not load
        # the browsers (with the operations they offer), ~50 ms before its first paint.
        if isinstance(location, RegistryHost):
            from cachescope.tui.screens.browser import RegistryScreen  # noqa: PLC0415

            self.push_screen(RegistryScreen(location))
            return
        named = location.tag is not None or location.digest is not None
        if named or direct:
            from cachescope.tui.screens.cache import CacheScreen  # noqa: PLC0415

            preload, self.preload = self.preload, None
            if preload is not None and preload.ref != location:
                preload = None
            # The browser is created when the user backs out of the cache view (CacheScreen.action_back),
            # so opening a cache reads it once, not once more for the browser's columns.
            self.push_screen(CacheScreen(location, browser_below=True, preload=preload))
        else:
            from cachescope.tui.screens.browser import TagsScreen  # noqa: PLC0415

            self.push_screen(TagsScreen(location))

    def action_open(self) -> None:
        from cachescope.tui.screens.open import OpenScreen  # noqa: PLC0415 - loaded when first shown

        while len(self.screen_stack) > 1 and not isinstance(self.screen, OpenScreen):
            self.pop_screen()
        if isinstance(self.screen, OpenScreen):
            self.screen.query("#ref-input").focus()
        else:
            self.show_open_screen()  # it focuses its input when mounted

    def action_help(self) -> None:
        from cachescope.tui.modals.help import HelpScreen  # noqa: PLC0415 - loaded on first use

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.screen))

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def get_system_commands(self, screen: Screen[object]):  # type: ignore[no-untyped-def]
        yield from super().get_system_commands(screen)
        yield SystemCommand("Open reference", "Open a registry, repository, tag or OCI layout", self.action_open)
        yield SystemCommand("Open sample cache", "The BuildKit cache bundled with cachescope", self.open_sample)
        yield SystemCommand("Toggle light/dark", "Switch between the light and dark theme", self.action_toggle_dark)

    # -- failures ---------------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def _app_worker_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_failure(event.worker, event.state)

    def report_worker_failure(self, worker: Worker[object], state: WorkerState) -> None:
        """Every failed worker ends here: one notification, and the screen's error panel for loads.

        Worker.StateChanged does not bubble, so screens forward theirs (BaseScreen).
        """
        if state != WorkerState.ERROR or worker.error is None:
            return
        message = one_line(worker.error)
        node = worker.node
        screen = node if isinstance(node, BaseScreen) else getattr(node, "screen", None)
        if worker.group == "load" and isinstance(screen, BaseScreen):
            screen.show_error(message)
        if screen is None or screen is self.screen or not isinstance(screen, BaseScreen):
            # A screen underneath keeps its error panel; only what the user is looking at notifies.
            self.notify(message, title="Error", severity="error", timeout=8)


def run(target: str | None, *, plain_http: bool = False, preload: CachePreload | None = None) -> int:
    """Run the TUI on `target` (None: the bundled sample); returns the exit code.

    `preload` is the first cache already being read (`cli.start_preload` on the same target).
    """
    app = CachescopeApp(normalize_target(target), plain_http=plain_http, preload=preload)
    result = app.run()
    return result if isinstance(result, int) else 0
