"""Progress of a running operation on stderr: a redrawn bar on a terminal, plain lines otherwise.

Core reports `Progress` snapshots and `StepDone` events through one callback; this turns
them into text. On a TTY one status line is redrawn (at most `fps` times a second) with
bytes, items, rate and ETA. Anywhere else (CI logs, pipes) each phase change and each
finished step becomes one line, and byte updates are dropped, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from cachescope.core import Progress, ProgressEvent, StepDone
from cachescope.tui import textout

BAR_WIDTH = 24


def duration(seconds: float | None) -> str:
    """`1m05s`, `42s`, or `-` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds + 0.5)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    if fraction is None:
        return "[" + " " * width + "]"
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def status_line(event: Progress, items: str = "layers") -> str:
    """One line: phase, bar, percent, bytes done/total, items, rate and ETA."""
    parts = [f"{event.operation} {event.phase:<8}", bar(event.fraction)]
    fraction = event.fraction
    parts.append(f"{fraction * 100:3.0f}%" if fraction is not None else "  -%")
    if event.bytes_total:
        parts.append(f"{textout.size(event.bytes_done)}/{textout.size(event.bytes_total)}")
    if event.items_total:
        parts.append(f"{event.items_done}/{event.items_total} {items}")
    rate = event.rate
    if rate is not None:
        parts.append(f"{textout.size(int(rate))}/s")
        parts.append(f"ETA {duration(event.eta)}")
    return "  ".join(parts)


class ProgressRenderer:
    """A ProgressCallback that draws on `stream`; call `close()` when the operation ends.

    `steps=False` leaves finished steps out of the plain (non-terminal) output.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        items: str = "layers",
        steps: bool = True,
        fps: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.items = items
        self.steps = steps
        self._interval = 1.0 / fps
        self._clock = clock
        self._last_draw = float("-inf")
        self._last_phase: str | None = None
        self._width = 0
        self._pending: Progress | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, StepDone):
            if not self.interactive and self.steps:
                size = f" ({textout.size(event.size)})" if event.size else ""
                self._write_line(f"{event.operation}: {event.action} {event.subject} {event.outcome}{size}")
            return
        if self.interactive:
            now = self._clock()
            if event.phase != self._last_phase or now - self._last_draw >= self._interval:
                self._draw(event)
                self._last_draw = now
            else:
                self._pending = event  # drawn later, or by close()
            self._last_phase = event.phase
            return
        if event.phase != self._last_phase:
            self._last_phase = event.phase
            if event.phase != "done" and event.message:
                self._write_line(f"{event.operation}: {event.message}")

    def _draw(self, event: Progress) -> None:
        self._pending = None
        line = status_line(event, self.items)
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)

    def _write_line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the last state if it was skipped, and end the bar's line (TTY) so later output starts clean."""
        if self.interactive and self._width:
            if self._pending is not None:
                self._draw(self._pending)
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
