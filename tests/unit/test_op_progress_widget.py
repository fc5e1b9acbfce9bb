"""The operation progress widget: per-layer bars follow the blob each byte event names.

Driven with core's own event types and a real recompress's events, in a bare app (no screens).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, ComposeResult
from textual.widgets import Label, ProgressBar

from cachescope.core.model.reference import LayoutRef
from cachescope.core.ops.plan import Step
from cachescope.core.ops.progress import Progress, ProgressEvent, StepDone
from cachescope.core.ops.recompress import RecompressOptions, plan_recompress
from cachescope.core.session import open_store
from cachescope.tui.widgets.op_progress import OperationProgress

if TYPE_CHECKING:
    import pytest

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield OperationProgress(id="op-progress")


def progress(done: int, subject: str | None = None, subject_done: int = 0) -> Progress:
    return Progress("recompress", "blobs", "recompressing layers", done, 600, 0, 3, 1.0, subject, subject_done)


def amounts(widget: OperationProgress) -> dict[str, float]:
    return {subject: bar.query_one(ProgressBar).progress for subject, bar in widget.bars.items()}


def outcomes(widget: OperationProgress) -> dict[str, str]:
    return {subject: str(bar.query_one(".layer-outcome", Label).content) for subject, bar in widget.bars.items()}


async def test_bars_show_the_bytes_of_the_blob_each_event_names() -> None:
    app = Host()
    async with app.run_test(size=(120, 36)) as pilot:
        widget = app.query_one(OperationProgress)
        await widget.set_steps([Step("recompress", A, 100), Step("recompress", B, 200), Step("recompress", C, 300)])
        # work on B and C, not A (plan order): an estimate would have filled A first
        widget.on_progress(progress(50, B, 50))
        widget.on_progress(progress(80, C, 30))
        await pilot.pause()
        assert amounts(widget) == {A: 0, B: 50, C: 30}
        assert outcomes(widget) == {A: "waiting", B: "recompressing", C: "recompressing"}
        widget.on_progress(StepDone("recompress", "recompress", B, "created", 180))
        widget.on_progress(progress(230, C, 30 + 150))
        await pilot.pause()
        assert amounts(widget) == {A: 0, B: 200, C: 180}
        assert widget.bars[B].done
        assert outcomes(widget)[B] == "created"
        # a byte event without a subject: the unnamed bar gets what the others do not account for
        widget.on_progress(progress(420))
        await pilot.pause()
        assert amounts(widget) == {A: 40, B: 200, C: 180}


async def test_a_real_recompress_fills_every_bar_exactly(
    copy_fixture: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHESCOPE_CACHE_DIR", str(tmp_path / "user-cache"))
    root = copy_fixture("max-default")
    events: list[ProgressEvent] = []
    async with open_store(LayoutRef(root, "latest")) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        await plan.apply(on_progress=events.append)
    app = Host()
    async with app.run_test(size=(120, 36)) as pilot:
        widget = app.query_one(OperationProgress)
        await widget.set_steps(plan.steps)
        assert widget.bars
        last_step = max(i for i, e in enumerate(events) if isinstance(e, StepDone) and e.subject in widget.bars)
        for i, event in enumerate(events):
            if i >= last_step:
                break
            widget.on_progress(event)
            if isinstance(event, Progress) and event.subject in widget.bars:
                bar = widget.bars[event.subject]
                assert bar.done or bar.amount == event.subject_done
        await pilot.pause()
        # every bar named by an event shows its own count (full for finished ones)
        for subject, bar in widget.bars.items():
            assert bar.reported is not None or bar.done, subject
