"""The open screen: type or paste a reference, validated as you type; recent references below."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from cachescope.core import (
    CachescopeError,
    InvalidReference,
    LayoutRef,
    RegistryHost,
    RegistryRef,
    parse_location,
    parse_reference,
)
from cachescope.tui.screens.base import BaseScreen
from cachescope.tui.widgets.humanized import one_line
from cachescope.tui.widgets.key_bar import KeyBar

SAMPLE_OPTION = "@sample"
PLACEHOLDER = "registry.example.com/team/cache:main · oci:./cache · HOST[:PORT] · type=registry,ref=…"


def describe(text: str) -> str:
    """What a reference will open, in words (raises CachescopeError when it is not valid)."""
    stripped = text.strip()
    if stripped.startswith("type="):
        ref, spec = parse_reference(stripped)
        unknown = f"; unknown options ignored: {', '.join(spec.unknown)}" if spec and spec.unknown else ""
        return f"buildx {spec.type if spec else ''} cache → {ref}{unknown}"
    location = parse_location(stripped)
    if isinstance(location, RegistryHost):
        return f"registry {location.host} → browse its repositories"
    if isinstance(location, RegistryRef):
        if location.tag is None and location.digest is None:
            return f"repository {location.host}/{location.repository} → list its tags"
        scheme = "http" if location.plain_http else "https"
        return f"cache {location} ({scheme})"
    if not isinstance(location, LayoutRef):
        raise InvalidReference(f"cannot open {stripped!r}")
    if location.tag is None and location.digest is None:
        return f"OCI layout {location.path} → list its tags and reclaimable blobs"
    return f"cache {location}"


class ReferenceValidator(Validator):
    """Valid when core can parse it as something to open."""

    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.failure("type a reference")
        try:
            describe(value)
        except CachescopeError as exc:
            return self.failure(one_line(exc))
        return self.success()


class OpenScreen(BaseScreen):
    """The bottom of what the user navigates (over the app's launcher): leaving it quits."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Quit", tooltip="Leave cachescope", id="back"),
        Binding("down", "focus_recent", "Recent", show=False, tooltip="Move to the recent list", id="focus-recent"),
        Binding("slash", "focus_input", "Type", key_display="/", tooltip="Type a reference", id="focus-input"),
    ]

    def __init__(self, recent: list[str], sample_label: str) -> None:
        super().__init__()
        self.recent = recent
        self.sample_label = sample_label

    def compose(self) -> ComposeResult:
        with Vertical(id="open-box"):
            yield Static("[b]Open a BuildKit cache[/b]", id="open-title")
            yield Input(
                placeholder=PLACEHOLDER,
                validators=[ReferenceValidator()],
                validate_on=["changed", "submitted"],
                id="ref-input",
            )
            yield Static(
                "registry ref, oci:DIR, registry HOST[:PORT], or a pasted --cache-from/--cache-to string",
                id="ref-hint",
            )
            yield Static("Recent", id="recent-title")
            yield OptionList(*self._options(), id="recent-list")
        yield KeyBar()

    def _options(self) -> list[Option]:
        options = [Option(Content.from_markup("[i]$label[/i]", label=self.sample_label), id=SAMPLE_OPTION)]
        options += [Option(Content(text), id=f"recent:{index}") for index, text in enumerate(self.recent)]
        return options

    def on_mount(self) -> None:
        self.query_one("#ref-input", Input).focus()

    def action_back(self) -> None:
        self.app.exit()  # below it there is only the app's launcher

    def on_screen_resume(self) -> None:
        from cachescope.tui import recent  # noqa: PLC0415 - cheap, avoids a module-level cycle

        self.recent = recent.load_recent()
        options = self.query_one("#recent-list", OptionList)
        options.clear_options()
        options.add_options(self._options())

    @on(Input.Changed, "#ref-input")
    def _changed(self, event: Input.Changed) -> None:
        hint = self.query_one("#ref-hint", Static)
        hint.remove_class("-valid", "-invalid")
        if not event.value.strip():
            hint.update("registry ref, oci:DIR, registry HOST[:PORT], or a pasted --cache-from/--cache-to string")
            return
        try:
            text = "✔ " + describe(event.value)
            hint.add_class("-valid")
        except CachescopeError as exc:
            text = "✖ " + one_line(exc)
            hint.add_class("-invalid")
        hint.update(Content(text))

    @on(Input.Submitted, "#ref-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            reasons = "; ".join(event.validation_result.failure_descriptions)
            self.notify(reasons or "not a reference", title="Invalid reference", severity="error")
            return
        self._open(event.value)

    @on(OptionList.OptionSelected, "#recent-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if option_id == SAMPLE_OPTION:
            self.app.open_sample()  # type: ignore[attr-defined]
            return
        index = int(option_id.removeprefix("recent:"))
        self._open(self.recent[index])

    def _open(self, text: str) -> None:
        if self.app.open_text(text.strip()):  # type: ignore[attr-defined]
            self.query_one("#ref-input", Input).value = ""

    def action_focus_recent(self) -> None:
        self.query_one("#recent-list", OptionList).focus()

    def action_focus_input(self) -> None:
        self.query_one("#ref-input", Input).focus()
