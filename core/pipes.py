"""Bounded hand-offs between the event loop and worker threads.

inflate, zstd, sha256 and file I/O all release the GIL, so they run in parallel only off
the event loop. These pipes carry chunks across in small bounded queues (memory stays flat)
and every side can abort, so a failure anywhere stops the rest instead of leaving a thread
blocked on a full queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Final

PIPE_DEPTH: Final = 4
POLL_SECONDS: Final = 0.1
END: Final = b""
"""End of a pipe (pipes never carry empty chunks)."""


class Aborted(Exception):
    """The pipeline is shutting down (failure elsewhere, or the consumer went away)."""


class Pipe:
    """A bounded queue between threads that every side can abort."""

    def __init__(self, abort: threading.Event, depth: int = PIPE_DEPTH) -> None:
        self._queue: queue.Queue[bytes] = queue.Queue(depth)
        self._abort = abort

    def put(self, item: bytes) -> None:
        while True:
            if self._abort.is_set():
                raise Aborted
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def get(self) -> bytes:
        while True:
            if self._abort.is_set():
                raise Aborted
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.get()) != END:
            yield item


class ToThread:
    """Loop -> thread: the event loop puts without blocking a thread; the worker thread gets.

    After `wake` (the worker failed), `put` raises Aborted instead of waiting for room
    the worker will never make.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, abort: threading.Event, depth: int = PIPE_DEPTH) -> None:
        self._loop = loop
        self._abort = abort
        self._slots = asyncio.Semaphore(depth)
        self._pipe = Pipe(abort, depth + 1)

    async def put(self, item: bytes) -> None:
        await self._slots.acquire()
        self._pipe.put(item)  # never blocks: a slot was free; raises Aborted after a failure

    def wake(self) -> None:
        """Unblock a waiting `put` after a failure (callable from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._slots.release)

    def __iter__(self) -> Iterator[bytes]:
        for item in self._pipe:
            self._loop.call_soon_threadsafe(self._slots.release)
            yield item


class ToLoop:
    """Thread -> loop: the worker thread blocks while the loop is behind; the loop awaits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, abort: threading.Event, depth: int = PIPE_DEPTH) -> None:
        self._loop = loop
        self._abort = abort
        self._slots = threading.Semaphore(depth)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def put(self, item: bytes) -> None:
        while not self._slots.acquire(timeout=POLL_SECONDS):
            if self._abort.is_set():
                raise Aborted
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def wake(self) -> None:
        """Unblock `get` after a failure (callable from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def get(self) -> bytes | None:
        """The next item, `END` at the end, None when the pipeline failed."""
        item = await self._queue.get()
        self._slots.release()
        return item


async def iter_in_thread(produce: Callable[[], Iterable[bytes]], *, name: str) -> AsyncIterator[bytes]:
    """Run a blocking chunk generator on its own thread, a few chunks ahead of the consumer.

    Its exceptions are raised here, in the consumer; closing this iterator early stops
    the thread at its next chunk.
    """
    loop = asyncio.get_running_loop()
    abort = threading.Event()
    out = ToLoop(loop, abort)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for item in produce():
                if item:
                    out.put(item)
            out.put(END)
        except Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            errors.append(exc)
            abort.set()
            out.wake()

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while (item := await out.get()) is not None and item != END:
            yield item
        if errors:
            raise errors[0]
    finally:
        abort.set()
        await asyncio.to_thread(worker.join)


class ThreadSink:
    """Consume chunks on a worker thread (hash, write, upload) while the loop moves on.

    The loop only waits when the thread is `PIPE_DEPTH` chunks behind. A failure in
    `consume` is raised by the next `put` or by `close`.
    """

    def __init__(self, consume: Callable[[bytes], None], *, name: str) -> None:
        self._abort = threading.Event()
        self._pipe = ToThread(asyncio.get_running_loop(), self._abort)
        self._errors: list[BaseException] = []
        self._consume = consume
        self._worker = threading.Thread(target=self._run, name=name, daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            for item in self._pipe:
                self._consume(item)
        except Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised there
            self._errors.append(exc)
            self._abort.set()
            self._pipe.wake()

    def _raise_failure(self) -> None:
        if self._errors:
            raise self._errors[0]

    async def put(self, chunk: bytes) -> None:
        if not chunk:
            return
        try:
            await self._pipe.put(chunk)
        except Aborted:
            self._raise_failure()
            raise
        self._raise_failure()

    async def close(self) -> None:
        """Wait until every chunk is consumed; raise the thread's failure, if any."""
        with contextlib.suppress(Aborted):
            await self._pipe.put(END)
        await asyncio.to_thread(self._worker.join)
        self._raise_failure()

    async def cancel(self) -> None:
        """Stop the thread without consuming the rest (after a failure on the loop's side)."""
        self._abort.set()
        await asyncio.to_thread(self._worker.join)
