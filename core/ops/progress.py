"""Progress of a running operation, as small immutable events.

Operations report through one callback (`ProgressCallback`); the CLI draws a bar from it and
a Textual worker posts it as a message. `iter_events` turns a running operation into an
async iterator for callers that prefer `async for`. Events are snapshots: a consumer that
drops some (rate limiting, `can_replace`) loses nothing it needs.

A callback that raises fails the operation: the exception (e.g. BrokenPipeError from a
closed stdout) is raised where the event was reported, and again at every later report of
any job of that operation, so work running in parallel stops at its next chunk instead of
running to completion for a caller that is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

Phase = Literal["plan", "blobs", "config", "manifest", "verify", "tag", "delete", "done"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where an operation stands: bytes and items (layers, blobs, tags) done of their totals."""

    operation: str
    phase: Phase
    message: str
    bytes_done: int
    bytes_total: int
    items_done: int
    items_total: int
    elapsed: float
    subject: str | None = None
    """The blob (digest string) these bytes were for, on per-blob byte updates; else None."""
    subject_done: int = 0
    """Bytes of `subject` done so far (a running total, so a dropped event loses nothing)."""

    @property
    def fraction(self) -> float | None:
        if self.bytes_total > 0:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.items_total > 0:
            return min(1.0, self.items_done / self.items_total)
        return None

    @property
    def rate(self) -> float | None:
        """Bytes per second since the start, or None before there is anything to divide."""
        if self.elapsed <= 0 or self.bytes_done <= 0:
            return None
        return self.bytes_done / self.elapsed

    @property
    def eta(self) -> float | None:
        """Seconds left at the average rate so far, when bytes are being counted."""
        rate = self.rate
        if rate is None or self.bytes_total <= 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / rate)


@dataclass(frozen=True, slots=True)
class StepDone:
    """One plan step finished; `outcome` says how (e.g. `created`, `reused`, `mounted`, `deleted`)."""

    operation: str
    action: str
    subject: str
    outcome: str
    size: int = 0


ProgressEvent = Progress | StepDone
ProgressCallback = Callable[[ProgressEvent], None]


class Tracker:
    """Accumulates counts for one operation and emits snapshots to a callback.

    Byte updates are frequent (one per chunk); the callback decides how often to redraw.
    """

    def __init__(
        self, operation: str, callback: ProgressCallback | None, *, clock: Callable[[], float] = time.monotonic
    ):
        self.operation = operation
        self._callback = callback
        self._clock = clock
        self._start = clock()
        self.phase: Phase = "plan"
        self.message = ""
        self.bytes_done = 0
        self.bytes_total = 0
        self.items_done = 0
        self.items_total = 0
        self._subject_done: dict[str, int] = {}
        self._failure: Exception | None = None

    def begin(
        self, phase: Phase, message: str = "", *, bytes_total: int | None = None, items_total: int | None = None
    ) -> None:
        self.phase = phase
        self.message = message
        if bytes_total is not None:
            self.bytes_total = bytes_total
        if items_total is not None:
            self.items_total = items_total
        self.emit()

    def add_bytes(self, count: int, subject: str | None = None) -> None:
        """Count `count` more bytes done, for blob `subject` when the work is per blob."""
        self.bytes_done += count
        if self._callback is None:
            return
        if subject is None:
            self.emit()
            return
        done = self._subject_done.get(subject, 0) + count
        self._subject_done[subject] = done
        self._send(self.snapshot(subject, done))

    def step(self, action: str, subject: str, outcome: str, size: int = 0, *, item: bool = True) -> None:
        if item:
            self.items_done += 1
        self._send(StepDone(self.operation, action, subject, outcome, size))
        self.emit()

    def snapshot(self, subject: str | None = None, subject_done: int = 0) -> Progress:
        return Progress(
            self.operation,
            self.phase,
            self.message,
            self.bytes_done,
            self.bytes_total,
            self.items_done,
            self.items_total,
            self._clock() - self._start,
            subject,
            subject_done,
        )

    def emit(self) -> None:
        if self._callback is not None:
            self._send(self.snapshot())

    def _send(self, event: ProgressEvent) -> None:
        """Hand `event` to the callback; once the callback has failed, raise its error instead."""
        if self._failure is not None:
            raise self._failure
        if self._callback is None:
            return
        try:
            self._callback(event)
        except Exception as exc:
            self._failure = exc
            raise


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """The last item `iter_events` yields: the operation's result."""

    result: T


async def iter_events(run: Callable[[ProgressCallback], Awaitable[T]]) -> AsyncIterator[ProgressEvent | Finished[T]]:
    """Run `run(callback)` as a task and yield its events, then `Finished(result)`.

    Leaving the loop early (break, cancellation) cancels the operation, which cleans up
    after itself; its errors are raised from the iterator.
    """
    queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
    task = asyncio.ensure_future(run(queue.put_nowait))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
                continue
            getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            yield Finished(task.result())
            return
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
