"""A first look at a local cache, read by a forked child while Textual starts.

Python runs one thread at a time, so a cache read in a thread (`cli.CachePreload`) and
Textual's import and start take turns: for a 10,000-record cache that is ~0.4 s of
parsing and analysis, then ~0.6 s of Textual, one after the other. A child forked
before Textual is imported reads and analyses the cache on another core instead, and
sends back only what the first screen shows: the header's facts and the first
screenful of layer rows. That is a few kilobytes; the whole report would take as long
to unpickle as to parse. The app paints the preview, then reads the cache itself for
everything else (records, details, operations), so what it acts on is its own,
digest-verified read, and a failed preview only costs the head start.

Forking is done only on Linux and only while the process has a single thread (the
`cachescope` command before Textual starts), where it is safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import os
import pickle
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only types: the fork happens before core's reader and analysis are imported, and the
    # child imports them while the parent imports Textual.
    from cachescope.core import CacheReport, LayerRow, LayoutRef

PREVIEW_ROWS = 60
"""Layer rows in a preview: a screenful on a tall terminal (as the layer table's first chunk)."""
MAX_PREVIEW_BYTES = 4 * 1024 * 1024
"""More than this from the child means something went wrong; the app reads for itself."""


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What the cache view's header shows, from a report or from a preview of one."""

    source: str
    manifest_digest: str
    form: str
    mediatypes: str
    platform: str | None
    records: int
    layers: int
    unique_blobs: int
    compressed_size: int
    uncompressed_size: int | None
    compression_mix: tuple[tuple[str, int, int], ...]
    """(compression, layers, bytes) per compression."""
    mode: str
    mode_reason: str
    errors: int
    warnings: int
    infos: int


def header_facts(report: CacheReport) -> HeaderFacts:
    severities = [warning.severity for warning in report.warnings]
    return HeaderFacts(
        source=report.source,
        manifest_digest=str(report.manifest_digest),
        form=report.form,
        mediatypes=report.mediatypes,
        platform=report.platform,
        records=report.record_stats.count,
        layers=len(report.layers),
        unique_blobs=report.unique_blobs,
        compressed_size=report.compressed_size,
        uncompressed_size=report.uncompressed_size,
        compression_mix=tuple((share.compression, share.layers, share.bytes) for share in report.compression_mix),
        mode=report.mode.value,
        mode_reason=report.mode.reason,
        errors=severities.count("error"),
        warnings=severities.count("warning"),
        infos=severities.count("info"),
    )


@dataclass(frozen=True, slots=True)
class CachePreview:
    """The first screen of a cache view: its header and the first layer rows, in index order."""

    facts: HeaderFacts
    layers: tuple[LayerRow, ...]


def preview_of(report: CacheReport, rows: int = PREVIEW_ROWS) -> CachePreview:
    # Annotations may be read-only mapping proxies, which do not pickle.
    layers = tuple(dataclasses.replace(row, annotations=dict(row.annotations)) for row in report.layers[:rows])
    return CachePreview(header_facts(report), layers)


def can_fork() -> bool:
    """Forking copies only the calling thread, so it is safe only while there is no other."""
    return sys.platform == "linux" and threading.active_count() == 1


class ForkedPreview:
    """A child process reading one local cache; `result()` is its preview, or None if it failed."""

    def __init__(self, pid: int, fd: int) -> None:
        self._pid = pid
        self._lock = threading.Lock()
        self._reaped = False
        self._future: concurrent.futures.Future[CachePreview | None] = concurrent.futures.Future()
        threading.Thread(target=self._collect, args=(fd,), name="cachescope-preview", daemon=True).start()

    @classmethod
    def start(cls, ref: LayoutRef) -> ForkedPreview | None:
        """Fork the reader, or None where forking is not safe (see `can_fork`)."""
        if not can_fork():
            return None
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:  # pragma: no cover - the child; its output is what the tests check
            os.close(read_end)
            _child(ref, write_end)
        os.close(write_end)
        return cls(pid, read_end)

    def _collect(self, fd: int) -> None:
        preview: CachePreview | None = None
        try:
            with open(fd, "rb") as pipe:
                data = pipe.read(MAX_PREVIEW_BYTES + 1)
            with self._lock:
                os.waitpid(self._pid, 0)
                self._reaped = True
            if data and len(data) <= MAX_PREVIEW_BYTES:
                # Our own child's bytes, over a private pipe: unpickling them trusts nothing new.
                loaded = pickle.loads(data)  # noqa: S301
                preview = loaded if isinstance(loaded, CachePreview) else None
        except Exception:  # noqa: BLE001 - no preview; the app reads the cache itself
            preview = None
        self._future.set_result(preview)

    async def result(self) -> CachePreview | None:
        return await asyncio.wrap_future(self._future)

    def future(self) -> concurrent.futures.Future[CachePreview | None]:
        return self._future

    def stop(self) -> None:
        """Kill the child if it is still reading (the app is leaving, or did not need it)."""
        with self._lock:
            if not self._reaped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._pid, signal.SIGKILL)


def _child(ref: LayoutRef, fd: int) -> None:  # pragma: no cover - runs in the forked child
    """Read, analyse, write the pickled preview, and leave without running the parent's exit handlers."""
    status = 1
    try:
        quiet = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):  # the terminal belongs to the parent's TUI: nothing may reach it from here
            os.dup2(quiet, stream)
        gc.disable()  # a short-lived process: collecting would only slow the parse
        from cachescope.core import analyze, read_cache  # noqa: PLC0415 - see the TYPE_CHECKING note

        report = analyze(asyncio.run(read_cache(ref)))
        data = pickle.dumps(preview_of(report), protocol=pickle.HIGHEST_PROTOCOL)
        with open(fd, "wb", closefd=True) as pipe:
            pipe.write(data)
        status = 0
    except BaseException:  # noqa: BLE001, S110 - the parent reads the cache itself and reports the error
        pass
    finally:
        os._exit(status)
