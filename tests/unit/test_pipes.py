"""Thread hand-offs: data arrives in order, failures reach the loop, nothing is left blocked."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cachescope.core.errors import DigestMismatch, SizeMismatch
from cachescope.core.model.digest import sha256_of
from cachescope.core.model.oci import Descriptor
from cachescope.core.pipes import PIPE_DEPTH, ThreadSink, iter_in_thread
from cachescope.core.stores.base import THREADED_IO_BYTES
from cachescope.core.stores.local import LocalStore


async def test_iter_in_thread_keeps_order_and_runs_off_the_loop() -> None:
    seen_threads: set[str] = set()

    def produce() -> Iterator[bytes]:
        for i in range(50):
            seen_threads.add(threading.current_thread().name)
            yield str(i).encode()

    got = [chunk async for chunk in iter_in_thread(produce, name="test-producer")]
    assert got == [str(i).encode() for i in range(50)]
    assert seen_threads == {"test-producer"}


async def test_iter_in_thread_raises_the_producers_error_after_its_chunks() -> None:
    def produce() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        raise SizeMismatch("sha256:" + "0" * 64, 1, 2)

    got: list[bytes] = []

    async def drain() -> None:
        async for chunk in iter_in_thread(produce, name="test-producer"):
            got.append(chunk)

    with pytest.raises(SizeMismatch):
        await drain()
    assert got == [b"a", b"b"]


async def test_closing_early_stops_the_producer_thread() -> None:
    produced = 0

    def produce() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(10_000):
            produced += 1
            yield b"x"

    stream = iter_in_thread(produce, name="test-early-close")
    assert await anext(stream) == b"x"
    await stream.aclose()  # type: ignore[attr-defined]
    assert produced <= PIPE_DEPTH + 2
    assert not any(t.name == "test-early-close" for t in threading.enumerate())


async def test_sink_consumes_in_order_on_its_own_thread() -> None:
    got: list[bytes] = []
    threads: set[str] = set()

    def consume(chunk: bytes) -> None:
        threads.add(threading.current_thread().name)
        got.append(chunk)

    sink = ThreadSink(consume, name="test-sink")
    for i in range(40):
        await sink.put(str(i).encode())
    await sink.close()
    assert got == [str(i).encode() for i in range(40)]
    assert threads == {"test-sink"}


async def test_sink_failure_reaches_the_writer_instead_of_blocking_it() -> None:
    def consume(chunk: bytes) -> None:
        if chunk == b"3":
            raise OSError(28, "No space left on device")

    sink = ThreadSink(consume, name="test-sink-fail")

    async def write_all() -> None:
        for i in range(1000):  # far more than the pipe holds: put must not hang
            await sink.put(str(i).encode())
        await sink.close()

    with pytest.raises(OSError, match="No space left"):
        await write_all()
    await sink.cancel()


# -- the local store's threaded paths (layer-sized blobs) ------------------------------------


def _big_blob(size: int = THREADED_IO_BYTES + 123_457) -> bytes:
    return os.urandom(size)


async def _chunks(data: bytes, step: int = 300_001) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def test_big_blob_round_trips_through_the_threaded_writer_and_reader(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "layout")
    data = _big_blob()
    desc = Descriptor("application/octet-stream", sha256_of(data), len(data))
    written = await store.write_blob(_chunks(data), expected=desc)
    assert written.digest == desc.digest
    assert not [p for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    async with store.open_blob(desc) as stream:
        assert b"".join([chunk async for chunk in stream]) == data
    async with store.open_blob(desc, offset=THREADED_IO_BYTES) as stream:
        assert b"".join([chunk async for chunk in stream]) == data[THREADED_IO_BYTES:]


async def test_big_corrupt_blob_fails_before_its_last_chunk(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "layout")
    data = _big_blob()
    desc = Descriptor("application/octet-stream", sha256_of(data), len(data))
    await store.write_blob(_chunks(data), expected=desc)
    path = store.blob_path(desc.digest)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    received = 0

    async def read_all() -> None:
        nonlocal received
        async with store.open_blob(desc) as stream:
            async for chunk in stream:
                received += len(chunk)

    with pytest.raises(DigestMismatch, match=desc.digest.hex[:12]):
        await read_all()
    assert received < len(data)


async def test_big_blob_with_wrong_expected_digest_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "layout")
    data = _big_blob()
    wrong = Descriptor("application/octet-stream", sha256_of(b"other"), len(data))
    with pytest.raises(DigestMismatch):
        await store.write_blob(_chunks(data), expected=wrong)
    assert list((tmp_path / "layout" / "blobs" / "sha256").iterdir()) == []


async def test_writer_failure_midway_leaves_no_temp_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "layout")

    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * 1_000_000
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        await store.write_blob(failing())
    assert list((tmp_path / "layout" / "blobs" / "sha256").iterdir()) == []


def test_waking_a_pipe_whose_loop_is_gone_is_harmless() -> None:
    import asyncio

    from cachescope.core.pipes import ToLoop, ToThread

    loop = asyncio.new_event_loop()
    abort = threading.Event()
    to_loop, to_thread = ToLoop(loop, abort), ToThread(loop, abort)
    loop.close()
    to_loop.wake()  # a worker failing after the run ended must not die with a traceback
    to_thread.wake()
