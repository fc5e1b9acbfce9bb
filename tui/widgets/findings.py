"""Findings (diagnose) and warnings (analysis) as a list, coloured by severity, each with its fix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

SEVERITY_MARK = {"error": "✖", "warning": "▲", "info": "●"}


def _text(finding: Any, name: str) -> str:
    value = getattr(finding, name, None)
    return str(value) if value else ""


class FindingItem(Static):
    """One finding; the severity is a CSS class (`-error`, `-warning`, `-info`) styled in app.tcss."""

    def __init__(self, finding: Any) -> None:
        severity = _text(finding, "severity") or "info"
        super().__init__(classes=f"finding -{severity}")
        self.finding = finding
        self.severity = severity

    def render(self) -> Content:
        finding = self.finding
        title = _text(finding, "title")
        subject = _text(finding, "evidence") or _text(finding, "subject")
        lines = [
            Content.from_markup(
                "[b]$mark $code[/b] $title",
                mark=SEVERITY_MARK.get(self.severity, "●"),
                code=_text(finding, "code"),
                title=title,
            ),
            Content(_text(finding, "message")),
        ]
        if subject:
            lines.append(Content.from_markup("[dim]$subject[/dim]", subject=subject))
        fixes = [(label, _text(finding, name)) for label, name in (("buildx", "fix_buildx"), ("repair", "fix_command"))]
        fixes = [(label, value) for label, value in fixes if value] or [("fix", _text(finding, "fix"))]
        for label, value in fixes:
            if value:
                lines.append(Content.from_markup("[b]$label:[/b] $value", label=label, value=value))
        return Content("\n").join(lines)


class FindingsView(VerticalScroll):
    """A scrolling list of FindingItem; an explicit line when there is nothing to report."""

    can_focus = True

    def compose(self) -> ComposeResult:
        yield Static("[dim]no findings yet[/dim]", classes="findings-empty")

    async def show(self, findings: Iterable[Any], *, empty: str = "✔ nothing to report") -> None:
        await self.remove_children()
        items = [FindingItem(f) for f in findings]
        if not items:
            await self.mount(Static(empty, classes="findings-empty -ok"))
            return
        await self.mount_all(items)
