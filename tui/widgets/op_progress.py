"""Live progress of an operation: one overall bar with bytes/s, and a bar per layer blob.

Core reports overall byte counts (`Progress`) and each finished step (`StepDone`). Byte
updates for one blob name it (`subject`, with that blob's running total `subject_done`),
so a layer's bar shows exactly its own bytes and jumps to full when its step is reported.
Layers no event has named yet share what is left of the overall count in plan order (an
estimate, for events without a subject).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

from cachescope.tui.widgets import humanized

BLOB_ACTIONS = frozenset({"recompress", "copy-blob", "mount-blob", "reuse-blob", "delete-blob"})
UNDER_WAY = {
    "recompress": "recompressing",
    "copy-blob": "copying",
    "mount-blob": "mounting",
    "reuse-blob": "checking",
    "delete-blob": "deleting",
}
"""What a bar says once bytes move and before its outcome is known."""


class LayerBar(Horizontal):
    """A digest, its size, a bar, and how it ended (`created`, `reused`, `deleted`…)."""

    def __init__(self, subject: str, size: int, action: str) -> None:
        super().__init__(classes="layer-bar")
        self.subject = subject
        self.nbytes = size
        self.action = action
        self.done = False
        self.reported: int | None = None
        """Bytes core reported for this blob (None: no event named it yet, so it is estimated)."""
        self.amount = 0

    def compose(self) -> ComposeResult:
        yield Label(humanized.short_digest(self.subject), classes="layer-digest")
        yield Label(humanized.size(self.nbytes), classes="layer-size")
        yield ProgressBar(total=max(self.nbytes, 1), show_eta=False, classes="layer-progress")
        yield Label("waiting", classes="layer-outcome")

    def set_progress(self, amount: int) -> None:
        if not self.done:
            if amount > 0 and not self.amount:
                self.query_one(".layer-outcome", Label).update(UNDER_WAY.get(self.action, "working"))
            self.amount = min(amount, self.nbytes)
            self.query_one(ProgressBar).update(progress=self.amount)

    def report(self, done: int) -> None:
        """Core's own count for this blob."""
        self.reported = done
        self.set_progress(done)

    def finish(self, outcome: str) -> None:
        self.done = True
        self.amount = self.nbytes
        self.query_one(ProgressBar).update(progress=max(self.nbytes, 1))
        label = self.query_one(".layer-outcome", Label)
        label.update(outcome)
        self.add_class(f"-{outcome}")


class OperationProgress(Vertical):
    """Overall bar, phase and rate; below it the per-layer bars."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bars: dict[str, LayerBar] = {}
        self.bytes_done = 0

    def compose(self) -> ComposeResult:
        yield Static("starting…", id="op-phase")
        yield ProgressBar(total=None, show_eta=True, id="op-overall")
        yield Static("", id="op-rate")
        yield VerticalScroll(id="op-layers")

    async def set_steps(self, steps: Sequence[Any]) -> None:
        """One bar per distinct blob the plan moves, in plan order."""
        layers = self.query_one("#op-layers", VerticalScroll)
        await layers.remove_children()
        self.bars = {}
        for step in steps:
            if step.action in BLOB_ACTIONS and step.subject not in self.bars:
                self.bars[step.subject] = LayerBar(step.subject, int(step.size or step.read or 0), step.action)
        await layers.mount_all(list(self.bars.values()))
        self.bytes_done = 0

    def on_progress(self, event: Any) -> None:
        """A `Progress` snapshot or a `StepDone` from core."""
        if type(event).__name__ == "StepDone":
            bar = self.bars.get(str(event.subject))
            if bar is not None:
                bar.finish(str(event.outcome))
            self._spread()
            return
        self.bytes_done = int(event.bytes_done)
        subject = getattr(event, "subject", None)
        if subject is not None:
            bar = self.bars.get(str(subject))
            if bar is not None:
                bar.report(int(getattr(event, "subject_done", 0)))
        overall = self.query_one("#op-overall", ProgressBar)
        if event.bytes_total:
            overall.update(total=event.bytes_total, progress=event.bytes_done)
        elif event.items_total:
            overall.update(total=event.items_total, progress=event.items_done)
        items = f" · {event.items_done}/{event.items_total} items" if event.items_total else ""
        self.query_one("#op-phase", Static).update(f"{event.phase}: {event.message}{items}")
        rate = event.rate
        moved = ""
        if event.bytes_total:
            moved = f"{humanized.size(event.bytes_done)} of {humanized.size(event.bytes_total)}"
        speed = f" · {humanized.size(int(rate))}/s" if rate else ""
        self.query_one("#op-rate", Static).update(moved + speed)
        self._spread()

    def _spread(self) -> None:
        """Estimate the bars no event has named yet from the bytes not accounted for by the others."""
        accounted = sum(bar.nbytes if bar.done else bar.reported or 0 for bar in self.bars.values())
        remaining = self.bytes_done - accounted
        for bar in self.bars.values():
            if bar.done or bar.reported is not None:
                continue
            share = max(0, min(bar.nbytes, remaining))
            bar.set_progress(share)
            remaining -= share

    def finish(self, label: str) -> None:
        self.query_one("#op-phase", Static).update(label)
        overall = self.query_one("#op-overall", ProgressBar)
        if overall.total is None:
            overall.update(total=1, progress=1)
