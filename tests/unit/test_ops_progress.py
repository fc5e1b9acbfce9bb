"""Progress reporting: a callback that raises fails the operation at once, and byte events name their blob.

The failing-callback tests stand for a script whose callback prints into a closed pipe
(`... | head`): the error must come out promptly, with the tag not moved, the source intact
and no pipeline thread left running. Timeouts are `asyncio.wait_for`, so a hang fails the
test instead of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cachescope.core.codecs import iter_transcoded
from cachescope.core.model.digest import Digest
from cachescope.core.model.oci import Descriptor
from cachescope.core.model.reference import LayoutRef
from cachescope.core.ops.progress import Progress, ProgressEvent, StepDone, Tracker
from cachescope.core.ops.recompress import RecompressOptions, plan_recompress
from cachescope.core.ops.reexport import plan_reexport
from cachescope.core.ops.verify import verify_cache
from cachescope.core.ops.writer import open_destination
from cachescope.core.reader import load_cache
from cachescope.core.session import open_store
from cachescope.core.stores import local
from cachescope.core.stores.local import LocalStore
from tests.conftest import fixture_dir
from tests.unit.test_ops_local import assert_verifies, tree_hash

T = TypeVar("T")

BLOB_ACTIONS = frozenset({"recompress", "copy-blob", "mount-blob", "reuse-blob", "read"})
PROMPTLY = 20.0
"""Seconds a failed operation may take to raise (generous for slow CI; a hang is minutes)."""


@pytest.fixture(autouse=True)
def _variant_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHESCOPE_CACHE_DIR", str(tmp_path / "user-cache"))


async def within(seconds: float, aw: Awaitable[T]) -> T:
    return await asyncio.wait_for(aw, seconds)


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cachescope-") and t.is_alive()]


class RaiseFrom:
    """A ProgressCallback that raises BrokenPipeError from its `n`th event on (only counting `kind`)."""

    def __init__(self, n: int, kind: type[Any] = object) -> None:
        self.n = n
        self.kind = kind
        self.seen = 0
        self.raised = 0

    def __call__(self, event: ProgressEvent) -> None:
        if not isinstance(event, self.kind):
            return
        self.seen += 1
        if self.seen >= self.n:
            self.raised += 1
            raise BrokenPipeError(32, "Broken pipe")


class Events:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def subjects(self) -> dict[str, int]:
        """Per subject, the last running total reported."""
        out: dict[str, int] = {}
        for e in self.events:
            if isinstance(e, Progress) and e.subject is not None:
                assert e.subject_done >= out.get(e.subject, 0)
                out[e.subject] = e.subject_done
        return out


# -- a failing callback -------------------------------------------------------------------------


def test_tracker_keeps_raising_after_its_callback_failed() -> None:
    tracker = Tracker("test", RaiseFrom(2))
    tracker.begin("blobs", bytes_total=10)
    with pytest.raises(BrokenPipeError):
        tracker.add_bytes(1, "a")
    # every later report raises the same error without calling back again
    with pytest.raises(BrokenPipeError):
        tracker.add_bytes(1, "b")
    with pytest.raises(BrokenPipeError):
        tracker.step("copy-blob", "b", "copied")


@pytest.mark.parametrize("n", [1, 2, 5, 20])
async def test_recompress_fails_promptly_when_the_callback_raises(copy_fixture: Any, n: int) -> None:
    root = copy_fixture("max-default")
    async with open_store(LayoutRef(root, "latest")) as store:
        old = await load_cache(store, "latest")
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd", threads=2))
        index_before = (root / "index.json").read_bytes()
        callback = RaiseFrom(n)
        with pytest.raises(BrokenPipeError):
            await within(PROMPTLY, plan.apply(on_progress=callback))
        assert callback.raised == 1  # the callback is not called again once it failed
        assert (root / "index.json").read_bytes() == index_before  # tag not moved
        assert (await load_cache(store, "latest")).manifest.digest == old.manifest.digest
        await assert_verifies(store, "latest")
    assert pipeline_threads() == []
    assert not [p for p in (root / "blobs" / "sha256").iterdir() if p.name.startswith(local.TEMP_PREFIX)]


async def test_recompress_to_another_layout_leaves_source_and_destination_untagged(
    copy_fixture: Any, tmp_path: Path
) -> None:
    root = copy_fixture("max-default")
    before = tree_hash(root)
    async with open_store(LayoutRef(root, "latest")) as src, open_destination(LayoutRef(tmp_path / "out", "z")) as out:
        plan = await plan_recompress(src, "latest", out, "z", RecompressOptions("zstd", threads=2))
        with pytest.raises(BrokenPipeError):
            await within(PROMPTLY, plan.apply(on_progress=RaiseFrom(3)))
    assert tree_hash(root) == before
    index = tmp_path / "out" / "index.json"
    assert not index.exists() or b"ref.name" not in index.read_bytes()
    assert pipeline_threads() == []


async def test_a_failed_step_report_stops_the_blobs_still_running(
    copy_fixture: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported hang: stdout closed, so only the (printed) step lines raise, never the byte updates.

    The first layer finishes fast and its step report fails; every other layer is slow. They
    must stop at their next chunk, not run to the end for a caller that is gone.
    """
    root = copy_fixture("max-default")
    async with open_store(LayoutRef(root, "latest")) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        fast = Digest.parse(next(s.subject for s in plan.steps if s.action == "recompress"))
        original = LocalStore.open_blob

        @contextlib.asynccontextmanager
        async def slow_open_blob(self: LocalStore, desc: Descriptor, *, offset: int = 0) -> AsyncIterator[Any]:
            async with original(self, desc, offset=offset) as chunks:
                if desc.digest == fast:
                    yield chunks
                    return

                async def slowly() -> AsyncIterator[bytes]:
                    async for chunk in chunks:
                        await asyncio.sleep(0.25)
                        yield chunk

                async with contextlib.aclosing(slowly()) as slow:
                    yield slow

        monkeypatch.setattr(local, "CHUNK_BYTES", 4096)  # ~30 chunks, so ~7 s, per slow layer
        monkeypatch.setattr(LocalStore, "open_blob", slow_open_blob)
        index_before = (root / "index.json").read_bytes()
        with pytest.raises(BrokenPipeError):
            await within(4.0, plan.apply(on_progress=RaiseFrom(1, StepDone)))
        assert (root / "index.json").read_bytes() == index_before
    assert pipeline_threads() == []


