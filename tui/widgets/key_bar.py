"""The footer: the screen's shown key bindings, drawn as one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.screen import Screen


class _Key(NamedTuple):
    key: str
    display: str
    description: str
    enabled: bool


class KeyBar(Widget, can_focus=False):
    """What Textual's Footer shows (keys on the left, the palette key on the right), as one widget.

    The stock Footer mounts a widget per key and restyles each one whenever the bindings
    change, which is on every focus move: on the cache view that was ~0.15 s of the first
    paint, and again on each change. One widget rendering one line costs about a millisecond.
    Clicking a key presses it, as in the Footer.
    """

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-bar--key", "key-bar--description", "key-bar--hover"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-bar--hover {
            background: $block-hover-background;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spans: list[tuple[int, int, _Key]] = []
        self._hover: int | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is self.screen:
            self.refresh()

    def keys(self) -> tuple[list[_Key], _Key | None]:
        """The shown bindings, one per action (first key wins), and the command palette's."""
        app = self.app
        active = self.screen.active_bindings
        shown: dict[str, _Key] = {}
        for _node, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in shown:
                shown[binding.action] = _Key(binding.key, app.get_key_display(binding), binding.description, enabled)
        palette = None
        if app.ENABLE_COMMAND_PALETTE and app.COMMAND_PALETTE_BINDING in active:
            _node, binding, enabled, _tooltip = active[app.COMMAND_PALETTE_BINDING]
            palette = _Key(binding.key, app.get_key_display(binding), binding.description, enabled)
        return list(shown.values()), palette

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        hover_style = self.get_component_rich_style("key-bar--hover")
        keys, palette = self.keys()
        width = self.size.width
        palette_text = Text()
        if palette is not None:
            palette_text = self._item(palette, key_style, description_style, Style())
            palette_text = Text("│", style="dim") + palette_text
        room = max(0, width - palette_text.cell_len)
        line = Text(no_wrap=True, overflow="crop")
        self._spans = []
        for index, key in enumerate(keys):
            extra = hover_style if index == self._hover else Style()
            item = self._item(key, key_style, description_style, extra)
            if line.cell_len + item.cell_len > room:
                break
            self._spans.append((line.cell_len, line.cell_len + item.cell_len, key))
            line.append_text(item)
        if palette is not None and width >= palette_text.cell_len:
            start = width - palette_text.cell_len
            line.pad_right(start - line.cell_len)
            line.truncate(start)
            self._spans.append((start + 1, width, palette))
            line.append_text(palette_text)
        return line

    @staticmethod
    def _item(key: _Key, key_style: Style, description_style: Style, extra: Style) -> Text:
        dim = Style(dim=True) if not key.enabled else Style()
        text = Text.assemble((f" {key.display} ", key_style + extra + dim))
        if key.description:
            text.append(f"{key.description} ", description_style + extra + dim)
        return text

    def _key_at(self, x: int) -> tuple[int, _Key] | None:
        for index, (start, end, key) in enumerate(self._spans):
            if start <= x < end:
                return index, key
        return None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        hit = self._key_at(event.x)
        if hit is None:
            return
        _index, key = hit
        if key.enabled:
            self.app.simulate_key(key.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        hit = self._key_at(event.x)
        hover = hit[0] if hit is not None else None
        if hover != self._hover:
            self._hover = hover
            self.refresh()

    def on_leave(self, _: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.refresh()
