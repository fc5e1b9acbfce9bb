"""A JSON document, pretty-printed and highlighted; huge ones fall back to a plain virtual view."""

from __future__ import annotations

import asyncio
import json
from typing import Final

from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.widgets import Static

HIGHLIGHT_LIMIT: Final = 256 * 1024
"""Above this many pretty-printed characters, highlighting costs more than it helps."""


def pretty(raw: bytes) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


class JsonView(Container):
    """Shows one document; `show(raw)` formats off the event loop."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="json-scroll"):
            yield Static(classes="json-text")

    async def show(self, raw: bytes) -> None:
        # Imported on first use: pygments and TextArea cost startup time the cache view does not need.
        from textual.highlight import highlight  # noqa: PLC0415
        from textual.widgets import TextArea  # noqa: PLC0415

        text = await asyncio.to_thread(pretty, raw)
        if len(text) <= HIGHLIGHT_LIMIT:
            content = await asyncio.to_thread(highlight, text, language="json")
            self.query_one(".json-text", Static).update(content)
            return
        await self.query_one(".json-scroll", VerticalScroll).remove()
        area = TextArea(text, read_only=True, soft_wrap=False, show_line_numbers=True, classes="json-large")
        await self.mount(area)