async def test_transcoder_stops_when_its_input_callback_raises() -> None:
    data = os.urandom(1 << 20) + bytes(8 << 20)

    async def source() -> AsyncIterator[bytes]:
        blob = gzip.compress(data, compresslevel=1)
        for i in range(0, len(blob), 64 * 1024):
            yield blob[i : i + 64 * 1024]

    calls = 0

    def on_input(_count: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise BrokenPipeError(32, "Broken pipe")

    async def drain() -> None:
        async with contextlib.aclosing(iter_transcoded(source(), "zstd", threads=2, on_input=on_input)) as stream:
            async for _ in stream:
                pass

    with pytest.raises(BrokenPipeError):
        await within(PROMPTLY, drain())
    assert pipeline_threads() == []


# -- subjects -----------------------------------------------------------------------------------


async def test_recompress_byte_events_name_the_planned_blobs(copy_fixture: Any) -> None:
    root = copy_fixture("mixed-after-conversions")
    async with open_store(LayoutRef(root, "latest")) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        events = Events()
        await plan.apply(on_progress=events)
    blob_steps = {s.subject: s for s in plan.steps if s.action in BLOB_ACTIONS}
    seen = events.subjects()
    recompressed = {s.subject: s.size for s in plan.steps if s.action == "recompress"}
    assert recompressed
    assert set(seen) <= set(blob_steps)
    # every transcoded blob reports exactly its source size, as the plan's step says
    assert {k: v for k, v in seen.items() if k in recompressed} == recompressed
    byte_events = [e for e in events.events if isinstance(e, Progress) and e.phase == "blobs" and e.subject]
    assert byte_events
    assert all(e.subject_done > 0 for e in byte_events)


async def test_reexport_and_verify_byte_events_name_their_blobs(tmp_path: Path) -> None:
    src_ref = LayoutRef(fixture_dir("max-default"), "latest")
    async with open_store(src_ref) as src, open_destination(LayoutRef(tmp_path / "out", "copy")) as out:
        plan = await plan_reexport(src, "latest", out, "copy")
        events = Events()
        await plan.apply(on_progress=events)
        copied = {s.subject: s.size for s in plan.steps if s.action == "copy-blob"}
        assert copied
        assert events.subjects() == copied

        verify_events = Events()
        report = await verify_cache(out, "copy", deep=True, on_progress=verify_events)
        assert report.ok
        seen = verify_events.subjects()
        assert report.layers
        assert {str(d) for d in report.layers} <= set(seen)
        assert sum(seen.values()) == report.bytes_checked
